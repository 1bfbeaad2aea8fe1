"""The EBS path with moto's EC2 (no local server implements EC2) and the new cluster's real
API server: a stage pass only snapshots; a final pass snapshots, creates the volume in the
mapped zone, and the PV the imported claim binds to, for CSI and in-tree EBS volumes alike."""
from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from migrator.errors import ApiError
from migrator.volumes import sync
from migrator.volumes.claims import Claim, Placement
from migrator.volumes.ebs import ZONE_LABEL, EbsMover
from tests.namespaces import shared_namespace
from tests.waiting import wait_until

REGION = "us-east-1"


def _old_pv(kind: str, volume_id: str) -> dict:
    source = ({"csi": {"driver": "ebs.csi.aws.com", "volumeHandle": volume_id, "fsType": "xfs"}}
              if kind == "csi" else
              {"awsElasticBlockStore": {"volumeID": f"aws://{REGION}a/{volume_id}", "fsType": "xfs"}})
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pvc-old"},
            "spec": {"capacity": {"storage": "8Gi"}, "accessModes": ["ReadWriteOnce"],
                     "persistentVolumeReclaimPolicy": "Delete", "storageClassName": "gp3",
                     "mountOptions": ["noatime"], **source}}


@pytest.fixture
def ec2():
    with mock_aws():
        yield boto3.client("ec2", region_name=REGION)


@pytest.mark.parametrize("kind", ["csi", "in-tree"])
def test_ebs_volume_moves_by_snapshot_into_the_mapped_zone_and_binds_the_imported_claim(
        kind, ec2, new_cluster):
    api = new_cluster.client
    source = ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=8, VolumeType="gp3",
                               Iops=4000, Throughput=250)["VolumeId"]
    pv_name = f"pvc-old-{kind}-{source[-8:]}"
    with shared_namespace([new_cluster], prefix="t-ebs") as ns:
        # The imported claim: pre-bound by name to the volume it had (the import keeps
        # spec.volumeName), which the new cluster does not have yet.
        api.request("POST", f"/api/v1/namespaces/{ns}/persistentvolumeclaims", body={
            "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
            "spec": {"storageClassName": "gp3", "accessModes": ["ReadWriteOnce"],
                     "volumeName": pv_name, "resources": {"requests": {"storage": "8Gi"}}}})
        claim = Claim(ns, "data")
        placement = Placement(pods=["db-0"], node="ip-10-0-0-1", pv=_old_pv(kind, source))
        plan = sync.SyncPlan({claim: placement})
        try:
            stage = sync.apply(plan, EbsMover(ec2, api, run_id="r1", pass_kind=sync.STAGE, delay=0.1),
                               run_id="r1", method="ebs")
            (staged,) = stage.volumes
            assert staged.ok and set(staged.ebs) == {"sourceVolume", "snapshot", "seconds"}
            assert len(ec2.describe_volumes()["Volumes"]) == 1  # a stage pass only snapshots

            mover = EbsMover(ec2, api, run_id="r2", pass_kind=sync.FINAL,
                             zones={f"{REGION}a": f"{REGION}c"}, delay=0.1)
            final = sync.apply(sync.SyncPlan({claim: placement}, sync.FINAL), mover, run_id="r2",
                               method="ebs")
            (moved,) = final.volumes
            assert moved.ok, moved.error
            steps = moved.ebs
            snapshot = ec2.describe_snapshots(SnapshotIds=[steps["snapshot"]])["Snapshots"][0]
            assert snapshot["VolumeId"] == source and snapshot["State"] == "completed"
            assert {t["Key"]: t["Value"] for t in snapshot["Tags"]} == {
                "migrator.io/run": "r2", "migrator.io/volume": f"{ns}/data"}
            volume = ec2.describe_volumes(VolumeIds=[steps["volume"]])["Volumes"][0]
            assert (volume["AvailabilityZone"], volume["SnapshotId"], volume["VolumeType"]) == (
                f"{REGION}c", steps["snapshot"], "gp3")
            assert (volume["Iops"], volume["Size"]) == (4000, 8)

            pv = api.request("GET", f"/api/v1/persistentvolumes/{pv_name}")
            spec = pv["spec"]
            assert spec["csi"] == {"driver": "ebs.csi.aws.com", "volumeHandle": steps["volume"],
                                   "fsType": "xfs"}
            assert spec["nodeAffinity"]["required"]["nodeSelectorTerms"] == [{"matchExpressions": [
                {"key": ZONE_LABEL, "operator": "In", "values": [f"{REGION}c"]}]}]
            assert (spec["storageClassName"], spec["capacity"], spec["mountOptions"]) == (
                "gp3", {"storage": "8Gi"}, ["noatime"])
            assert (spec["claimRef"]["namespace"], spec["claimRef"]["name"]) == (ns, "data")
            assert pv["metadata"]["labels"][ZONE_LABEL] == f"{REGION}c"

            def bound():
                live = api.request("GET", f"/api/v1/namespaces/{ns}/persistentvolumeclaims/data")
                return live if live["status"].get("phase") == "Bound" else None

            live = wait_until("the imported claim bound to the new volume", bound, timeout=60)
            assert live["spec"]["volumeName"] == pv_name
        finally:
            try:
                api.request("DELETE", f"/api/v1/persistentvolumes/{pv_name}")
            except ApiError:
                pass


