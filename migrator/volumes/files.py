"""Reading a volume: the tree in the manifest's order, and a file's data cut into chunks.

The walk never follows a symlink and never crosses into another file system mounted inside
the volume; it holds one sorted directory listing per level, never the tree. A file is read
through its data extents only (``SEEK_DATA``/``SEEK_HOLE``): a 10 GiB sparse file with 1 MiB
of data reads 1 MiB, and its holes come back as holes on restore.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pyfastcdc import FastCDC

from migrator.run.libc import call
from migrator.volumes.repository import ChunkCodec, Location

# A file modified this close to the moment it is read may change again within the same
# timestamp tick without its mtime moving: it is marked to be read again by the next pass
# (git's "racily clean" files).
RACY_NS = 2_000_000_000
_BLOCK = 8 * 1024 * 1024
_O_NOATIME = getattr(os, "O_NOATIME", 0)
_M_ARENA_MAX = -8  # a mallopt parameter (malloc.h)
_HANDOFF_SECONDS = 0.001

Warn = Callable[[bytes, str], None]


def bound_memory() -> None:
    """Keep glibc to two malloc arenas: by default each reader and upload thread gets its
    own, and each keeps the multi-MiB buffers (blocks, chunks, packs) it freed, which adds a
    third to a pass's peak memory. Large buffers stay on the heap, reused: mapping each one
    afresh and giving it back whole when freed held a restore's main process ~40 MB lower,
    but its page faults and zeroing cost a third of a restore of large files (2 GiB: 10.5 s
    against 7.3 s) and a fifth more CPU in a backup. Nothing elsewhere."""
    call("mallopt", _M_ARENA_MAX, 2)  # glibc's: nothing elsewhere


@contextlib.contextmanager
def quick_handoffs() -> Iterator[None]:
    """Shorter turns at the interpreter lock while a pass runs.

    A pass's threads (the walk or the manifest reader, the window writer, the pack
    fetchers and uploaders, the process pool's feeders) hand work to each other thousands
    of times a second. A thread whose system call returns waits for the lock until the
    thread holding it has run out its turn: 5 ms by default, 1 ms here. Measured on
    200,000 small files, alternate runs: the restore's writing took 14.3-16.7 s (median
    15.1) against 16.6-18.7 s (17.9) before this and the other changes of its commit; a
    full backup took 11.0-12.8 s (median 11.7) against 11.7-16.5 s (12.6)."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(min(interval, _HANDOFF_SECONDS))
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


def join(root: bytes, rel: bytes) -> bytes:
    return root + b"/" + rel if rel else root


def walk(root: bytes, warn: Warn) -> Iterator[tuple[bytes, os.stat_result]]:
    """Every path under ``root`` (relative; the root itself is ``b""``) with its lstat, in
    the manifest's order. What vanishes between listing and lstat is a warning.

    A directory is opened once (never through a symlink put in its place since it was
    listed) and its entries are stat'ed in it: the kernel looks up their last name only
    (~1 µs less per path than from the root). Past ``_OPEN_LEVELS`` levels (one open
    directory each), paths are stat'ed from the root. One sorted listing per level, names
    only, whatever the size of a directory."""
    top = os.lstat(root)
    yield b"", top
    # Each level: its directory's fd (None: by path), its path (b"" for the root), its
    # names in byte order.
    stack: list[tuple[int | None, bytes, Iterator[bytes]]] = []
    opened = _open_listing(root, None, root, b"", warn)  # the root: opened by its path
    if opened is not None:
        stack.append(opened)
    try:
        while stack:
            fd, parent, names = stack[-1]
            name = next(names, None)
            if name is None:
                stack.pop()
                if fd is not None:
                    os.close(fd)
                continue
            rel = parent + b"/" + name if parent else name
            try:
                st = os.lstat(name, dir_fd=fd) if fd is not None else os.lstat(join(root, rel))
            except FileNotFoundError:
                warn(rel, "vanished during the pass")
                continue
            yield rel, st
            if stat.S_ISDIR(st.st_mode):
                if st.st_dev != top.st_dev:
                    warn(rel, "another file system is mounted here: its content is not copied")
                    continue
                if fd is None or len(stack) >= _OPEN_LEVELS:
                    opened = _open_listing(root, None, None, rel, warn)
                else:
                    opened = _open_listing(root, fd, name, rel, warn)
                if opened is not None:
                    stack.append(opened)
    finally:
        for fd, _parent, _names in stack:
            if fd is not None:
                os.close(fd)


