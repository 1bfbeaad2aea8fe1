"""``store``: snapshots, volume data and the run journal can be written to the store, and
the encryption key can be read.

The store is proven writable by writing a small probe object under ``preflight/`` and
deleting it again. The key is loaded as a run would load it; its material never leaves
:func:`migrator.crypto.load_key` (only its id is reported, the non-secret fingerprint
snapshots record).
"""

from __future__ import annotations

import uuid

from migrator import crypto
from migrator.errors import MigratorError
from migrator.migrate.preflight.context import Context
from migrator.migrate.preflight.result import FAIL, PASS, WARN, CheckResult
from migrator.store import open_store

PROBE_PREFIX = "preflight/"


def check_store(ctx: Context) -> CheckResult:
    ref = ctx.plan.store
    try:
        store = open_store(ref.url, s3_endpoint=ref.s3_endpoint)
        store.check()
        probe = f"{PROBE_PREFIX}{ctx.plan.name}-{uuid.uuid4().hex}.probe"
        store.put_bytes(probe, b"migrator preflight probe\n")
        try:
            readable = store.get_bytes(probe) == b"migrator preflight probe\n"
        finally:
            store.delete(probe)
    except MigratorError as exc:
        return CheckResult(
            "store",
            FAIL,
            f"the store {ref.url} cannot be written: {exc}",
            "create the bucket (or directory) and give this identity read/write access to it",
        )
    if not readable:
        return CheckResult(
            "store",
            FAIL,
            f"the store {ref.url} did not give back what was written to it",
            "check the S3 endpoint and any proxy in front of it",
        )
    where = str(ref.key_file) if ref.key_file is not None else f"${crypto.KEY_ENV}"
    try:
        key = crypto.load_key(ref.key_file)
    except MigratorError as exc:
        return CheckResult(
            "store",
            FAIL,
            f"the store {ref.url} is writable, but the key cannot be used: {exc}",
            "fix the key (the message above says which forms are accepted)",
        )
    if key is None:
        return CheckResult(
            "store",
            WARN,
            f"the store {ref.url} is writable; no key ({where} unset): snapshots and volume "
            "data will not be encrypted",
            "set store.keyFile in the plan to encrypt them (secrets travel in the snapshot)",
        )
    return CheckResult(
        "store",
        PASS,
        f"the store {ref.url} is writable; key {crypto.key_id(key)} read from {where}",
    )
