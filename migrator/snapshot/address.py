"""Naming snapshots: the default id of a new one, and the address a user gives for one.

A snapshot is addressed as ``ID`` in a store (``--store``, default ``./snapshots``), or as
``STORE_URL/ID`` to name the store too (``./snapshots/prod-1``, ``s3://bucket/prefix/prod-1``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from migrator.errors import ConfigError
from migrator.snapshot.layout import is_snapshot_id


def default_snapshot_id(context: str, now: datetime | None = None) -> str:
    """``<context>-<UTC time>``, with characters a snapshot id cannot hold replaced by ``-``."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", context).strip("-.") or "cluster"
    return f"{cleaned[:100]}-{stamp}"


def parse_address(address: str, default_store: str) -> tuple[str, str]:
    """(store URL, snapshot id): ``ID`` lives in ``default_store``; ``URL/ID`` names both.

    A snapshot id never contains ``/``, so the last ``/`` separates store and id:
    ``./snapshots/prod-20250101T000000Z``, ``s3://bucket/prefix/prod-2025...``. An id that
    is not a plain name (``..``, ``.``) is a :class:`ConfigError`.
    """
    store, slash, snapshot_id = address.rstrip("/").rpartition("/")
    if slash and store in ("s3:", "s3:/", "file:", "file:/"):
        raise ConfigError(
            f"{address!r} names a store but no snapshot id",
            hint="write STORE_URL/ID, or give the store with --store and ID",
        )
    if not is_snapshot_id(snapshot_id):
        raise ConfigError(
            f"{address!r} does not name a snapshot: its last part {snapshot_id!r} is not a "
            "snapshot id (a name of letters, digits, '.', '_' and '-', never a path)",
            hint="write ID, or STORE_URL/ID",
        )
    if not slash:
        return default_store, snapshot_id
    return store or "/", snapshot_id
