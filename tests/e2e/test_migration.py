"""Whole migrations from the plan files of ``examples/scenarios``, on the proving ground.

The estate of ``scripts/demo.d`` (two namespaces, removed APIs, a v1beta1 CRD with custom
resources, a database writing into its volume on the real node, two DNS names in BIND) moves
from the 1.21 cluster to the 1.33 one with one command; a rollback brings traffic and the
data the new cluster wrote back, a resume migrates again, and the teardown retires the old
cluster only when asked properly. The network-swap scenario remaps cluster IPs and policy
CIDRs; the DR rehearsal restores into namespaces of their own and cleans up.

Each run's phase timings are printed (``pytest -s``) and kept in README.
"""
from __future__ import annotations

import http.server
import json
import threading
import time

import pytest

from migrator.snapshot.reader import list_snapshots
from migrator.store import open_store
from tests.e2e.migration_support import (
    CLAIM,
    NEW_TARGETS,
    OLD_TARGETS,
    claim_tree,
    estate,
    migrator,
    replicas,
)
from tests.movers import running_pods
from tests.waiting import wait_until


@pytest.fixture(autouse=True)
def _aws(monkeypatch, s3):
    """The store's credentials in this process too (the tests read the store directly)."""
    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)


def _store(s3, prefix: str = "migrations"):
    return open_store(f"s3://{s3.bucket}/{prefix}", s3_endpoint=s3.endpoint)


def _timings(report: dict) -> dict[str, float]:
    return {p["name"]: p["seconds"] for p in report["phases"] if p.get("seconds") is not None}


def test_a_whole_migration_from_a_plan_file(old_cluster, new_cluster, proving_ground, s3, dns_zone):
    with estate(old_cluster, new_cluster, proving_ground, s3, dns_zone) as e:
        plan = str(e.plan("minor-jump"))
        env = e.env
        sts = f"/apis/apps/v1/namespaces/{e.shop}/statefulsets/db"

        # The plan: ready, and what it will do, changing nothing.
        code, out, err = migrator("plan", "-f", plan, "-o", "json", env=env)
        assert code == 0, out + err
        shown = json.loads(out)
        assert shown["preflight"]["ready"] is True
        assert not [c for c in shown["preflight"]["checks"] if c["status"] == "fail"]
        assert not list(_store(s3).list("runs/")), "plan wrote a run"

        # The migration, in one command.
        started = time.monotonic()
        code, out, err = migrator("migrate", "-f", plan, "-o", "json", env=env)
        wall = time.monotonic() - started
        assert code == 0, err[-3000:]
        report = json.loads(out)
        assert report["status"] == "done"
        statuses = {p["name"]: p["status"] for p in report["phases"]}
        assert statuses == {name: "done" for name in statuses}, statuses
        assert "volumes-stage-1" in statuses and "shift" in statuses

        # Objects: the removed APIs arrive at versions 1.33 serves, the custom resources too.
        new_api = new_cluster.client
        ingress = new_api.request("GET", f"/apis/networking.k8s.io/v1/namespaces/{e.shop}/ingresses/web")
        assert ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] == "web"
        new_api.request("GET", f"/apis/batch/v1/namespaces/{e.shop}/cronjobs/nightly-report")
        new_api.request("GET", f"/apis/policy/v1/namespaces/{e.shop}/poddisruptionbudgets/web")
        cart = new_api.request("GET", f"/apis/{e.prefix}.migrator.test/v1/namespaces/{e.shop}/carts/alice")
        assert cart["spec"] == {"owner": "alice", "items": 3}
        web = new_api.request("GET", f"/apis/apps/v1/namespaces/{e.shop}/deployments/web")
        assert web["spec"]["template"]["spec"]["containers"][0]["image"] == (
            "registry.new.example.com/shop/web:1.4")

        # Data: the old database was stopped for the final pass, and the new one started on
        # exactly what it left (plus what it wrote since).
        assert replicas(old_cluster, sts) == 0
        old_files = claim_tree(old_cluster, e.shop)
        assert len(old_files) > 100
        wait_until("the new database running", lambda: running_pods(new_api, e.shop, "app=db"),
                   timeout=120)
        new_files = claim_tree(new_cluster, e.shop)
        moved = {p: h for p, h in old_files.items() if p != "counter"}
        assert {p: new_files.get(p) for p in moved} == moved
        checked = next(p for p in report["phases"] if p["name"] == "verify-data")["summary"]
        assert checked["files"] == len(old_files) and checked["volumes"][0]["ok"] is True

        # Traffic: both names on the new cluster's targets.
        for app in OLD_TARGETS:
            assert e.records(app) == [NEW_TARGETS[app]], app

        # Status: done, every step in the journal.
        code, out, err = migrator("status", "-f", plan, "-o", "json", env=env)
        assert code == 0, err
        state = json.loads(out)
        assert state["status"] == "done" and state["phase"] == "teardown"
        assert [j["step"] for j in state["journal"]] == state["steps"]

        # The report is kept in the store, and rendered again on request.
        store = _store(s3)
        assert store.exists(f"runs/{e.prefix}-jump/report.md")
        code, markdown, err = migrator("report", "-f", plan, "--format", "markdown", env=env)
        assert code == 0, err
        for name in statuses:
            assert name in markdown
        print("\nMIGRATION-FIGURES " + json.dumps({"wallSeconds": round(wall, 1),
                                                   "phases": _timings(report)}))

        # Rollback with the data: traffic back on old, the old database back with what the
        # new one wrote meanwhile.
        written_on_new = wait_until("the new database writing", lambda: {
            p for p in claim_tree(new_cluster, e.shop) if p.startswith("w-")} - set(old_files),
            timeout=60)
        code, out, err = migrator("rollback", "-f", plan, "--data", "-o", "json", env=env)
        assert code == 0, err[-3000:]
        for app in OLD_TARGETS:
            assert e.records(app) == [OLD_TARGETS[app]], app
        assert replicas(old_cluster, sts) == 1
        assert replicas(new_cluster, sts) == 0
        back = claim_tree(old_cluster, e.shop)
        assert written_on_new <= set(back)

        # Resume: migrates again from the final pass (the old database stops again).
        code, out, err = migrator("resume", "-f", plan, "-o", "json", env=env)
        assert code == 0, err[-3000:]
        assert json.loads(out)["status"] == "done"
        for app in OLD_TARGETS:
            assert e.records(app) == [NEW_TARGETS[app]], app

        # Teardown: refused without --yes, and without the old cluster's name typed back.
        web_path = f"/apis/apps/v1/namespaces/{e.shop}/deployments/web"
        code, _out, err = migrator("teardown", "-f", plan, "--confirm", "old-1-21", env=env)
        assert code == 16 and "--yes was not given" in err, err
        code, _out, err = migrator("teardown", "-f", plan, "--yes", "--confirm", "old", env=env)
        assert code == 16 and "'old' is not the old cluster's name" in err, err
        assert replicas(old_cluster, web_path) == 2  # nothing changed
        code, out, err = migrator("teardown", "-f", plan, "--yes", "--confirm", "old-1-21",
                                  "-o", "json", env=env)
        assert code == 0, err[-3000:]
        torn = json.loads(out)
        assert torn["status"] == "torn-down"
        assert replicas(old_cluster, web_path) == 0
        assert replicas(old_cluster, f"/apis/apps/v1/namespaces/{e.blog}/deployments/blog") == 0
        finals = [s for s in list_snapshots(store) if s["id"].endswith("-final")]
        assert finals and finals[0]["complete"]
        hook = next(p for p in torn["phases"] if p["name"] == "teardown-hook")
        assert "is retired here" in json.dumps(hook["summary"])


