"""The proving ground is real: controllers reconcile, kwok runs pods, the old server converts,
MinIO stores, BIND takes RFC2136 updates."""
from __future__ import annotations

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.update
import pytest

from migrator.errors import ApiError
from migrator.kube import discover
from tests.waiting import wait_until


def _poll(what: str, check):
    return wait_until(what, check, timeout=90)


def _deployment(name: str, replicas: int = 2) -> dict:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]}}},
    }


@pytest.mark.parametrize("which", ["old", "new"])
def test_deployment_gets_replicaset_and_ready_pods(which, request, make_namespace):
    cluster = request.getfixturevalue(f"{which}_cluster")
    ns = make_namespace(cluster)
    api = cluster.client
    api.request("POST", f"/apis/apps/v1/namespaces/{ns}/deployments", body=_deployment("web"))

    rs = _poll("a ReplicaSet owned by the Deployment", lambda: [
        r for r in api.request("GET", f"/apis/apps/v1/namespaces/{ns}/replicasets")["items"]
        if r["metadata"].get("ownerReferences", [{}])[0].get("name") == "web"])
    assert rs[0]["spec"]["replicas"] == 2

    def ready_pods():
        pods = api.request("GET", f"/api/v1/namespaces/{ns}/pods")["items"]
        ready = [p for p in pods if p["status"].get("phase") == "Running" and any(
            c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))]
        return ready if len(ready) == 2 else None

    pods = _poll("two Running and Ready pods", ready_pods)
    assert all(p["spec"]["nodeName"].startswith(f"{which}-node-") for p in pods)
    assert all(p["status"].get("podIP") for p in pods)

    dep = _poll("the Deployment reporting 2 available replicas", lambda: (
        lambda d: d if d.get("status", {}).get("availableReplicas") == 2 else None)(
        api.request("GET", f"/apis/apps/v1/namespaces/{ns}/deployments/web")))
    assert dep["status"]["readyReplicas"] == 2


def test_old_server_converts_deprecated_ingress(old_cluster, old_namespace):
    api, ns = old_cluster.client, old_namespace
    legacy = {
        "apiVersion": "extensions/v1beta1", "kind": "Ingress",
        "metadata": {"name": "shop", "annotations": {"kubernetes.io/ingress.class": "nginx"}},
        "spec": {"backend": {"serviceName": "fallback", "servicePort": 8080},
                 "rules": [{"host": "shop.example.com", "http": {"paths": [
                     {"path": "/cart", "backend": {"serviceName": "cart", "servicePort": "http"}}]}}]},
    }
    created = api.request("POST", f"/apis/extensions/v1beta1/namespaces/{ns}/ingresses", body=legacy)
    current = api.request("GET", f"/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses/shop")

    assert current["apiVersion"] == "networking.k8s.io/v1"
    assert current["metadata"]["uid"] == created["metadata"]["uid"]
    assert current["spec"]["defaultBackend"] == {"service": {"name": "fallback", "port": {"number": 8080}}}
    path = current["spec"]["rules"][0]["http"]["paths"][0]
    assert path["backend"] == {"service": {"name": "cart", "port": {"name": "http"}}}
    assert path["pathType"] == "ImplementationSpecific"


def test_deprecated_groups_served_by_old_only(old_cluster, new_cluster):
    old, new = discover(old_cluster.client), discover(new_cluster.client)
    assert old.version.minor == old_cluster.minor == 21
    assert new.version.minor == new_cluster.minor >= 33
    for gv in ("extensions/v1beta1", "networking.k8s.io/v1beta1", "apiextensions.k8s.io/v1beta1",
               "batch/v1beta1", "policy/v1beta1", "autoscaling/v2beta1"):
        assert old.serves(gv), gv
        assert not new.serves(gv), gv
    with pytest.raises(ApiError) as err:
        new_cluster.client.request("GET", "/apis/extensions/v1beta1")
    assert err.value.status == 404


def test_minio_put_and_get(s3):
    client = s3.client()
    body = bytes(range(256)) * 4096  # 1 MiB of every byte value
    client.put_object(Bucket=s3.bucket, Key="dir/blob.bin", Body=body)
    assert client.get_object(Bucket=s3.bucket, Key="dir/blob.bin")["Body"].read() == body
    listed = client.list_objects_v2(Bucket=s3.bucket)["Contents"]
    assert [(o["Key"], o["Size"]) for o in listed] == [("dir/blob.bin", len(body))]


def test_bind_rfc2136_update_then_resolve(dns_zone):
    name = f"{dns_zone.label}.{dns_zone.zone}"
    update = dns.update.UpdateMessage(dns_zone.zone, keyring=dns_zone.keyring(),
                                      keyname=dns_zone.tsig_name, keyalgorithm=dns_zone.tsig_algorithm)
    update.replace(dns_zone.label, 30, "A", "192.0.2.10")
    response = dns.query.tcp(update, dns_zone.server, port=dns_zone.port, timeout=5)
    assert response.rcode() == dns.rcode.NOERROR

    answer = dns.query.udp(dns.message.make_query(name, "A"), dns_zone.server, port=dns_zone.port, timeout=5)
    records = [rr.to_text() for rrset in answer.answer if rrset.rdtype == dns.rdatatype.A for rr in rrset]
    assert records == ["192.0.2.10"]

    unsigned = dns.update.UpdateMessage(dns_zone.zone)
    unsigned.replace(dns_zone.label, 30, "A", "192.0.2.99")
    refused = dns.query.tcp(unsigned, dns_zone.server, port=dns_zone.port, timeout=5)
    assert refused.rcode() == dns.rcode.REFUSED


def test_k8s_api_fixtures_of_the_old_release(k8s_api_fixtures):
    import json

    files = {p.name for p in k8s_api_fixtures.iterdir()}
    for kind in ("extensions.v1beta1.Ingress", "admissionregistration.k8s.io.v1beta1.MutatingWebhookConfiguration",
                 "policy.v1beta1.PodDisruptionBudget", "autoscaling.v2beta1.HorizontalPodAutoscaler",
                 "batch.v1beta1.CronJob", "apps.v1.Deployment"):
        assert f"{kind}.json" in files and f"{kind}.yaml" in files, kind
    ingress = json.loads((k8s_api_fixtures / "extensions.v1beta1.Ingress.json").read_text())
    assert ingress["apiVersion"] == "extensions/v1beta1"
    assert ingress["spec"]["backend"]["serviceName"]  # every field filled
    assert len([f for f in files if f.endswith(".json")]) > 100
