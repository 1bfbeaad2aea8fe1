"""The per-path work of a backup pass, in batches, where the interpreter lock does not bind.

A pass's own process walks names only (``scandir``: no ``lstat``) and hands batches of
paths to worker processes (:func:`scan`). A worker ``lstat`` s each path, reads a symlink's
target, and reads, chunks, hashes and compresses each small file whole; a file the
previous pass already holds unchanged is not read, a large one is left to the pass's
reader threads (streamed, bounded memory). What comes back is plain data: stats, chunk ids
and their stored forms. The pass keeps the chunks the store lacks and writes the entries in
order. Millions of small files thus cost the pass process a few dozen microseconds each,
and the syscalls and hashing run on every core.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from migrator.volumes.files import Chunker, FileRead, join, read_file
from migrator.volumes.repository import ChunkCodec, Location, Stored

# A file up to this size is read by the worker that stats it; larger ones are streamed by
# the pass's reader threads. A batch stops reading inline past BATCH_BYTES, so one batch
# never carries more than that (plus one file) back.
SMALL = 256 * 1024
BATCH_BYTES = 8 * 1024 * 1024
BATCH_ENTRIES = 256

# (size, mtime ns, inode, ctime ns): what says a file is unchanged since the last pass.
ContentKey = tuple[int, int, int, int]


@dataclass
class Scanned:
    """One path as a worker found it."""

    stat: tuple[int, ...] | None = None  # mode uid gid mtime atime size ino ctime nlink dev rdev
    link: bytes | None = None
    read: FileRead | None = None
    blobs: list[tuple[bytes, int, Stored]] = field(default_factory=list)  # id, raw, stored
    unchanged: bool = False
    large: bool = False  # left to the pass's reader threads
    gone: bool = False
    error: str | None = None


class _Collect:
    """A chunk sink that keeps each chunk's stored form for the pass process, in order."""

    def __init__(self, codec: ChunkCodec, scanned: Scanned) -> None:
        self.codec = codec
        self.scanned = scanned

    def locate(self, chunk_id: bytes, data: memoryview) -> Location:
        codec, payload = self.codec.encode_chunk(data)
        self.scanned.blobs.append((chunk_id, len(data), (codec, bytes(payload))))
        return Location("", len(self.scanned.blobs) - 1, 0, len(data))


_CODEC: ChunkCodec | None = None
_CHUNKER: Chunker | None = None


def start_worker(params: tuple[bytes, int, int, int]) -> None:
    """Initializer of a worker process: its own codec and chunker."""
    global _CODEC, _CHUNKER
    _CODEC = ChunkCodec(*params)
    _CHUNKER = Chunker(_CODEC)


def scan_in_worker(root: bytes, items: list[tuple[bytes, ContentKey | None]]) -> list[Scanned]:
    """:func:`scan` with the worker's own codec (see :func:`start_worker`)."""
    assert _CHUNKER is not None, "start_worker was not called"
    return scan(_CHUNKER, root, items)


def scan(
    chunker: Chunker, root: bytes, items: list[tuple[bytes, ContentKey | None]]
) -> list[Scanned]:
    """Stat each path of a batch; read the small files that changed (``items`` pairs a path
    with the content key the previous pass recorded, if its chunks are all in the store)."""
    out = []
    budget = BATCH_BYTES
    for rel, previous in items:
        scanned = Scanned()
        out.append(scanned)
        path = join(root, rel)
        try:
            st = os.lstat(path)
            scanned.stat = (
                st.st_mode,
                st.st_uid,
                st.st_gid,
                st.st_mtime_ns,
                st.st_atime_ns,
                st.st_size,
                st.st_ino,
                st.st_ctime_ns,
                st.st_nlink,
                st.st_dev,
                st.st_rdev,
            )
            if stat.S_ISLNK(st.st_mode):
                scanned.link = os.readlink(path)
            elif stat.S_ISREG(st.st_mode):
                if previous == (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns):
                    scanned.unchanged = True
                elif st.st_size > SMALL or budget <= 0:
                    scanned.large = True
                else:
                    scanned.read = read_file(chunker, path, _Collect(chunker.codec, scanned))
                    budget -= scanned.read.bytes_read
        except FileNotFoundError:
            scanned.gone = True
        except OSError as err:
            scanned.error = err.strerror or str(err)
    return out


def walk_names(root: bytes, warn: Any) -> Iterator[bytes]:
    """Every path under ``root`` (relative; the root first, as ``b""``) in the manifest's
    order, from directory listings alone; only directories are stat'ed (not to cross into
    another file system mounted inside the volume)."""
    device = os.lstat(root).st_dev
    yield b""
    stack = [iter(_entries(root, b"", warn))]
    while stack:
        item = next(stack[-1], None)
        if item is None:
            stack.pop()
            continue
        rel, entry = item
        yield rel
        try:
            if not entry.is_dir(follow_symlinks=False):
                continue
            if entry.stat(follow_symlinks=False).st_dev != device:
                warn(rel, "another file system is mounted here: its content is not copied")
                continue
        except FileNotFoundError:
            continue  # the worker's lstat says it vanished
        stack.append(iter(_entries(root, rel, warn)))


def _entries(root: bytes, rel: bytes, warn: Any) -> list[tuple[bytes, os.DirEntry[bytes]]]:
    try:
        with os.scandir(join(root, rel)) as listing:
            entries = sorted(listing, key=lambda e: e.name)
    except FileNotFoundError:
        warn(rel, "directory vanished during the pass")
        return []
    except NotADirectoryError:
        return []
    return [(rel + b"/" + e.name if rel else e.name, e) for e in entries]