def test_a_network_swap_remaps_cluster_ips_and_policies(old_cluster, new_cluster, proving_ground,
                                                         s3, dns_zone, tmp_path):
    """The cni-swap scenario, with hooks and a webhook added to it: the hooks run at their
    points with the run's environment, the webhook hears every phase change and the end."""
    heard: list[dict] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server name
            heard.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hooks_log = tmp_path / "hooks.log"
    with estate(old_cluster, new_cluster, proving_ground, s3, dns_zone) as e:
        plan = tmp_path / "cni-swap.yaml"
        plan.write_text(e.plan("cni-swap").read_text() + f"""
hooks:
  preExport: [{{run: 'echo "pre $MIGRATOR_PHASE $MIGRATOR_SOURCE_CONTEXT" >> {hooks_log}'}}]
  postImport: [{{run: 'echo "post $MIGRATOR_PHASE $MIGRATOR_TARGET_CONTEXT" >> {hooks_log}'}}]
notifications: [{{url: 'http://127.0.0.1:{server.server_port}/hook', format: json}}]
""")
        try:
            code, out, err = migrator("migrate", "-f", str(plan), "-o", "json", env=e.env)
        finally:
            server.shutdown()
        assert code == 0, err[-3000:]
        report = json.loads(out)
        skipped = {p["name"] for p in report["phases"] if p["status"] == "skipped"}
        assert {"volumes-first", "volumes-final", "verify-data", "start", "shift"} <= skipped
        old_ip = old_cluster.client.request(
            "GET", f"/api/v1/namespaces/{e.shop}/services/web")["spec"]["clusterIP"]
        new_ip = new_cluster.client.request(
            "GET", f"/api/v1/namespaces/{e.shop}/services/web")["spec"]["clusterIP"]
        assert old_ip.startswith("10.96.") and new_ip == "10.112." + old_ip.split(".", 2)[2]
        policy = new_cluster.client.request(
            "GET", f"/apis/networking.k8s.io/v1/namespaces/{e.shop}/networkpolicies/from-pods")
        assert policy["spec"]["ingress"][0]["from"][0]["ipBlock"]["cidr"] == "10.248.0.0/16"
        assert hooks_log.read_text() == "pre export old\npost import new\n"
        phases = [(h["phase"], h["status"]) for h in heard if h["type"] == "phase"]
        for step in (p["name"] for p in report["phases"]):
            assert (step, "started") in phases and any(
                p == step and s in ("done", "skipped") for p, s in phases), step
        assert heard[-1]["type"] == "end" and heard[-1]["status"] == "done"
        assert all(h["plan"] == f"{e.prefix}-cni" for h in heard)


