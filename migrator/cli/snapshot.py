"""``migrator snapshot list|show|verify``: what a store holds, and whether it is intact.

Its own module so that the other commands never import it (see :mod:`migrator.cli`).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from migrator.cli.options import (
    OUTPUT_OPTION,
    S3_ENDPOINT_OPTION,
    SNAPSHOT_HELP,
    STORE_OPTION,
    key_file_option,
    open_snapshot,
)
from migrator.cli.render import make_console, render, render_table
from migrator.errors import SnapshotCorrupt
from migrator.resources.identity import type_key
from migrator.snapshot import list_snapshots
from migrator.store import open_store


@click.group()
def snapshot() -> None:
    """List, show and verify snapshots in a store."""


@snapshot.command("list")
@STORE_OPTION
@S3_ENDPOINT_OPTION
@OUTPUT_OPTION
def snapshot_list(store_url: str, s3_endpoint: str | None, output: str) -> None:
    """List the snapshots in the store, complete or interrupted."""
    found = list_snapshots(open_store(store_url, s3_endpoint=s3_endpoint))
    if output == "json":
        click.echo(json.dumps(found, indent=2))
        return
    rows = [
        [
            s["id"],
            str(s["created_at"] or ""),
            "complete" if s["complete"] else "INTERRUPTED",
            "" if s["objects"] is None else str(s["objects"]),
            "yes" if s["encrypted"] else "no",
        ]
        for s in found
    ]
    if not rows:
        click.echo(f"no snapshots in {store_url}")
    render_table(
        make_console(),
        f"Snapshots in {store_url}",
        ["id", "created", "state", "objects", "encrypted"],
        rows,
    )


@snapshot.command("show", epilog=SNAPSHOT_HELP)
@click.argument("snapshot_address", metavar="SNAPSHOT")
@STORE_OPTION
@S3_ENDPOINT_OPTION
@OUTPUT_OPTION
def snapshot_show(
    snapshot_address: str, store_url: str, s3_endpoint: str | None, output: str
) -> None:
    """Show SNAPSHOT: where it came from and what it holds (needs no key)."""
    reader = open_snapshot(snapshot_address, store_url, s3_endpoint, None)
    snapshot_id = reader.snapshot_id
    manifest = reader.manifest
    if output == "json":
        click.echo(json.dumps(manifest, indent=2))
        return
    console = make_console()
    source = manifest.get("source") or {}
    export_info = manifest.get("export") or {}
    encryption = manifest.get("encryption")
    resources = reader.resources()
    render(
        console,
        f"Snapshot {snapshot_id}",
        [
            ("created", f"{manifest.get('created_at')} (completed {manifest.get('completed_at')})"),
            ("source", f"{source.get('context', '?')} {source.get('serverVersion', '')}".strip()),
            ("tool", f"migrator {manifest.get('tool_version')}"),
            (
                "encrypted",
                f"{encryption['algorithm']}, key id {encryption['key_id']}" if encryption else "no",
            ),
            ("objects", str(sum(e["objects"] for e in resources))),
            ("parts", str(sum(len(e["parts"]) + len(e.get("aside_parts", [])) for e in resources))),
        ],
    )
    rows = [
        [
            type_key(e["group"], e["resource"]),
            f"{e['group'] or 'core'}/{e['version']}",
            str(e["objects"]),
        ]
        for e in resources
    ]
    render_table(console, "Resources", ["resource", "version", "objects"], rows)
    problems = [
        [f"discovery {gv}", why] for gv, why in (export_info.get("failedDiscovery") or {}).items()
    ]
    problems += [[key, why] for key, why in (export_info.get("errors") or {}).items()]
    render_table(console, "Not in this snapshot (errors at export)", ["what", "error"], problems)


@snapshot.command("verify", epilog=SNAPSHOT_HELP)
@click.argument("snapshot_address", metavar="SNAPSHOT")
@STORE_OPTION
@key_file_option(
    "Key of an encrypted snapshot: with it every part is also decrypted and "
    "decoded, not only checksummed"
)
@S3_ENDPOINT_OPTION
@OUTPUT_OPTION
def snapshot_verify(
    snapshot_address: str,
    store_url: str,
    key_file: Path | None,
    s3_endpoint: str | None,
    output: str,
) -> None:
    """Check every part of SNAPSHOT against its manifest (size and sha256).

    Exits non-zero if anything is missing, modified or undecodable. Unencrypted snapshots,
    and encrypted ones given their key, are also decoded object by object.
    """
    reader = open_snapshot(snapshot_address, store_url, s3_endpoint, key_file)
    snapshot_id = reader.snapshot_id
    has_key = reader.key_given
    result = reader.verify()
    problems = [{"part": p.key, "problem": p.problem} for p in result.problems]
    decoded = None
    if not problems and (has_key or not reader.encrypted):
        decoded = 0
        for entry in reader.resources():
            try:
                decoded += sum(1 for _ in reader.iter_objects(entry))
                sum(1 for _ in reader.iter_aside(entry))
            except SnapshotCorrupt as exc:
                problems.append({"part": exc.part or "?", "problem": str(exc)})
    summary = {
        "snapshotId": snapshot_id,
        "parts": result.parts,
        "bytes": result.bytes,
        "objectsDecoded": decoded,
        "problems": problems,
        "ok": not problems,
    }
    if output == "json":
        click.echo(json.dumps(summary, indent=2))
    else:
        checked = f"{result.parts} parts, {result.bytes} bytes checked"
        if decoded is not None:
            checked += f", {decoded} objects decoded"
        click.echo(f"snapshot {snapshot_id}: {checked}")
        for problem in problems:
            click.echo(f"  {problem['part']}: {problem['problem']}")
    if problems:
        raise SnapshotCorrupt(
            f"snapshot {snapshot_id} failed verification: {len(problems)} problem(s)"
        )
