"""A stateful application moves with its data, on the real nodes.

A StatefulSet on the old cluster's real node writes files into its claim without pause.
``migrator export``, ``transform`` (claims get new volumes in the new cluster, the app
starts there only once its data is in) and ``import``; ``volumes sync --pass stage`` while
it writes; a final pass that fails (the old app must be back at its replicas, and is); the
final pass with quiesce (scale to zero). The new cluster's pod then starts and lists, with
checksums, what it finds in its claim: exactly the files the old pod wrote last.

The run's figures (bytes, files, pass durations, how long the app was stopped) are printed
(``pytest -s``) and kept in README.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from migrator.cli import cli
from migrator.volumes.quiesce import REPLICAS_ANNOTATION
from tests.movers import claim_directory, running_pods
from tests.namespaces import shared_namespace
from tests.waiting import wait_until

CLAIM = "data-app-0"
# Seeds the volume once (200 files of 64 KiB, one of 16 MiB), then writes a small file every
# 0.2 s. On start it lists what it finds (path and sha256), between markers: the new
# cluster's pod says so what it was given.
APP = r"""
echo BEGIN-LISTING
cd /data && find . -type f | sort | while read f; do echo "$(sha256sum < "$f" | cut -d' ' -f1) $f"; done
echo END-LISTING
if [ ! -f /data/seed.done ]; then
  mkdir -p /data/seed; n=0
  while [ $n -lt 200 ]; do head -c 65536 /dev/urandom > /data/seed/s-$n; n=$((n+1)); done
  head -c 16777216 /dev/urandom > /data/big.bin; touch /data/seed.done
fi
i=$(cat /data/counter 2>/dev/null || echo 0)
while true; do
  i=$((i+1)); head -c 8192 /dev/urandom > /data/w-$i; echo $i > /data/counter; sleep 0.2
done
"""
RULES = """
rules:
  - name: claims get new volumes in the new cluster (the movers fill them)
    match: {kind: PersistentVolumeClaim}
    delete: [/spec/volumeName]
  - name: the app starts in the new cluster once its data is there
    match: {kind: StatefulSet}
    set: {/spec/replicas: 0}
"""


def _statefulset(node) -> dict[str, Any]:
    labels = {"app": "app"}
    container = {"name": "app", "image": node.images["busybox"], "imagePullPolicy": "Never",
                 "command": ["sh", "-c", APP], "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                 "readinessProbe": {"exec": {"command": ["test", "-f", "/data/seed.done"]},
                                    "periodSeconds": 1}}
    claim = {"metadata": {"name": "data"},
             "spec": {"storageClassName": node.storage_class, "accessModes": ["ReadWriteOnce"],
                      "resources": {"requests": {"storage": "256Mi"}}}}
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "app"},
            "spec": {"replicas": 1, "serviceName": "app", "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [container], "terminationGracePeriodSeconds": 1,
                                           **node.placement()}},
                     "volumeClaimTemplates": [claim]}}


def _listing(directory: Path) -> list[str]:
    """What the app's listing says for ``directory``, computed on the host."""
    return [f"{hashlib.sha256(p.read_bytes()).hexdigest()} ./{p.relative_to(directory).as_posix()}"
            for p in sorted(directory.rglob("*"), key=lambda p: p.relative_to(directory).as_posix())
            if p.is_file()]


def _pod_listing(api, ns: str, pod: str) -> list[str] | None:
    log = api.request_raw("GET", f"/api/v1/namespaces/{ns}/pods/{pod}/log", accept="*/*").decode()
    lines = log.splitlines()
    if "END-LISTING" not in lines:
        return None
    return lines[lines.index("BEGIN-LISTING") + 1:lines.index("END-LISTING")]


def _statefulset_state(api, ns: str) -> tuple[int, str | None]:
    sts = api.request("GET", f"/apis/apps/v1/namespaces/{ns}/statefulsets/app")
    return sts["spec"]["replicas"], sts["metadata"].get("annotations", {}).get(REPLICAS_ANNOTATION)


