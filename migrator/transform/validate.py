"""``--validate``: a server-side dry-run of every transformed object against the target.

Nothing is persisted (``dryRun=All``). A new name is dry-run created (POST); a name that
already exists on the target is dry-run applied instead (server-side apply PATCH with
``fieldManager=migrator`` and ``force=true``), which is what the import will do. The API
server runs validation, defaulting and admission, so a rejection carries its own message.

What cannot be checked is said plainly rather than counted as accepted: objects in a
namespace the target does not have yet (a dry-run create of the Namespace does not make it
exist for the next request), and kinds the target does not serve yet (custom resources whose
CRD the import will create first).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from migrator.errors import ApiError
from migrator.kube import Cluster
from migrator.kube.client import FIELD_MANAGER
from migrator.resources.objects import Obj, describe_ref, name_of, namespace_of, object_ref
from migrator.resources.paths import entry_collection_path
from migrator.snapshot import ResourceEntry, SnapshotReader
from migrator.snapshot.layout import api_version, typed

log = logging.getLogger(__name__)

ACCEPTED, REJECTED, UNCHECKED = "accepted", "rejected", "unchecked"
DEFAULT_WORKERS = 4


@dataclass
class Verdict:
    """The target's answer for one object (accepted objects are only counted)."""

    object: dict[str, Any]
    outcome: str
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"object": self.object, "outcome": self.outcome, "message": self.message}


@dataclass
class ValidationReport:
    """Counts per outcome, and every rejected or unchecked object with the reason."""

    target: str
    outcomes: Counter[str] = field(default_factory=Counter)
    problems: list[Verdict] = field(default_factory=list)

    @property
    def rejected(self) -> list[Verdict]:
        return [v for v in self.problems if v.outcome == REJECTED]

    def add(self, verdict: Verdict) -> None:
        self.outcomes[verdict.outcome] += 1
        if verdict.outcome != ACCEPTED:
            self.problems.append(verdict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "outcomes": dict(sorted(self.outcomes.items())),
            "problems": [p.to_dict() for p in self.problems],
        }


class _Namespaces:
    """Which namespaces exist on the target (asked once each) and which the snapshot brings."""

    def __init__(self, cluster: Cluster, in_snapshot: set[str]) -> None:
        self.cluster = cluster
        self.in_snapshot = in_snapshot
        self.known: dict[str, bool] = {}

    def problem(self, namespace: str) -> str | None:
        if namespace not in self.known:
            try:
                self.cluster.request("GET", f"/api/v1/namespaces/{namespace}")
                self.known[namespace] = True
            except ApiError as exc:
                if exc.status != 404:
                    raise
                self.known[namespace] = False
        if self.known[namespace]:
            return None
        brought = " (the import creates it first)" if namespace in self.in_snapshot else ""
        return (
            f"not checked: namespace {namespace!r} does not exist on the target yet"
            f"{brought}, and a dry-run cannot create it for the next request"
        )


def dry_run(cluster: Cluster, entry: ResourceEntry, obj: Obj) -> Verdict:
    """Dry-run create ``obj``; if its name exists, dry-run server-side apply it."""
    ref = object_ref(obj)
    collection = entry_collection_path(entry, namespace_of(obj))
    try:
        cluster.request(
            "POST", collection, query={"dryRun": "All", "fieldManager": FIELD_MANAGER}, body=obj
        )
        return Verdict(ref, ACCEPTED)
    except ApiError as exc:
        if exc.status != 409 or exc.reason != "AlreadyExists":
            return Verdict(ref, REJECTED, str(exc))
    try:
        cluster.apply(f"{collection}/{name_of(obj)}", obj, force=True, dry_run=True)
        return Verdict(ref, ACCEPTED)
    except ApiError as exc:
        return Verdict(ref, REJECTED, str(exc))


def _namespace_names(reader: SnapshotReader) -> set[str]:
    entry = reader.find("", "v1", "namespaces")
    if entry is None:
        return set()
    return {str((o.get("metadata") or {}).get("name")) for o in reader.iter_objects(entry)}


def validate_snapshot(
    cluster: Cluster,
    reader: SnapshotReader,
    serves: Callable[[str], bool],
    *,
    workers: int = DEFAULT_WORKERS,
) -> ValidationReport:
    """Dry-run every object of ``reader`` (a transformed snapshot) against ``cluster``."""
    report = ValidationReport(target=cluster.context)
    namespaces = _Namespaces(cluster, _namespace_names(reader))

    def jobs() -> Iterator[tuple[ResourceEntry, Obj]]:
        for entry in reader.resources():
            yield from ((entry, typed(obj, entry)) for obj in reader.iter_objects(entry))

    def check(job: tuple[ResourceEntry, Obj]) -> Verdict:
        entry, obj = job
        if not serves(api_version(entry)):
            return Verdict(
                object_ref(obj),
                UNCHECKED,
                f"not checked: the target does not serve {api_version(entry)} yet",
            )
        namespace = (obj.get("metadata") or {}).get("namespace")
        problem = namespaces.problem(namespace) if entry["namespaced"] and namespace else None
        if problem is not None:
            return Verdict(object_ref(obj), UNCHECKED, problem)
        return dry_run(cluster, entry, obj)

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="validate") as pool:
        for verdict in _bounded_map(pool, check, jobs(), workers * 4):
            if verdict.outcome == REJECTED:
                log.info("rejected: %s: %s", describe_ref(verdict.object), verdict.message)
            report.add(verdict)
    return report


def _bounded_map(
    pool: ThreadPoolExecutor, fn: Callable[[Any], Verdict], items: Iterator[Any], window: int
) -> Iterator[Verdict]:
    """``pool.map`` with at most ``window`` items in flight, so a big snapshot streams."""
    pending = []
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) >= window:
            yield pending.pop(0).result()
    for future in pending:
        yield future.result()
