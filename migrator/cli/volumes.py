"""``migrator volumes backup|restore|verify|ls|sync|unquiesce``: persistent-volume data
through a store.

``sync`` runs the mover as Jobs beside every volume of a snapshot, in both clusters
(:mod:`migrator.volumes.sync`); ``unquiesce`` scales back what a final pass stopped.

Loaded only when it runs (see :mod:`migrator.cli`). Every command works headless, as a Job
beside a volume runs it (``python -m migrator volumes backup /data --store s3://... --name
NS/PVC``): S3 credentials and endpoint from the usual AWS variables, the key from
``$MIGRATOR_ENCRYPT_KEY``, ``-o json`` for the report.
"""

from __future__ import annotations

import contextlib
import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from migrator import MOVER_IMAGE, crypto
from migrator.cli.options import (
    KUBECONFIG_OPTION,
    OUTPUT_OPTION,
    S3_ENDPOINT_OPTION,
    STORE_OPTION,
    from_option,
    key_file_option,
    open_snapshot,
    pairs_option,
    processes_option,
    snapshot_address,
    to_option,
)
from migrator.cli.render import (
    MAX_LISTED,
    make_console,
    progress_bars,
    render,
    render_table,
    show_report,
)
from migrator.errors import (
    PartialFailure,
    QuiesceFailed,
    VerificationFailed,
)
from migrator.store import open_store

if TYPE_CHECKING:
    from rich.console import Console

    from migrator.volumes import BackupReport, RestoreReport, VerifyReport
    from migrator.volumes.sync import SyncReport

KEY_HELP = "Encrypt (backup) or decrypt the store's volume data with this key (AES-256-GCM)"
PASS_OPTION = click.option(
    "--pass",
    "pass_id",
    metavar="ID",
    default=None,
    help="A pass of the volume (see `volumes ls`). Default: the newest complete one.",
)


def _number(flag: str, kind: click.ParamType, default: float, what: str, metavar: str = "N") -> Any:
    """A numeric option with its range and default shown."""
    return click.option(
        flag, type=kind, default=default, show_default=True, metavar=metavar, help=what
    )


def _workers(default: int, what: str) -> Any:
    return _number("--workers", click.IntRange(1, 64), default, what)


@click.group()
def volumes() -> None:
    """Copy volume data through a store: backup passes, restore, verify, list."""


@volumes.command("backup")
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--name", required=True, metavar="NAME", help="The volume's name, e.g. NS/PVC.")
@STORE_OPTION
@key_file_option(KEY_HELP)
@S3_ENDPOINT_OPTION
@_workers(4, "Files read and chunked at the same time.")
@_number("--uploads", click.IntRange(1, 64), 4, "Packs uploaded at the same time.")
@processes_option("stat, read, chunk and compress small files")
@click.option("--dry-run", is_flag=True, help="Say what the pass would read; change nothing.")
@OUTPUT_OPTION
def backup_command(
    path: Path,
    name: str,
    store_url: str,
    key_file: Path | None,
    s3_endpoint: str | None,
    workers: int,
    uploads: int,
    processes: int | None,
    dry_run: bool,
    output: str,
) -> None:
    """Back up the directory PATH (a mounted volume) as volume NAME: one pass.

    The first pass copies everything; later ones read only files whose size, mtime, inode
    or ctime changed and upload only chunks the store lacks. A killed pass resumes when run
    again. Files that change or vanish while they are read are warnings (the next pass
    reads them again); exit code 5 when some files could not be read at all.
    """
    from migrator import volumes as mover

    store = open_store(store_url, s3_endpoint=s3_endpoint)
    key = crypto.load_key(key_file)
    with contextlib.ExitStack() as stack:
        bars = None if dry_run else progress_bars(stack, output, transfer=True)
        plan = mover.plan_backup(store, path, name, key=key, count=dry_run or bars is not None)
        if dry_run:
            _show_plan(plan.to_dict(), output, f"Backup of {path} as {name} (dry run)")
            return
        report = mover.apply_backup(
            plan, workers=workers, uploads=uploads, processes=processes, progress=bars
        )
    show_report(report, output, _render_backup)
    if report.partial:
        raise PartialFailure(f"{report.failures.count} file(s) of {path} could not be read")


