"""A migration killed anywhere resumes to the same end as one never killed.

``migrator migrate`` runs as a process of its own and is killed (SIGKILL: no cleanup at all)
inside export, at the boundary after it, inside import, inside a volume pass, after verify,
inside the final pass (the old database stopped), inside the shift (DNS half moved) and
inside the soak; each time ``migrator resume`` starts again from the journal. The end is
checked as the uninterrupted run's is: every step done, the data identical, the traffic on
the new cluster, the mover Jobs and their Secrets gone.

What each kill cost (the work it threw away, and the whole run's time) is printed
(``pytest -s``) and kept in README.
"""
from __future__ import annotations

import json
import time

from migrator.migrate.state import RunStore
from migrator.store import open_store
from tests.e2e.migration_support import (
    NEW_TARGETS,
    OLD_TARGETS,
    claim_tree,
    estate,
    migrator,
    replicas,
    start_migrator,
)
from tests.movers import running_pods
from tests.waiting import wait_until

# (step, "in" it or "after" it): where the run is killed, in order.
KILLS = [
    ("export", "in"),
    ("export", "after"),
    ("import", "in"),
    ("volumes-stage-1", "in"),
    ("verify", "after"),
    ("volumes-final", "in"),
    ("verify-data", "pause"),
    ("shift", "in"),
    ("soak", "in"),
]
# ("step", "pause"): `migrator pause` while the step runs; the run stops after it (exit 10).
# Steps long enough that the kill must land inside them (export and import of a small
# estate may be over before the run's state is read).
MUST_LAND_INSIDE = {"volumes-stage-1", "volumes-final", "shift", "soak"}


def test_a_run_killed_anywhere_resumes_to_the_same_end(old_cluster, new_cluster, proving_ground,
                                                       s3, dns_zone, tmp_path, monkeypatch):
    for key, value in s3.env().items():  # the test reads the store directly
        monkeypatch.setenv(key, value)
    with estate(old_cluster, new_cluster, proving_ground, s3, dns_zone) as e:
        plan = str(e.plan("minor-jump"))
        store = open_store(f"s3://{s3.bucket}/migrations", s3_endpoint=s3.endpoint)
        runs = RunStore(store, f"{e.prefix}-jump")
        log = tmp_path / "migrate.log"
        started = time.monotonic()
        process = start_migrator("migrate", "-f", plan, env=e.env, log=log)
        kills = []
        for step, where in KILLS:
            def reached(step: str = step, where: str = where) -> str | None:
                if process.poll() is not None:
                    return "exited"
                state = runs.state()
                if state.get("pid") != process.pid:
                    return None  # this process has not opened the journal yet
                records = runs.records()
                if where == "after":
                    return "after" if step in records else None
                if where == "pause":
                    return "inside" if state.get("phase") == step else None
                if state.get("phase") == step and state.get("status") == "running":
                    return "inside" if step not in records else None
                return "later" if step in records else None

            landed = wait_until(f"the run {where} {step}", reached, timeout=600, interval=0.05)
            assert landed != "exited", log.read_text()[-3000:]
            if not kills:  # a second run of the plan is refused while this one holds the lock
                code, _out, err = migrator("migrate", "-f", plan, env=e.env)
                assert code == 8 and "migration run" in err, err
            if where == "pause":
                code, _out, err = migrator("pause", "-f", plan, env=e.env)
                assert code == 0, err
                assert process.wait(timeout=600) == 10, log.read_text()[-3000:]
                state = runs.state()
                assert (state["status"], state["phase"]) == ("paused", "start"), state
                assert step in runs.records()
                kills.append({"step": step, "where": where, "landed": "paused after it"})
                process = start_migrator("resume", "-f", plan, env=e.env, log=log)
                continue
            state = runs.state()
            process.kill()
            process.wait()
            since = time.time() - _epoch(state.get("phaseStartedAt"))
            kills.append({"step": step, "where": where, "landed": landed,
                          "phase": state.get("phase"), "lostSeconds": round(since, 1)})
            if step in MUST_LAND_INSIDE and where == "in":
                assert landed == "inside", kills[-1]
            process = start_migrator("resume", "-f", plan, env=e.env, log=log)
        assert process.wait(timeout=900) == 0, log.read_text()[-5000:]
        wall = time.monotonic() - started

        report = runs.load("report.json")
        assert report is not None and report["status"] == "done"
        statuses = {p["name"]: p["status"] for p in report["phases"]}
        assert statuses == {name: "done" for name in statuses}, statuses
        head = runs.load("run.json")
        assert head is not None and head["runs"] == len(KILLS) + 1  # each process resumed it

        # The same end as an uninterrupted run.
        sts = f"/apis/apps/v1/namespaces/{e.shop}/statefulsets/db"
        assert replicas(old_cluster, sts) == 0
        old_files = claim_tree(old_cluster, e.shop)
        wait_until("the new database running",
                   lambda: running_pods(new_cluster.client, e.shop, "app=db"), timeout=120)
        new_files = claim_tree(new_cluster, e.shop)
        moved = {p: h for p, h in old_files.items() if p != "counter"}
        assert {p: new_files.get(p) for p in moved} == moved
        for app in OLD_TARGETS:
            assert e.records(app) == [NEW_TARGETS[app]], app
        for cluster in (old_cluster, new_cluster):  # no mover left behind by a kill
            for path in (f"/apis/batch/v1/namespaces/{e.shop}/jobs",
                         f"/api/v1/namespaces/{e.shop}/secrets"):
                items = cluster.client.request("GET", path,
                                               query={"labelSelector": "migrator.io/run"})["items"]
                assert not items, [i["metadata"]["name"] for i in items]
        print("\nRESUME-FIGURES " + json.dumps({
            "wallSeconds": round(wall, 1), "kills": kills,
            "phases": {p["name"]: p["seconds"] for p in report["phases"]}}))


def _epoch(text: str | None) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text).timestamp() if text else time.time()