_OPEN_LEVELS = 64


def _open_listing(
    root: bytes, dir_fd: int | None, name: bytes | None, rel: bytes, warn: Warn
) -> tuple[int | None, bytes, Iterator[bytes]] | None:
    """A directory's names in byte order, with an fd of it: ``name`` opened in ``dir_fd``
    (never through a symlink), or the root by its path; without a ``name``, no fd and it
    is listed by its path from ``root``. None if it vanished or is no longer a
    directory."""
    try:
        if name is None:
            return None, rel, iter(sorted(os.listdir(join(root, rel))))
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
        if dir_fd is not None:
            flags |= os.O_NOFOLLOW
        fd = os.open(name, flags, dir_fd=dir_fd)
        try:
            names = os.listdir(fd)  # str, listed by fd: the names' bytes fsdecoded
        except BaseException:
            os.close(fd)
            raise
        return fd, rel, iter(sorted(map(os.fsencode, names)))
    except FileNotFoundError:
        warn(rel, "directory vanished during the pass")
    except NotADirectoryError:
        if not rel:
            raise
    except OSError as err:
        if err.errno != errno.ELOOP or not rel:  # ELOOP: a symlink put in its place since
            raise
    return None


def data_extents(fd: int, size: int) -> list[tuple[int, int]]:
    """The (offset, length) ranges of a file that hold data; the rest are holes. A file
    system without SEEK_DATA gives one extent: all of it."""
    extents: list[tuple[int, int]] = []
    offset = 0
    while offset < size:
        try:
            start = os.lseek(fd, offset, os.SEEK_DATA)
        except OSError as err:
            if err.errno == errno.ENXIO:  # no data after offset: a hole to the end
                break
            return [(0, size)]
        if start >= size:
            break
        end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
        extents.append((start, end - start))
        offset = end
    return extents


@dataclass
class FileRead:
    """What reading one file gave: its chunks, where its data is, and whether it moved."""

    refs: list[list[Any]] = field(default_factory=list)
    extents: list[tuple[int, int]] = field(default_factory=list)
    size: int = 0
    bytes_read: int = 0
    changed: bool = False  # size, mtime or ctime moved while it was read
    volatile: bool = False  # read it again next pass (changed, or modified just before)
    inode: int = 0
    ctime_ns: int = 0
    mtime_ns: int = 0


class ChunkSink(Protocol):
    """Where chunks go: ``locate`` finds a chunk in the repository, or stores it there, and
    gives its location."""

    def locate(self, chunk_id: bytes, data: memoryview) -> Location: ...


Known = Sequence[tuple[bytes, int]]
"""A file's chunks as a previous pass cut them, from the start of its data: (id, raw
length) each."""

Each = Callable[[memoryview, bytes], None]
"""What receives a file's chunks in order: the data and its keyed id."""