@volumes.command("restore")
@click.argument("name")
@click.argument("path", type=click.Path(file_okay=False, path_type=Path))
@STORE_OPTION
@PASS_OPTION
@key_file_option(KEY_HELP)
@S3_ENDPOINT_OPTION
@click.option(
    "--delete",
    is_flag=True,
    help="Remove what PATH holds and the manifest does not (default: keep and list it).",
)
@click.option(
    "--allow-outside-symlinks",
    is_flag=True,
    help="Restore symlinks that point out of the volume as they are (never followed).",
)
@_workers(4, "Packs fetched and written at the same time.")
@processes_option("check a large manifest, a part each, and write the files a pack holds whole")
@click.option(
    "--no-sync",
    is_flag=True,
    help="Do not flush the target's file system, as it writes nor at the end (the kernel "
    "does it later).",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Check the manifest, count what would be written, kept and removed; change nothing.",
)
@OUTPUT_OPTION
def restore_command(
    name: str,
    path: Path,
    store_url: str,
    pass_id: str | None,
    key_file: Path | None,
    s3_endpoint: str | None,
    delete: bool,
    allow_outside_symlinks: bool,
    workers: int,
    processes: int | None,
    no_sync: bool,
    dry_run: bool,
    output: str,
) -> None:
    """Restore volume NAME (its newest complete pass) into the directory PATH.

    Every entry is checked before anything is written (nothing may land outside PATH), every
    chunk against its id. No file shows half written: into a new volume the tree is written
    aside and moved in whole, over an earlier restore each file is linked or renamed into
    place with its owner, mode and times. Exit code 5 when some files could not be restored
    (the report says why).
    """
    from migrator import volumes as mover

    store = open_store(store_url, s3_endpoint=s3_endpoint)
    plan = mover.plan_restore(
        store,
        name,
        path,
        key=crypto.load_key(key_file),
        pass_id=pass_id,
        allow_outside_symlinks=allow_outside_symlinks,
        processes=processes,
    )
    if dry_run:
        preview = mover.preview_restore(plan, delete=delete)
        _show_plan(preview, output, f"Restore of {name} into {path} (dry run)")
        return
    with contextlib.ExitStack() as stack:
        bars = progress_bars(stack, output, transfer=True)
        report = mover.apply_restore(
            plan,
            workers=workers,
            processes=processes,
            delete=delete,
            sync=not no_sync,
            progress=bars,
        )
    show_report(report, output, _render_restore)
    if report.partial:
        raise PartialFailure(f"{report.failures.count} path(s) could not be restored")


@volumes.command("verify")
@click.argument("name")
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@STORE_OPTION
@PASS_OPTION
@key_file_option(KEY_HELP)
@S3_ENDPOINT_OPTION
@_workers(4, "Files read at the same time.")
@OUTPUT_OPTION
def verify_command(
    name: str,
    path: Path,
    store_url: str,
    pass_id: str | None,
    key_file: Path | None,
    s3_endpoint: str | None,
    workers: int,
    output: str,
) -> None:
    """Compare the directory PATH with volume NAME's manifest, byte for byte.

    Content is compared chunk by chunk by keyed hash (nothing is downloaded), with type,
    mode, owner, mtime, symlink targets and hard links. Exit code 7 when they differ.
    """
    from migrator import volumes as mover

    store = open_store(store_url, s3_endpoint=s3_endpoint)
    with contextlib.ExitStack() as stack:
        bars = progress_bars(stack, output, transfer=True)
        report = mover.verify_volume(
            store,
            name,
            path,
            key=crypto.load_key(key_file),
            pass_id=pass_id,
            workers=workers,
            progress=bars,
        )
    show_report(report, output, _render_verify)
    if report.partial:
        raise VerificationFailed(
            f"{path} differs from volume {name} (pass {report.pass_id}): "
            f"{report.differences.count} difference(s)"
        )


@volumes.command("ls")
@click.argument("name", required=False)
@STORE_OPTION
@S3_ENDPOINT_OPTION
@OUTPUT_OPTION
def ls_command(name: str | None, store_url: str, s3_endpoint: str | None, output: str) -> None:
    """List the volumes in the store and their passes (or only volume NAME's); needs no key."""
    from migrator.volumes import list_passes, list_volumes

    store = open_store(store_url, s3_endpoint=s3_endpoint)
    store.check()
    names = [name] if name else list(list_volumes(store))
    found: list[dict[str, Any]] = []
    for volume in names:
        for info in list_passes(store, volume):
            head = info.head or {}
            found.append(
                {
                    "name": volume,
                    "pass": info.pass_id,
                    "complete": info.complete,
                    "completedAt": head.get("completedAt"),
                    "files": head.get("files"),
                    "bytes": head.get("bytes"),
                    "bytesUploaded": head.get("bytesUploaded"),
                    "warnings": head.get("warnings"),
                    "previous": head.get("previous"),
                }
            )
    if output == "json":
        click.echo(json.dumps({"store": store.url, "volumes": found}, indent=2))
        return
    if not found:
        click.echo(f"no volume passes in {store_url}")
        return
    rows = [
        [
            p["name"],
            p["pass"],
            "complete" if p["complete"] else "INTERRUPTED",
            str(p["completedAt"] or ""),
            "" if p["files"] is None else f"{p['files']:,}",
            "" if p["bytes"] is None else _size(p["bytes"]),
            "" if p["bytesUploaded"] is None else _size(p["bytesUploaded"]),
        ]
        for p in found
    ]
    header = ["volume", "pass", "state", "completed", "files", "bytes", "uploaded"]
    render_table(make_console(), f"Volumes in {store_url}", header, rows)


