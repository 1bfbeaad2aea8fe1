"""Under faults: outages a control-plane restart causes, connection resets, responses cut short,
an import that stalls and loses its lock, a resumed export pointed at another cluster.

The API servers are reached through :class:`tests.faults.FaultyProxy`, which refuses, resets
and cuts connections on command; counts must come out exact, as without faults.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from migrator.cli import cli
from migrator.errors import SnapshotError
from migrator.export import ExportOptions, export_cluster
from migrator.importer import ImportOptions, import_snapshot
from migrator.kube import connect, iter_items
from migrator.resources.scope import Scope
from migrator.snapshot import SnapshotReader
from migrator.store import LocalStore
from tests.faults import proxied
from tests.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
CONFIGMAPS = 240


def fill(cluster, namespace: str, count: int = CONFIGMAPS) -> None:
    for i in range(count):
        cluster.client.request("POST", f"/api/v1/namespaces/{namespace}/configmaps", body={
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm-{i:03d}"},
            "data": {"payload": f"{i:03d}" * 100}})


def names(reader: SnapshotReader) -> list[str]:
    entry = reader.find("", "v1", "configmaps")
    assert entry is not None
    return sorted(o["metadata"]["name"] for o in reader.iter_objects(entry))


@pytest.mark.timeout(600)
def test_export_and_import_outlast_a_minute_of_outage_and_resets(
    proving_ground, old_cluster, new_cluster, make_namespace, tmp_path
):
    namespace = make_namespace(old_cluster)
    fill(old_cluster, namespace)
    store = LocalStore(tmp_path / "snapshots")
    options = ExportOptions(include_namespaces=(namespace,), page_size=10, workers=1,
                            processes=0)
    servers = {"old": old_cluster.server, "new": new_cluster.server}
    with proxied(old_cluster.kubeconfig, servers, tmp_path / "kubeconfig") as (config, proxies):
        # A minute without the old API server, starting a few pages in; then resets.
        proxies["old"].outage_after(40_000, 60)
        started = time.monotonic()
        with connect(str(config), "old") as source:
            result = export_cluster(source, store, snapshot_id="outage", options=options)
        took = time.monotonic() - started
        assert "refuse 60s" in proxies["old"].events and "listening again" in proxies["old"].events
        assert took >= 60 and not result.report.partial
        reader = SnapshotReader(store, "outage")
        assert names(reader) == [f"cm-{i:03d}" for i in range(CONFIGMAPS)]

        # Into the new cluster: a burst of resets and cut responses, then a minute's outage.
        proxies["new"].reset(5)
        proxies["new"].cut(3)
        proxies["new"].outage_after(60_000, 60)
        with connect(str(config), "new") as target:
            report = import_snapshot(reader, target, ImportOptions(workers=2))
        events = proxies["new"].events
        assert events.count("reset a connection") == 5 and "refuse 60s" in events
        assert "cut a response" in events
    totals = report.to_dict()["totals"]
    assert not report.partial and totals["created"] == CONFIGMAPS + 1  # and the Namespace
    live = sorted(o["metadata"]["name"] for o in iter_items(
        new_cluster.client, f"/api/v1/namespaces/{namespace}/configmaps")
        if o["metadata"]["name"].startswith("cm-"))
    assert live == [f"cm-{i:03d}" for i in range(CONFIGMAPS)]
    new_cluster.client.request("DELETE", f"/api/v1/namespaces/{namespace}")


# An import with a 3 s lease that notes the time each write starts (to a file, line by line).
IMPORT_WITH_SHORT_LOCK = textwrap.dedent("""
    import sys, time
    from migrator.importer import ImportOptions, import_snapshot
    from migrator.kube import connect
    from migrator.kube.client import Cluster
    from migrator.snapshot import SnapshotReader
    from migrator.store import LocalStore
    kubeconfig, root, snapshot_id, writes = sys.argv[1:5]
    real_apply = Cluster.apply
    def noted_apply(self, path, body, **kw):
        with open(writes, "a") as out:
            out.write(f"{time.time()} {path}\\n")
        return real_apply(self, path, body, **kw)
    Cluster.apply = noted_apply
    with connect(kubeconfig, "new") as cluster:
        reader = SnapshotReader(LocalStore(root), snapshot_id)
        import_snapshot(reader, cluster, ImportOptions(workers=1, lock_seconds=3))
