"""``migrator import`` and ``migrator verify``: recreate a snapshot in the new cluster, then
check that the cluster holds it and runs.

Both take the same snapshot, target and scope options, hence one module. Loaded only when one
of them runs (see :mod:`migrator.cli`); ``verify`` imports :mod:`migrator.verify` (and with it
deepdiff, slow to load) only when it runs, not when ``import`` does.
"""
from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from migrator import crypto, kube
from migrator.cli.options import (
    DEFAULT_STORE,
    KUBECONFIG_OPTION,
    OUTPUT_OPTION,
    S3_ENDPOINT_OPTION,
    SNAPSHOT_HELP,
    open_snapshot,
    with_options,
)
from migrator.cli.render import progress_bars, render, render_table, show_report
from migrator.errors import PartialFailure, VerificationFailed
from migrator.importer import (
    ConflictPolicy,
    ImportOptions,
    ImportReport,
    ImportScope,
    import_snapshot,
)
from migrator.snapshot import SnapshotReader

if TYPE_CHECKING:
    from rich.console import Console

    from migrator.verify import VerifyReport

Report = TypeVar("Report")

_IMPORT_SCOPE_OPTIONS = (
    click.option("--include-namespace", "include_namespaces", multiple=True, metavar="NS",
                 help="Only objects in these namespaces (repeatable); cluster-scoped types "
                 "are then left out, except those namespaces and the PVs claimed from them, "
                 "unless --cluster-scoped."),
    click.option("--exclude-namespace", "exclude_namespaces", multiple=True, metavar="NS",
                 help="Leave these namespaces out (repeatable)."),
    click.option("--include-resource", "include_resources", multiple=True, metavar="R",
                 help="Only these resource types, named as kubectl does: deployments, "
                 "deployments.apps, Deployment (repeatable)."),
    click.option("--cluster-scoped/--no-cluster-scoped", default=None,
                 help="Import cluster-scoped types (CRDs, ClusterRoles, PVs, ...). Default: "
                 "yes, unless --include-namespace is given."),
)
_IMPORT_COMMON = (
    click.argument("snapshot"),
    click.option("--to", "context", required=True, metavar="CONTEXT",
                 help="Kubeconfig context of the target (new) cluster."),
    click.option("--store", "store_url", default=DEFAULT_STORE, show_default=True,
                 metavar="URL", help="Store holding SNAPSHOT when it is a bare id."),
    KUBECONFIG_OPTION,
    click.option("--encrypt-key-file", type=click.Path(dir_okay=False, path_type=Path),
                 default=None, help=f"Key of an encrypted snapshot (default: "
                 f"${crypto.KEY_ENV})."),
    *_IMPORT_SCOPE_OPTIONS,
    S3_ENDPOINT_OPTION,
    OUTPUT_OPTION,
)


def _run_on_target(stage: Callable[..., Report], reader: SnapshotReader, options: Any,
                   kubeconfig: Path | None, context: str, output: str, **connect: Any) -> Report:
    """Run ``stage`` (import or verify) of the snapshot against the cluster --to, with
    progress bars for people; ``connect`` goes to :func:`migrator.kube.connect`."""
    with contextlib.ExitStack() as stack:
        cluster = stack.enter_context(kube.connect(kubeconfig, context, **connect))
        return stage(reader, cluster, options, on_progress=progress_bars(stack, output))


def _import_scope(include_namespaces: tuple[str, ...], exclude_namespaces: tuple[str, ...],
                  include_resources: tuple[str, ...], cluster_scoped: bool | None
                  ) -> ImportScope:
    return ImportScope(tuple(include_namespaces), tuple(exclude_namespaces),
                       tuple(include_resources), cluster_scoped)


@click.command("import", epilog=SNAPSHOT_HELP.replace("--from-store", "--store"))
@with_options(*_IMPORT_COMMON)
@click.option("--conflict", type=click.Choice([p.value for p in ConflictPolicy]),
              default=ConflictPolicy.SKIP.value, show_default=True,
              help="An object that already exists in the target: skip leaves it untouched, "
              "update applies the snapshot's fields over it (taking their ownership), fail "
              "leaves it and reports it as a failure.")