class Chunker:
    """Cuts files into chunks with the repository's FastCDC parameters and seed; one
    FastCDC object per thread (they are not thread-safe)."""

    def __init__(self, codec: ChunkCodec) -> None:
        self.codec = codec
        self._local = threading.local()

    def _cdc(self) -> FastCDC:
        cdc = getattr(self._local, "cdc", None)
        if cdc is None:
            codec = self.codec
            cdc = self._local.cdc = FastCDC(
                codec.chunk_avg,
                min_size=codec.chunk_min,
                max_size=codec.chunk_max,
                normalized_chunking=1,
                seed=codec.seed,
            )
        return cdc

    def cut(self, fd: int, offset: int, length: int, each: Each, known: Known | None = None) -> int:
        """Cut ``length`` bytes at ``offset`` of ``fd`` into chunks, calling ``each`` for every
        chunk in order; returns the bytes read (less if the file shrank meanwhile). Holds at
        most one 8 MiB block plus the tail of a chunk in memory.

        ``known``: how a previous pass cut the same range (from ``offset``). FastCDC decides
        a cut from the bytes since the last cut and the one byte after it, so a previous
        chunk whose bytes and next chunk's bytes are still there, at the same place, is the
        chunk FastCDC would cut again. Those are checked by their keyed id alone; FastCDC
        runs only from where they differ until one of its cuts lands on a previous
        boundary. A large file with a few pages rewritten (a database's) is thus hashed,
        not cut again; the chunks are the same either way."""
        if length <= self.codec.chunk_min:  # one chunk, whatever FastCDC would say
            data = os.pread(fd, length, offset)
            if data:
                each(memoryview(data), self.codec.chunk_id(data))
            return len(data)
        if not known:
            return self._cut(fd, offset, 0, length, each)[0]
        starts: dict[int, int] = {}  # where a known chunk starts: its number
        at = 0
        for number, (_, raw) in enumerate(known):
            starts[at] = number
            at += raw
        done = 0
        while done < length:
            done, failed = self._check(fd, offset, done, length, each, known, starts)
            if done >= length:
                break
            done, resynced = self._cut(fd, offset, done, length, each, starts, failed)
            if not resynced:
                break
        return done

    def _check(
        self,
        fd: int,
        offset: int,
        at: int,
        length: int,
        each: Each,
        known: Known,
        starts: dict[int, int],
    ) -> tuple[int, int]:
        """Pass on the known chunks from ``at`` that still hold their bytes, each once the
        next one holds its own too (or it ends the range). Returns how far that went and
        where the check failed. (What it hashed and did not pass on is hashed again if cut
        again: the bytes read then are the ones stored.)"""
        chunk_id = self.codec.chunk_id
        number = starts.get(at)
        held: tuple[memoryview, bytes] | None = None  # checked, waiting for the next one
        done = at
        while number is not None and number < len(known):
            expected, raw = known[number]
            end = at + raw
            if end > length:
                break
            data = os.pread(fd, raw, offset + at)
            if len(data) < raw or chunk_id(data) != expected:  # shrank, or changed
                break
            if held is not None:
                each(*held)
                done = at
            held = memoryview(data), expected
            at, number = end, number + 1
            if end == length:
                each(*held)
                return end, end
        return done, at

    def _cut(
        self,
        fd: int,
        offset: int,
        start: int,
        length: int,
        each: Each,
        starts: dict[int, int] | None = None,
        failed: int = 0,
    ) -> tuple[int, bool]:
        """FastCDC from ``start`` to the end of the range, or to the first cut past
        ``failed`` that starts a known chunk (then True: check from there)."""
        cdc = self._cdc()
        chunk_id = self.codec.chunk_id
        # Guided, a block need hold one cut only: less is read twice when a cut lands on a
        # known boundary, and cutting stops there.
        size = self.codec.chunk_max if starts else _BLOCK
        carry = b""
        done = start  # read up to here
        at = start  # passed on up to here
        while done < length:
            block = os.pread(fd, min(size, length - done), offset + done)
            if not block:
                break
            done += len(block)
            buf = carry + block if carry else block
            last = done >= length
            pieces = cdc.cut_buf(buf)
            chunk = next(pieces)
            carry = b""
            for after in itertools.chain(pieces, (None,)):
                if after is None and not last:  # cut by the block's end: cut again
                    carry = bytes(chunk.data)
                    break
                data = chunk.data
                each(data, chunk_id(data))
                at += len(data)
                if starts and at > failed and at in starts and at < length:
                    return at, True
                if after is None:
                    break
                chunk = after
        if carry:
            for chunk in cdc.cut_buf(carry):
                each(chunk.data, chunk_id(chunk.data))
                at += len(chunk.data)
        return at, False