def _size(n: int) -> str:
    """A byte count for people (binary units)."""
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.1f} {unit}"


def _show_plan(doc: dict[str, Any], output: str, title: str) -> None:
    if output == "json":
        click.echo(json.dumps(doc, indent=2))
        return
    render(make_console(), title, [(k, str(v)) for k, v in doc.items()])


def _findings(console: Console, title: str, items: list[dict[str, str]], count: int) -> None:
    rows = [[i["what"], i["error"]] for i in items[:MAX_LISTED]]
    more = count - len(rows)
    render_table(
        console, title + (f" (first {len(rows)} of {count})" if more else ""), ["path", "why"], rows
    )


def _tree(d: dict[str, Any], size_key: str) -> tuple[str, str]:
    """The row of a backup's or a restore's tree: files and their size, and the rest."""
    return (
        "files",
        f"{d['files']:,} ({_size(d[size_key])}), {d['dirs']:,} dirs, "
        f"{d['symlinks']:,} symlinks, {d['hardlinks']:,} hard links",
    )


def _render_backup(console: Console, report: BackupReport) -> None:
    d = report.to_dict()
    read = (
        f"{d['filesRead']:,} files, {_size(d['bytesRead'])} "
        f"({d['filesReused']:,} unchanged files not read)"
    )
    uploaded = (
        f"{_size(d['bytesUploaded'])} in {d['packs']:,} packs ({d['chunksNew']:,} new chunks)"
    )
    render(
        console,
        f"Volume {report.name}: pass {report.pass_id}",
        [
            _tree(d, "bytesTotal"),
            ("read", read),
            ("uploaded", uploaded),
            ("previous", d["previous"] or "none (a full pass)"),
            ("resumed", d["resumedFrom"] or "no"),
            ("time", f"{d['seconds']:.1f} s"),
        ],
    )
    warnings = "Warnings (read again by the next pass)"
    _findings(console, warnings, d["warnings"], report.warnings.count)
    _findings(console, "Could not read", d["problems"], report.failures.count)


def _render_restore(console: Console, report: RestoreReport) -> None:
    d = report.to_dict()
    render(
        console,
        f"Volume {report.name}: pass {report.pass_id} restored into {report.target}",
        [
            _tree({**d, "bytes": d["bytesWritten"] + d["bytesUnchanged"]}, "bytes"),
            (
                "written",
                f"{d['files'] - d['filesUnchanged']:,} files ({_size(d['bytesWritten'])})",
            ),
            (
                "unchanged",
                f"{d['filesUnchanged']:,} files ({_size(d['bytesUnchanged'])}) kept as the "
                f"restore of pass {d['basePass']} left them"
                if d["basePass"]
                else "none known (the target holds no earlier restore of this volume)",
            ),
            ("downloaded", f"{_size(d['bytesDownloaded'])} in {d['packs']:,} packs"),
            ("deleted", f"{d['deleted']:,}"),
            ("time", f"{d['seconds']:.1f} s"),
        ],
    )
    kept = "Kept (not in the manifest; --delete removes)"
    _findings(console, kept, d["kept"], report.extra.count)
    _findings(console, "Not restored", d["problems"], report.failures.count)


def _render_verify(console: Console, report: VerifyReport) -> None:
    d = report.to_dict()
    state = "identical" if d["ok"] else f"{report.differences.count:,} difference(s)"
    render(
        console,
        f"Volume {report.name}: pass {report.pass_id} vs {report.target}",
        [
            ("result", state),
            ("files", f"{d['files']:,} ({_size(d['bytesRead'])} read)"),
            ("time", f"{d['seconds']:.1f} s"),
        ],
    )
    _findings(console, "Differences", d["differences"], report.differences.count)


