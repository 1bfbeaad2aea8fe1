"""The export stage end to end: discover, plan, list into a snapshot, commit the manifest.

:func:`plan` is pure (the source's discovery and the options in, the types to read out);
:func:`apply` lists them into a snapshot; :func:`export_cluster`, what ``migrator export``
calls, discovers and does both. The manifest is written last, and only after every type was
either exported or recorded as failed; an interrupted run leaves parts and per-type markers
that a re-run with the same snapshot id keeps (``restart`` starts over).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from migrator.errors import ApiError, ConfigError, SnapshotError
from migrator.export.report import RESUMED, ExportReport, ResourceReport
from migrator.export.runner import DEFAULT_WORKERS, ListOptions, export_types
from migrator.export.selection import select
from migrator.export.strips import StripOptions, rule_legend
from migrator.kube import Cluster, Discovery, discover
from migrator.kube.pager import DEFAULT_PAGE_SIZE
from migrator.kube.summary import cluster_id
from migrator.resources.crds import CrdInfo, by_identity, live_crds, webhook_note
from migrator.resources.scope import Scope
from migrator.resources.types import ResourceType
from migrator.run.progress import Progress
from migrator.snapshot import ResourceEntry, SnapshotWriter
from migrator.snapshot.address import default_snapshot_id
from migrator.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportOptions:
    """What to export and how; the CLI's flags, one to one."""

    include_namespaces: tuple[str, ...] = ()
    exclude_namespaces: tuple[str, ...] = ()
    include_system_namespaces: bool = False
    label_selector: str | None = None
    include_resources: tuple[str, ...] = ()
    exclude_resources: tuple[str, ...] = ()
    cluster_scoped: bool | None = None  # None: yes, unless namespaces are included by name
    keep_node_ports: bool = False
    keep_cluster_ips: bool = False
    workers: int = DEFAULT_WORKERS
    processes: int | None = None  # page worker processes; None: one per core (see pages)
    page_size: int = DEFAULT_PAGE_SIZE

    @property
    def scope(self) -> Scope:
        """The namespaces and types these options cover."""
        return Scope.build(
            self.include_namespaces,
            self.exclude_namespaces,
            self.include_system_namespaces,
            self.include_resources,
            self.exclude_resources,
            self.cluster_scoped,
        )


@dataclass(frozen=True)
class ExportPlan:
    """What an export will read, decided before anything is: one type per object identity at
    the version chosen, within the scope of the options."""

    discovery: Discovery
    target: Discovery | None
    options: ExportOptions
    types: list[ResourceType]
    webhooks: Mapping[tuple[str, str], CrdInfo] = field(default_factory=dict)

    @property
    def scope(self) -> Scope:
        return self.options.scope

    def settings(self, source_id: str) -> dict[str, Any]:
        """What decides the objects of a type, the source cluster (``source_id``, its
        identity, not a context name) and the options: a resumed export must run with the
        same. (Which types and versions are exported may change: finished types no longer
        wanted are dropped, see :func:`_keep_finished`.)"""
        scope = self.scope.to_dict()
        return {
            "sourceCluster": source_id,
            "scope": {k: v for k, v in scope.items() if k.endswith("Namespaces")},
            "labelSelector": self.options.label_selector,
            "keepNodePorts": self.options.keep_node_ports,
            "keepClusterIPs": self.options.keep_cluster_ips,
        }


@dataclass
class ExportResult:
    """The report and the manifest that was committed."""

    report: ExportReport
    manifest: dict[str, Any]


def plan(
    discovery: Discovery,
    target: Discovery | None,
    options: ExportOptions,
    crds: Iterable[Mapping[str, Any]] = (),
) -> ExportPlan:
    """The types to export from a source that serves ``discovery``, read at the newest
    version ``target`` also serves when it is given, except the custom resources of ``crds``
    (the source's CRDs) that convert through a webhook: those at their storage version, so
    that reading them calls no webhook. Pure: nothing is asked of a cluster."""
    webhooks = {ident: info for ident, info in by_identity(crds).items() if info.webhook}
    storage = {ident: info.storage_version for ident, info in webhooks.items()}
    return ExportPlan(
        discovery, target, options, select(discovery, target, options.scope, storage), webhooks
    )


def export_cluster(
    source: Cluster,
    store: Store,
    *,
    snapshot_id: str | None = None,
    options: ExportOptions | None = None,
    target: Cluster | None = None,
    key: bytes | None = None,
    restart: bool = False,
    on_progress: Progress | None = None,
) -> ExportResult:
    """Discover ``source`` (and ``target``, which only steers the versions read), plan, and
    export into snapshot ``snapshot_id`` of ``store``; see :func:`apply`."""
    options = options or ExportOptions()
    started = time.monotonic()
    discovery = discover(source)
    target_discovery = discover(target) if target is not None else None
    _check_namespaces_exist(source, options.scope.include_namespaces)
    return apply(
        plan(discovery, target_discovery, options, live_crds(source, discovery)),
        source,
        store,
        snapshot_id=snapshot_id,
        target=target,
        key=key,
        restart=restart,
        on_progress=on_progress,
        started=started,
    )


