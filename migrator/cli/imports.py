"""``migrator import``: recreate a snapshot in the new cluster, in order, idempotently.

Loaded only when it runs (see :mod:`migrator.cli`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from migrator.cli.options import (
    SNAPSHOT_HELP,
    SNAPSHOT_ON_TARGET_OPTIONS,
    open_snapshot,
    scope_of,
    with_options,
)
from migrator.cli.render import MAX_LISTED, render, render_table, run_on_target, show_report
from migrator.errors import PartialFailure
from migrator.importer import ConflictPolicy, ImportOptions, ImportReport, import_snapshot

if TYPE_CHECKING:
    from rich.console import Console


@click.command("import", epilog=SNAPSHOT_HELP)
@with_options(*SNAPSHOT_ON_TARGET_OPTIONS)
@click.option(
    "--conflict",
    type=click.Choice([p.value for p in ConflictPolicy]),
    default=ConflictPolicy.SKIP.value,
    show_default=True,
    help="An object that already exists in the target: skip leaves it untouched, "
    "update applies the snapshot's fields over it (taking their ownership), fail "
    "leaves it and reports it as a failure.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Server-side dry-run of every object: the target validates and admits "
    "each one and changes nothing (no lock, no progress recorded).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 128),
    default=8,
    show_default=True,
    help="Objects applied at the same time within an ordering tier.",
)
@click.option(
    "--qps",
    type=click.FloatRange(min=0),
    default=0,
    show_default=True,
    help="Client-side limit of write requests per second (0: no limit).",
)
@click.option(
    "--restore-status",
    is_flag=True,
    help="Also restore the status of custom resources that have a status subresource "
    "(through it), for controllers that cannot rebuild it. Custom resources without one "
    "always get their status back: there it is data like any other field.",
)
@click.option(
    "--restart",
    is_flag=True,
    help="Forget the progress of earlier runs of this import: every object is "
    "applied again (the conflict policy still decides on existing ones).",
)
def import_command(
    snapshot: str,
    target: str,
    store_url: str,
    kubeconfig: Path | None,
    key_file: Path | None,
    include_namespaces: tuple[str, ...],
    exclude_namespaces: tuple[str, ...],
    include_resources: tuple[str, ...],
    exclude_resources: tuple[str, ...],
    cluster_scoped: bool | None,
    s3_endpoint: str | None,
    output: str,
    conflict: str,
    dry_run: bool,
    workers: int,
    qps: float,
    restore_status: bool,
    restart: bool,
) -> None:
    """Recreate snapshot SNAPSHOT in the cluster --to, in order, idempotently.

    CRDs first (waiting until Established), then namespaces, classes, volumes and claims,
    configuration, RBAC, workloads, networking, custom resources, and webhooks last;
    server-side apply as field manager "migrator". Killed or failed, it resumes where it
    stopped when run again. Exit code 5 when some objects were rejected (the report names each
    with the API server's message), 8 when another import into that cluster is running.
    """
    reader = open_snapshot(snapshot, store_url, s3_endpoint, key_file)
    options = ImportOptions(
        conflict=ConflictPolicy(conflict),
        scope=scope_of(
            include_namespaces,
            exclude_namespaces,
            include_resources,
            exclude_resources,
            cluster_scoped,
        ),
        dry_run=dry_run,
        workers=workers,
        qps=qps,
        restore_status=restore_status,
        restart=restart,
    )
    report = run_on_target(
        import_snapshot, reader, options, kubeconfig, target, output, pool_size=workers + 2
    )
    show_report(report, output, _render_import)
    if report.partial:
        raise PartialFailure(
            f"{len(report.failures)} object(s) of snapshot {report.snapshot_id} could not be "
            f"imported{' (dry run)' if report.dry_run else ''}",
            hint="see the failures above; fix the cause and run the same import again: it "
            "retries only what failed",
        )


def _render_import(console: Console, report: ImportReport) -> None:
    data = report.to_dict()
    totals = data["totals"]
    resumed = f", {totals['fromEarlierRuns']} done by an earlier run" if report.resumed else ""
    complete = (
        [
            (
                "already complete",
                "an earlier run imported every object, and the target still holds "
                "them all: nothing was applied (--restart applies them again)",
            )
        ]
        if report.already_complete
        else []
    )
    render(
        console,
        f"Import of {report.snapshot_id}" + (" (dry run)" if report.dry_run else ""),
        [
            ("target", f"{data['target']['context']} {data['target']['server']}"),
            ("conflict policy", report.conflict),
            (
                "objects",
                f"{totals['objects']}: {totals['created']} created, "
                f"{totals['updated']} updated, {totals['unchanged']} unchanged, "
                f"{totals['skipped']} skipped (existed), {totals['failed']} failed"
                + (f", {totals['unchecked']} not checked" if totals["unchecked"] else "")
                + resumed,
            ),
            (
                "owner references",
                f"{data['ownerReferences']['relinked']} relinked, "
                f"{len(data['ownerReferences']['dropped'])} dropped",
            ),
            ("webhooks", data["webhooks"]),
            ("time", f"{report.seconds:.1f}s"),
        ]
        + ([("progress discarded", report.discarded_progress)] if report.discarded_progress else [])
        + complete,
    )
    render_table(
        console,
        "Phases",
        ["phase", "objects", "created", "updated", "skipped", "failed", "seconds"],
        [
            [
                p["name"],
                str(p["objects"]),
                str(p["created"]),
                str(p["updated"] + p["unchanged"]),
                str(p["skipped"]),
                str(p["failed"]),
                f"{p['seconds']:.1f}",
            ]
            for p in data["phases"]
        ],
    )
    render_table(
        console,
        "CRDs",
        ["crd", "state"],
        [[k, v] for k, v in data["crds"].items() if v != "Established"],
    )
    render_table(
        console,
        "CRDs that convert through a webhook",
        ["crd", "custom resources"],
        [[k, v] for k, v in data["conversionWebhooks"].items()],
    )
    render_table(
        console,
        "Owner references dropped (owner not imported)",
        ["object", "owner", "reason"],
        [
            [
                f"{d['kind']} {d['namespace'] + '/' if d['namespace'] else ''}{d['name']}",
                f"{d['ownerKind']} {d['ownerName']}",
                d["reason"],
            ]
            for d in data["ownerReferences"]["dropped"][:MAX_LISTED]
        ],
    )
    for title, listed in (
        ("Failed", data["failures"]),
        ("Not checked (dry run)", data["unchecked"]),
    ):
        render_table(
            console,
            title + (f" (first {MAX_LISTED} of {len(listed)})" if len(listed) > MAX_LISTED else ""),
            ["object", "error"],
            [
                [
                    f"{f['resource']} {(f['namespace'] or '') and f['namespace'] + '/'}{f['name']}",
                    f["error"],
                ]
                for f in listed[:MAX_LISTED]
            ],
        )
