"""The one vocabulary of the command line, defined once: what several commands share on the way
in, and opening the snapshot a SNAPSHOT argument names.

Clusters are ``--from CONTEXT`` (the old one, read) and ``--to CONTEXT`` (the new one, written
or compared against) in every command; the store of existing snapshots is ``--store URL``;
where a command writes a new snapshot elsewhere, ``--out URL``; a snapshot's key is
``--key-file FILE``. Every command imports this module, ``migrator export`` included, so it
imports neither rich nor the transform or importer packages.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from migrator import crypto
from migrator.errors import ConfigError
from migrator.resources.scope import Scope
from migrator.snapshot import SnapshotReader
from migrator.snapshot.address import parse_address
from migrator.store import open_store

DEFAULT_STORE = "./snapshots"

Decorator = Callable[[Any], Any]

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
STORE_OPTION = click.option(
    "--store",
    "store_url",
    default=DEFAULT_STORE,
    show_default=True,
    metavar="URL",
    help="The store of snapshots: a directory, file:///path or s3://bucket/prefix.",
)
OUT_OPTION = click.option(
    "--out",
    "out_url",
    default=None,
    metavar="URL",
    help="Store for the new snapshot. Default: the source's store (--store).",
)

SNAPSHOT_HELP = (
    "SNAPSHOT is a snapshot id in --store (default ./snapshots, where `migrator export` "
    "writes), or STORE_URL/ID to name the store too: ./snapshots/ID, s3://bucket/prefix/ID."
)


def from_option(help_text: str, *, required: bool = True) -> Decorator:
    """``--from CONTEXT``: the cluster a command reads (the old one)."""
    return click.option(
        "--from", "source", required=required, default=None, metavar="CONTEXT", help=help_text
    )


def to_option(help_text: str, *, required: bool = True, multiple: bool = False) -> Decorator:
    """``--to CONTEXT``: the cluster a command writes or compares against (the new one)."""
    return click.option(
        "--to",
        "target",
        required=required,
        multiple=multiple,
        default=() if multiple else None,
        metavar="CONTEXT",
        help=help_text,
    )


def pairs_option(flag: str, help_text: str) -> Decorator:
    """A repeatable ``--flag OLD=NEW`` (a mapping the transform applies)."""
    return click.option(flag, multiple=True, metavar="OLD=NEW", help=help_text)


def processes_option(what: str) -> Decorator:
    """``--processes N``: worker processes for CPU-bound work (default: one per core the
    process may use, within its cgroup's CPU limit, at most 4)."""
    return click.option(
        "--processes",
        type=click.IntRange(0, 64),
        default=None,
        metavar="N",
        help=f"Worker processes that {what} (0: none, all in this process; default: one per "
        "core this process may use, within a container's CPU limit, at most 4).",
    )


def key_file_option(help_text: str) -> Decorator:
    """``--key-file FILE``: a snapshot's encryption key (default ``$MIGRATOR_ENCRYPT_KEY``)."""
    return click.option(
        "--key-file",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help=f"{help_text} (32 raw bytes, 64 hex characters or "
        f"base64). Default: ${crypto.KEY_ENV} if set.",
    )


SCOPE_OPTIONS: tuple[Decorator, ...] = (
    click.option(
        "--include-namespace",
        "include_namespaces",
        multiple=True,
        metavar="NS",
        help="Only objects in these namespaces (repeatable). Cluster-scoped types are "
        "then left out, except those Namespace objects (and, on import, the PVs "
        "claimed from them), unless --cluster-scoped is given.",
    ),
    click.option(
        "--exclude-namespace",
        "exclude_namespaces",
        multiple=True,
        metavar="NS",
        help="Leave these namespaces out (repeatable).",
    ),
    click.option(
        "--include-resource",
        "include_resources",
        multiple=True,
        metavar="R",
        help="Only these resource types, named as kubectl does: deployments, "
        "deployments.apps, deploy, Deployment, ingresses.extensions (repeatable).",
    ),
    click.option(
        "--exclude-resource",
        "exclude_resources",
        multiple=True,
        metavar="R",
        help="Leave these resource types out (repeatable).",
    ),
    click.option(
        "--cluster-scoped/--no-cluster-scoped",
        default=None,
        help="Cluster-scoped types (CRDs, ClusterRoles, PVs, ...). Default: yes, "
        "unless --include-namespace is given.",
    ),
)


# The target of transform and check-apis: a live context, or only its release.
TARGET_OPTIONS: tuple[Decorator, ...] = (
    to_option(
        "Kubeconfig context of the new cluster: its discovery decides what is served.",
        required=False,
    ),
    click.option(
        "--to-version",
        "target_version",
        metavar="V",
        default=None,
        help="Release of the new cluster (e.g. 1.33) when it is not reachable: the "
        "built-in table of API removals decides.",
    ),
)

# A snapshot and the cluster it goes to (or is checked against): import and verify.
SNAPSHOT_ON_TARGET_OPTIONS: tuple[Decorator, ...] = (
    click.argument("snapshot"),
    to_option("Kubeconfig context of the target (new) cluster."),
    STORE_OPTION,
    KUBECONFIG_OPTION,
    key_file_option("Key of an encrypted snapshot"),
    *SCOPE_OPTIONS,
    S3_ENDPOINT_OPTION,
    OUTPUT_OPTION,
)


def with_options(*options: Decorator) -> Decorator:
    """Apply several click options in order (shared option groups)."""

    def decorate(fn: Any) -> Any:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


def scope_of(
    include_namespaces: tuple[str, ...],
    exclude_namespaces: tuple[str, ...],
    include_resources: tuple[str, ...],
    exclude_resources: tuple[str, ...],
    cluster_scoped: bool | None,
    include_system_namespaces: bool = True,
) -> Scope:
    """The :class:`Scope` the scope options give."""
    return Scope.build(
        include_namespaces,
        exclude_namespaces,
        include_system_namespaces,
        include_resources,
        exclude_resources,
        cluster_scoped,
    )


def open_snapshot(
    snapshot: str, store_url: str, s3_endpoint: str | None, key_file: Path | None
) -> SnapshotReader:
    """The reader of SNAPSHOT: an id in ``store_url``, or STORE_URL/ID."""
    url, snapshot_id = snapshot_address(snapshot, store_url)
    return SnapshotReader(
        open_store(url, s3_endpoint=s3_endpoint), snapshot_id, key=crypto.load_key(key_file)
    )


def snapshot_address(snapshot: str, store_url: str) -> tuple[str, str]:
    """(store URL, id) of SNAPSHOT; a SNAPSHOT that names its store while ``--store`` was given
    too, naming another, is refused rather than one of them silently ignored."""
    url, snapshot_id = parse_address(snapshot, store_url)
    context = click.get_current_context(silent=True)
    explicit = context is not None and context.get_parameter_source("store_url") in (
        click.core.ParameterSource.COMMANDLINE,
        click.core.ParameterSource.ENVIRONMENT,
    )
    if explicit and url != store_url:
        raise ConfigError(
            f"SNAPSHOT {snapshot!r} names the store {url!r} and --store names {store_url!r}",
            hint="give the store once: SNAPSHOT as an id with --store URL, or STORE_URL/ID",
        )
    return url, snapshot_id