def test_a_volume_that_is_not_ebs_is_reported_and_the_others_move(ec2, new_cluster):
    source = ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=1)["VolumeId"]
    local = {"spec": {"local": {"path": "/mnt/x"}}}
    plan = sync.SyncPlan({Claim("ns", "local"): Placement(pv=local),
                          Claim("ns", "ebs"): Placement(pv=_old_pv("csi", source))})
    report = sync.apply(plan, EbsMover(ec2, new_cluster.client, run_id="r", pass_kind=sync.STAGE,
                                       delay=0.1), run_id="r", method="ebs")
    by_name = {v.claim.name: v for v in report.volumes}
    assert by_name["ebs"].ok and by_name["ebs"].ebs["snapshot"].startswith("snap-")
    assert "not an EBS volume" in by_name["local"].error
    assert [p.what for p in report.problems()] == ["ns/local"]


def test_the_cli_moves_an_ebs_claim_from_the_old_cluster_into_the_new(
        ec2, old_cluster, new_cluster, tmp_path):
    """The whole EBS way through the CLI: a claim bound to an EBS CSI volume in the old
    cluster, exported (without its PV) to a local store, imported; `volumes sync --method
    ebs --pass final` snapshots it, makes the volume in the mapped zone and the PV the
    imported claim binds to. (moto answers every AWS call in this process, so the store is a
    directory: the EBS path needs no store.)"""
    import json

    from click.testing import CliRunner

    from migrator.cli import cli

    source = ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=8, VolumeType="gp3")["VolumeId"]
    pv_name = f"pv-ebs-{source[-8:]}"
    store = str(tmp_path / "snapshots")
    k = ("--kubeconfig", old_cluster.kubeconfig)
    with shared_namespace([old_cluster], prefix="t-ebs-cli") as ns:
        old = old_cluster.client
        pv = _old_pv("csi", source)
        pv["metadata"]["name"] = pv_name
        pv["spec"]["claimRef"] = {"namespace": ns, "name": "data"}
        old.request("POST", "/api/v1/persistentvolumes", body=pv)
        try:
            old.request("POST", f"/api/v1/namespaces/{ns}/persistentvolumeclaims", body={
                "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
                "spec": {"storageClassName": "gp3", "accessModes": ["ReadWriteOnce"], "volumeName": pv_name,
                         "resources": {"requests": {"storage": "8Gi"}}}})
            wait_until("the old claim bound", lambda: old.request(
                "GET", f"/api/v1/namespaces/{ns}/persistentvolumeclaims/data")["status"].get("phase") == "Bound",
                timeout=60)

            def run(*args: str):
                result = CliRunner().invoke(cli, list(args))
                assert result.exit_code == 0, result.output
                return result

            run("export", "--from", "old", *k, "--store", store, "--id", "ebs", "--include-namespace", ns,
                "--exclude-resource", "persistentvolumes", "-o", "json")
            run("import", "ebs", "--store", store, "--to", "new", *k, "-o", "json")
            synced = run("volumes", "sync", "ebs", "--store", store, "--from", "old", "--to", "new", *k,
                         "--method", "ebs", "--pass", "final", "--quiesce", "none",
                         "--zone", f"{REGION}a={REGION}b", "--region", REGION, "-o", "json")
            report = json.loads(synced.stdout)
            (volume,) = report["volumes"]
            assert volume["volume"] == f"{ns}/data" and volume["ok"]
            assert volume["ebs"]["sourceVolume"] == source and volume["ebs"]["pv"] == pv_name
            made = ec2.describe_volumes(VolumeIds=[volume["ebs"]["volume"]])["Volumes"][0]
            assert made["AvailabilityZone"] == f"{REGION}b"

            new = new_cluster.client
            def bound():
                c = new.request("GET", f"/api/v1/namespaces/{ns}/persistentvolumeclaims/data")
                return c if c["status"].get("phase") == "Bound" else None

            claim = wait_until("the imported claim bound to the new volume", bound, timeout=60)
            assert claim["spec"]["volumeName"] == pv_name
            live = new.request("GET", f"/api/v1/persistentvolumes/{pv_name}")
            assert live["spec"]["csi"]["volumeHandle"] == made["VolumeId"]
        finally:
            for cluster in (old_cluster, new_cluster):
                try:
                    cluster.client.request("DELETE", f"/api/v1/persistentvolumes/{pv_name}")
                except ApiError:
                    pass
            try:
                new_cluster.client.request("DELETE", f"/api/v1/namespaces/{ns}")
            except ApiError:
                pass
