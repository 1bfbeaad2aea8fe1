"""The export report: per resource type what was listed, exported, skipped and stripped, and why.

Plain dataclasses; ``to_dict`` gives the JSON form that goes into the snapshot manifest and
``migrator export -o json``. The report holds counts, rule names and messages from the API
server, never object content, so it is safe to print even for Secrets.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from migrator.resources.types import ResourceType
from migrator.run.report import Problem, StageReport

# What happened to one resource type.
EXPORTED = "exported"  # listed and written in this run
RESUMED = "resumed"  # written by an interrupted earlier run of the same snapshot, kept
SKIPPED = "skipped"  # the whole type is left out by a rule (not read)
FAILED = "failed"  # listing failed; nothing of it is in the snapshot


@dataclass
class ResourceReport:
    """Counts for one resource type (see :class:`migrator.resources.types.ResourceType`)."""

    key: str
    group_version: str
    kind: str
    namespaced: bool
    aliases: tuple[str, ...] = ()
    state: str = EXPORTED
    listed: int = 0
    exported: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    stripped: Counter[str] = field(default_factory=Counter)
    kept: list[str] = field(default_factory=list)  # values a strip left on purpose, by object
    aside: int = 0
    duplicates: int = 0
    list_restarts: int = 0
    skip_rule: str | None = None  # for a type left out whole
    existing: int | None = None  # objects a left-out type holds (None: unknown)
    error: str | None = None
    seconds: float = 0.0

    @classmethod
    def for_type(cls, rtype: ResourceType, **counts: Any) -> ResourceReport:
        """An empty report (or one with ``counts``) for resource type ``rtype``."""
        return cls(
            key=rtype.key,
            group_version=rtype.group_version,
            kind=rtype.kind,
            namespaced=rtype.namespaced,
            aliases=rtype.aliases,
            **counts,
        )

    def reset_counts(self) -> None:
        """Forget the counts of a list that is being restarted from scratch."""
        self.listed = self.exported = self.aside = self.duplicates = 0
        self.skipped.clear()
        self.stripped.clear()
        self.kept.clear()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; empty details are left out to keep reports readable."""
        doc: dict[str, Any] = {
            "resource": self.key,
            "groupVersion": self.group_version,
            "kind": self.kind,
            "namespaced": self.namespaced,
            "state": self.state,
            "listed": self.listed,
            "exported": self.exported,
            "skipped": dict(sorted(self.skipped.items())),
            "stripped": dict(sorted(self.stripped.items())),
        }
        optional = {
            "aliases": list(self.aliases),
            "kept": list(self.kept),
            "aside": self.aside,
            "duplicates": self.duplicates,
            "listRestarts": self.list_restarts,
            "skipRule": self.skip_rule,
            "existing": self.existing if self.skip_rule else None,
            "error": self.error,
        }
        doc.update({k: v for k, v in optional.items() if v})
        doc["seconds"] = round(self.seconds, 3)
        return doc

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> ResourceReport:
        """Read back what :meth:`to_dict` wrote (a resumed run reports earlier counts)."""
        return cls(
            key=doc["resource"],
            group_version=doc["groupVersion"],
            kind=doc["kind"],
            namespaced=doc["namespaced"],
            aliases=tuple(doc.get("aliases", ())),
            state=doc.get("state", EXPORTED),
            listed=doc.get("listed", 0),
            exported=doc.get("exported", 0),
            skipped=Counter(doc.get("skipped", {})),
            stripped=Counter(doc.get("stripped", {})),
            kept=list(doc.get("kept", ())),
            aside=doc.get("aside", 0),
            duplicates=doc.get("duplicates", 0),
            list_restarts=doc.get("listRestarts", 0),
            seconds=doc.get("seconds", 0.0),
        )


@dataclass
class ExportReport(StageReport):
    """The whole export: one :class:`ResourceReport` per type, plus what could not be seen."""

    snapshot_id: str
    source: str
    target: str | None = None
    store: str = ""
    encrypted: bool = False
    scope: dict[str, Any] = field(default_factory=dict)
    label_selector: str | None = None
    # Cluster-bound fields kept on request instead of stripped (a transform needs them).
    kept: dict[str, bool] = field(default_factory=dict)
    resources: list[ResourceReport] = field(default_factory=list)
    failed_discovery: dict[str, str] = field(default_factory=dict)
    legend: dict[str, str] = field(default_factory=dict)
    # CRDs that convert through a webhook, and what the export did about them.
    conversion_webhooks: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0  # the whole export: discovery, listing and writing, the manifest
    list_seconds: float = 0.0  # listing and writing the objects alone

    @property
    def errors(self) -> dict[str, str]:
        """Resource types whose listing failed, with the error."""
        return {r.key: r.error or "failed" for r in self.resources if r.state == FAILED}

    def problems(self) -> list[Problem]:
        """Each resource type missing from the snapshot because listing it failed."""
        return [Problem(key, error) for key, error in self.errors.items()]

    def totals(self) -> dict[str, int]:
        """Objects listed, exported and skipped, over every type."""
        return {
            "resources": sum(1 for r in self.resources if r.state in (EXPORTED, RESUMED)),
            "listed": sum(r.listed for r in self.resources),
            "exported": sum(r.exported for r in self.resources),
            "skipped": sum(sum(r.skipped.values()) for r in self.resources),
            "failedResources": len(self.errors),
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (manifest ``export`` field and ``-o json``)."""
        return {
            "snapshotId": self.snapshot_id,
            "source": self.source,
            "target": self.target,
            "store": self.store,
            "encrypted": self.encrypted,
            "scope": self.scope,
            "labelSelector": self.label_selector,
            "kept": dict(self.kept),
            "totals": self.totals(),
            "resources": [r.to_dict() for r in self.resources],
            "failedDiscovery": dict(self.failed_discovery),
            "conversionWebhooks": dict(self.conversion_webhooks),
            "errors": self.errors,
            "legend": self.legend,
            "seconds": round(self.seconds, 3),
            "listSeconds": round(self.list_seconds, 3),
        }