""")


@pytest.mark.timeout(300)
def test_an_import_that_stalls_and_loses_its_lock_stops_before_writing_again(
    old_cluster, new_cluster, make_namespace, tmp_path
):
    namespace = make_namespace(old_cluster)
    fill(old_cluster, namespace, 120)
    root = tmp_path / "snapshots"
    export_cluster(old_cluster.client, LocalStore(root), snapshot_id="stall",
                   options=ExportOptions(include_namespaces=(namespace,)))
    script, writes = tmp_path / "import.py", tmp_path / "writes"
    script.write_text(IMPORT_WITH_SHORT_LOCK)
    first = subprocess.Popen([sys.executable, str(script), new_cluster.kubeconfig, str(root),
                              "stall", str(writes)], cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        wait_until("the first import writing", lambda: writes.exists()
                   and len(writes.read_text().splitlines()) >= 3, timeout=60, interval=0.01)
        os.kill(first.pid, signal.SIGSTOP)
        time.sleep(3 + 5 + 1)  # past the lease (3 s) and the clock-skew margin (5 s)
        # A second import takes the expired lock over and finishes the job.
        with connect(new_cluster.kubeconfig, "new") as cluster:
            second = import_snapshot(SnapshotReader(LocalStore(root), "stall"), cluster,
                                     ImportOptions(workers=4))
        assert not second.partial and second.to_dict()["totals"]["objects"] == 121
        assert _configmaps(new_cluster, namespace) == 120
        woke = time.time()
        os.kill(first.pid, signal.SIGCONT)
        _out, err = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            os.kill(first.pid, signal.SIGCONT)
            first.kill()
    assert first.returncode != 0, err
    assert "LockHeld" in err and "import lock" in err and "was lost" in err
    started_writes = [float(line.split()[0]) for line in writes.read_text().splitlines()]
    assert started_writes and all(at < woke for at in started_writes)  # none after it woke
    new_cluster.client.request("DELETE", f"/api/v1/namespaces/{namespace}")


def _configmaps(cluster, namespace: str) -> int:
    return sum(1 for o in iter_items(cluster.client, f"/api/v1/namespaces/{namespace}/configmaps")
               if o["metadata"]["name"].startswith("cm-"))


def test_resuming_an_export_from_another_cluster_is_refused(old_cluster, new_cluster, tmp_path):
    store = LocalStore(tmp_path)
    # Everything the same but the cluster: a namespace both have, the same filters.
    options = ExportOptions(include_namespaces=("default",), include_resources=("configmaps",))
    export_cluster(old_cluster.client, store, snapshot_id="mixed", options=options)
    (tmp_path / "mixed" / "manifest.json").unlink()  # an interrupted export of old
    with pytest.raises(SnapshotError, match=r"other settings \(sourceCluster\)"):
        export_cluster(new_cluster.client, store, snapshot_id="mixed", options=options)
    result = CliRunner().invoke(cli, ["export", "--from", "new", "--kubeconfig",
                                      new_cluster.kubeconfig, "--store", str(tmp_path), "--id",
                                      "mixed", "--include-namespace", "default",
                                      "--include-resource", "configmaps"])
    assert result.exit_code == 1 and "other settings (sourceCluster)" in result.stderr
    # The same cluster resumes it; the manifest says which cluster it came from.
    resumed = export_cluster(old_cluster.client, store, snapshot_id="mixed", options=options)
    kube_system = old_cluster.client.request("GET", "/api/v1/namespaces/kube-system")
    assert resumed.manifest["source"]["clusterId"] == kube_system["metadata"]["uid"]


def test_a_finished_import_rerun_after_its_objects_were_deleted_imports_them_again(
    old_cluster, new_cluster, make_namespace, tmp_path
):
    namespace = make_namespace(old_cluster)
    fill(old_cluster, namespace, 5)
    store = LocalStore(tmp_path)
    export_cluster(old_cluster.client, store, snapshot_id="again",
                   options=ExportOptions(include_namespaces=(namespace,)))
    reader = SnapshotReader(store, "again")
    scope = Scope(include_namespaces=(namespace,))
    first = import_snapshot(reader, new_cluster.client, ImportOptions(scope=scope))
    assert first.to_dict()["totals"]["created"] == 6 and not first.already_complete
    rerun = import_snapshot(reader, new_cluster.client, ImportOptions(scope=scope))
    assert rerun.already_complete and rerun.to_dict()["totals"]["fromEarlierRuns"] == 6
    cli_run = CliRunner().invoke(cli, ["import", "again", "--store", str(tmp_path), "--to", "new",
                                       "--kubeconfig", new_cluster.kubeconfig,
                                       "--include-namespace", namespace])
    assert cli_run.exit_code == 0 and "already complete" in cli_run.stdout
    for i in (1, 3):
        new_cluster.client.request(
            "DELETE", f"/api/v1/namespaces/{namespace}/configmaps/cm-{i:03d}")
    third = import_snapshot(reader, new_cluster.client, ImportOptions(scope=scope))
    data = third.to_dict()
    assert not third.already_complete and data["resources"]["configmaps"]["created"] == 5
    assert data["totals"]["fromEarlierRuns"] == 4  # the two deleted ones applied anew
    for i in range(5):
        new_cluster.client.request("GET", f"/api/v1/namespaces/{namespace}/configmaps/cm-{i:03d}")
    new_cluster.client.request("DELETE", f"/api/v1/namespaces/{namespace}")


def test_snapshot_ids_are_names_not_paths(old_cluster, tmp_path):
    runner = CliRunner()
    for bad in ("../../etc", "../x", "."):
        result = runner.invoke(cli, ["export", "--from", "old", "--kubeconfig",
                                     old_cluster.kubeconfig, "--store", str(tmp_path / "s"),
                                     "--id", bad])
        assert result.exit_code == 2, (bad, result.output)
        assert "invalid snapshot id" in result.stderr and "Traceback" not in result.output
    result = runner.invoke(cli, ["import", "../../etc", "--store", str(tmp_path / "s"), "--to",
                                 "new", "--kubeconfig", old_cluster.kubeconfig])
    assert result.exit_code == 2 and "give the store once" in result.stderr
    assert not (tmp_path / "s").exists()


def test_messages_say_what_to_do(old_cluster, tmp_path):
    runner = CliRunner()
    unknown = runner.invoke(cli, ["export", "--from", "prod", "--kubeconfig",
                                  old_cluster.kubeconfig, "--store", str(tmp_path)])
    assert unknown.exit_code == 2 and "--from / --to CONTEXT" in unknown.stderr
    assert "--context" not in unknown.stderr
    broken = tmp_path / "kubeconfig"
    broken.write_text("clusters: {old: {server: https://x}}\ncontexts: []\n")
    result = runner.invoke(cli, ["discover", "--kubeconfig", str(broken), "--from", "old"])
    assert result.exit_code == 2 and "clusters must be a list of named entries" in result.stderr


def test_a_failed_transform_leaves_no_snapshot_behind(old_cluster, make_namespace, tmp_path):
    namespace = make_namespace(old_cluster)
    store = LocalStore(tmp_path)
    export_cluster(old_cluster.client, store, snapshot_id="src",
                   options=ExportOptions(include_namespaces=(namespace,)))
    # An interrupted transform's output says to run the transform again.
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "_snapshot.json").write_text(json.dumps({"made_by": "transform"}))
    shown = CliRunner().invoke(cli, ["snapshot", "show", "half", "--store", str(tmp_path)])
    assert shown.exit_code == 1 and "its transform was interrupted" in shown.stderr
    assert "run the transform that writes it again" in shown.stderr
    # A transform that fails part way removes what it wrote.
    (tmp_path / "src" / "resources" / "core" / "v1" / "namespaces" / "part-00000.jsonl.gz"
     ).write_bytes(b"tampered")
    failed = CliRunner().invoke(cli, ["transform", "src", "--store", str(tmp_path),
                                      "--to-version", "1.33", "--id", f"out-{uuid.uuid4().hex[:6]}"])
    assert failed.exit_code == 1 and "namespaces/part-00000.jsonl.gz" in failed.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["half", "src"]
