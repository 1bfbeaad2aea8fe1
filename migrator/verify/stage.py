"""Verify an import: does the target hold every object of the snapshot, as it was, and is it up?

:func:`plan` takes the snapshot's inventory within the scope (what the target must hold);
:func:`apply` checks the target against it.

**Parity.** Each covered object of the snapshot is looked up in the target and compared in
the fields the snapshot sets (:mod:`~migrator.verify.compare`), except those the snapshot
says yield to the target's own (a StorageClass renamed onto one the target has, see
:mod:`migrator.resources.inventory`): their existence is checked, and they are listed as not
compared. Objects in the imported
namespaces that the snapshot does not hold are listed as extra, except those the target makes
itself (:mod:`migrator.resources.regenerated`: pods of controllers, token secrets,
``kube-root-ca.crt``, ...); they are reported, not counted as a failure.

**Readiness.** Deployments, StatefulSets and DaemonSets available, claims Bound, Jobs
complete, CRDs Established (:mod:`migrator.resources.readiness`), waiting up to ``wait``
seconds for the ones still on their way (:func:`~migrator.kube.wait.wait_for_all`), and
giving up at once on those that report they cannot progress. Readiness is compared with the
source's: export keeps these kinds' status aside, and an object that was not ready on the
old cluster either (a claim no provisioner ever bound, a StatefulSet waiting on it) is
checked once, not waited for, and when still not ready reported as "not ready, as on the
source", apart from the regressions, which alone fail the verification.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from migrator.errors import ApiError
from migrator.kube import Cluster, iter_items
from migrator.kube.wait import READY, Readiness, wait_for_all
from migrator.resources.inventory import Inventory, take_inventory
from migrator.resources.objects import meta, name_of, namespace_of
from migrator.resources.paths import entry_collection_path, entry_object_path
from migrator.resources.readiness import has_check, readiness
from migrator.resources.scope import Scope
from migrator.run.progress import Progress
from migrator.run.report import Problem, StageReport
from migrator.snapshot import ResourceEntry, SnapshotReader
from migrator.snapshot.layout import api_version
from migrator.verify.compare import differences, expected, is_regenerated

log = logging.getLogger(__name__)


@dataclass
class VerifyReport(StageReport):
    """What verify found; ``ok`` when nothing is missing, differing, or not ready."""

    snapshot_id: str
    target: dict[str, Any]
    checked: int = 0
    missing: list[dict[str, Any]] = field(default_factory=list)
    differing: list[dict[str, Any]] = field(default_factory=list)
    extra: list[dict[str, Any]] = field(default_factory=list)
    not_compared: list[dict[str, Any]] = field(default_factory=list)  # the target's own wins
    ready: int = 0
    not_ready: list[dict[str, Any]] = field(default_factory=list)
    not_ready_as_on_source: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def problems(self) -> list[Problem]:
        """Each object missing, differing or not ready in the target."""
        return (
            [Problem(object_name(o), "missing in the target") for o in self.missing]
            + [
                Problem(
                    object_name(o), "differs: " + ", ".join(d["path"] for d in o["differences"])
                )
                for o in self.differing
            ]
            + [Problem(object_name(o), f"{o['state']}: {o['reason']}") for o in self.not_ready]
        )

    @property
    def ok(self) -> bool:
        return not self.partial

    def to_dict(self) -> dict[str, Any]:
        return {
            "snapshotId": self.snapshot_id,
            "target": self.target,
            "ok": self.ok,
            "totals": {
                "checked": self.checked,
                "missing": len(self.missing),
                "differing": len(self.differing),
                "extra": len(self.extra),
                "notCompared": len(self.not_compared),
                "ready": self.ready,
                "notReady": len(self.not_ready),
                "notReadyAsOnSource": len(self.not_ready_as_on_source),
            },
            "missing": self.missing,
            "differing": self.differing,
            "extra": self.extra,
            "notCompared": self.not_compared,
            "notReady": self.not_ready,
            "notReadyAsOnSource": self.not_ready_as_on_source,
            "seconds": round(self.seconds, 3),
        }


def object_name(described: Mapping[str, Any]) -> str:
    """``Deployment shop/web``: how reports name an object verify looked at."""
    where = f"{described['namespace']}/" if described.get("namespace") else ""
    return f"{described['kind']} {where}{described['name']}"


def _describe(entry: ResourceEntry, obj: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "kind": entry["kind"],
        "apiVersion": api_version(entry),
        "namespace": meta(obj).get("namespace"),
        "name": meta(obj).get("name"),
    }


@dataclass(frozen=True)
class VerifyOptions:
    """Scope (as for the import), how long to wait for readiness, and how often to look."""

    scope: Scope = field(default_factory=Scope)
    wait: float = 0.0
    poll: float = 2.0


def plan(reader: SnapshotReader, scope: Scope) -> Inventory:
    """What the target must hold: the snapshot's inventory within ``scope``."""
    return take_inventory(reader, scope)