@volumes.command("sync")
@click.argument("snapshot")
@from_option("Kubeconfig context of the old cluster, where the volumes are backed up.")
@to_option("Kubeconfig context of the new cluster, where the imported claims are filled.")
@STORE_OPTION
@KUBECONFIG_OPTION
@key_file_option("Key of an encrypted snapshot, and the volume data's key")
@S3_ENDPOINT_OPTION
@click.option(
    "--pass",
    "pass_kind",
    type=click.Choice(["stage", "final"]),
    default="stage",
    show_default=True,
    help="stage: while the applications run (repeat it); final: quiesce first, then the last pass.",
)
@click.option(
    "--method",
    type=click.Choice(["mover", "ebs"]),
    default="mover",
    show_default=True,
    help="mover: Jobs copy files through the store; ebs: EBS snapshots (AWS, EBS-backed PVs).",
)
@click.option(
    "--include-namespace",
    "namespaces",
    multiple=True,
    metavar="NS",
    help="Only the claims in these namespaces (repeatable). Default: every claim of SNAPSHOT.",
)
@click.option(
    "--image",
    default=MOVER_IMAGE,
    show_default=True,
    metavar="IMAGE",
    help="The mover image (built by the project's Dockerfile, pushed where both clusters "
    "pull from).",
)
@click.option(
    "--pull-policy",
    type=click.Choice(["IfNotPresent", "Always", "Never"]),
    default="IfNotPresent",
    show_default=True,
    help="imagePullPolicy of the mover pods.",
)
@click.option(
    "--pods-s3-endpoint",
    metavar="URL",
    default=None,
    help="The S3 endpoint as the mover pods reach it. Default: --s3-endpoint.",
)
@_number("--parallel", click.IntRange(1, 256), 4, "Volumes moved at the same time.")
@_number(
    "--attempts",
    click.IntRange(1, 20),
    3,
    "Jobs tried per volume and direction (with a growing pause between).",
)
@_number(
    "--job-timeout",
    click.IntRange(30, 7 * 24 * 3600),
    3600,
    "A mover Job's deadline (activeDeadlineSeconds).",
    "SECONDS",
)
@_number(
    "--start-timeout",
    click.FloatRange(1),
    300.0,
    "A mover pod not running after this long fails its attempt (unschedulable: a claim "
    "missing or attached elsewhere). An image no node can pull fails it at once.",
    "SECONDS",
)
@click.option(
    "--quiesce",
    type=click.Choice(["scale", "hook", "none"]),
    default=None,
    help="Before a final pass: scale the workloads mounting the claims to zero, run --hook "
    "in their pods, or nothing. Default: scale for --pass final, none for stage.",
)
@click.option("--hook", metavar="CMD", default=None, help="The quiesce hook (sh -c CMD).")
@click.option("--unhook", metavar="CMD", default=None, help="Undoes the hook, run after the pass.")
@_number(
    "--quiesce-timeout",
    click.FloatRange(1),
    300.0,
    "How long the scaled-down pods may take to stop.",
    "SECONDS",
)
@pairs_option("--zone", "EBS: map an availability zone of the old volumes to one of the new.")
@click.option("--region", default=None, help="EBS: the AWS region. Default: AWS's usual settings.")
@click.option("--dry-run", is_flag=True, help="List the claims and where they are; change nothing.")
@OUTPUT_OPTION
def sync_command(
    snapshot: str,
    source: str,
    target: str,
    store_url: str,
    kubeconfig: Path | None,
    key_file: Path | None,
    s3_endpoint: str | None,
    pass_kind: str,
    method: str,
    namespaces: tuple[str, ...],
    image: str,
    pull_policy: str,
    pods_s3_endpoint: str | None,
    parallel: int,
    attempts: int,
    job_timeout: int,
    start_timeout: float,
    quiesce: str | None,
    hook: str | None,
    unhook: str | None,
    quiesce_timeout: float,
    zone: tuple[str, ...],
    region: str | None,
    dry_run: bool,
    output: str,
) -> None:
    """Move the data of every claim in SNAPSHOT from the old cluster into the new one.

    A mover Job per claim in the old cluster, on the node the claim is attached to, backs it
    up into the store; a restore Job in the new cluster writes it into the imported claim.
    Repeat --pass stage while the applications run; --pass final stops the writers first
    (and starts them again if any volume fails). Exit code 5 when some volumes failed.
    """
    from migrator import kube
    from migrator.transform.differences import parse_pairs
    from migrator.volumes import passes, sync

    settings = passes.PassSettings(
        method=method,
        image=image,
        pull_policy=pull_policy,
        s3_endpoint=s3_endpoint,
        pods_s3_endpoint=pods_s3_endpoint,
        region=region,
        zones=parse_pairs(zone, "--zone"),
        parallel=parallel,
        attempts=attempts,
        job_timeout=job_timeout,
        start_timeout=start_timeout,
        quiesce=quiesce,
        hook=hook,
        unhook=unhook,
        quiesce_timeout=quiesce_timeout,
    )
    store_at, _snapshot_id = snapshot_address(snapshot, store_url)
    settings.check(pass_kind, store_at)
    key = crypto.load_key(key_file)
    reader = open_snapshot(snapshot, store_url, s3_endpoint, key_file)
    with contextlib.ExitStack() as stack:
        old = stack.enter_context(kube.connect(kubeconfig, source))
        new = stack.enter_context(kube.connect(kubeconfig, target))
        plan = sync.plan(reader, old, pass_kind, namespaces)
        if dry_run:
            _show_plan(
                plan.to_dict(), output, f"Volume sync of {snapshot} ({pass_kind} pass, dry run)"
            )
            return
        stop = threading.Event()  # set on Ctrl-C: the movers stop waiting, their Jobs go
        parts = passes.pass_parts(
            plan,
            old,
            new,
            settings,
            store_url=store_at,
            reader=reader,
            key=key,
            restore=True,
            stop=stop,
        )
        report = sync.apply(**parts, parallel=parallel, progress=progress_bars(stack, output))
    show_report(report, output, _render_sync)
    if report.quiesce_error:
        raise QuiesceFailed(report.quiesce_error)
    if report.partial:
        failed = sum(not v.ok for v in report.volumes)
        undone = " (the writers were started again)" if report.undone else ""
        raise PartialFailure(f"{failed} volume(s) of {len(report.volumes)} failed{undone}")


