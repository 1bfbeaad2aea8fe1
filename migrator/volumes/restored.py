"""What a target directory holds from earlier restores: the record that lets a restore
write only what changed.

A migration restores a volume again and again into the same new claim: stage passes while
the application runs, then the final pass inside the cutover window. Without a record each
restore would download and rewrite the whole volume, the final one while the application is
stopped. With it, a restore writes a file only when its content differs from the pass the
target already holds, or when the target's copy was touched since (its size or mtime is
not what that restore left there: rsync's quick check).

The record is one extended attribute on the target directory itself (``user.migrator.
restored``), so it travels with the volume and nothing is added among the application's
files. It names the volume, the store (a keyed tag: it reveals nothing), the last pass
restored completely, and the pass a restore is writing now. A restore that did not finish
leaves that second name: the next restore of the same pass still trusts the complete one
(every file is either as that pass left it or already the new content), a restore of any
other pass trusts nothing and writes everything. Where the file system keeps no extended
attributes (or the record cannot be written: no permission, a full disk), a restore trusts
no record and writes everything, as before.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from migrator import jsoncodec

ATTRIBUTE = "user.migrator.restored"


@dataclass(frozen=True)
class Record:
    """The restores a target has seen: ``complete``, the last pass restored in full (None:
    none); ``writing``, a pass whose restore started and did not finish (None: none)."""

    name: str
    store: str
    complete: str | None
    writing: str | None = None

    def base_for(self, name: str, store: str, pass_id: str) -> str | None:
        """The pass the target holds, if a restore of ``pass_id`` of volume ``name`` from
        store ``store`` may trust it: a file the target has as that pass left it is kept
        when its content did not change."""
        if self.name != name or self.store != store:
            return None
        if self.writing is not None and self.writing != pass_id:
            return None  # another pass was half written: any file may be either
        return self.complete


def read(target: bytes) -> Record | None:
    """The record of ``target``, or None (none, unreadable, or not one of ours)."""
    try:
        raw = os.getxattr(target, ATTRIBUTE, follow_symlinks=False)
    except OSError:
        return None
    try:
        doc = jsoncodec.loads(raw)
        return Record(
            str(doc["name"]),
            str(doc["store"]),
            _optional(doc.get("complete")),
            _optional(doc.get("writing")),
        )
    except (ValueError, KeyError, TypeError):
        return None


def write(target: bytes, record: Record, *, durable: bool = False) -> bool:
    """Keep ``record`` on ``target`` (on its disk before this returns, with ``durable``);
    False where it cannot be kept (no user extended attributes, no permission, a full or
    read-only file system): a record never fails a restore, the restore then trusts none."""
    try:
        fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            os.setxattr(fd, ATTRIBUTE, jsoncodec.dumps(dataclasses.asdict(record)))
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        return False
    return True


def _optional(value: object) -> str | None:
    return None if value is None else str(value)