def verify_snapshot(
    reader: SnapshotReader,
    cluster: Cluster,
    options: VerifyOptions,
    *,
    on_progress: Progress | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> VerifyReport:
    """Plan and apply the verification of the snapshot of ``reader`` against ``cluster``."""
    return apply(
        plan(reader, options.scope),
        reader,
        cluster,
        options,
        on_progress=on_progress,
        clock=clock,
        sleep=sleep,
    )


def apply(
    inventory: Inventory,
    reader: SnapshotReader,
    cluster: Cluster,
    options: VerifyOptions,
    *,
    on_progress: Progress | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> VerifyReport:
    """Compare the snapshot with ``cluster`` and check readiness; see the module doc."""
    started = clock()
    report = VerifyReport(
        reader.snapshot_id, {"context": cluster.context, "server": cluster.server}
    )
    total = sum(inventory.counts.values())
    waiting = _Readiness()
    for entry in inventory.entries:
        live = _live(cluster, entry, inventory)
        checked = has_check(entry["group"], entry["kind"])
        for obj, aside in reader.iter_with_aside(entry):
            if not options.scope.admits(entry, obj):
                continue
            report.checked += 1
            current = live.pop((namespace_of(obj), name_of(obj)), None)
            yields = inventory.yields_to_target(entry, obj)
            if current is None:
                report.missing.append(_describe(entry, obj))
            elif yields is not None:
                report.not_compared.append({**_describe(entry, obj), "why": yields})
            else:
                found = differences(
                    expected(obj, entry, inventory.owners),
                    current,
                    secret=(entry["group"], entry["kind"]) == ("", "Secret"),
                )
                if found:
                    report.differing.append({**_describe(entry, obj), "differences": found})
                if checked:
                    waiting.add(entry, obj, aside, current)
            if on_progress is not None:
                on_progress("parity", report.checked, total)
        if entry["namespaced"]:
            report.extra.extend(
                _describe(entry, o) for o in live.values() if not is_regenerated(o, entry)
            )
    _wait_ready(cluster, waiting.expected, options, report, clock, sleep, on_progress)
    _check_as_on_source(waiting, report)
    report.seconds = clock() - started
    return report


Candidate = tuple[ResourceEntry, dict[str, Any]]  # an object's entry and its live copy


@dataclass
class _Readiness:
    """The live objects whose readiness verify checks, by URL, split by the source's: those
    ready there (or of unknown readiness) are expected ready, the others are checked once."""

    expected: dict[str, Candidate] = field(default_factory=dict)
    as_on_source: dict[str, tuple[Candidate, Readiness]] = field(default_factory=dict)

    def add(
        self,
        entry: ResourceEntry,
        obj: dict[str, Any],
        aside: dict[str, Any] | None,
        live: dict[str, Any],
    ) -> None:
        path = entry_object_path(entry, namespace_of(live), name_of(live))
        on_source = _on_source(entry, obj, aside)
        if on_source is None or on_source.state == READY:
            self.expected[path] = (entry, live)
        else:
            self.as_on_source[path] = ((entry, live), on_source)


def _on_source(
    entry: ResourceEntry, obj: dict[str, Any], aside: dict[str, Any] | None
) -> Readiness | None:
    """The object's readiness on the source, from the status export set aside (None when
    the snapshot kept none: unknown)."""
    if aside is None or not isinstance(aside.get("status"), dict):
        return None
    return readiness(entry["group"], entry["kind"], {**obj, "status": aside["status"]})


def _check_as_on_source(waiting: _Readiness, report: VerifyReport) -> None:
    """Objects that were not ready on the source: ready now, or not ready as there."""
    for (entry, live), on_source in waiting.as_on_source.values():
        now = readiness(entry["group"], entry["kind"], live)
        if now.state == READY:
            report.ready += 1
            continue
        report.not_ready_as_on_source.append(
            {
                **_describe(entry, live),
                "state": now.state,
                "reason": now.reason,
                "onSource": f"{on_source.state}: {on_source.reason}",
            }
        )


def _live(
    cluster: Cluster, entry: ResourceEntry, inventory: Inventory
) -> dict[tuple[str, str], dict[str, Any]]:
    """The target's objects of the entry's type in the imported namespaces (or all of them)."""
    paths: Iterable[str]
    if entry["namespaced"]:
        paths = [entry_collection_path(entry, ns) for ns in sorted(inventory.namespaces)]
    else:
        paths = [entry_collection_path(entry)]
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path in paths:
        try:
            for item in iter_items(cluster, path):
                found[(namespace_of(item), name_of(item))] = item
        except ApiError as exc:
            if exc.status != 404:
                raise
            log.info("target does not serve %s: %s", path, exc)
    return found


def _wait_ready(
    cluster: Cluster,
    candidates: dict[str, Candidate],
    options: VerifyOptions,
    report: VerifyReport,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    on_progress: Progress | None,
) -> None:
    """Check readiness; poll the ones still waiting until ``options.wait`` runs out."""
    entries = {key: entry for key, (entry, _live) in candidates.items()}

    def check(item: Candidate) -> Readiness:
        entry, live = item
        return readiness(entry["group"], entry["kind"], live)

    def fetch(path: str) -> Candidate:
        return entries[path], cluster.request("GET", path)

    def progress(settled: int, total: int) -> None:
        if on_progress is not None:
            on_progress("readiness", settled, total)

    waited = wait_for_all(
        candidates,
        fetch,
        check,
        timeout=options.wait,
        interval=options.poll,
        first=candidates,
        on_progress=progress,
        clock=clock,
        sleep=sleep,
    )
    for key, end in waited.items():
        if end.readiness.state == READY:
            report.ready += 1
            continue
        _entry, live = end.value if end.value is not None else candidates[key]
        report.not_ready.append(
            {
                **_describe(entries[key], live),
                "state": end.readiness.state,
                "reason": end.readiness.reason,
            }
        )
