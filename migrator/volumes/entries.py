"""Manifest entries: one JSON object per path of a volume, in the order the tree is walked.

Paths are bytes on Linux and need not be UTF-8. An entry keeps a path (and a symlink's or a
hard link's target) as a string under ``p`` (``l``, ``h``) when it is valid UTF-8, else as the
base64 of its bytes under ``pb`` (``lb``, ``hb``): reversible for any name, readable for the
usual ones. Paths are relative to the volume's root, ``/``-separated; the root itself is the
empty path.

Keys of an entry (short: a manifest has one entry per file, millions of them)::

    p / pb   path                      t   type: d dir, f file, l symlink, h hard link,
    m        permission bits (07777)       s special (fifo, device)
    u, g     uid, gid                  mt, at   mtime and atime in nanoseconds
    s        size (files)              c   chunks: [[id, pack, offset, length, raw length]]
    x        data extents [[offset, length]] of a sparse file (absent: one extent, all data)
    n        [inode, ctime ns]: what, with size and mtime, says a file is unchanged
    v        1: the file changed while it was read, or just before: read it again next pass
    l / lb   symlink target            h / hb   hard link: the path of the first link
    r        device number (specials)

The order is the walk's: a directory, then its entries sorted by name bytes, depth first.
:func:`path_key` gives that order for any path, so a manifest and a walk merge like two
sorted lists without holding either.
"""

from __future__ import annotations

import base64
from typing import Any

DIR, FILE, SYMLINK, HARDLINK, SPECIAL = "d", "f", "l", "h", "s"

Entry = dict[str, Any]
Ref = list[Any]  # [chunk id hex, pack id, offset, stored length, raw length]

# A file entry's fields after its path, as every writer of a file's line puts them (the
# order a backup builds the entry in), in two pieces: up to its atime's value, and its size
# with the commas around it. Found in a line's bytes, they tell what the line holds without
# decoding it: they cannot appear inside a string (their quotes would be escaped there).
FILE_LINE_HEAD = b'"t":"f","m":%d,"u":%d,"g":%d,"mt":%d,"at":'
FILE_LINE_SIZE = b',"s":%d,'


def put_path(entry: Entry, field: str, value: bytes) -> None:
    """Store ``value`` under ``field`` (str) or ``field + "b"`` (base64) in ``entry``."""
    try:
        entry[field] = value.decode("utf-8")
    except UnicodeDecodeError:
        entry[field + "b"] = base64.b64encode(value).decode("ascii")


def get_path(entry: Entry, field: str) -> bytes | None:
    """The bytes stored by :func:`put_path` under ``field``, or None."""
    text = entry.get(field)
    if text is not None:
        return str(text).encode("utf-8")
    encoded = entry.get(field + "b")
    if encoded is not None:
        return base64.b64decode(str(encoded), validate=True)
    return None


def entry_path(entry: Entry) -> bytes:
    """The relative path of ``entry`` (empty for the root)."""
    path = get_path(entry, "p")
    if path is None:
        raise ValueError("manifest entry without a path")
    return path


def path_key(path: bytes) -> tuple[bytes, ...]:
    """The sort key of a relative path: the walk's order (a directory, then what is in it,
    names in byte order). The root (empty path) sorts first."""
    return tuple(path.split(b"/")) if path else ()


def display(path: bytes) -> str:
    """A path for messages: UTF-8 where it is, escapes where it is not; ``.`` for the root."""
    return path.decode("utf-8", "backslashreplace") if path else "."


def extents_of(entry: Entry) -> list[tuple[int, int]]:
    """The data extents of a file entry, as (offset, length)."""
    extents = entry.get("x")
    if extents is None:
        size = int(entry.get("s", 0))
        return [(0, size)] if size else []
    return [(int(offset), int(length)) for offset, length in extents]


def known_chunks(entry: Entry | None) -> dict[int, list[tuple[bytes, int]]]:
    """A file entry's chunks by the offset of the extent they cut, as (id, raw length): how
    a pass cut the file, which the next read of it checks first. Empty if the entry is not
    a file's, or its chunks do not add up to its extents."""
    if entry is None or entry.get("t") != FILE:
        return {}
    refs = iter(entry.get("c", []))
    known: dict[int, list[tuple[bytes, int]]] = {}
    try:
        for offset, length in extents_of(entry):
            chunks, covered = known.setdefault(offset, []), 0
            while covered < length:
                ref = next(refs)
                chunks.append((bytes.fromhex(ref[0]), int(ref[4])))
                covered += int(ref[4])
            if covered != length:
                return {}
    except (StopIteration, ValueError, TypeError, IndexError):
        return {}
    return known


def same_content_key(old: Entry, size: int, mtime_ns: int, inode: int, ctime_ns: int) -> bool:
    """Whether a previous entry says the file is unchanged: same type, size, mtime, inode and
    ctime, and not read while it was changing."""
    return (
        old.get("t") == FILE
        and not old.get("v")
        and old.get("s") == size
        and old.get("mt") == mtime_ns
        and old.get("n") == [inode, ctime_ns]
    )
