"""The transform report: every change, object by object, and a summary a person can read.

Records are kept only for objects that changed or were dropped; counts cover every object.
**Secret values never appear**: for Secrets (and Helm release records, stored in Secrets or
ConfigMaps) ``before``/``after`` of every change are replaced by :data:`MASK` when the change
is recorded, so they never reach memory that outlives the object, a file or a terminal.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from migrator.resources.objects import describe_ref, object_ref
from migrator.run.report import Problem, StageReport
from migrator.transform.base import Change, Severity

__all__ = [
    "MASK",
    "NEEDS_PERSON",
    "KindCount",
    "ObjectRecord",
    "TransformReport",
    "describe_ref",
    "is_sensitive",
    "mask",
    "object_ref",
]

MASK = "(hidden)"
NEEDS_PERSON = frozenset({Severity.REVIEW, Severity.LOSS, Severity.DROP})
HELM_OWNER_LABEL = "owner"


def is_sensitive(obj: dict[str, Any]) -> bool:
    """True for objects whose values must never be shown: Secrets and Helm release records."""
    kind, api_version = obj.get("kind"), obj.get("apiVersion")
    if api_version != "v1":
        return False
    if kind == "Secret":
        return True
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return kind == "ConfigMap" and labels.get(HELM_OWNER_LABEL) == "helm"


def mask(changes: Iterable[Change]) -> list[Change]:
    """The changes with their values hidden (paths and reasons stay)."""
    return [
        replace(
            c,
            before=MASK if c.before is not None else None,
            after=MASK if c.after is not None else None,
        )
        for c in changes
    ]


@dataclass
class ObjectRecord:
    """One object's fate: its name before and after, where it was stored, its changes."""

    source: dict[str, Any]  # ref as read from the source snapshot
    outcome: str  # "changed", "dropped" or "duplicate"
    changes: list[Change]
    target: dict[str, Any] | None = None  # ref as written (None when dropped)
    resource: str = ""  # "<group|core>/<version>/<resource>" it was written to

    @property
    def needs_person(self) -> bool:
        return any(c.severity in NEEDS_PERSON for c in self.changes)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "object": self.source,
            "outcome": self.outcome,
            "needsPerson": self.needs_person,
            "changes": [c.to_dict() for c in self.changes],
        }
        if self.target is not None and self.target != self.source:
            data["writtenAs"] = self.target
        if self.resource:
            data["resource"] = self.resource
        return data


@dataclass
class KindCount:
    """Counts for one kind (as read from the source)."""

    read: int = 0
    written: int = 0
    changed: int = 0
    dropped: int = 0
    duplicates: int = 0


@dataclass
class TransformReport(StageReport):
    """What a transform did; ``to_dict`` is the JSON report, ``summary`` its readable part."""

    source_snapshot: str
    snapshot_id: str
    target: dict[str, Any]
    rules: dict[str, Any] | None = None
    differences: dict[str, Any] = field(default_factory=dict)
    records: list[ObjectRecord] = field(default_factory=list)
    kinds: dict[str, KindCount] = field(default_factory=dict)
    severities: Counter[str] = field(default_factory=Counter)
    # CRDs that convert through a webhook, and what migrator does about them.
    conversion_webhooks: dict[str, str] = field(default_factory=dict)
    pod_security: dict[str, Any] = field(default_factory=dict)  # level per namespace
    seconds: float = 0.0

    def problems(self) -> list[Problem]:
        """Nothing fails object by object in a transform: what cannot move as it is, is a
        change a person must review (``needs_person``)."""
        return []

    def count(self, kind_key: str) -> KindCount:
        """The counter of ``kind_key`` (``apiVersion Kind`` as read), created on first use."""
        return self.kinds.setdefault(kind_key, KindCount())

    def record(
        self,
        source: dict[str, Any],
        outcome: str,
        changes: list[Change],
        *,
        sensitive: bool,
        written: dict[str, Any] | None = None,
        resource: str = "",
    ) -> ObjectRecord:
        """Add one object's record (``source``: its ref as read, see :func:`object_ref`).

        ``sensitive`` objects (see :func:`is_sensitive`, before or after the change) have
        their values masked here, before anything keeps them.
        """
        if sensitive:
            changes = mask(changes)
        self.severities.update(c.severity.value for c in changes)
        entry = ObjectRecord(
            source=source,
            outcome=outcome,
            changes=changes,
            target=object_ref(written) if written is not None else None,
            resource=resource,
        )
        self.records.append(entry)
        return entry

    @property
    def needs_person(self) -> list[ObjectRecord]:
        """Records with a change a person must look at (review, loss, drop)."""
        return [r for r in self.records if r.needs_person]

    def summary(self) -> dict[str, Any]:
        """Totals, counts by kind and by severity, and the objects needing a person."""
        totals = KindCount()
        for count in self.kinds.values():
            for name in vars(totals):
                setattr(totals, name, getattr(totals, name) + getattr(count, name))
        return {
            "sourceSnapshot": self.source_snapshot,
            "snapshotId": self.snapshot_id,
            "target": self.target,
            "totals": vars(totals),
            "byKind": {k: vars(v) for k, v in sorted(self.kinds.items())},
            "bySeverity": dict(sorted(self.severities.items())),
            "needsPerson": [
                {
                    "object": describe_ref(r.source),
                    "why": [c.reason for c in r.changes if c.severity in NEEDS_PERSON],
                }
                for r in self.needs_person
            ],
            "conversionWebhooks": dict(self.conversion_webhooks),
            "podSecurity": self.pod_security,
            "seconds": round(self.seconds, 3),
        }

    def to_dict(self) -> dict[str, Any]:
        """The full JSON report: summary, rules applied, and every object's changes."""
        return {
            **self.summary(),
            "rules": self.rules,
            "differences": self.differences,
            "objects": [r.to_dict() for r in self.records],
        }
