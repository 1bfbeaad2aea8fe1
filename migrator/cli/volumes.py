"""``migrator volumes backup|restore|verify|ls``: persistent-volume data through a store.

Loaded only when it runs (see :mod:`migrator.cli`). Every command works headless, as a Job
beside a volume runs it (``python -m migrator volumes backup /data --store s3://... --name
NS/PVC``): S3 credentials and endpoint from the usual AWS variables, the key from
``$MIGRATOR_ENCRYPT_KEY``, ``-o json`` for the report.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from migrator import crypto
from migrator.cli.options import (
    OUTPUT_OPTION,
    S3_ENDPOINT_OPTION,
    STORE_OPTION,
    key_file_option,
)
from migrator.cli.render import (
    MAX_LISTED,
    make_console,
    progress_bars,
    render,
    render_table,
    show_report,
)
from migrator.errors import PartialFailure, VerificationFailed
from migrator.store import open_store

if TYPE_CHECKING:
    from rich.console import Console

    from migrator.volumes import BackupReport, RestoreReport, VerifyReport

KEY_HELP = "Encrypt (backup) or decrypt the store's volume data with this key (AES-256-GCM)"
PASS_OPTION = click.option(
    "--pass",
    "pass_id",
    metavar="ID",
    default=None,
    help="A pass of the volume (see `volumes ls`). Default: the newest complete one.",
)


def _workers(default: int, what: str) -> Any:
    return click.option(
        "--workers",
        type=click.IntRange(1, 64),
        default=default,
        show_default=True,
        help=what,
    )


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
@click.option(
    "--uploads",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    help="Packs uploaded at the same time.",
)
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
        report = mover.apply_backup(plan, workers=workers, uploads=uploads, progress=bars)
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
@_workers(8, "Packs fetched and written at the same time.")
@click.option(
    "--no-sync",
    is_flag=True,
    help="Do not flush the target's file system at the end (the kernel does it later).",
)
@click.option("--dry-run", is_flag=True, help="Check the manifest and count; write nothing.")
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
    no_sync: bool,
    dry_run: bool,
    output: str,
) -> None:
    """Restore volume NAME (its newest complete pass) into the directory PATH.

    Every entry is checked before anything is written (nothing may land outside PATH), every
    chunk against its id; files are renamed into place with owner, mode and times. Exit code
    5 when some files could not be restored (the report says why).
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
    )
    if dry_run:
        _show_plan(plan.to_dict(), output, f"Restore of {name} into {path} (dry run)")
        return
    with contextlib.ExitStack() as stack:
        bars = progress_bars(stack, output, transfer=True)
        report = mover.apply_restore(
            plan, workers=workers, delete=delete, sync=not no_sync, progress=bars
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
            _tree(d, "bytesWritten"),
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
