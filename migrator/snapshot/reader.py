"""Reading a snapshot back: the manifest, objects streamed part by part, and verification.

Every part is checked against the manifest (size and sha256 of the bytes as stored) before
any object of it is returned: tampered or truncated data raises
:class:`~migrator.errors.SnapshotCorrupt` naming the part, it is never returned silently.
``verify`` checks every part the same way without decrypting, so it needs no key.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from migrator import crypto
from migrator.errors import (
    DecryptionError,
    SnapshotCorrupt,
    SnapshotError,
    SnapshotIncomplete,
    SnapshotNotFound,
    StoreKeyNotFound,
)
from migrator.snapshot.layout import (
    FORMAT_VERSION,
    MANIFEST,
    STATE,
    PartInfo,
    ResourceEntry,
    check_snapshot_id,
    identity,
    is_snapshot_id,
    load_json,
    sha256_stream,
)
from migrator.store.base import Store

log = logging.getLogger(__name__)

_KEY_HINT = f"pass the key file the snapshot was written with, or set ${crypto.KEY_ENV}"


@dataclass(frozen=True)
class PartProblem:
    """One part that failed verification, and why."""

    key: str
    problem: str


@dataclass
class VerifyReport:
    """What ``SnapshotReader.verify`` checked and found."""

    snapshot_id: str
    parts: int = 0
    bytes: int = 0
    problems: list[PartProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class SnapshotReader:
    """Reads the complete snapshot ``snapshot_id`` from ``store``.

    Raises :class:`SnapshotNotFound` if there is nothing under the id and
    :class:`SnapshotIncomplete` if there are parts but no manifest. A ``key`` that is not
    the snapshot's raises :class:`DecryptionError` at once; a missing key does when objects
    are first read (the manifest and ``verify`` need none).
    """

    def __init__(self, store: Store, snapshot_id: str, *, key: bytes | None = None) -> None:
        self.store = store
        self.snapshot_id = check_snapshot_id(snapshot_id)
        self._prefix = f"{snapshot_id}/"
        if not store.exists(self._prefix + MANIFEST):
            if next(iter(store.list(self._prefix)), None) is not None:
                made_by = _made_by(store, self._prefix + STATE)
                raise SnapshotIncomplete(
                    f"snapshot {snapshot_id!r} in {store.url} has no manifest: its {made_by} "
                    "was interrupted",
                    hint="re-run export with the same id to resume"
                    if made_by == "export"
                    else f"run the {made_by} that writes it again (it starts it over)",
                )
            raise SnapshotNotFound(
                f"no snapshot {snapshot_id!r} in {store.url}",
                hint="list the snapshots there to see which exist",
            )
        self.manifest: dict[str, Any] = load_json(store, self._prefix + MANIFEST)
        version = self.manifest.get("format_version")
        if version != FORMAT_VERSION:
            raise SnapshotError(
                f"snapshot {snapshot_id!r} has format version {version}; this migrator "
                f"reads version {FORMAT_VERSION}",
                hint="use a matching migrator release",
            )
        encryption = self.manifest.get("encryption") or {}
        self.key_id: str | None = encryption.get("key_id")
        if key is not None and self.key_id and crypto.key_id(key) != self.key_id:
            raise DecryptionError(
                f"wrong key for snapshot {snapshot_id!r}: it was encrypted with key id "
                f"{self.key_id}, the key given has id {crypto.key_id(key)}",
                hint=_KEY_HINT,
            )
        if key is not None and not self.key_id:
            log.info("snapshot %s is not encrypted; the key given is not needed", snapshot_id)
        self._key = key if self.key_id else None

    @property
    def encrypted(self) -> bool:
        return self.key_id is not None

    @property
    def key_given(self) -> bool:
        """True when the snapshot is encrypted and its key was given: objects can be read."""
        return self._key is not None

    def resources(self) -> list[ResourceEntry]:
        """The entries of the manifest, one per resource, in (group, version, resource) order."""
        return list(self.manifest["resources"])

    def find(self, group: str, version: str, resource: str) -> ResourceEntry | None:
        """The entry of one resource, or None if the snapshot does not hold it."""
        return next(
            (e for e in self.resources() if identity(e) == (group, version, resource)), None
        )

    def iter_objects(self, entry: ResourceEntry) -> Iterator[dict[str, Any]]:
        """The resource's objects, streamed one part at a time."""
        return self._iter_parts(entry["parts"])

    def iter_part(self, entry: ResourceEntry, index: int) -> Iterator[dict[str, Any]]:
        """The objects of one part of the resource (``index`` into its parts)."""
        return self._iter_parts([entry["parts"][index]])

    def iter_aside(self, entry: ResourceEntry) -> Iterator[dict[str, Any]]:
        """The resource's aside lines (``{"namespace", "name", ...}``), streamed."""
        return self._iter_parts(entry.get("aside_parts", []))

    def iter_with_aside(
        self, entry: ResourceEntry
    ) -> Iterator[tuple[dict[str, Any], dict[str, Any] | None]]:
        """The resource's objects, each with what was set aside from it (``{"status": ...}``)
        or None: the two streams merged as they go (the aside lines come in the objects'
        order, for some of them), so memory holds one line of each."""
        aside = self.iter_aside(entry)
        head = next(aside, None)
        for obj in self.iter_objects(entry):
            meta = obj.get("metadata") or {}
            if head is None or (head.get("namespace"), head.get("name")) != (
                meta.get("namespace"),
                meta.get("name"),
            ):
                yield obj, None
                continue
            yield obj, {k: v for k, v in head.items() if k not in ("namespace", "name")}
            head = next(aside, None)

    def verify(self) -> VerifyReport:
        """Check every part (present, size, sha256) by streaming it; needs no key."""
        report = VerifyReport(self.snapshot_id)
        for entry in self.resources():
            for part in entry["parts"] + entry.get("aside_parts", []):
                problem = self._check_part(part, report)
                if problem:
                    report.problems.append(PartProblem(part["key"], problem))
        log.info(
            "verified snapshot %s: %d parts, %d bytes, %d problems",
            self.snapshot_id,
            report.parts,
            report.bytes,
            len(report.problems),
        )
        return report

    # -- helpers ---------------------------------------------------------------------------

    def _iter_parts(self, parts: list[PartInfo]) -> Iterator[dict[str, Any]]:
        if self.key_id and self._key is None:
            raise DecryptionError(
                f"snapshot {self.snapshot_id!r} is encrypted (key id {self.key_id}) "
                "and no key was given",
                hint=_KEY_HINT,
            )
        return self._parse_parts(parts)

    def _parse_parts(self, parts: list[PartInfo]) -> Iterator[dict[str, Any]]:
        for part in parts:
            data = self._read_part(part)
            try:
                with gzip.GzipFile(fileobj=io.BytesIO(data)) as lines:
                    for line in lines:
                        yield json.loads(line)
            except (OSError, EOFError, zlib.error, ValueError) as err:
                raise SnapshotCorrupt(
                    f"part {part['key']} cannot be decoded: {err}", part=part["key"]
                ) from err

    def _read_part(self, part: PartInfo) -> bytes:
        """The part's plaintext, after its size and sha256 matched the manifest."""
        name = part["key"]
        try:
            with self.store.open_read(self._prefix + name, checked=True) as stream:
                data = stream.read(part["bytes"] + 1)  # one byte more tells "too long" apart
        except StoreKeyNotFound as err:
            raise SnapshotCorrupt(f"part {name} is missing", part=name) from err
        if len(data) != part["bytes"]:
            raise SnapshotCorrupt(
                f"part {name} has a size other than the {part['bytes']} bytes "
                "the manifest records (truncated or replaced)",
                part=name,
            )
        if hashlib.sha256(data).hexdigest() != part["sha256"]:
            raise SnapshotCorrupt(f"part {name} fails its sha256 check (modified)", part=name)
        return crypto.decrypt(self._key, data, name) if self._key is not None else data

    def _check_part(self, part: PartInfo, report: VerifyReport) -> str | None:
        """What is wrong with one part, or None; counts it in ``report``."""
        try:
            with self.store.open_read(self._prefix + part["key"], checked=True) as stream:
                digest, size = sha256_stream(stream)
        except StoreKeyNotFound:
            return "missing"
        report.parts += 1
        report.bytes += size
        if size != part["bytes"]:
            return f"size {size} bytes, manifest says {part['bytes']}"
        if digest != part["sha256"]:
            return "sha256 mismatch"
        return None


