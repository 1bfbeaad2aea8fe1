"""What several commands share on the way in: click options, the default store, and opening
the snapshot a SNAPSHOT argument names.

Defined once here so that the same option reads the same in every command's help. Every
command imports this module, ``migrator export`` included, so it imports neither rich nor the
transform or importer packages at module level.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from migrator import crypto
from migrator.snapshot import SnapshotReader
from migrator.store import open_store

DEFAULT_STORE = "./snapshots"

KUBECONFIG_OPTION = click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Kubeconfig file. Default: $KUBECONFIG, else ~/.kube/config.",
)
OUTPUT_OPTION = click.option(
    "-o",
    "--output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text for people, json for machines.",
)
S3_ENDPOINT_OPTION = click.option(
    "--s3-endpoint",
    metavar="URL",
    default=None,
    help="S3 endpoint for s3:// stores (MinIO and other S3-compatible servers). Default: "
    "AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, else AWS itself.",
)

SNAPSHOT_HELP = (
    "SNAPSHOT is a snapshot id in --from-store (default ./snapshots, where `migrator export` "
    "writes), or STORE_URL/ID to name the store too: ./snapshots/ID, "
    "s3://bucket/prefix/ID."
)


def with_options(*options: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Apply several click options in order (shared option groups)."""
    def decorate(fn: Any) -> Any:
        for option in reversed(options):
            fn = option(fn)
        return fn
    return decorate


def open_snapshot(snapshot: str, store_url: str, s3_endpoint: str | None,
                  key_file: Path | None) -> SnapshotReader:
    """The reader of SNAPSHOT: an id in ``store_url``, or STORE_URL/ID."""
    # Imported here, not above: export imports this module and must not load the transform.
    from migrator.transform.stage import parse_address

    url, snapshot_id = parse_address(snapshot, store_url)
    return SnapshotReader(open_store(url, s3_endpoint=s3_endpoint), snapshot_id,
                          key=crypto.load_key(key_file))
