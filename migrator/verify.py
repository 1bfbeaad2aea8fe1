"""Verify an import: does the target hold every object of the snapshot, as it was, and is it up?

**Parity.** Each object of the snapshot (in the import's scope) is looked up in the target
and compared with deepdiff, counting only the fields the snapshot sets: the snapshot object
is turned into exactly what the import applies (:func:`migrator.importer.apply.prepare`),
the live object is cut down to the same fields (:func:`project`), and only then compared.
So fields the target's API server defaults (``imagePullPolicy``, ``protocol``, ...), fields
it owns (uid, resourceVersion, managedFields, ...) and status never count as differences,
while a value the snapshot sets and the target holds otherwise always does. Owner references
are compared without their uid (it is the target's by design) and without the ones the
import drops. Secret values are masked in every difference: only the path is shown.

Objects in the imported namespaces that the snapshot does not hold are listed as extra,
except those the target makes itself (what export skips for the same reason: pods of
controllers, token secrets, ``kube-root-ca.crt``, ...); they are reported, not counted as a
failure.

**Readiness.** Deployments, StatefulSets and DaemonSets available, claims Bound, Jobs
complete, CRDs Established (:mod:`migrator.readiness`), waiting up to ``wait`` seconds for
the ones still on their way, and giving up at once on those that report they cannot progress.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from deepdiff import DeepDiff

from migrator.errors import ApiError
from migrator.export.rules import classify
from migrator.export.selection import ResourceType
from migrator.importer.apply import collection_path, object_path, prepare
from migrator.importer.owners import OwnerIndex, object_key
from migrator.importer.scan import ImportPlan, plan_import
from migrator.importer.scope import ImportScope
from migrator.kube import Cluster, iter_items
from migrator.readiness import FAILED, READY, WAITING, has_check, readiness
from migrator.snapshot import ResourceEntry, SnapshotReader
from migrator.snapshot.layout import api_version

log = logging.getLogger(__name__)

MASK = "<masked>"

# Fields a controller of the target rewrites after import, whatever the snapshot said.
CONTROLLER_ANNOTATIONS: dict[str, str] = {
    "deployment.kubernetes.io/revision": "numbered by the deployment controller from its "
    "ReplicaSets, whose history starts afresh in the target",
}

ProgressCallback = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass
class VerifyReport:
    """What verify found; ``ok`` when nothing is missing, differing, or not ready."""

    snapshot_id: str
    target: dict[str, Any]
    checked: int = 0
    missing: list[dict[str, Any]] = field(default_factory=list)
    differing: list[dict[str, Any]] = field(default_factory=list)
    extra: list[dict[str, Any]] = field(default_factory=list)
    ready: int = 0
    not_ready: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not (self.missing or self.differing or self.not_ready)

    def to_dict(self) -> dict[str, Any]:
        return {
            "snapshotId": self.snapshot_id, "target": self.target, "ok": self.ok,
            "totals": {"checked": self.checked, "missing": len(self.missing),
                       "differing": len(self.differing), "extra": len(self.extra),
                       "ready": self.ready, "notReady": len(self.not_ready)},
            "missing": self.missing, "differing": self.differing, "extra": self.extra,
            "notReady": self.not_ready, "seconds": round(self.seconds, 3),
        }


# -- pure parts ------------------------------------------------------------------------------


def project(desired: Any, live: Any) -> Any:
    """``live`` cut down to the shape of ``desired``: keys ``desired`` lacks are dropped.

    Lists of equal length are projected element by element (so defaulted fields inside
    containers or ports do not count); lists of other lengths are returned as they are. A
    key ``desired`` sets to an empty value (``{}``, ``[]``, null) that ``live`` lacks counts
    as equal: the API server omits empty values (``metadata.annotations: {}`` is not stored).
    """
    if isinstance(desired, dict) and isinstance(live, dict):
        return {k: project(v, live[k]) if k in live else v for k, v in desired.items()
                if k in live or _empty(v)}
    if isinstance(desired, list) and isinstance(live, list) and len(desired) == len(live):
        return [project(d, v) for d, v in zip(desired, live)]
    return live


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, (dict, list)) and not value)


def expected(
    obj: Mapping[str, Any], entry: ResourceEntry, owners: OwnerIndex | None = None
) -> dict[str, Any]:
    """What the target should hold of a snapshot object, in the fields the snapshot sets."""
    desired = prepare(obj, entry)
    # Items of a list carry no apiVersion/kind: the type is checked by where they are listed.
    desired.pop("apiVersion")
    desired.pop("kind")
    meta = desired["metadata"]
    annotations = meta.get("annotations")
    if annotations:
        kept = {k: v for k, v in annotations.items() if k not in CONTROLLER_ANNOTATIONS}
        if kept:
            meta["annotations"] = kept
        else:
            meta.pop("annotations")
    refs = meta.get("ownerReferences")
    if refs:
        key = object_key(entry["group"], entry["kind"], obj)
        kept_refs = [
            {k: v for k, v in ref.items() if k != "uid"} for ref in refs
            if owners is None or owners.owner_key(ref, key[2]) in owners.present
        ]
        if kept_refs:
            meta["ownerReferences"] = kept_refs
        else:
            meta.pop("ownerReferences")
    return desired


def differences(desired: Mapping[str, Any], live: Mapping[str, Any], *, secret: bool = False
                ) -> list[dict[str, Any]]:
    """The differences between ``desired`` and ``live`` in the fields ``desired`` sets.

    Each is ``{"path", "change", "snapshot", "target"}``; with ``secret`` the values under
    ``data`` and ``stringData`` are replaced by ``<masked>``.
    """
    diff = DeepDiff(dict(desired), project(dict(desired), dict(live)), verbose_level=2)
    found = []
    for change, items in diff.items():
        if not isinstance(items, Mapping):  # e.g. iterable_item_added as a PrettyOrderedSet
            items = {path: None for path in items}
        for path, detail in items.items():
            before, after = _values(change, detail)
            if secret and _secret_path(path):
                before = MASK if before is not None else None
                after = MASK if after is not None else None
            found.append({"path": _pointer(path), "change": change,
                          "snapshot": before, "target": after})
    return sorted(found, key=lambda d: d["path"])


def _values(change: str, detail: Any) -> tuple[Any, Any]:
    if isinstance(detail, Mapping) and "old_value" in detail:
        return detail.get("old_value"), detail.get("new_value")
    if change.endswith("removed"):
        return detail, None
    if change.endswith("added"):
        return None, detail
    return None, None


def _secret_path(path: str) -> bool:
    return path.startswith(("root['data']", "root['stringData']")) or path in (
        "root", "root['data']", "root['stringData']")


def _pointer(path: str) -> str:
    """deepdiff's ``root['spec']['ports'][0]`` as ``/spec/ports/0``."""
    inner = path[len("root"):]
    parts = [p.strip("'\"") for p in inner.replace("]", "").split("[") if p]
    return "/" + "/".join(parts)