def _made_by(store: Store, state_key: str) -> str:
    """The stage that wrote an interrupted snapshot (its state file says; export by default)."""
    try:
        return str(load_json(store, state_key).get("made_by") or "export")
    except SnapshotError:
        return "export"


def list_snapshots(store: Store) -> list[dict[str, Any]]:
    """Every snapshot in ``store``, complete or interrupted, in id order.

    Each is ``{"id", "created_at", "complete", "objects", "encrypted", "parent"}``;
    ``objects`` is None for an interrupted snapshot (it has no manifest to count from).
    """
    found = []
    for name in store.children(""):
        if not is_snapshot_id(name):
            continue
        if store.exists(f"{name}/{MANIFEST}"):
            manifest = load_json(store, f"{name}/{MANIFEST}")
            found.append(
                {
                    "id": name,
                    "created_at": manifest.get("created_at"),
                    "complete": True,
                    "objects": sum(e.get("objects", 0) for e in manifest.get("resources", [])),
                    "encrypted": bool(manifest.get("encryption")),
                    "parent": manifest.get("parent"),
                }
            )
        elif store.exists(f"{name}/{STATE}"):
            state = load_json(store, f"{name}/{STATE}")
            found.append(
                {
                    "id": name,
                    "created_at": state.get("started_at"),
                    "complete": False,
                    "objects": None,
                    "encrypted": bool(state.get("key_id")),
                    "parent": None,
                }
            )
    return found
