"""The run journal in a store: records survive a re-run, other fingerprints discard them."""
from __future__ import annotations

from pathlib import Path

from migrator.run.journal import Journal
from migrator.store import LocalStore

FINGERPRINT = {"conflict": "skip", "scope": {"includeNamespaces": ["shop"]}}


def test_records_are_kept_for_the_next_run(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.check(create=True)
    first = Journal(store, "snap/import/abc/", FINGERPRINT, {"context": "new"})
    assert not first.resumed and first.run["runs"] == 1
    first.record("phase/part-00000/batch-00000.json", {"objects": [["ns", "a", "created"]]})
    first.record("phase/part-00000/done.json", {"batches": 1})
    first.save_report({"totals": {"created": 1}})

    second = Journal(store, "snap/import/abc/", dict(FINGERPRINT), {"context": "new"})
    assert second.resumed and second.discarded is None and second.run["runs"] == 2
    assert dict(second.records()) == {
        "phase/part-00000/batch-00000.json": {"objects": [["ns", "a", "created"]]},
        "phase/part-00000/done.json": {"batches": 1},
    }
    assert second.run["startedAt"] == first.run["startedAt"]
    assert store.exists("snap/import/abc/report.json")


def test_other_options_or_restart_discard_the_records(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.check(create=True)
    Journal(store, "j/", FINGERPRINT, {}).record("step.json", {"done": True})
    other = Journal(store, "j/", {**FINGERPRINT, "conflict": "update"}, {})
    assert not other.resumed and list(other.records()) == []
    assert other.discarded == "an earlier run used other options or another input version"
    other.record("step.json", {"done": True})
    restarted = Journal(store, "j/", {**FINGERPRINT, "conflict": "update"}, {}, restart=True)
    assert restarted.discarded == "--restart was given" and list(restarted.records()) == []


def test_an_unreadable_record_is_skipped_so_its_step_is_done_again(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.check(create=True)
    journal = Journal(store, "j/", FINGERPRINT, {}, records="progress")
    journal.record("good.json", {"ok": 1})
    store.put_bytes("j/progress/torn.json", b'{"half')
    assert dict(Journal(store, "j/", FINGERPRINT, {}, records="progress").records()) == {
        "good.json": {"ok": 1}}