def is_regenerated(obj: Mapping[str, Any], entry: ResourceEntry) -> bool:
    """True for a live object the target makes itself (export would skip it too)."""
    rtype = ResourceType(entry["group"], entry["version"], entry["resource"], entry["kind"],
                         entry["namespaced"])
    return classify(dict(obj), rtype) is not None


def _describe(entry: ResourceEntry, obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    return {"kind": entry["kind"], "apiVersion": api_version(entry),
            "namespace": meta.get("namespace"), "name": meta.get("name")}


# -- against a cluster -----------------------------------------------------------------------


@dataclass(frozen=True)
class VerifyOptions:
    """Scope (as for the import), how long to wait for readiness, and how often to look."""

    scope: ImportScope = field(default_factory=ImportScope)
    wait: float = 0.0
    poll: float = 2.0


def verify_snapshot(
    reader: SnapshotReader,
    cluster: Cluster,
    options: VerifyOptions,
    *,
    on_progress: ProgressCallback | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> VerifyReport:
    """Compare the snapshot with ``cluster`` and check readiness; see the module doc."""
    started = clock()
    options.scope.check(reader.resources())
    plan = plan_import(reader, options.scope)
    report = VerifyReport(reader.snapshot_id, {"context": cluster.context,
                                               "server": cluster.server})
    total = sum(plan.counts.values())
    waiting: list[tuple[ResourceEntry, dict[str, Any]]] = []
    for entry in plan.entries:
        live = _live(cluster, entry, plan, options.scope)
        for obj in reader.iter_objects(entry):
            if not options.scope.admits(entry, obj):
                continue
            report.checked += 1
            meta = obj.get("metadata") or {}
            current = live.pop((str(meta.get("namespace") or ""), str(meta.get("name"))), None)
            if current is None:
                report.missing.append(_describe(entry, obj))
            else:
                found = differences(expected(obj, entry, plan.owners), current,
                                    secret=(entry["group"], entry["kind"]) == ("", "Secret"))
                if found:
                    report.differing.append({**_describe(entry, obj), "differences": found})
                if has_check(entry["group"], entry["kind"]):
                    waiting.append((entry, current))
            if on_progress is not None:
                on_progress("parity", report.checked, total)
        if entry["namespaced"]:
            report.extra.extend(_describe(entry, o) for o in live.values()
                                if not is_regenerated(o, entry))
    _wait_ready(cluster, waiting, options, report, clock, sleep, on_progress)
    report.seconds = clock() - started
    return report


def _live(
    cluster: Cluster, entry: ResourceEntry, plan: ImportPlan, scope: ImportScope
) -> dict[tuple[str, str], dict[str, Any]]:
    """The target's objects of the entry's type in the imported namespaces (or all of them)."""
    if entry["namespaced"]:
        paths: Iterable[str] = [collection_path(entry, ns) for ns in sorted(plan.namespaces)]
    else:
        paths = [collection_path(entry)]
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path in paths:
        try:
            for item in iter_items(cluster, path):
                meta = item.get("metadata") or {}
                found[(str(meta.get("namespace") or ""), str(meta.get("name")))] = item
        except ApiError as exc:
            if exc.status != 404:
                raise
            log.info("target does not serve %s: %s", path, exc)
    return found


def _wait_ready(
    cluster: Cluster,
    candidates: list[tuple[ResourceEntry, dict[str, Any]]],
    options: VerifyOptions,
    report: VerifyReport,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    on_progress: ProgressCallback | None,
) -> None:
    """Check readiness; poll the ones still waiting until ``options.wait`` runs out."""
    deadline = clock() + options.wait
    pending = candidates
    total = len(candidates)
    while True:
        still: list[tuple[ResourceEntry, dict[str, Any]]] = []
        for entry, live in pending:
            state = readiness(entry["group"], entry["kind"], live)
            if state.state == READY:
                report.ready += 1
            elif state.state == FAILED:
                report.not_ready.append({**_describe(entry, live), "state": FAILED,
                                         "reason": state.reason})
            else:
                still.append((entry, live))
        if on_progress is not None:
            on_progress("readiness", total - len(still), total)
        if not still or clock() >= deadline:
            break
        sleep(min(options.poll, max(0.0, deadline - clock())))
        pending = []
        for entry, live in still:
            meta = live.get("metadata") or {}
            try:
                pending.append((entry, cluster.request("GET", object_path(
                    entry, str(meta.get("namespace") or ""), str(meta.get("name"))))))
            except ApiError as exc:
                report.not_ready.append({**_describe(entry, live), "state": FAILED,
                                         "reason": str(exc)})
    for entry, live in still:
        state = readiness(entry["group"], entry["kind"], live)
        report.not_ready.append({**_describe(entry, live), "state": WAITING,
                                 "reason": f"{state.reason} after {options.wait:.0f}s"})