@click.option("--dry-run", is_flag=True,
              help="Server-side dry-run of every object: the target validates and admits "
              "each one and changes nothing (no lock, no progress recorded).")
@click.option("--workers", type=click.IntRange(1, 128), default=8, show_default=True,
              help="Objects applied at the same time within an ordering tier.")
@click.option("--qps", type=click.FloatRange(min=0), default=0, show_default=True,
              help="Client-side limit of write requests per second (0: no limit).")
@click.option("--restore-status", is_flag=True,
              help="Also restore the status of custom resources (through their status "
              "subresource when they have one), for controllers that cannot rebuild it.")
@click.option("--restart", is_flag=True,
              help="Forget the progress of earlier runs of this import: every object is "
              "applied again (the conflict policy still decides on existing ones).")
def import_command(
    snapshot: str, context: str, store_url: str, kubeconfig: Path | None,
    encrypt_key_file: Path | None, include_namespaces: tuple[str, ...],
    exclude_namespaces: tuple[str, ...], include_resources: tuple[str, ...],
    cluster_scoped: bool | None, s3_endpoint: str | None, output: str, conflict: str,
    dry_run: bool, workers: int, qps: float, restore_status: bool, restart: bool,
) -> None:
    """Recreate snapshot SNAPSHOT in the cluster --to, in order, idempotently.

    CRDs first (waiting until Established), then namespaces, classes, volumes and claims,
    configuration, RBAC, workloads, networking, custom resources, and webhooks last;
    server-side apply as field manager "migrator". Killed or failed, it resumes where it
    stopped when run again. Exit code 5 when some objects were rejected (the report names each
    with the API server's message), 8 when another import into that cluster is running.
    """
    reader = open_snapshot(snapshot, store_url, s3_endpoint, encrypt_key_file)
    options = ImportOptions(
        conflict=ConflictPolicy(conflict),
        scope=_import_scope(include_namespaces, exclude_namespaces, include_resources,
                            cluster_scoped),
        dry_run=dry_run, workers=workers, qps=qps, restore_status=restore_status,
        restart=restart,
    )
    report = _run_on_target(import_snapshot, reader, options, kubeconfig, context, output,
                            pool_size=workers + 2)
    show_report(report, output, _render_import)
    if report.partial:
        raise PartialFailure(
            f"{len(report.failures)} object(s) of snapshot {report.snapshot_id} could not be "
            f"imported{' (dry run)' if report.dry_run else ''}",
            hint="see the failures above; fix the cause and run the same import again: it "
            "retries only what failed")


_MAX_LISTED = 50  # failures and differences shown in text output (-o json has them all)


def _render_import(console: Console, report: ImportReport) -> None:
    data = report.to_dict()
    totals = data["totals"]
    resumed = f", {totals['fromEarlierRuns']} done by an earlier run" if report.resumed else ""
    render(console, f"Import of {report.snapshot_id}" + (" (dry run)" if report.dry_run else ""),
           [("target", f"{data['target']['context']} {data['target']['server']}"),
            ("conflict policy", report.conflict),
            ("objects", f"{totals['objects']}: {totals['created']} created, "
                        f"{totals['updated']} updated, {totals['unchanged']} unchanged, "
                        f"{totals['skipped']} skipped (existed), {totals['failed']} failed"
                        + (f", {totals['unchecked']} not checked" if totals["unchecked"]
                           else "") + resumed),
            ("owner references", f"{data['ownerReferences']['relinked']} relinked, "
                                 f"{len(data['ownerReferences']['dropped'])} dropped"),
            ("webhooks", data["webhooks"]),
            ("time", f"{report.seconds:.1f}s")]
           + ([("progress discarded", report.discarded_progress)]
              if report.discarded_progress else []))
    render_table(console, "Phases", ["phase", "objects", "created", "updated", "skipped",
                                     "failed", "seconds"],
                 [[p["name"], str(p["objects"]), str(p["created"]),
                   str(p["updated"] + p["unchanged"]), str(p["skipped"]), str(p["failed"]),
                   f"{p['seconds']:.1f}"] for p in data["phases"]])
    render_table(console, "CRDs", ["crd", "state"], [[k, v] for k, v in data["crds"].items()
                                                     if v != "Established"])
    render_table(console, "Owner references dropped (owner not imported)",
                 ["object", "owner", "reason"],
                 [[f"{d['kind']} {d['namespace'] + '/' if d['namespace'] else ''}{d['name']}",
                   f"{d['ownerKind']} {d['ownerName']}", d["reason"]]
                  for d in data["ownerReferences"]["dropped"][:_MAX_LISTED]])
    for title, listed in (("Failed", data["failures"]), ("Not checked (dry run)",
                                                         data["unchecked"])):
        render_table(console, title + (f" (first {_MAX_LISTED} of {len(listed)})"
                                       if len(listed) > _MAX_LISTED else ""),
                     ["object", "error"],
                     [[f"{f['resource']} {(f['namespace'] or '') and f['namespace'] + '/'}"
                       f"{f['name']}", f["error"]] for f in listed[:_MAX_LISTED]])


