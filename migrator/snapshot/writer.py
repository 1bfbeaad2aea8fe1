"""Writing a snapshot: objects stream into gzip'd parts, each resource is marked done, the
manifest is written last.

Memory stays bounded: objects go through gzip into a spooled temporary file, and a part is
uploaded and dropped as soon as it reaches its size or object bound. A crash leaves parts
and ``_done.json`` markers but no manifest; opening the same snapshot id again (resume) keeps
every resource whose marker checks out and redoes the rest.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import Any

import migrator
from migrator import crypto
from migrator.errors import SnapshotError, SnapshotExists, SnapshotIncomplete
from migrator.snapshot.layout import (
    DONE,
    FORMAT_VERSION,
    MANIFEST,
    RESOURCES,
    STATE,
    TYPE_REPORT,
    ResourceEntry,
    check_snapshot_id,
    dump_json,
    identity,
    load_json,
    resource_folder,
)
from migrator.snapshot.parts import PartRoller
from migrator.store.base import Store

log = logging.getLogger(__name__)

MiB = 1024 * 1024
DEFAULT_PART_MAX_BYTES = 8 * MiB  # uncompressed
DEFAULT_PART_MAX_OBJECTS = 5000
_MANIFEST_FIELDS = frozenset(
    {
        "snapshot_id",
        "created_at",
        "completed_at",
        "tool_version",
        "format_version",
        "parent",
        "resources",
        "encryption",
    }
)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class SnapshotWriter:
    """Writes snapshot ``snapshot_id`` into ``store``; see the module doc for resume.

    ``overwrite`` replaces a complete snapshot of the same id; ``resume=False`` discards an
    interrupted one instead of continuing it. ``key`` (32 bytes) encrypts every data part.
    ``settings`` (JSON data) are what decides the content of the objects written, such as
    filters: an interrupted snapshot is only resumed with the same settings, so that its
    finished resources and the ones still to write hold the same kind of objects.
    ``made_by`` names the stage writing it ("export", "transform"): an interrupted snapshot
    says which command to run again.
    """

    def __init__(
        self,
        store: Store,
        snapshot_id: str,
        *,
        key: bytes | None = None,
        resume: bool = True,
        overwrite: bool = False,
        settings: dict[str, Any] | None = None,
        made_by: str = "export",
        part_max_bytes: int = DEFAULT_PART_MAX_BYTES,
        part_max_objects: int = DEFAULT_PART_MAX_OBJECTS,
    ) -> None:
        if key is not None and len(key) != crypto.KEY_BYTES:
            raise ValueError(f"an encryption key is {crypto.KEY_BYTES} bytes, not {len(key)}")
        self.store = store
        self.snapshot_id = check_snapshot_id(snapshot_id)
        self.key = key
        self.key_id = crypto.key_id(key) if key is not None else None
        self.part_max_bytes = part_max_bytes
        self.part_max_objects = part_max_objects
        self._prefix = f"{snapshot_id}/"
        self._lock = threading.Lock()
        self._done: dict[tuple[str, str, str], ResourceEntry] = {}
        self._open: set[tuple[str, str, str]] = set()
        self._committed = False
        self._settings = settings or {}
        store.check(create=True)
        if store.exists(self._prefix + MANIFEST):
            if not overwrite:
                raise SnapshotExists(
                    f"snapshot {snapshot_id!r} already exists in {store.url}",
                    hint="choose another snapshot id, or overwrite it explicitly",
                )
            log.info("overwriting snapshot %s in %s", snapshot_id, store.url)
            store.delete_prefix(self._prefix)
        elif not resume:
            store.delete_prefix(self._prefix)
        self._state = self._resume_state() or {
            "snapshot_id": snapshot_id,
            "started_at": _now(),
            "key_id": self.key_id,
            "settings": self._settings,
            "made_by": made_by,
        }
        store.put_bytes(self._prefix + STATE, dump_json(self._state))

    def discard(self) -> None:
        """Delete everything written of this snapshot (a stage that cannot resume it, failing,
        leaves nothing half made behind)."""
        with self._lock:
            self._committed = True  # nothing more may be written
        self.store.delete_prefix(self._prefix)

    def completed_resources(self) -> list[ResourceEntry]:
        """Resources kept from an interrupted run: the caller may skip exporting them again."""
        with self._lock:
            return sorted(self._done.values(), key=identity)

    def put_type_report(self, group: str, version: str, resource: str, doc: Any) -> None:
        """Store what was counted for a resource beside its parts (before its ``_done.json``,
        so a resumed run finds the counts of every finished resource)."""
        self.store.put_bytes(
            self._key(f"{resource_folder(group, version, resource)}/{TYPE_REPORT}"), dump_json(doc)
        )

    def type_report(self, group: str, version: str, resource: str) -> dict[str, Any]:
        """What :meth:`put_type_report` stored for a resource (an earlier run's);
        :class:`~migrator.errors.SnapshotCorrupt` when it is missing or unreadable."""
        return load_json(
            self.store, self._key(f"{resource_folder(group, version, resource)}/{TYPE_REPORT}")
        )

    def resource(
        self, group: str, version: str, resource: str, kind: str, namespaced: bool
    ) -> ResourceWriter:
        """A writer for one resource's objects; a completed resource is discarded and redone."""
        ident = (group, version, resource)
        with self._lock:
            if self._committed:
                raise SnapshotError(f"snapshot {self.snapshot_id!r} is already committed")
            if ident in self._open:
                raise SnapshotError(f"resource {'/'.join(ident)} is already being written")
            self._open.add(ident)
            redo = self._done.pop(ident, None)
        if redo is not None:
            self.store.delete_prefix(self._key(resource_folder(*ident)) + "/")
        return ResourceWriter(self, group, version, resource, kind, namespaced)

    def commit(self, *, parent: str | None = None, **fields: Any) -> dict[str, Any]:
        """Write the manifest, making the snapshot complete, and return it.

        ``fields`` (source server version, discovery, report, ...) are stored as given
        beside the fixed fields, which they may not replace.
        """
        clash = _MANIFEST_FIELDS & fields.keys()
        if clash:
            raise ValueError(f"manifest fields {sorted(clash)} are set by the writer")
        with self._lock:
            if self._open:
                unfinished = ", ".join(sorted("/".join(i) for i in self._open))
                raise SnapshotIncomplete(
                    f"cannot commit snapshot {self.snapshot_id!r}: still writing {unfinished}"
                )
            entries = sorted(self._done.values(), key=identity)
            self._committed = True
        encryption = {"algorithm": crypto.ALGORITHM, "key_id": self.key_id} if self.key else None
        manifest = {
            "snapshot_id": self.snapshot_id,
            "created_at": self._state["started_at"],
            "completed_at": _now(),
            "tool_version": migrator.__version__,
            "format_version": FORMAT_VERSION,
            "parent": parent,
            **fields,
            "encryption": encryption,
            "resources": entries,
        }
        self.store.sync(self._prefix)  # everything it lists is durable before the manifest
        self.store.put_bytes(self._key(MANIFEST), dump_json(manifest))
        self.store.sync(self._key(MANIFEST))
        log.info(
            "snapshot %s committed: %d resources, %d objects",
            self.snapshot_id,
            len(entries),
            sum(e["objects"] for e in entries),
        )
        return manifest

    # -- used by ResourceWriter ------------------------------------------------------------

    def _key(self, relative: str) -> str:
        return self._prefix + relative

    def _roller(self, folder: str, stem: str) -> PartRoller:
        return PartRoller(
            self.store,
            self._prefix,
            folder,
            stem,
            key=self.key,
            max_bytes=self.part_max_bytes,
            max_objects=self.part_max_objects,
        )

    def _finished(self, entry: ResourceEntry) -> None:
        with self._lock:
            self._open.discard(identity(entry))
            self._done[identity(entry)] = entry

    def _released(self, ident: tuple[str, str, str]) -> None:
        with self._lock:
            self._open.discard(ident)

    # -- resume ----------------------------------------------------------------------------

    def _resume_state(self) -> dict[str, Any] | None:
        """Keep what an interrupted run finished; delete what it left half done."""
        if not self.store.exists(self._key(STATE)):
            if next(iter(self.store.list(self._prefix)), None) is not None:
                log.warning(
                    "snapshot %s has leftovers without %s; starting afresh", self.snapshot_id, STATE
                )
                self.store.delete_prefix(self._prefix)
            return None
        state = load_json(self.store, self._key(STATE))
        if state.get("key_id") != self.key_id:
            raise SnapshotError(
                f"snapshot {self.snapshot_id!r} was started {_describe_key(state.get('key_id'))} "
                f"but this run is {_describe_key(self.key_id)}; refusing to mix them",
                hint="resume with the same key, or start the snapshot over without resuming",
            )
        started_with = state.get("settings", self._settings)  # older runs did not record them
        if started_with != self._settings:
            changed = sorted(
                k
                for k in started_with.keys() | self._settings.keys()
                if started_with.get(k) != self._settings.get(k)
            )
            raise SnapshotError(
                f"snapshot {self.snapshot_id!r} was started with other settings "
                f"({', '.join(changed)}); resuming would mix objects exported both ways",
                hint="resume with the settings it was started with, or start it over",
            )
        folders: dict[str, set[str]] = {}
        for full in self.store.list(self._key(RESOURCES + "/")):
            relative = full[len(self._prefix) :]
            folders.setdefault(relative.rpartition("/")[0], set()).add(relative)
        for folder, keys in sorted(folders.items()):
            entry = self._valid_done(folder, keys)
            if entry is None:
                log.info("snapshot %s: %s unfinished, redoing it", self.snapshot_id, folder)
                self.store.delete_prefix(self._key(folder) + "/")
            else:
                log.info("snapshot %s: keeping finished %s", self.snapshot_id, folder)
                self._done[identity(entry)] = entry
        return state

    def _valid_done(self, folder: str, keys: set[str]) -> ResourceEntry | None:
        """The folder's ``_done.json`` entry if it and every part it lists are in place."""
        if f"{folder}/{DONE}" not in keys:
            return None
        try:
            entry: Any = load_json(self.store, self._key(f"{folder}/{DONE}"))
            parts = entry["parts"] + entry["aside_parts"]
            ok = resource_folder(*identity(entry)) == folder and all(
                p["key"] in keys and self.store.size(self._key(p["key"])) == p["bytes"]
                for p in parts
            )
        except (SnapshotError, KeyError, TypeError):
            return None
        return entry if ok else None


def aside_record(obj: dict[str, Any], aside: dict[str, Any]) -> dict[str, Any]:
    """The aside line of ``obj``: its namespace and name, then what was set aside from it."""
    meta = obj.get("metadata") or {}
    return {"namespace": meta.get("namespace"), "name": meta.get("name"), **aside}


def _describe_key(key_id: str | None) -> str:
    return f"encrypted with key id {key_id}" if key_id else "unencrypted"


class ResourceWriter:
    """Writes one resource's objects; use as a context manager (``close`` on success).

    Not shared between threads; different resources may be written from different threads.
    """

    def __init__(
        self,
        owner: SnapshotWriter,
        group: str,
        version: str,
        resource: str,
        kind: str,
        namespaced: bool,
    ) -> None:
        self._owner = owner
        self._folder = resource_folder(group, version, resource)
        self._entry = ResourceEntry(
            group=group,
            version=version,
            resource=resource,
            kind=kind,
            namespaced=namespaced,
            objects=0,
            parts=[],
            aside_parts=[],
        )
        self._parts = owner._roller(self._folder, "part")
        self._aside = owner._roller(self._folder, "aside")
        self._closed = False

    def write(self, obj: dict[str, Any], aside: dict[str, Any] | None = None) -> None:
        """Add one object; ``aside`` (e.g. ``{"status": ...}``) goes to the aside parts."""
        self._parts.add(obj)
        if aside is not None:
            self._aside.add(aside_record(obj, aside))

    def write_members(
        self,
        objects: tuple[bytes, int, int],
        asides: tuple[bytes, int, int] = (b"", 0, 0),
    ) -> None:
        """Add lines compressed elsewhere: each of ``objects`` and ``asides`` is a gzip member
        (:func:`~migrator.snapshot.parts.gzip_member`), its line count and its uncompressed
        size; aside lines are :func:`aside_record` lines."""
        self._parts.add_member(*objects)
        self._aside.add_member(*asides)

    def reset(self) -> None:
        """Forget every object written so far: stored parts are deleted, numbering restarts.

        For a list that must start over from its first page (the API server answered 410
        Expired to a continue token): the objects will all come again.
        """
        for roller in (self._parts, self._aside):
            roller.discard()
            for part in roller.parts:
                self._owner.store.delete(self._owner._key(part["key"]))
        self._parts = self._owner._roller(self._folder, "part")
        self._aside = self._owner._roller(self._folder, "aside")

    def close(self) -> ResourceEntry:
        """Store the last parts and the ``_done.json`` marker; returns the resource's entry."""
        if self._closed:
            return self._entry
        try:
            self._entry["parts"] = self._parts.finish()
            self._entry["aside_parts"] = self._aside.finish()
            self._entry["objects"] = sum(p["objects"] for p in self._entry["parts"])
            # The parts reach the disk before the marker that vouches for them does.
            self._owner.store.sync(self._owner._key(self._folder) + "/", parents=False)
            self._owner.store.put_bytes(
                self._owner._key(f"{self._folder}/{DONE}"), dump_json(self._entry)
            )
        except BaseException:
            self.abort()
            raise
        self._closed = True
        self._owner._finished(self._entry)
        return self._entry

    def abort(self) -> None:
        """Give up on this resource: no marker is written, so a resumed run redoes it."""
        if self._closed:
            return
        self._closed = True
        self._parts.discard()
        self._aside.discard()
        self._owner._released(identity(self._entry))

    def __enter__(self) -> ResourceWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
