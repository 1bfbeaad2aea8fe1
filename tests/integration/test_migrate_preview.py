"""The preview of a migration plan against the proving ground: the objects per type of the
plan's namespace, the removed API it converts, the claim with its size and class, the DNS
steps, and nothing created in either cluster nor in the DNS zone; a cluster or a DNS server
that does not answer is reported, not raised."""

from __future__ import annotations

import socket
from pathlib import Path

import yaml

from migrator.export import ExportOptions
from migrator.kube import discover, iter_items
from migrator.kube.discovery import group_version_path, listable
from migrator.kube.retry import RetryPolicy
from migrator.migrate.plan import ClusterRef, Plan, StoreRef, TransformSettings
from migrator.migrate.preview import preview
from migrator.resources.regenerated import type_skip
from migrator.traffic import parse
from migrator.transform.differences import DifferencesConfig
from tests.integration.traffic_support import bind_records, name_in, rfc2136_settings, set_records
from tests.movers import make_claim
from tests.waiting import wait_until

OLD = ["127.0.40.1", "127.0.40.2"]
NEW = ["127.0.41.1", "127.0.41.2"]


def _estate(api, ns: str, storage_class: str) -> None:
    """A Deployment (no replicas: no pods come and go), a Service, a claim, a CronJob
    written through batch/v1beta1 (removed in 1.25) and an Event (a type the export leaves
    out)."""
    labels = {"app": "web"}
    api.request(
        "POST",
        f"/apis/apps/v1/namespaces/{ns}/deployments",
        body={
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "web", "image": "busybox"}]},
                },
            },
        },
    )
    api.request(
        "POST",
        f"/api/v1/namespaces/{ns}/services",
        body={
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"selector": labels, "ports": [{"port": 80}]},
        },
    )
    make_claim(api, ns, "data", storage_class, size="64Mi")
    api.request(
        "POST",
        f"/apis/batch/v1beta1/namespaces/{ns}/cronjobs",
        body={
            "apiVersion": "batch/v1beta1",
            "kind": "CronJob",
            "metadata": {"name": "nightly"},
            "spec": {
                "schedule": "0 3 * * *",
                "jobTemplate": {
                    "spec": {
                        "template": {
                            "spec": {
                                "restartPolicy": "OnFailure",
                                "containers": [{"name": "c", "image": "busybox"}],
                            }
                        }
                    }
                },
            },
        },
    )
    api.request(
        "POST",
        f"/api/v1/namespaces/{ns}/events",
        body={
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "web.1"},
            "involvedObject": {"kind": "Deployment", "namespace": ns, "name": "web"},
            "reason": "Test",
            "message": "an event the export leaves out",
            "type": "Normal",
        },
    )
    wait_until("the Deployment's ReplicaSet", lambda: list(iter_items(
        api, f"/apis/apps/v1/namespaces/{ns}/replicasets")), timeout=30)  # fmt: skip


def _objects_in(api, ns: str) -> set[tuple[str, str, str]]:
    """Every object of the namespace (but what the cluster itself keeps writing: events and
    the like), as (resource, name, uid)."""
    found = set()
    for resource in listable(discover(api).iter_resources()):
        if not resource.namespaced or type_skip(resource.group, resource.name) is not None:
            continue
        base = group_version_path(resource.group_version)
        for obj in iter_items(api, f"{base}/namespaces/{ns}/{resource.name}"):
            meta = obj["metadata"]
            found.add((f"{resource.group}/{resource.name}", meta["name"], meta["uid"]))
    return found


def _namespaces(api) -> set[str]:
    return {ns["metadata"]["name"] for ns in iter_items(api, "/api/v1/namespaces")}


def _plan(cluster, ns: str, tmp_path: Path, **kw) -> Plan:
    return Plan(
        name="preview-test",
        file=None,
        source=ClusterRef("old", "old"),
        target=ClusterRef(kw.pop("target", "new"), "new"),
        store=StoreRef(str(tmp_path / "store")),
        kubeconfig=Path(kw.pop("kubeconfig", cluster.kubeconfig)),
        export=ExportOptions(include_namespaces=(ns,)),
        **kw,
    )