@click.command("verify", epilog=SNAPSHOT_HELP.replace("--from-store", "--store"))
@with_options(*_IMPORT_COMMON)
@click.option("--wait", type=click.FloatRange(min=0), default=0, show_default=True,
              metavar="SECONDS", help="Wait up to this long for workloads, claims, jobs and "
              "CRDs to become ready (those reporting they cannot progress fail at once).")
def verify_command(
    snapshot: str, context: str, store_url: str, kubeconfig: Path | None,
    encrypt_key_file: Path | None, include_namespaces: tuple[str, ...],
    exclude_namespaces: tuple[str, ...], include_resources: tuple[str, ...],
    cluster_scoped: bool | None, s3_endpoint: str | None, output: str, wait: float,
) -> None:
    """Check that the cluster --to holds every object of SNAPSHOT as it was, and that it runs.

    Compares only the fields the snapshot sets (server defaults and server-owned fields do
    not count); Secret values are never shown. Exit code 7 when objects are missing or
    differ, or workloads are not ready.
    """
    from migrator.verify import VerifyOptions, verify_snapshot

    reader = open_snapshot(snapshot, store_url, s3_endpoint, encrypt_key_file)
    options = VerifyOptions(scope=_import_scope(include_namespaces, exclude_namespaces,
                                                include_resources, cluster_scoped), wait=wait)
    report = _run_on_target(verify_snapshot, reader, options, kubeconfig, context, output)
    show_report(report, output, _render_verify)
    if not report.ok:
        raise VerificationFailed(
            f"snapshot {report.snapshot_id} and cluster {context!r} differ: "
            f"{len(report.missing)} missing, {len(report.differing)} differing, "
            f"{len(report.not_ready)} not ready")


def _render_verify(console: Console, report: VerifyReport) -> None:
    totals = report.to_dict()["totals"]
    render(console, f"Verify {report.snapshot_id} against {report.target['context']}", [
        ("objects", f"{totals['checked']} checked: {totals['missing']} missing, "
                    f"{totals['differing']} differing, {totals['extra']} extra in target"),
        ("readiness", f"{totals['ready']} ready, {totals['notReady']} not ready"),
        ("result", "OK" if report.ok else "DIFFERENT"),
    ])

    def name(o: Mapping[str, Any]) -> str:
        return f"{o['kind']} {(o['namespace'] or '') and o['namespace'] + '/'}{o['name']}"

    render_table(console, "Missing in target", ["object"],
                 [[name(o)] for o in report.missing[:_MAX_LISTED]])
    render_table(console, "Differing", ["object", "field", "snapshot", "target"],
                 [[name(o), d["path"], json.dumps(d["snapshot"]), json.dumps(d["target"])]
                  for o in report.differing[:_MAX_LISTED] for d in o["differences"]])
    render_table(console, "Not ready", ["object", "state", "reason"],
                 [[name(o), o["state"], o["reason"]] for o in report.not_ready[:_MAX_LISTED]])
    render_table(console, "Extra in target (not in the snapshot)", ["object"],
                 [[name(o)] for o in report.extra[:_MAX_LISTED]])
