"""Quiesce before a final pass, on the old cluster's real node: workloads that mount a claim
scaled to zero with their replicas recorded, and scaled back on undo (or by ``restore_scaled``
after a crash); a pod nothing scalable owns stops the quiesce before anything changes; a hook
runs in the pods, and a failing hook stops the pass after undoing the pods already hooked."""
from __future__ import annotations

import pytest

from migrator.errors import QuiesceFailed
from migrator.volumes.claims import Claim, place
from migrator.volumes.quiesce import REPLICAS_ANNOTATION, Hooks, ScaleDown, restore_scaled
from tests.movers import claim_directory, deployment, make_claim, running_pods, sleeper_spec
from tests.waiting import wait_until


def _statefulset(name: str, spec: dict, replicas: int) -> dict:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name},
            "spec": {"replicas": replicas, "serviceName": name, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": spec}}}


@pytest.fixture
def writers(old_cluster, real_nodes, old_namespace):
    """A Deployment (2 replicas) and a StatefulSet (1) mounting two claims, running."""
    api, node, ns = old_cluster.client, real_nodes["old"], old_namespace
    for claim in ("web-data", "db-data"):
        make_claim(api, ns, claim, node.storage_class)
        claim_directory(api, ns, claim)
    api.request("POST", f"/apis/apps/v1/namespaces/{ns}/deployments",
                body=deployment("web", sleeper_spec(node, "web-data"), replicas=2))
    api.request("POST", f"/apis/apps/v1/namespaces/{ns}/statefulsets",
                body=_statefulset("db", sleeper_spec(node, "db-data"), replicas=1))
    wait_until("2 web pods running", lambda: len(running_pods(api, ns, "app=web")) == 2, timeout=90)
    wait_until("the db pod running", lambda: len(running_pods(api, ns, "app=db")) == 1, timeout=90)
    return ns


def _replicas(api, ns: str, kind: str, name: str) -> tuple[int, str | None]:
    obj = api.request("GET", f"/apis/apps/v1/namespaces/{ns}/{kind}/{name}")
    return obj["spec"]["replicas"], obj["metadata"].get("annotations", {}).get(REPLICAS_ANNOTATION)


def test_scale_down_records_replicas_waits_for_the_pods_and_undoes(old_cluster, writers):
    api, ns = old_cluster.client, writers
    claims = place(api, [Claim(ns, "web-data"), Claim(ns, "db-data")])
    quiesce = ScaleDown(api, timeout=90, poll=0.3)
    quiesce.apply(claims)

    assert sorted((s.workload.kind, s.workload.name, s.replicas) for s in quiesce.scaled) == [
        ("Deployment", "web", 2), ("StatefulSet", "db", 1)]
    assert _replicas(api, ns, "deployments", "web") == (0, "2")
    assert _replicas(api, ns, "statefulsets", "db") == (0, "1")
    assert running_pods(api, ns, "app in (web, db)") == []
    assert quiesce.stopped_at is not None

    assert quiesce.undo() == []
    assert _replicas(api, ns, "deployments", "web") == (2, None)
    assert _replicas(api, ns, "statefulsets", "db") == (1, None)
    wait_until("the writers back", lambda: len(running_pods(api, ns, "app in (web, db)")) == 3, timeout=90)
    assert sorted(s.replicas for s in quiesce.restored) == [1, 2]


def test_a_crashed_run_is_undone_from_the_records_on_the_workloads(old_cluster, writers):
    api, ns = old_cluster.client, writers
    ScaleDown(api, timeout=90, poll=0.3).apply(place(api, [Claim(ns, "web-data")]))
    assert _replicas(api, ns, "deployments", "web") == (0, "2")
    # A new process knows nothing but the namespace: the annotation is the record.
    restored = restore_scaled(api, [ns])
    assert [(r.workload.name, r.replicas) for r in restored] == [("web", 2)]
    assert _replicas(api, ns, "deployments", "web") == (2, None)
    assert restore_scaled(api, [ns]) == []


def test_a_pod_nothing_scalable_owns_stops_the_quiesce_before_anything_changes(
        old_cluster, real_nodes, writers):
    api, node, ns = old_cluster.client, real_nodes["old"], writers
    api.request("POST", f"/api/v1/namespaces/{ns}/pods", body={
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bare", "labels": {"app": "bare"}},
        "spec": sleeper_spec(node, "db-data")})
    wait_until("the bare pod running", lambda: running_pods(api, ns, "app=bare"), timeout=90)
    quiesce = ScaleDown(api, timeout=30, poll=0.3)
    with pytest.raises(QuiesceFailed, match=rf"pod {ns}/bare \(no controller\)"):
        quiesce.apply(place(api, [Claim(ns, "web-data"), Claim(ns, "db-data")]))
    assert _replicas(api, ns, "deployments", "web") == (2, None)
    assert _replicas(api, ns, "statefulsets", "db") == (1, None)


def test_a_hook_runs_in_every_pod_that_mounts_the_claim(old_cluster, writers):
    api, ns = old_cluster.client, writers
    claims = place(api, [Claim(ns, "web-data")])
    hooks = Hooks(api, "touch /data/frozen-$(hostname) && echo frozen", "rm /data/frozen-$(hostname)")
    hooks.apply(claims)
    pods = sorted(p["metadata"]["name"] for p in running_pods(api, ns, "app=web"))
    assert sorted(h.pod for h in hooks.hooked) == pods
    assert all(h.container == "app" and h.output.strip() == "frozen" for h in hooks.hooked)
    directory = claim_directory(api, ns, "web-data")
    assert sorted(p.name for p in directory.iterdir()) == [f"frozen-{p}" for p in pods]
    assert hooks.undo() == []
    assert list(directory.iterdir()) == []


def test_a_failing_hook_stops_the_pass_and_undoes_the_pods_already_hooked(old_cluster, writers):
    api, ns = old_cluster.client, writers
    claims = place(api, [Claim(ns, "web-data")])
    first = sorted(p["metadata"]["name"] for p in running_pods(api, ns, "app=web"))[0]
    # The hook works in the first pod and fails in the second (which finds the first's mark).
    hook = "if ls /data/hooked-* >/dev/null 2>&1; then echo busy >&2; exit 3; fi; touch /data/hooked-$(hostname)"
    hooks = Hooks(api, hook, "rm /data/hooked-$(hostname)")
    with pytest.raises(QuiesceFailed, match=r"exit code 3\): busy"):
        hooks.apply(claims)
    assert hooks.hooked == [] and [h.pod for h in hooks.undone] == [first]
    assert list(claim_directory(api, ns, "web-data").iterdir()) == []