def apply(
    planned: ExportPlan,
    source: Cluster,
    store: Store,
    *,
    snapshot_id: str | None = None,
    target: Cluster | None = None,
    key: bytes | None = None,
    restart: bool = False,
    on_progress: Progress | None = None,
    started: float | None = None,
) -> ExportResult:
    """Export the planned types of ``source`` into snapshot ``snapshot_id`` of ``store``.

    A report whose ``partial`` is true means some types failed to list: the snapshot is
    committed anyway and its manifest names them; the caller decides the exit status.
    ``started`` (a ``time.monotonic()``) is when the export began, discovery included.
    """
    started = time.monotonic() if started is None else started
    options = planned.options
    source_id = cluster_id(source)
    snapshot_id = snapshot_id or default_snapshot_id(source.context)
    writer = SnapshotWriter(
        store,
        snapshot_id,
        key=key,
        resume=not restart,
        overwrite=restart,
        settings=planned.settings(source_id),
    )
    resumed = _keep_finished(writer, planned.types)
    todo = [t for t in planned.types if t.key not in resumed]
    if resumed:
        log.info("resuming %s: %d types already exported", snapshot_id, len(resumed))

    def persist(rtype: ResourceType, report: ResourceReport) -> None:
        writer.put_type_report(rtype.group, rtype.version, rtype.resource, report.to_dict())

    list_options = ListOptions(
        scope=planned.scope,
        label_selector=options.label_selector,
        strip=StripOptions(
            keep_node_ports=options.keep_node_ports, keep_cluster_ips=options.keep_cluster_ips
        ),
        workers=options.workers,
        processes=options.processes,
        page_size=options.page_size,
        webhooks=planned.webhooks,
    )
    listing = time.monotonic()
    fresh = export_types(
        source, writer, todo, list_options, on_progress=on_progress, on_finished=persist
    )
    list_seconds = time.monotonic() - listing
    by_key = {r.key: r for r in fresh} | resumed
    report = ExportReport(
        snapshot_id=snapshot_id,
        source=source.context,
        target=target.context if target is not None else None,
        store=store.url,
        encrypted=key is not None,
        scope=planned.scope.to_dict(),
        label_selector=options.label_selector,
        kept={"clusterIPs": options.keep_cluster_ips, "nodePorts": options.keep_node_ports},
        resources=[by_key[t.key] for t in planned.types],
        failed_discovery=dict(planned.discovery.failed),
        legend=rule_legend(),
        conversion_webhooks={info.name: webhook_note(info) for info in planned.webhooks.values()},
    )
    report.list_seconds = list_seconds
    report.seconds = time.monotonic() - started
    manifest = writer.commit(
        source={
            "context": source.context,
            "server": source.server,
            "serverVersion": planned.discovery.version.git_version,
            "clusterId": source_id,
        },
        target=(
            {"context": target.context, "serverVersion": planned.target.version.git_version}
            if target is not None and planned.target is not None
            else None
        ),
        discovery=planned.discovery.to_dict(),
        export=report.to_dict(),
    )
    return ExportResult(report=report, manifest=manifest)


def _check_namespaces_exist(cluster: Cluster, namespaces: tuple[str, ...]) -> None:
    """Fail before any work when an included namespace does not exist (a typo exports nothing)."""
    missing = []
    for name in namespaces:
        try:
            cluster.request("GET", f"/api/v1/namespaces/{name}")
        except ApiError as exc:
            if exc.status != 404:
                raise
            missing.append(name)
    if missing:
        raise ConfigError(
            f"namespace(s) {', '.join(missing)} do not exist in cluster {cluster.context!r}",
            hint="check --include-namespace against `kubectl get namespaces`",
        )


def _keep_finished(writer: SnapshotWriter, types: list[ResourceType]) -> dict[str, ResourceReport]:
    """Reports of the types an interrupted run finished; finished types no longer wanted
    (another version chosen, a filter changed) are removed from the snapshot."""
    wanted = {(t.group, t.version, t.resource): t for t in types}
    kept: dict[str, ResourceReport] = {}
    for entry in writer.completed_resources():
        ident = (entry["group"], entry["version"], entry["resource"])
        rtype = wanted.get(ident)
        if rtype is None:
            writer.resource(*ident, entry["kind"], entry["namespaced"]).abort()  # discards it
            continue
        kept[rtype.key] = _resumed_report(writer, rtype, entry)
    return kept


def _resumed_report(
    writer: SnapshotWriter, rtype: ResourceType, entry: ResourceEntry
) -> ResourceReport:
    try:
        report = ResourceReport.from_dict(
            writer.type_report(rtype.group, rtype.version, rtype.resource)
        )
    except (SnapshotError, KeyError, TypeError) as exc:
        log.info("no earlier report for %s (%s); counting from its parts", rtype.key, exc)
        report = ResourceReport.for_type(rtype, listed=entry["objects"], exported=entry["objects"])
    report.state = RESUMED
    return report
