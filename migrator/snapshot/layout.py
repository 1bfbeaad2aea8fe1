"""Where everything of a snapshot lives, and the shape of its metadata.

A snapshot is a folder ``<snapshot_id>/`` in a store, readable with ordinary tools::

    <snapshot_id>/
      _snapshot.json                      written first: id, start time, key id (for resume)
      resources/<group|core>/<version>/<resource>/
        part-00000.jsonl.gz[.enc]         one object per line, gzip'd (then encrypted)
        aside-00000.jsonl.gz[.enc]        data kept aside (e.g. status), one line per object
        _report.json                      what the export counted for the resource (skips, strips)
        _done.json                        written when all parts of the resource are stored
      manifest.json                       written last: the snapshot is complete

Part keys in ``_done.json`` and the manifest are relative to the snapshot folder, so a
snapshot can be copied elsewhere and still read.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import IO, Any, TypedDict

from migrator.errors import SnapshotCorrupt, SnapshotIdInvalid, StoreKeyNotFound
from migrator.store.base import Store

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
STATE = "_snapshot.json"
DONE = "_done.json"
TYPE_REPORT = "_report.json"  # beside a resource's parts: what its export counted
RESOURCES = "resources"
CORE_GROUP = "core"  # the folder of the group "" (CRD groups always contain a dot)

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class PartInfo(TypedDict):
    """One stored part: its key, checksum and size as stored, and how many lines it holds."""

    key: str
    sha256: str
    bytes: int
    objects: int


class ResourceEntry(TypedDict):
    """One resource of the snapshot, as recorded in ``_done.json`` and the manifest."""

    group: str
    version: str
    resource: str
    kind: str
    namespaced: bool
    objects: int
    parts: list[PartInfo]
    aside_parts: list[PartInfo]


def is_snapshot_id(name: str) -> bool:
    """True if ``name`` is usable as a snapshot id: one folder name, everywhere."""
    return bool(_ID.match(name)) and ".." not in name


def check_snapshot_id(snapshot_id: str) -> str:
    """Return ``snapshot_id`` if it is a snapshot id, else :class:`SnapshotIdInvalid`: ids are
    names, never paths (``..``, ``.``, ``a/b`` are refused)."""
    if not is_snapshot_id(snapshot_id):
        raise SnapshotIdInvalid(
            f"invalid snapshot id {snapshot_id!r}: an id is a name of letters, digits, '.', '_' "
            "and '-' (at most 128, starting with a letter or digit), never a path",
            hint="give another --id; to name the store too, write STORE_URL/ID",
        )
    return snapshot_id


def resource_folder(group: str, version: str, resource: str) -> str:
    """``resources/apps/v1/deployments``; the core group is spelt ``core``."""
    return f"{RESOURCES}/{group or CORE_GROUP}/{version}/{resource}"


def entry_folder(entry: ResourceEntry) -> str:
    """An entry's folder in the snapshot (``resources/apps/v1/deployments``)."""
    return resource_folder(entry["group"], entry["version"], entry["resource"])


def part_key(folder: str, stem: str, index: int, encrypted: bool) -> str:
    """``<folder>/<stem>-00000.jsonl.gz`` (stem ``part`` or ``aside``), ``.enc`` if encrypted."""
    return f"{folder}/{stem}-{index:05d}.jsonl.gz" + (".enc" if encrypted else "")


def identity(entry: ResourceEntry) -> tuple[str, str, str]:
    """The (group, version, resource) that names an entry."""
    return entry["group"], entry["version"], entry["resource"]


def api_version(entry: ResourceEntry) -> str:
    """The apiVersion of an entry's objects: ``apps/v1``, or ``v1`` for the core group."""
    return f"{entry['group']}/{entry['version']}" if entry["group"] else entry["version"]


def typed(obj: dict[str, Any], entry: ResourceEntry) -> dict[str, Any]:
    """``obj`` with the apiVersion and kind of ``entry`` filled in where it has none.

    The items of a list read from the API server carry no apiVersion or kind (the list says
    them once), and export stores them as read: the entry is where an object's type is
    written. Code that looks at an object's own apiVersion/kind (conversions, rules,
    reports) must read it through this. Returns ``obj`` itself when it is typed already,
    else a new dict that starts with the two fields (the nested values are shared).
    """
    if obj.get("apiVersion") and obj.get("kind"):
        return obj
    return {
        "apiVersion": api_version(entry),
        "kind": entry["kind"],
        **{k: v for k, v in obj.items() if k not in ("apiVersion", "kind")},
    }


def dump_json(doc: Any) -> bytes:
    """Metadata as indented JSON: meant to be read by people and ``jq``."""
    return json.dumps(doc, indent=2).encode() + b"\n"


def load_json(store: Store, key: str) -> dict[str, Any]:
    """A metadata file of a snapshot; :class:`SnapshotCorrupt` if it is not a JSON object."""
    try:
        doc = json.loads(store.get_bytes(key))
    except StoreKeyNotFound as err:
        raise SnapshotCorrupt(f"{key} is missing from {store.url}", part=key) from err
    except ValueError as err:
        raise SnapshotCorrupt(f"{key} in {store.url} is not valid JSON: {err}", part=key) from err
    if not isinstance(doc, dict):
        raise SnapshotCorrupt(f"{key} in {store.url} is not a JSON object", part=key)
    return doc


def sha256_stream(stream: IO[bytes]) -> tuple[str, int]:
    """sha256 (hex) and length of what remains in ``stream``, read in bounded chunks."""
    digest, size = hashlib.sha256(), 0
    while chunk := stream.read(1024 * 1024):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size
