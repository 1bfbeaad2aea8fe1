"""A run's records, kept in the store next to what it works on, so a re-run resumes.

Layout under the journal's prefix (the import's is ``<snapshot>/import/<cluster id>/``)::

    run.json                 what the run is (its fingerprint), what it targets, runs so far
    <records>/...            one small JSON document per finished step, written when it ends
    report.json              the report of the last finished run

A record is written once its step is finished, so what a crash interrupts is simply done
again. A run with another fingerprint (other options, another version of its input) does not
share records: the old ones are discarded, and the journal says why. Loading reads every
record once (one listing, one read each), so a resumed run knows at once what is done.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from migrator.errors import StoreKeyNotFound
from migrator.store.base import Store

log = logging.getLogger(__name__)

RUN = "run.json"
REPORT = "report.json"


def _dump(doc: Any) -> bytes:
    return json.dumps(doc, indent=1).encode() + b"\n"


class Journal:
    """The journal of one run under ``prefix`` of ``store``; ``records`` names the folder of
    its step records. ``restart``, or a ``fingerprint`` other than the recorded one, discards
    the records of earlier runs."""

    def __init__(
        self,
        store: Store,
        prefix: str,
        fingerprint: Mapping[str, Any],
        describe: Mapping[str, Any],
        *,
        restart: bool = False,
        records: str = "records",
    ) -> None:
        self.store = store
        self.prefix = prefix
        self._records = f"{prefix}{records}/"
        self.discarded: str | None = None
        run = self._load(RUN)
        fingerprint = json.loads(json.dumps(fingerprint))
        if run is not None and (restart or run.get("fingerprint") != fingerprint):
            self.discarded = (
                "--restart was given"
                if restart
                else "an earlier run used other options or another input version"
            )
            log.info("discarding the records in %s: %s", prefix, self.discarded)
            store.delete_prefix(self._records)
            run = None
        self.resumed = run is not None
        now = datetime.now(UTC).isoformat(timespec="seconds")
        self.run: dict[str, Any] = run or {
            "fingerprint": fingerprint,
            "target": dict(describe),
            "startedAt": now,
            "runs": 0,
        }
        self.run["runs"] = int(self.run.get("runs", 0)) + 1
        self.run["lastRunAt"] = now
        store.put_bytes(prefix + RUN, _dump(self.run))

    def record(self, key: str, doc: Mapping[str, Any]) -> None:
        """Store the record of one finished step (``key`` is relative, ``/``-separated)."""
        self.store.put_bytes(self._records + key, _dump(doc))

    def records(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every record of the runs sharing this journal, as (key, document); unreadable
        ones are skipped with a warning (the step is then done again)."""
        for full in self.store.list(self._records):
            doc = self._load(full[len(self.prefix) :])
            if doc is not None:
                yield full[len(self._records) :], doc

    def save_report(self, report: Mapping[str, Any]) -> None:
        """Keep the last finished run's report beside the records."""
        self.store.put_bytes(self.prefix + REPORT, _dump(report))

    def _load(self, relative: str) -> dict[str, Any] | None:
        try:
            doc = json.loads(self.store.get_bytes(self.prefix + relative))
        except StoreKeyNotFound:
            return None
        except ValueError:
            log.warning("ignoring unreadable %s%s", self.prefix, relative)
            return None
        return doc if isinstance(doc, dict) else None