def test_a_statefulset_moves_with_its_data_stage_then_final_pass(
        old_cluster, new_cluster, real_nodes, s3, tmp_path):
    old_api, new_api = old_cluster.client, new_cluster.client
    old_node = real_nodes["old"]
    store = f"s3://{s3.bucket}/snapshots"
    k = ("--kubeconfig", old_cluster.kubeconfig)

    def run(*args: str) -> Any:
        result = CliRunner().invoke(cli, list(args), env=s3.env())
        # the store's credentials travel to the movers in a Secret, never on the screen
        assert s3.secret_key not in result.output, args
        return result

    def sync(*args: str) -> tuple[int, dict]:
        result = run("volumes", "sync", "for-new", "--store", store, "--from", "old", "--to", "new",
                     *k, "--image", old_node.images["mover"], "--pull-policy", "Never",
                     "--pods-s3-endpoint", old_node.s3_endpoint, "-o", "json", *args)
        start = result.stdout.find("{")
        assert start >= 0, result.output
        return result.exit_code, json.loads(result.stdout[start:])

    with shared_namespace([old_cluster], prefix="t-e2e-volumes") as ns:
        try:
            old_api.request("POST", f"/apis/apps/v1/namespaces/{ns}/statefulsets",
                            body=_statefulset(old_node))
            wait_until("the app seeded its volume", lambda: running_pods(old_api, ns, "app=app"),
                       timeout=180, interval=0.5)
            source = claim_directory(old_api, ns, CLAIM)

            exported = run("export", "--from", "old", *k, "--store", store, "--id", "src",
                           "--include-namespace", ns, "--exclude-resource", "persistentvolumes",
                           "-o", "json")
            assert exported.exit_code == 0, exported.output
            rules = tmp_path / "rules.yaml"
            rules.write_text(RULES)
            transformed = run("transform", f"{store}/src", "--to", "new", *k, "--id", "for-new",
                              "--rules", str(rules), "-o", "json")
            assert transformed.exit_code == 0, transformed.output
            imported = run("import", "for-new", "--store", store, "--to", "new", *k, "-o", "json")
            assert imported.exit_code == 0, imported.output
            target = claim_directory(new_api, ns, CLAIM)  # a fresh volume on the new node
            assert list(target.iterdir()) == []

            # A dry run says where the claim is and changes nothing.
            code, planned = sync("--dry-run")
            assert code == 0, planned
            assert planned["volumes"] == [{"volume": f"{ns}/{CLAIM}", "node": old_node.name,
                                           "pods": ["app-0"], "bound": True}]

            # Stage pass: the app keeps writing.
            code, stage = sync("--pass", "stage")
            assert code == 0, stage
            (volume,) = stage["volumes"]
            assert volume["volume"] == f"{ns}/{CLAIM}" and volume["node"] == old_node.name
            assert stage["quiesce"] is None and stage["stoppedSeconds"] is None
            assert _statefulset_state(old_api, ns) == (1, None)
            written_during_stage = int((source / "counter").read_text())
            time.sleep(3)  # more writes

            # A final pass that fails (a mover image no node has): the app is back at 1.
            code, failed = sync("--pass", "final", "--image", "migrator.local/mover:missing",
                                "--attempts", "1")
            assert code == 5, failed
            assert failed["undone"] is True and failed["failed"] == 1
            assert failed["volumes"][0]["error"].startswith("backup failed: ErrImageNeverPull")
            assert [s["replicas"] for s in failed["quiesce"]["restored"]] == [1]
            assert _statefulset_state(old_api, ns) == (1, None)
            wait_until("the old app running again", lambda: running_pods(old_api, ns, "app=app"),
                       timeout=120, interval=0.5)
            writes_before_final = int((source / "counter").read_text())
            assert writes_before_final > written_during_stage

            # The final pass: scale to zero, move what changed, leave the app stopped.
            started = time.monotonic()
            code, final = sync("--pass", "final")
            final_wall = time.monotonic() - started
            assert code == 0, (final["quiesceError"], final["problems"])
            assert final["undone"] is False
            assert final["quiesce"]["scaled"] == [
                {"kind": "StatefulSet", "namespace": ns, "name": "app", "replicas": 1}]
            assert _statefulset_state(old_api, ns) == (0, "1")
            last_written = _listing(source)  # the old app is stopped: this is what it wrote last
            assert any(line.endswith(f"./w-{int((source / 'counter').read_text())}") for line in last_written)

            # The app starts in the new cluster and lists exactly what the old one left.
            new_api.request("PATCH", f"/apis/apps/v1/namespaces/{ns}/statefulsets/app/scale",
                            body={"spec": {"replicas": 1}}, content_type="application/merge-patch+json")
            listed = wait_until("the new pod's listing", lambda: _pod_listing(new_api, ns, "app-0"),
                                timeout=180, interval=1, ignore=(Exception,))
            assert listed == last_written
            pod = new_api.request("GET", f"/api/v1/namespaces/{ns}/pods/app-0")
            assert pod["spec"]["nodeName"] == real_nodes["new"].name

            stage_backup = stage["volumes"][0]["backup"]["report"]
            final_backup = final["volumes"][0]["backup"]["report"]
            # The final restore builds on the stage's: what the app wrote before the stage
            # pass is in the new claim already and is not written again.
            final_restore = final["volumes"][0]["restore"]["report"]
            assert final_restore["basePass"] == stage_backup["pass"], final_restore
            assert 0 < final_restore["filesUnchanged"] < final_restore["files"], final_restore
            figures = {
                "files": final["files"], "bytes": final["bytes"],
                "stage": {"seconds": stage["seconds"], "bytesUploaded": stage_backup["bytesUploaded"],
                          "backupSeconds": stage_backup["seconds"],
                          "restoreSeconds": stage["volumes"][0]["restore"]["report"]["seconds"]},
                "final": {"seconds": final["seconds"], "wallSeconds": round(final_wall, 1),
                          "filesRead": final_backup["filesRead"], "bytesRead": final_backup["bytesRead"],
                          "bytesUploaded": final_backup["bytesUploaded"],
                          "backupSeconds": final_backup["seconds"],
                          "restoreSeconds": final_restore["seconds"],
                          "restoreFilesUnchanged": final_restore["filesUnchanged"],
                          "restoreBytesWritten": final_restore["bytesWritten"],
                          "backupJobSeconds": final["volumes"][0]["backup"]["seconds"],
                          "restoreJobSeconds": final["volumes"][0]["restore"]["seconds"],
                          "quiesceSeconds": final["quiesceSeconds"]},
                "stoppedSeconds": final["stoppedSeconds"],
                "failedFinal": {"seconds": failed["seconds"], "stoppedSeconds": failed["stoppedSeconds"]},
            }
            print("\nVOLUME-SYNC-FIGURES " + json.dumps(figures))

            # A rollback later: the old app comes back from the record on its StatefulSet.
            undone = run("volumes", "unquiesce", "for-new", "--store", store, "--from", "old", *k,
                         "-o", "json")
            assert undone.exit_code == 0, undone.output
            assert json.loads(undone.stdout)["restored"] == [
                {"kind": "StatefulSet", "namespace": ns, "name": "app", "replicas": 1}]
            assert _statefulset_state(old_api, ns) == (1, None)
        finally:
            try:
                new_api.request("DELETE", f"/api/v1/namespaces/{ns}")
            except Exception:  # noqa: BLE001 - cleanup of a namespace the import may not have made
                pass
