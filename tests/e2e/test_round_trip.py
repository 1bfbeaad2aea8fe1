"""The whole way: populate old, export to MinIO, transform for new, import, verify.

Zero missing, zero differing, every workload ready (each was in the old cluster), claims
bound to their own volumes, owner references pointing at the new uids (objects owned by an
imported Deployment and by an imported custom resource included).
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from migrator.cli import cli
from migrator.kube import iter_items
from tests.populate import STS_CLAIM, Population, populate


@pytest.fixture
def population(old_cluster) -> Iterator[Population]:
    pop = populate(old_cluster.client)
    yield pop
    pop.cleanup()


@pytest.fixture
def cleanup_new(new_cluster, population) -> Iterator[None]:
    """Remove what the import made on ``new``: the same objects the population made on old."""
    yield
    Population(cluster=new_cluster.client, namespace=population.namespace,
               suffix=population.suffix, created=population.created).cleanup()


def run(s3, *args: str) -> Any:
    return CliRunner().invoke(cli, list(args), env=s3.env())


def test_round_trip_old_to_new(old_cluster, new_cluster, population, cleanup_new, s3):
    store = f"s3://{s3.bucket}/snapshots"
    k = ("--kubeconfig", new_cluster.kubeconfig)
    exported = run(s3, "export", "--from", "old", *k, "--store", store, "--to", "new",
                   "--id", "src", "--include-namespace", population.namespace,
                   "--cluster-scoped", "-o", "json")
    assert exported.exit_code == 0, exported.output
    transformed = run(s3, "transform", f"{store}/src", "--to", "new", *k,
                      "--id", "for-new", "-o", "json")
    assert transformed.exit_code == 0, transformed.output
    imported = run(s3, "import", "for-new", "--store", store, "--to", "new", *k, "-o", "json")
    assert imported.exit_code == 0, imported.output
    report = json.loads(imported.stdout)
    assert report["failures"] == []
    verified = run(s3, "verify", "for-new", "--store", store, "--to", "new", *k,
                   "--wait", "90", "-o", "json")
    result = json.loads(verified.stdout)
    assert (result["missing"], result["differing"]) == ([], [])
    # Every workload, claim and CRD is ready in new: all of them were in old (populate waits
    # for its claims, the StatefulSet's included, to bind to their pre-made volumes).
    assert result["notReady"] == [], result["notReady"]
    assert verified.exit_code == 0, verified.output
    assert_claims_on_their_volumes(new_cluster, population)
    assert_owners_relinked(new_cluster, population)


def assert_claims_on_their_volumes(new_cluster, population: Population) -> None:
    """Each claim is Bound to the volume it had in old, and that volume names it back."""
    ns, suffix = population.namespace, population.suffix
    volumes = {"claim-1": f"pop-{suffix}-pv1", "claim-2": f"pop-{suffix}-pv2",
               STS_CLAIM: f"sts-{suffix}-data-db-0"}
    for claim_name, volume_name in volumes.items():
        claim = new_cluster.client.request(
            "GET", f"/api/v1/namespaces/{ns}/persistentvolumeclaims/{claim_name}")
        assert (claim["spec"]["volumeName"], claim["status"]["phase"]) == (volume_name, "Bound")
        volume = new_cluster.client.request("GET", f"/api/v1/persistentvolumes/{volume_name}")
        ref = volume["spec"]["claimRef"]
        assert (ref["namespace"], ref["name"], ref["uid"]) == (
            ns, claim_name, claim["metadata"]["uid"])


def assert_owners_relinked(new_cluster, population: Population) -> None:
    """Imported dependents name their imported owners by the owners' uids in new."""
    ns, client = population.namespace, new_cluster.client
    owners = {
        "web-owned": f"/apis/apps/v1/namespaces/{ns}/deployments/web",
        "widget-owned": f"/apis/{population.crd_group}/v1/namespaces/{ns}/widgets/widgets-1",
    }
    for dependent, owner_path in owners.items():
        owner = client.request("GET", owner_path)
        config = client.request("GET", f"/api/v1/namespaces/{ns}/configmaps/{dependent}")
        [ref] = config["metadata"]["ownerReferences"]
        assert (ref["kind"], ref["name"], ref["uid"]) == (
            owner["kind"], owner["metadata"]["name"], owner["metadata"]["uid"])
    # What the new cluster's controllers made points at the imported objects too.
    uids = {(o["kind"], o["metadata"]["name"]): o["metadata"]["uid"]
            for path, kind in (("/apis/apps/v1/namespaces/{ns}/deployments", "Deployment"),
                               ("/apis/batch/v1/namespaces/{ns}/cronjobs", "CronJob"))
            for o in ({**x, "kind": kind} for x in iter_items(client, path.format(ns=ns)))}
    for path in ("/apis/apps/v1/namespaces/{ns}/replicasets", "/apis/batch/v1/namespaces/{ns}/jobs"):
        for item in iter_items(client, path.format(ns=ns)):
            for ref in item["metadata"].get("ownerReferences") or ():
                if (ref["kind"], ref["name"]) in uids:
                    assert ref["uid"] == uids[(ref["kind"], ref["name"])]