@volumes.command("unquiesce")
@click.argument("snapshot")
@from_option("Kubeconfig context of the old cluster.")
@STORE_OPTION
@KUBECONFIG_OPTION
@key_file_option("Key of an encrypted snapshot")
@S3_ENDPOINT_OPTION
@OUTPUT_OPTION
def unquiesce_command(
    snapshot: str,
    source: str,
    store_url: str,
    kubeconfig: Path | None,
    key_file: Path | None,
    s3_endpoint: str | None,
    output: str,
) -> None:
    """Scale back every workload a final pass scaled down, in the namespaces of SNAPSHOT's
    claims (to the replicas recorded on each: a rollback after the final pass)."""
    from migrator import kube
    from migrator.volumes.claims import claims_in_snapshot
    from migrator.volumes.quiesce import restore_scaled

    reader = open_snapshot(snapshot, store_url, s3_endpoint, key_file)
    namespaces = {c.namespace for c in claims_in_snapshot(reader)}
    with kube.connect(kubeconfig, source) as old:
        restored = restore_scaled(old, namespaces)
    if output == "json":
        click.echo(json.dumps({"restored": [r.to_dict() for r in restored]}, indent=2))
        return
    if not restored:
        click.echo("nothing to scale back")
    for r in restored:
        click.echo(f"{r.workload}: back at {r.replicas} replica(s)")


def _render_sync(console: Console, report: SyncReport) -> None:
    d = report.to_dict()
    stopped = (
        "" if d["stoppedSeconds"] is None else f", writers stopped {d['stoppedSeconds']:.1f} s"
    )
    undone = " (undone: the writers run again)" if report.undone else ""
    quiesce = report.quiesce or {}
    scaled = ", ".join(
        f"{s['kind']} {s['namespace']}/{s['name']} ({s['replicas']})"
        for s in quiesce.get("scaled") or quiesce.get("restored") or ()
    )
    render(
        console,
        f"Volume sync, {report.pass_kind} pass ({report.method}), run {report.run_id}",
        [
            ("volumes", f"{d['ok']} moved, {d['failed']} failed"),
            ("data", f"{d['files']:,} files, {_size(d['bytes'])}"),
            (
                "quiesce",
                (quiesce.get("method", "none") + (f": {scaled}" if scaled else "")) + undone,
            ),
            ("time", f"{d['seconds']:.1f} s{stopped}"),
        ],
    )
    rows = []
    for v in report.volumes:
        attempts = sum(len(m.attempts) for m in (v.backup, v.restore) if m)
        seconds = sum(m.seconds for m in (v.backup, v.restore) if m)
        state = "ok" if v.ok and not v.skipped else ("skipped" if v.ok else "FAILED")
        why = v.error or v.skipped
        rows.append([v.claim.volume, v.node or "", state, str(attempts), f"{seconds:.1f} s", why])
    render_table(console, "Volumes", ["volume", "node", "state", "jobs", "time", "why"], rows)
    problems = [p.to_dict() for p in report.problems()]
    _findings(console, "Problems", problems, len(problems))
