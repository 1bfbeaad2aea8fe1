"""What an import has done so far, recorded next to the snapshot so a re-run resumes it.

A :class:`~migrator.run.journal.Journal` beside the snapshot's own files (its parts and
manifest are never touched, so its checksums stay valid)::

    <snapshot_id>/import/<cluster id>/
      run.json                                    target, options, start of the first run
      progress/<phase>/<group|core>/<version>/<resource>/part-00000/
        batch-00000.json                          outcome of each object of one batch
        done.json                                 every batch of the part is recorded
      report.json                                 the report of the last finished run

The cluster id is the uid of the target's ``kube-system`` namespace: a cluster rebuilt at the
same address, or reached through another context name, is told apart. A batch is recorded
once each of its objects has an outcome; a re-run skips recorded objects (except failed ones,
which are tried again) and applies the rest, which server-side apply makes harmless for an
object the killed run had already created. Runs with other options (conflict policy, filters,
status restore) or of a re-written snapshot do not share progress: the old one is discarded.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from migrator.run.journal import Journal
from migrator.store.base import Store

log = logging.getLogger(__name__)

PROGRESS = "progress"
FAILED = "failed"

BatchId = tuple[str, str, int, int]  # (phase, resource folder, part index, batch index)


def import_prefix(snapshot_id: str, target_id: str) -> str:
    """``<snapshot_id>/import/<cluster id>/``: where one target's import state lives."""
    return f"{snapshot_id}/import/{target_id}/"


@dataclass(frozen=True)
class ObjectOutcome:
    """The recorded result for one object: ``outcome`` is created, updated, unchanged,
    skipped, failed or unchecked (dry-run only)."""

    namespace: str
    name: str
    outcome: str
    uid: str | None = None
    error: str | None = None

    def to_list(self) -> list[Any]:
        return [self.namespace, self.name, self.outcome, self.uid, self.error]

    @classmethod
    def from_list(cls, row: list[Any]) -> ObjectOutcome:
        return cls(*row)


class ImportProgress:
    """Progress of the import of one snapshot into one cluster; thread-safe.

    Loads everything recorded earlier at construction; ``restart`` or a ``fingerprint``
    other than the recorded one discards it.
    """

    def __init__(
        self,
        store: Store,
        snapshot_id: str,
        target_id: str,
        fingerprint: Mapping[str, Any],
        target: Mapping[str, Any],
        *,
        restart: bool = False,
    ) -> None:
        self.journal = Journal(
            store,
            import_prefix(snapshot_id, target_id),
            fingerprint,
            target,
            restart=restart,
            records=PROGRESS,
        )
        self.resumed = self.journal.resumed
        self.discarded = self.journal.discarded
        self._lock = threading.Lock()
        self._batches: dict[BatchId, dict[tuple[str, str], ObjectOutcome]] = {}
        self._parts: set[tuple[str, str, int]] = set()
        if self.resumed:
            self._load_records()

    # -- reading ---------------------------------------------------------------------------

    def part_done(self, phase: str, folder: str, part: int) -> bool:
        """True if every batch of the part has a record without failures."""
        return (phase, folder, part) in self._parts

    def batch(self, batch: BatchId) -> dict[tuple[str, str], ObjectOutcome] | None:
        """The recorded outcomes of one batch by (namespace, name), or None if not recorded."""
        return self._batches.get(batch)

    def outcomes(self) -> Iterator[tuple[BatchId, ObjectOutcome]]:
        """Every recorded object outcome (for uids of owners and the report)."""
        with self._lock:
            items = list(self._batches.items())
        for batch_id, outcomes in items:
            for outcome in outcomes.values():
                yield batch_id, outcome

    # -- writing ---------------------------------------------------------------------------

    def record_batch(self, batch: BatchId, outcomes: list[ObjectOutcome]) -> None:
        """Store the outcome of every object of one batch."""
        phase, folder, part, index = batch
        self.journal.record(
            f"{_part_key(phase, folder, part)}batch-{index:05d}.json",
            {"objects": [o.to_list() for o in outcomes]},
        )
        with self._lock:
            self._batches[batch] = {(o.namespace, o.name): o for o in outcomes}

    def record_part(self, phase: str, folder: str, part: int, batches: int) -> None:
        """Mark a part finished (only when none of its objects failed)."""
        self.journal.record(f"{_part_key(phase, folder, part)}done.json", {"batches": batches})
        with self._lock:
            self._parts.add((phase, folder, part))

    def save_report(self, report: Mapping[str, Any]) -> None:
        """Keep the last finished run's report beside the progress."""
        self.journal.save_report(report)

    # -- helpers ---------------------------------------------------------------------------

    def _load_records(self) -> None:
        for key, doc in self.journal.records():
            head, _, name = key.rpartition("/")
            phase, _, rest = head.partition("/")
            folder, _, part_name = rest.rpartition("/")
            if not part_name.startswith("part-"):
                continue
            part = int(part_name[len("part-") :])
            if name == "done.json":
                self._parts.add((phase, folder, part))
            elif name.startswith("batch-"):
                index = int(name[len("batch-") :].split(".")[0])
                outcomes = [ObjectOutcome.from_list(row) for row in doc.get("objects", [])]
                self._batches[(phase, folder, part, index)] = {
                    (o.namespace, o.name): o for o in outcomes
                }
        log.info(
            "resuming the import in %s: %d batches recorded",
            self.journal.prefix,
            len(self._batches),
        )


def _part_key(phase: str, folder: str, part: int) -> str:
    return f"{phase}/{folder}/part-{part:05d}/"