def test_a_dr_rehearsal_restores_into_namespaces_of_its_own(old_cluster, new_cluster,
                                                            proving_ground, s3, dns_zone):
    with estate(old_cluster, new_cluster, proving_ground, s3, dns_zone) as e:
        sts = f"/apis/apps/v1/namespaces/{e.shop}/statefulsets/db"
        code, out, err = migrator("rehearse", "-f", str(e.plan("dr-rehearsal")),
                                  "--scratch", "new", "-o", "json", env=e.env)
        assert code == 0, err[-3000:]
        report = json.loads(out)
        assert report["status"] == "rehearsed"
        assert report["rtoSeconds"] > 0 and report["rpoSeconds"] >= 0
        steps = [p["name"] for p in report["phases"]]
        assert steps == ["snapshot", "transform", "import", "verify", "volumes", "start",
                         "cleanup"]
        restored = next(p for p in report["phases"] if p["name"] == "volumes")["summary"]
        assert restored["volumes"][0]["ok"] and restored["volumes"][0]["claim"] == (
            f"{e.shop}-rehearsal/{CLAIM}")
        cleanup = next(p for p in report["phases"] if p["name"] == "cleanup")["summary"]
        assert sorted(cleanup["namespacesDeleted"]) == sorted(
            [f"{e.shop}-rehearsal", f"{e.blog}-rehearsal"])
        assert cleanup["crdsDeleted"] == [f"carts.{e.prefix}.migrator.test"]
        for ns in cleanup["namespacesDeleted"]:
            assert new_cluster.client.request("GET", "/api/v1/namespaces")["items"] and not [
                n for n in new_cluster.client.request("GET", "/api/v1/namespaces")["items"]
                if n["metadata"]["name"] == ns]
        # the old cluster only read: its database still runs
        assert replicas(old_cluster, sts) == 1
        assert running_pods(old_cluster.client, e.shop, "app=db")
        store = _store(s3, "dr")
        assert [k for k in store.list("runs/") if "/rehearsals/" in k and k.endswith(".md")]
        code, out, err = migrator("report", "-f", str(e.plan("dr-rehearsal")), "--rehearsal",
                                  "--format", "json", env=e.env)
        assert code == 0, err[-3000:]
        assert json.loads(out) == report  # the newest rehearsal's, as kept
        print("\nREHEARSAL-FIGURES " + json.dumps({"rto": report["rtoSeconds"],
                                                   "rpo": report["rpoSeconds"],
                                                   "phases": _timings(report)}))


def test_a_plan_that_is_not_ready_stops_before_anything(proving_ground, s3, tmp_path):
    """A store that does not exist fails the preflight: `plan` says so (exit 14), and so does
    `migrate`, before it takes a lock or writes anything."""
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"""
name: not-ready
kubeconfig: {proving_ground["kubeconfig"]}
source: {{context: old}}
target: {{context: new}}
store: {{url: 's3://{s3.bucket}-missing/m', s3Endpoint: '{s3.endpoint}'}}
export: {{namespaces: [default]}}
volumes: {{method: none}}
""")
    code, out, err = migrator("plan", "-f", str(plan), "-o", "json", env=s3.env())
    assert code == 14, err
    failed = [c["name"] for c in json.loads(out)["preflight"]["checks"] if c["status"] == "fail"]
    assert failed == ["store"] and "store" in err
    code, _out, err = migrator("migrate", "-f", str(plan), env=s3.env())
    assert code == 14 and "store:" in err, err
    assert [b["Name"] for b in s3.client().list_buckets()["Buckets"]
            if b["Name"].startswith(s3.bucket)] == [s3.bucket]
    assert not list(_store(s3).list(""))
