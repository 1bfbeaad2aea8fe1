"""The import report: what happened to every object, counted per phase and per type.

Failures are listed one by one with the API server's own message (Velero-style result
collection); owner references that had to be dropped are listed too. ``to_dict`` is the
``-o json`` document; the CLI renders the same data as tables.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from migrator.importer.apply import OUTCOMES, UNCHECKED
from migrator.importer.progress import FAILED, ObjectOutcome
from migrator.resources import order
from migrator.resources.identity import type_key as _type_key
from migrator.resources.owners import DroppedRef
from migrator.run.report import Problem, StageReport
from migrator.snapshot import ResourceEntry


def type_key(entry: ResourceEntry) -> str:
    """``deployments.apps``; ``configmaps`` for the core group."""
    return _type_key(entry["group"], entry["resource"])


@dataclass
class PhaseReport:
    """One phase: its reason, how many objects it holds, and their outcomes."""

    name: str
    reason: str
    total: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "reason": self.reason,
            "objects": self.total,
            **{o: self.outcomes[o] for o in OUTCOMES},
            "seconds": round(self.seconds, 3),
        }


@dataclass
class ImportReport(StageReport):
    """Everything an import did; filled concurrently by the runner (thread-safe ``add``)."""

    snapshot_id: str
    store: str
    target: dict[str, Any]
    conflict: str
    dry_run: bool
    scope: dict[str, Any]
    restore_status: bool
    phases: dict[str, PhaseReport] = field(default_factory=dict)
    resources: dict[str, Counter[str]] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)
    unchecked: list[dict[str, Any]] = field(default_factory=list)
    dropped_owner_refs: list[DroppedRef] = field(default_factory=list)
    relinked_owner_refs: int = 0
    from_earlier_runs: int = 0
    resumed: bool = False
    discarded_progress: str | None = None
    crds: dict[str, str] = field(default_factory=dict)  # CRD name → "Established" or problem
    # CRDs that convert through a webhook: how their custom resources were created.
    conversion_webhooks: dict[str, str] = field(default_factory=dict)
    out_of_scope: int = 0
    seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def problems(self) -> list[Problem]:
        """Each object the target refused, with the API server's message."""
        return [
            Problem(
                f"{f['resource']} {f['namespace'] + '/' if f['namespace'] else ''}{f['name']}",
                f["error"],
            )
            for f in self.failures
        ]

    def add_phase(self, name: str, total: int) -> PhaseReport:
        phase = PhaseReport(name, order.tier_named(name).reason, total)
        self.phases[name] = phase
        return phase

    def add(
        self, phase: str, entry: ResourceEntry, outcome: ObjectOutcome, *, earlier: bool = False
    ) -> None:
        """Count one object's outcome (``earlier``: recorded by an interrupted run)."""
        key = type_key(entry)
        with self._lock:
            self.phases[phase].outcomes[outcome.outcome] += 1
            self.resources.setdefault(key, Counter())[outcome.outcome] += 1
            if earlier:
                self.from_earlier_runs += 1
            if outcome.outcome in (FAILED, UNCHECKED):
                listed = self.failures if outcome.outcome == FAILED else self.unchecked
                listed.append(
                    {
                        "phase": phase,
                        "resource": key,
                        "kind": entry["kind"],
                        "namespace": outcome.namespace or None,
                        "name": outcome.name,
                        "error": outcome.error or "",
                    }
                )

    def add_owner_refs(self, relinked: int, dropped: list[DroppedRef]) -> None:
        with self._lock:
            self.relinked_owner_refs += relinked
            self.dropped_owner_refs.extend(dropped)

    @property
    def already_complete(self) -> bool:
        """True when an earlier run had imported every object and the target still holds
        them all: this run changed nothing."""
        total = sum(self.totals().values())
        return self.resumed and total > 0 and self.from_earlier_runs == total

    def totals(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for phase in self.phases.values():
            total.update(phase.outcomes)
        return total

    def to_dict(self) -> dict[str, Any]:
        totals = self.totals()
        return {
            "snapshotId": self.snapshot_id,
            "store": self.store,
            "target": self.target,
            "conflict": self.conflict,
            "dryRun": self.dry_run,
            "scope": self.scope,
            "restoreStatus": self.restore_status,
            "resumed": self.resumed,
            "alreadyComplete": self.already_complete,
            "discardedProgress": self.discarded_progress,
            "partial": self.partial,
            "totals": {
                "objects": sum(totals.values()),
                **{o: totals[o] for o in OUTCOMES},
                "fromEarlierRuns": self.from_earlier_runs,
                "outOfScope": self.out_of_scope,
            },
            "phases": [p.to_dict() for p in self.phases.values()],
            "resources": {
                k: {o: c[o] for o in OUTCOMES if c[o]} for k, c in sorted(self.resources.items())
            },
            "failures": self.failures,
            "unchecked": self.unchecked,
            "ownerReferences": {
                "relinked": self.relinked_owner_refs,
                "dropped": [d.to_dict() for d in self.dropped_owner_refs],
            },
            "crds": self.crds,
            "conversionWebhooks": dict(self.conversion_webhooks),
            "webhooks": order.WEBHOOK_POLICY,
            "seconds": round(self.seconds, 3),
        }
