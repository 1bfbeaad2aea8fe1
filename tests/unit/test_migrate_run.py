"""The run's pure parts: the names it gives what it makes, its steps, what a teardown needs,
the held workloads of a transform, and the run's state in a local store."""
from __future__ import annotations

import os

import pytest

from migrator.migrate.phases import RunIds, export_options, holds_workloads, pass_settings, steps
from migrator.migrate.planfile import parse
from migrator.migrate.state import RunStore, process_alive
from migrator.migrate.teardown import refusals
from migrator.resources.scaling import REPLICAS_ANNOTATION, mounts_claims
from migrator.store import LocalStore
from migrator.transform.differences import DifferencesConfig, build, parse_config
from migrator.volumes import jobs

PLAN = """\
name: shop-move
source: {context: old, name: old-prod}
target: {context: new}
store: {url: s3://bucket/migrations}
volumes: {stagePasses: 2}
"""


def _plan(extra: str = ""):
    return parse(PLAN + extra)


def test_a_run_names_its_snapshots_from_its_start():
    ids = RunIds.of(_plan(), "2026-12-06T09:15:02+00:00")
    assert ids == RunIds("shop-move-20261206t091502", "shop-move-20261206t091502-new",
                         "shop-move-20261206t091502-final")


def test_the_steps_follow_the_plan():
    names = [name for name, _phase in steps(_plan())]
    assert names == ["preflight", "export", "volumes-first", "transform", "import",
                     "volumes-stage-1", "volumes-stage-2", "verify", "volumes-final",
                     "verify-data", "start", "shift", "soak"]
    assert "volumes-stage-1" not in [n for n, _p in steps(parse(PLAN.replace("2", "0")))]


def test_moving_volume_data_leaves_the_old_volumes_out_of_the_export():
    assert "persistentvolumes" in export_options(_plan()).exclude_resources
    assert holds_workloads(_plan())
    none = parse(PLAN.replace("{stagePasses: 2}", "{method: none}"))
    assert "persistentvolumes" not in export_options(none).exclude_resources
    assert not holds_workloads(none)


def test_pass_settings_carry_the_plan_and_the_quiesce():
    plan = _plan("quiesce: {method: hook, hook: 'sync', unhook: 'resume', timeout: 1m}\n")
    final = pass_settings(plan)
    assert (final.quiesce, final.hook, final.unhook, final.quiesce_timeout) == (
        "hook", "sync", "resume", 60.0)
    stage = pass_settings(plan, quiesce="none")
    assert (stage.quiesce, stage.hook, stage.unhook) == ("none", None, None)


@pytest.mark.parametrize(("records", "yes", "confirm", "why"), [
    ({"verify", "verify-data", "volumes-final", "soak"}, True, "old-prod", []),
    ({"verify", "verify-data", "volumes-final"}, True, "old-prod", ["the soak has not ended"]),
    ({"verify-data", "volumes-final", "soak"}, True, "old-prod", ["verify has not passed"]),
    ({"verify", "soak"}, True, "old-prod", ["the final volume pass and its check have not run"]),
    ({"verify", "verify-data", "volumes-final", "soak"}, False, "old-prod",
     ["--yes was not given"]),
    ({"verify", "verify-data", "volumes-final", "soak"}, True, None,
     ["the old cluster's name was not typed back (--confirm old-prod)"]),
    ({"verify", "verify-data", "volumes-final", "soak"}, True, "old",
     ["'old' is not the old cluster's name"]),
])
def test_teardown_needs_verify_the_soak_yes_and_the_name(records, yes, confirm, why):
    found = refusals(_plan(), dict.fromkeys(records, {}), yes=yes, confirm=confirm)
    assert [w.split(":")[0] for w in found] == [w.split(":")[0] for w in why]


def test_moved_volume_data_holds_workloads_that_mount_claims():
    config = parse_config({"moveVolumeData": True})
    assert config == DifferencesConfig(move_volume_data=True)
    (rule,) = build(config)
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
           "spec": {"replicas": 3, "volumeClaimTemplates": [{"metadata": {"name": "data"}}],
                    "template": {"spec": {"containers": []}}}}
    changes = rule.apply(sts)
    assert sts["spec"]["replicas"] == 0
    assert sts["metadata"]["annotations"] == {REPLICAS_ANNOTATION: "3"}
    assert [c.path for c in changes] == [
        "/metadata/annotations/migrator.io~1quiesced-replicas", "/spec/replicas"]
    web = {"kind": "Deployment", "spec": {"replicas": 2, "template": {"spec": {"volumes": [
        {"name": "cache", "emptyDir": {}}]}}}}
    assert not mounts_claims(web) and rule.apply(web) == [] and web["spec"]["replicas"] == 2
    claim = {"kind": "PersistentVolumeClaim", "metadata": {"annotations": {
        "pv.kubernetes.io/bind-completed": "yes", "keep": "me"}},
             "spec": {"volumeName": "pvc-123", "storageClassName": "fast"}}
    rule.apply(claim)
    assert claim == {"kind": "PersistentVolumeClaim", "metadata": {"annotations": {"keep": "me"}},
                     "spec": {"storageClassName": "fast"}}


def test_a_verify_mover_reads_the_volume_and_names_its_data():
    settings = jobs.MoverSettings(run_id="r1", image="img", store_url="s3://b",
                                  secret_name="migrator-mover-r1")
    job = jobs.mover_job(jobs.VERIFY, "shop-rehearsal", "data-db-0", settings, volume="shop/data-db-0")
    pod = job["spec"]["template"]["spec"]
    assert pod["containers"][0]["command"][:5] == ["migrator", "volumes", "verify", "shop/data-db-0",
                                                   "/data"]
    assert pod["volumes"][0]["persistentVolumeClaim"] == {"claimName": "data-db-0", "readOnly": True}


def test_the_run_state_in_a_store(tmp_path):
    runs = RunStore(LocalStore(tmp_path), "shop-move")
    assert not runs.exists() and runs.state() == {}
    runs.set_state(status="running", phase="export")
    state = runs.state()
    assert (state["status"], state["phase"], state["pid"]) == ("running", "export", os.getpid())
    assert process_alive(state) is True
    assert process_alive({**state, "pid": 0}) is False
    assert process_alive({**state, "host": "elsewhere"}) is None
    assert not runs.pause_requested()
    runs.request_pause("test")
    assert runs.pause_requested()
    runs.clear_pause()
    assert not runs.pause_requested()
    runs.save("phases/export", {"status": "done"})
    assert runs.records() == {"export": {"status": "done"}}


def test_the_rehearsals_kept_in_a_store_oldest_first(tmp_path):
    runs = RunStore(LocalStore(tmp_path), "shop-move")
    assert runs.rehearsals() == []
    for stamp in ["20261206t171200", "20261205t090000"]:
        runs.save(f"rehearsals/{stamp}.json", {"status": "rehearsed"})
        runs.put_text(f"rehearsals/{stamp}.md", "# report")
    runs.save("rehearsals/notes/x.json", {})  # not a rehearsal's report
    RunStore(LocalStore(tmp_path), "shop-move-2").save("rehearsals/20270101t000000.json", {})
    assert runs.rehearsals() == ["20261205t090000", "20261206t171200"]