def open_for_reading(path: bytes, dir_fd: int | None = None) -> int:
    """An fd of ``path`` (relative to ``dir_fd`` if given) for reading without following a
    symlink (and without touching its atime when allowed). Without blocking: a FIFO put in
    a file's place after its lstat opens at once, to be found no regular file, where a
    plain open would wait for a writer forever (reading a regular file does not block)."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    try:
        return os.open(path, flags | _O_NOATIME, dir_fd=dir_fd)
    except PermissionError:
        return os.open(path, flags, dir_fd=dir_fd)


def read_file(
    chunker: Chunker,
    path: bytes,
    sink: ChunkSink,
    on_bytes: Callable[[int], None] | None = None,
    dir_fd: int | None = None,
    known: Mapping[int, Known] | None = None,
) -> FileRead:
    """Read a regular file (``path``, relative to ``dir_fd`` if given) through its data
    extents; ``sink`` keeps each chunk (or finds it kept) and gives its location. Raises
    FileNotFoundError if it vanished. ``known``: its chunks in the previous pass by the
    offset of their extent (:func:`~.entries.known_chunks`; see :meth:`Chunker.cut`)."""
    result = FileRead()

    def each(data: memoryview, chunk_id: bytes) -> None:
        where = sink.locate(chunk_id, data)
        result.refs.append([chunk_id.hex(), where.pack, where.offset, where.length, where.raw])
        if on_bytes is not None:
            on_bytes(len(data))

    fd = open_for_reading(path, dir_fd)
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            raise FileNotFoundError(errno.ENOENT, "no longer a regular file", path)
        started = time.time_ns()
        result.size = before.st_size
        # A file with as many blocks as bytes has no hole: no need to look for one.
        dense = before.st_blocks * 512 >= before.st_size
        extents = [(0, before.st_size)] if dense else data_extents(fd, before.st_size)
        for offset, length in extents:
            if not length:
                continue
            got = chunker.cut(fd, offset, length, each, known.get(offset) if known else None)
            if got:
                result.extents.append((offset, got))
            result.bytes_read += got
            if got < length:  # it shrank while we read: keep what was there
                result.changed = True
                result.size = offset + got
                break
        after = os.fstat(fd)
    finally:
        os.close(fd)
    result.changed = result.changed or _moved(before, after)
    _settle(result, before, started)
    return result


def read_whole(path: bytes, dir_fd: int | None, seen: os.stat_result) -> tuple[bytes, FileRead]:
    """A file of one chunk at most and no holes, as ``seen`` (its lstat, taken before)
    says, read whole: its bytes and what the read gave, but for its chunk list (the caller
    keeps the chunk). What :func:`read_file` does for any file, with less work per file
    (a pass's small files): ``seen`` stands in for a ``fstat`` before the read, so a file
    replaced after it was stat'ed (another inode) counts as changed while read, as one
    modified does. Raises FileNotFoundError if it vanished."""
    fd = open_for_reading(path, dir_fd)
    try:
        started = time.time_ns()
        data = os.pread(fd, seen.st_size, 0) if seen.st_size else b""
        after = os.fstat(fd)
    except OSError as err:  # a directory (EISDIR) or a FIFO (ESPIPE) put in its place
        if err.errno not in (errno.EISDIR, errno.ESPIPE):
            raise
        raise FileNotFoundError(errno.ENOENT, "no longer a regular file", path) from None
    finally:
        os.close(fd)
    if not stat.S_ISREG(after.st_mode):
        raise FileNotFoundError(errno.ENOENT, "no longer a regular file", path)
    result = FileRead(size=len(data), bytes_read=len(data))
    if data:
        result.extents.append((0, len(data)))
    result.changed = (
        len(data) < seen.st_size
        or _moved(seen, after)
        or (after.st_ino, after.st_dev) != (seen.st_ino, seen.st_dev)
    )
    _settle(result, seen, started)
    return data, result


def _moved(before: os.stat_result, after: os.stat_result) -> bool:
    """Whether a file's size, mtime or ctime moved between two stats of it."""
    return (after.st_size, after.st_mtime_ns, after.st_ctime_ns) != (
        before.st_size,
        before.st_mtime_ns,
        before.st_ctime_ns,
    )


def _settle(result: FileRead, before: os.stat_result, started: int) -> None:
    """Record in ``result`` the file's state before the read (``started``, ns) and whether
    to read it again next pass."""
    result.volatile = result.changed or before.st_mtime_ns >= started - RACY_NS
    result.inode, result.ctime_ns, result.mtime_ns = (
        before.st_ino,
        before.st_ctime_ns,
        before.st_mtime_ns,
    )
