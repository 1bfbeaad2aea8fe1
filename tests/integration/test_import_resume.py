"""Kill ``migrator import`` at random points, run it again: the result is as if never killed."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from migrator.kube import iter_items
from migrator.snapshot import SnapshotReader
from migrator.store import LocalStore
from migrator.verify import VerifyOptions, verify_snapshot
from tests.conftest import REPO
from tests.waiting import wait_until
from tests.integration.import_snapshots import (
    CONFIGMAPS,
    NAMESPACES,
    Contents,
    configmap,
    delete_quietly,
    owner_ref,
    unique,
    write_snapshot,
)

PLAIN, OWNERS = 600, 60  # + one owned ConfigMap per owner: 720 ConfigMaps, 3 phases
QPS = 250  # a run lasts a few seconds, whatever the machine: room to kill it part way


def recorded_batches(store: LocalStore) -> int:
    """Batches of outcomes the import's runs recorded so far (in the snapshot's import/)."""
    return sum(1 for key in store.list("big/import/") if key.rsplit("/", 1)[-1].startswith(
        "batch-"))


def run_import(new_cluster, store: LocalStore, snapshot_id: str, kill_after_batches: int | None,
               extra: float = 0.0) -> subprocess.CompletedProcess[str] | None:
    """Run the CLI; with ``kill_after_batches`` SIGKILL it once it has recorded that many
    more batches, then ``extra`` seconds later (None if it was killed). Killing by progress,
    not by the clock, lands part way through however loaded the machine is."""
    args = [sys.executable, "-m", "migrator", "import", snapshot_id, "--store", store.url,
            "--to", new_cluster.context, "--kubeconfig", new_cluster.kubeconfig,
            "--workers", "4", "--qps", str(QPS), "-o", "json"]
    before = recorded_batches(store)
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    if kill_after_batches is not None:
        wait_until("the import recording batches (or ending)",
                   lambda: proc.poll() is not None
                   or recorded_batches(store) >= before + kill_after_batches,
                   timeout=120, interval=0.01)
        time.sleep(extra)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.communicate()
            return None
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_killed_import_resumes_to_the_same_final_state(new_cluster, tmp_path: Path, seed: int):
    rng = random.Random(seed)
    ns = unique(f"imp-kill{seed}")
    store = LocalStore(str(tmp_path / "snapshots"))
    c = Contents()
    c.add(NAMESPACES, {"metadata": {"name": ns}})
    for i in range(PLAIN):
        c.add(CONFIGMAPS, configmap(ns, f"plain-{i:04d}", {"i": str(i)}))
    for i in range(OWNERS):
        c.add(CONFIGMAPS, configmap(ns, f"owner-{i:03d}"))
        c.add(CONFIGMAPS, configmap(ns, f"owned-{i:03d}",
                                    owners=[owner_ref("v1", "ConfigMap", f"owner-{i:03d}")]))
    write_snapshot(store, "big", c, part_max_objects=250)
    try:
        kills = 0
        for _ in range(3):
            if run_import(new_cluster, store, "big", rng.randint(1, 2),
                          rng.uniform(0, 0.3)) is None:
                kills += 1
        final = run_import(new_cluster, store, "big", None)
        assert final is not None and final.returncode == 0, final.stderr if final else ""
        report = json.loads(final.stdout)
        assert report["totals"]["objects"] == 1 + PLAIN + 2 * OWNERS
        assert report["totals"]["failed"] == 0
        assert kills >= 1 and report["resumed"]
        live = {o["metadata"]["name"]: o for o in iter_items(
            new_cluster.client, f"/api/v1/namespaces/{ns}/configmaps")}
        assert len(live) == PLAIN + 2 * OWNERS + 1  # + kube-root-ca.crt
        for i in range(OWNERS):
            refs = live[f"owned-{i:03d}"]["metadata"]["ownerReferences"]
            assert [r["uid"] for r in refs] == [live[f"owner-{i:03d}"]["metadata"]["uid"]]
        result = verify_snapshot(SnapshotReader(store, "big"), new_cluster.client,
                                 VerifyOptions())
        assert (result.missing, result.differing, result.extra) == ([], [], [])
    finally:
        delete_quietly(new_cluster.client, f"/api/v1/namespaces/{ns}")
