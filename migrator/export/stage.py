"""The export stage end to end: discover, choose, list into a snapshot, commit the manifest.

``export_cluster`` is what ``migrator export`` calls. The manifest is written last, and only
after every type was either exported or recorded as failed; an interrupted run leaves parts
and per-type markers that a re-run with the same snapshot id keeps (``restart`` starts over).
"""
from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from migrator.errors import ApiError, ConfigError, StoreError
from migrator.export import rules
from migrator.export.report import RESUMED, ExportReport, ResourceReport
from migrator.export.runner import DEFAULT_WORKERS, ListOptions, ProgressCallback, export_types
from migrator.export.scope import NamespaceScope
from migrator.export.selection import ResourceType, select
from migrator.kube import Cluster, Discovery, discover
from migrator.kube.pager import DEFAULT_PAGE_SIZE
from migrator.snapshot import ResourceEntry, SnapshotWriter
from migrator.snapshot.layout import resource_folder
from migrator.store import Store

log = logging.getLogger(__name__)

# Beside each resource's parts: its export report, written just before its _done.json, so a
# resumed export still reports the counts of the types an earlier run finished.
REPORT_FILE = "_report.json"


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


@dataclass
class ExportResult:
    """The report and the manifest that was committed."""

    report: ExportReport
    manifest: dict[str, Any]


def default_snapshot_id(context: str, now: datetime | None = None) -> str:
    """``<context>-<UTC time>``, with characters a snapshot id cannot hold replaced by ``-``."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", context).strip("-.") or "cluster"
    return f"{cleaned[:100]}-{stamp}"


def export_cluster(
    source: Cluster,
    store: Store,
    *,
    snapshot_id: str | None = None,
    options: ExportOptions | None = None,
    target: Cluster | None = None,
    key: bytes | None = None,
    restart: bool = False,
    on_progress: ProgressCallback | None = None,
) -> ExportResult:
    """Export ``source`` into snapshot ``snapshot_id`` of ``store``; see the module doc.

    ``target`` (the new cluster) only steers which versions are read. A report whose
    ``partial`` is true means some types failed to list: the snapshot is committed anyway and
    its manifest names them; the caller decides the exit status.
    """
    options = options or ExportOptions()
    started = time.monotonic()
    snapshot_id = snapshot_id or default_snapshot_id(source.context)
    discovery = discover(source)
    target_discovery = discover(target) if target is not None else None
    scope = NamespaceScope.build(
        options.include_namespaces, options.exclude_namespaces, options.include_system_namespaces
    )
    _check_namespaces_exist(source, scope.include)
    types = choose_types(discovery, target_discovery, options)
    writer = SnapshotWriter(store, snapshot_id, key=key, resume=not restart, overwrite=restart,
                            settings=_content_settings(scope, options))
    resumed = _keep_finished(writer, types)
    todo = [t for t in types if t.key not in resumed]
    if resumed:
        log.info("resuming %s: %d types already exported", snapshot_id, len(resumed))

    def persist(rtype: ResourceType, report: ResourceReport) -> None:
        folder = resource_folder(rtype.group, rtype.version, rtype.resource)
        doc = json.dumps(report.to_dict(), indent=2).encode() + b"\n"
        store.put_bytes(f"{snapshot_id}/{folder}/{REPORT_FILE}", doc)

    list_options = ListOptions(
        scope=scope,
        label_selector=options.label_selector,
        strip=rules.StripOptions(
            keep_node_ports=options.keep_node_ports, keep_cluster_ips=options.keep_cluster_ips
        ),
        workers=options.workers,
        processes=options.processes,
        page_size=options.page_size,
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
        scope=scope.to_dict(),
        label_selector=options.label_selector,
        kept={"clusterIPs": options.keep_cluster_ips, "nodePorts": options.keep_node_ports},
        resources=[by_key[t.key] for t in types],
        failed_discovery=dict(discovery.failed),
        legend=rules.rule_legend(),
    )
    report.list_seconds = list_seconds
    report.seconds = time.monotonic() - started
    manifest = writer.commit(
        source={
            "context": source.context,
            "server": source.server,
            "serverVersion": discovery.version.git_version,
        },
        target=(
            {"context": target.context, "serverVersion": target_discovery.version.git_version}
            if target is not None and target_discovery is not None
            else None
        ),
        discovery=discovery.to_dict(),
        export=report.to_dict(),
    )
    return ExportResult(report=report, manifest=manifest)


def _content_settings(scope: NamespaceScope, options: ExportOptions) -> dict[str, Any]:
    """The options that decide what the objects of a type are: a resumed export must run
    with the same. (Which types and versions are exported may change: finished types no
    longer wanted are dropped, see :func:`_keep_finished`.)"""
    return {
        "scope": scope.to_dict(),
        "labelSelector": options.label_selector,
        "keepNodePorts": options.keep_node_ports,
        "keepClusterIPs": options.keep_cluster_ips,
    }


def choose_types(
    discovery: Discovery, target: Discovery | None, options: ExportOptions
) -> list[ResourceType]:
    """The types to export under ``options``.

    With namespaces included by name and ``cluster_scoped`` left to its default, the only
    cluster-scoped type kept is Namespace itself (the included namespaces' objects).
    """
    types = select(
        discovery,
        target,
        include=options.include_resources,
        exclude=options.exclude_resources,
        cluster_scoped=options.cluster_scoped is not False,
    )
    if options.cluster_scoped is None and options.include_namespaces:
        types = [t for t in types if t.namespaced or (t.group, t.resource) == ("", "namespaces")]
    return types


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
    folder = resource_folder(rtype.group, rtype.version, rtype.resource)
    try:
        raw = writer.store.get_bytes(f"{writer.snapshot_id}/{folder}/{REPORT_FILE}")
        report = ResourceReport.from_dict(json.loads(raw))
    except (StoreError, ValueError, KeyError, TypeError) as exc:
        log.info("no earlier report for %s (%s); counting from its parts", rtype.key, exc)
        report = ResourceReport.for_type(rtype, listed=entry["objects"], exported=entry["objects"])
    report.state = RESUMED
    return report
