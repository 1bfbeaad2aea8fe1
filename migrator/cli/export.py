"""``migrator export``: snapshot every object of a cluster into a store.

Its own module so that ``migrator export`` imports what the export needs and no more: not
the transform, the importer or the verifier, and rich only for text output or progress bars
(see :mod:`migrator.cli`). Start-up time counts in the export benchmark.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

import click

from migrator import crypto, kube
from migrator.cli.options import (
    KUBECONFIG_OPTION,
    OUTPUT_OPTION,
    S3_ENDPOINT_OPTION,
    SCOPE_OPTIONS,
    STORE_OPTION,
    from_option,
    key_file_option,
    processes_option,
    to_option,
    with_options,
)
from migrator.cli.render import MAX_LISTED, progress_bars, render, render_table, show_report
from migrator.errors import PartialFailure, SnapshotExists
from migrator.export import ExportOptions, ExportReport, connections_needed, export_cluster
from migrator.store import open_store

if TYPE_CHECKING:
    from rich.console import Console


@click.command()
@from_option("Kubeconfig context of the cluster to export (the old cluster).")
@to_option(
    "Kubeconfig context of the new cluster: objects are read at the newest version both "
    "clusters serve, so the old API server converts them. Default: the source's "
    "preferred versions.",
    required=False,
)
@KUBECONFIG_OPTION
@STORE_OPTION
@click.option(
    "--id",
    "snapshot_id",
    metavar="ID",
    default=None,
    help="Snapshot id. Default: <context>-<UTC time>. Re-running with the id of an "
    "interrupted export resumes it.",
)
@with_options(*SCOPE_OPTIONS)
@click.option(
    "--include-system-namespaces",
    is_flag=True,
    help="Also export kube-system, kube-public and kube-node-lease.",
)
@click.option(
    "-l",
    "--selector",
    "label_selector",
    metavar="SELECTOR",
    default=None,
    help="Export only objects matching this label selector (e.g. app=shop,tier!=db); "
    "applies to every type, Namespaces included.",
)
@click.option(
    "--keep-node-ports",
    is_flag=True,
    help="Keep Services' nodePorts (they are stripped by default, to be allocated anew).",
)
@click.option(
    "--keep-cluster-ips",
    is_flag=True,
    help="Keep Services' clusterIP(s) (stripped by default), for `migrator transform "
    "--cluster-ip keep|remap`. Recorded in the snapshot's manifest.",
)
@key_file_option("Encrypt every data part with this key (AES-256-GCM)")
@S3_ENDPOINT_OPTION
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=6,
    show_default=True,
    help="Resource types listed at the same time.",
)
@processes_option("parse, strip and compress pages")
@click.option(
    "--restart",
    is_flag=True,
    help="Start snapshot ID over, discarding what an earlier run of it wrote "
    "(also replaces a complete snapshot of that id).",
)
@OUTPUT_OPTION
def export(
    source: str,
    target: str | None,
    kubeconfig: Path | None,
    store_url: str,
    snapshot_id: str | None,
    include_namespaces: tuple[str, ...],
    exclude_namespaces: tuple[str, ...],
    include_resources: tuple[str, ...],
    exclude_resources: tuple[str, ...],
    cluster_scoped: bool | None,
    include_system_namespaces: bool,
    label_selector: str | None,
    keep_node_ports: bool,
    keep_cluster_ips: bool,
    key_file: Path | None,
    s3_endpoint: str | None,
    workers: int,
    processes: int | None,
    restart: bool,
    output: str,
) -> None:
    """Snapshot every object of the cluster --from into a store.

    Each object once, at the right version; what the new cluster regenerates is skipped and
    cluster-specific fields are stripped, each with its reason in the report. Exit code 5
    when some resource types could not be listed (the snapshot says which).
    """
    key = crypto.load_key(key_file)
    store = open_store(store_url, s3_endpoint=s3_endpoint)
    options = ExportOptions(
        include_namespaces=include_namespaces,
        exclude_namespaces=exclude_namespaces,
        include_system_namespaces=include_system_namespaces,
        label_selector=label_selector,
        include_resources=include_resources,
        exclude_resources=exclude_resources,
        cluster_scoped=cluster_scoped,
        keep_node_ports=keep_node_ports,
        keep_cluster_ips=keep_cluster_ips,
        workers=workers,
        processes=processes,
    )
    with contextlib.ExitStack() as stack:
        cluster = stack.enter_context(
            kube.connect(kubeconfig, source, pool_size=connections_needed(workers))
        )
        new = stack.enter_context(kube.connect(kubeconfig, target)) if target else None
        on_progress = progress_bars(stack, output)
        try:
            result = export_cluster(
                cluster,
                store,
                snapshot_id=snapshot_id,
                options=options,
                target=new,
                key=key,
                restart=restart,
                on_progress=on_progress,
            )
        except SnapshotExists as exc:
            exc.hint = "choose another --id, or pass --restart to replace it"
            raise
    report = result.report
    show_report(report, output, _render_export)
    if report.partial:
        failed = ", ".join(sorted(report.errors))
        raise PartialFailure(
            f"snapshot {report.snapshot_id} is missing {len(report.errors)} resource type(s) "
            f"that could not be listed: {failed}",
            hint="fix the cause (see the report), then export again with --restart",
        )


def _render_export(console: Console, report: ExportReport) -> None:
    data = report.to_dict()
    totals = data["totals"]
    render(
        console,
        f"Snapshot {report.snapshot_id}",
        [
            ("store", report.store),
            (
                "source",
                report.source + (f" (versions for {report.target})" if report.target else ""),
            ),
            ("encrypted", "yes" if report.encrypted else "no"),
            (
                "objects",
                f"{totals['exported']} exported of {totals['listed']} listed, "
                f"{totals['skipped']} skipped",
            ),
            (
                "resource types",
                f"{totals['resources']} exported, {totals['failedResources']} failed",
            ),
            ("namespaces excluded", ", ".join(data["scope"]["excludeNamespaces"]) or "none"),
            ("time", f"{report.seconds:.1f}s"),
        ],
    )
    rows = [
        [
            r.key,
            r.group_version,
            r.state,
            str(r.listed),
            str(r.exported),
            ", ".join(f"{rule} {n}" for rule, n in sorted(r.skipped.items())),
        ]
        for r in report.resources
        if r.state != "skipped" and (r.listed or r.state == "failed")
    ]
    render_table(
        console,
        "Resource types",
        ["resource", "version", "state", "listed", "exported", "skipped"],
        rows,
    )
    left_out = [
        [r.key, r.skip_rule or "", "?" if r.existing is None else str(r.existing)]
        for r in report.resources
        if r.state == "skipped"
    ]
    render_table(console, "Types left out", ["resource", "rule", "objects"], left_out)
    stripped: dict[str, int] = {}
    for r in report.resources:
        for name, count in r.stripped.items():
            stripped[name] = stripped.get(name, 0) + count
    render_table(
        console,
        "Fields stripped",
        ["field", "objects"],
        [[name, str(n)] for name, n in sorted(stripped.items())],
    )
    render_table(
        console,
        "Kept, not stripped: a client set them",
        ["resource", "object: field"],
        [[r.key, note] for r in report.resources for note in r.kept][:MAX_LISTED],
    )
    used = {r.skip_rule for r in report.resources if r.skip_rule}
    used |= {rule for r in report.resources for rule in r.skipped} | set(stripped)
    render_table(
        console,
        "Why",
        ["rule", "reason"],
        [[name, report.legend.get(name, "")] for name in sorted(used)],
    )
    render_table(
        console,
        "CRDs that convert through a webhook",
        ["crd", "what the export did"],
        [[name, note] for name, note in report.conversion_webhooks.items()],
    )
    problems = [[f"discovery {gv}", why] for gv, why in report.failed_discovery.items()]
    problems += [[key, why] for key, why in report.errors.items()]
    render_table(console, "Not exported (errors)", ["what", "error"], problems)