def test_preview_reads_and_changes_nothing(
    old_cluster, new_cluster, old_namespace, real_nodes, dns_zone, tmp_path
):
    api, ns = old_cluster.client, old_namespace
    storage_class = real_nodes["old"].storage_class
    _estate(api, ns, storage_class)
    name = name_in(dns_zone, "shop")
    set_records(dns_zone, name, 5, "A", *OLD)
    settings = parse(rfc2136_settings(dns_zone, tmp_path, {name: NEW}, steps=[0, 50, 100]))
    plan = _plan(
        old_cluster, ns, tmp_path, traffic=settings,
        transform=TransformSettings(DifferencesConfig(storage_classes={storage_class: "gp3"})),
    )  # fmt: skip
    before_old = _objects_in(api, ns)
    before_dns = bind_records(dns_zone, name)

    result = preview(plan)

    doc = result.to_dict()
    assert doc["unavailable"] == {}, doc["unavailable"]
    assert doc["source"]["version"].startswith(f"v{old_cluster.version.rsplit('.', 1)[0]}")
    counts = {t["resource"]: t["objects"] for t in doc["objects"]["types"]}
    for resource in ("deployments.apps", "services", "persistentvolumeclaims", "cronjobs.batch",
                     "namespaces"):  # fmt: skip
        assert counts.get(resource) == 1, (resource, counts)
    assert "pods" not in counts, "no replicas, no pods"
    assert doc["objects"]["total"] == sum(counts.values())
    left_out = {t["resource"]: t for t in doc["objects"]["leftOut"]}
    assert left_out["events"]["rule"] == "event" and left_out["events"]["objects"] >= 1
    assert "deployments.apps" not in left_out

    conversions = doc["conversions"]["objects"]
    assert {(c["object"]["namespace"]) for c in conversions} == {ns}, "the plan's scope only"
    cron = next(c for c in conversions if c["object"]["name"] == "nightly")
    assert cron["object"]["apiVersion"] == "batch/v1beta1"
    assert cron["verdict"] == "convert" and cron["becomes"] == "batch/v1 CronJob"

    volumes = doc["volumes"]
    assert volumes["claims"] == [{
        "claim": f"{ns}/data", "size": "64Mi", "bytes": 64 * 2**20,
        "storageClass": storage_class, "targetClass": "gp3",
        "phase": volumes["claims"][0]["phase"]}]  # fmt: skip
    assert volumes["totalBytes"] == 64 * 2**20 and volumes["method"] == "mover"

    steps = {s["percent"]: s for s in doc["traffic"]["steps"] if s["kind"] == "step"}
    assert steps[0]["weights"][name] == {"old": 1.0, "new": 0.0}
    assert steps[50]["weights"][name] == {"old": 0.5, "new": 0.5}
    assert steps[100]["weights"][name] == {"old": 0.0, "new": 1.0}
    assert [p["name"] for p in doc["phases"]][-3:] == ["shift", "soak", "teardown"]

    assert _objects_in(api, ns) == before_old, "nothing made or removed in the old cluster"
    assert ns not in _namespaces(new_cluster.client), "nothing imported into the new cluster"
    assert bind_records(dns_zone, name) == before_dns, "the DNS records are untouched"


def test_what_cannot_be_read_is_reported(old_cluster, old_namespace, dns_zone, tmp_path):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    config = yaml.safe_load(Path(old_cluster.kubeconfig).read_text())
    config["clusters"].append(
        {
            "name": "gone",
            "cluster": {"server": f"https://127.0.0.1:{closed}", "insecure-skip-tls-verify": True},
        }
    )
    user = next(c["context"]["user"] for c in config["contexts"] if c["name"] == "old")
    config["contexts"].append({"name": "gone", "context": {"cluster": "gone", "user": user}})
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    doc = rfc2136_settings(dns_zone, tmp_path, {name_in(dns_zone, "shop"): NEW})
    doc["provider"]["rfc2136"]["server"] = f"127.0.0.1:{closed}"
    plan = _plan(old_cluster, old_namespace, tmp_path, target="gone", kubeconfig=kubeconfig,
                 traffic=parse(doc))  # fmt: skip

    result = preview(plan, retry_policy=RetryPolicy(budget=2.0, attempts=2))

    unavailable = result.unavailable()
    assert set(unavailable) == {"target", "conversions", "traffic"}, unavailable
    assert str(closed) in unavailable["target"]
    assert "the target cluster (gone) cannot be read" in unavailable["conversions"]
    assert "cannot reach DNS server" in unavailable["traffic"]
    assert result.objects["available"] and result.volumes["available"]
