"""The per-path work of a backup pass, in batches, where the interpreter lock does not bind.

A pass's own process walks names only (``scandir``: no ``lstat``) and hands batches of
paths, with the previous pass's entries in their range (JSON lines, as stored) whose chunks
the store holds, to worker processes (:func:`scan`), which match the two. A worker
``lstat`` s each path and builds its manifest entry: a directory, symlink or special file
whole; a file whose size, mtime, inode and ctime match the previous entry with the previous
entry's chunks (not read); a small file read, chunked, hashed and compressed whole; a large
one left to the pass's reader threads (streamed, bounded memory). What comes back is one
:class:`ScannedBatch`: finished entries as runs of JSON lines, a file read here as its line
but for its chunk list (which pack each chunk goes to is the pass's to say), the entries
that still need more of the pass (a read, a hard-link check) as dicts, and the batch's new
chunks side by side in plain lists. The pass process thus does a few microseconds per path
(add the chunks to a pack, write the lines), and the syscalls, hashing and encoding run on
every core.
"""

from __future__ import annotations

import bisect
import os
import stat
from binascii import hexlify
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from migrator import jsoncodec
from migrator.volumes.entries import (
    DIR,
    FILE,
    FILE_LINE_HEAD,
    FILE_LINE_SIZE,
    SPECIAL,
    SYMLINK,
    Entry,
    known_chunks,
    put_path,
    same_content_key,
)
from migrator.volumes.files import Chunker, FileRead, join, read_file, read_whole
from migrator.volumes.manifest import match_lines
from migrator.volumes.repository import ChunkCodec, Location

# A file up to this size is read by the worker that stats it; larger ones are streamed by
# the pass's reader threads. A batch stops reading inline past BATCH_BYTES, so one batch
# never carries more than that (plus one file) back.
SMALL = 256 * 1024
BATCH_BYTES = 8 * 1024 * 1024
BATCH_ENTRIES = 256

# What a worker made of a path: the first field of an item of ScannedBatch.items.
LINES = 0  # finished entries of consecutive paths (no path): (their JSON lines as segments,
# how many of them are files reused, those files' bytes); a segment is new lines joined by
# newlines, or a (start, stop) range of the batch's previous lines reused as they are (not
# sent back to the pass, which has them): see run_lines
REUSED = 1  # payload: the entry (a dict) of a file reused that may be a hard link
READ = 2  # payload: (its line without its chunk list: the JSON object up to, not with, its
# closing brace; its first chunk's index in the batch's lists; how many; its size; bytes
# read; whether it changed while read): the pass adds the chunks' places (see read_line)
LARGE = 3  # payload: (the entry without its data, how the previous pass cut the file:
# entries.known_chunks): the pass reads the file
GONE = 4  # vanished since the listing (payload None)
FAILED = 5  # payload: why it could not be read
SOCKET = 6  # a socket: not copied

# An item: (what, path, payload, (device, inode) of a file with more than one link, else None)
Item = tuple[int, bytes, Any, tuple[int, int] | None]


@dataclass
class ScannedBatch:
    """What a worker found for a batch of paths, in order. The batch's new chunks are kept
    side by side: ids, raw lengths and stored forms (codec byte, then payload); a READ
    item names its chunks by their index in these lists."""

    items: list[Item] = field(default_factory=list)
    chunk_ids: list[bytes] = field(default_factory=list)
    chunk_raw: list[int] = field(default_factory=list)
    chunk_stored: list[bytes] = field(default_factory=list)
    dirs: int = 0
    symlinks: int = 0
    specials: int = 0
    bytes_read: int = 0


class _Collect:
    """A chunk sink that keeps each chunk's stored form in the batch, for the pass process."""

    def __init__(self, codec: ChunkCodec, batch: ScannedBatch) -> None:
        self.codec = codec
        self.batch = batch

    def locate(self, chunk_id: bytes, data: memoryview) -> Location:
        _keep(self.codec, self.batch, chunk_id, data)
        return Location("", len(self.batch.chunk_ids) - 1, 0, len(data))


def _keep(
    codec: ChunkCodec, batch: ScannedBatch, chunk_id: bytes, data: bytes | memoryview
) -> None:
    """Add a new chunk, encoded, to the batch's."""
    codec_byte, payload = codec.encode_chunk(data)
    batch.chunk_ids.append(chunk_id)
    batch.chunk_raw.append(len(data))
    batch.chunk_stored.append(bytes((codec_byte,)) + payload)


_CHUNKER: Chunker | None = None


def start_worker(params: tuple[bytes, int, int, int]) -> None:
    """Initializer of a worker process: its own codec and chunker."""
    global _CHUNKER
    _CHUNKER = Chunker(ChunkCodec(*params))


def scan_in_worker(root: bytes, paths: list[bytes], previous: list[bytes]) -> ScannedBatch:
    """:func:`scan` with the worker's own codec (see :func:`start_worker`)."""
    assert _CHUNKER is not None, "start_worker was not called"
    return scan(_CHUNKER, root, paths, previous)


def fill(entry: Entry, got: FileRead) -> None:
    """A read file's entry: what was read, where its data is, whether to read it again."""
    entry.update(s=got.size, c=got.refs, n=[got.inode, got.ctime_ns], mt=got.mtime_ns)
    if got.extents != ([(0, got.size)] if got.size else []):
        entry["x"] = [list(e) for e in got.extents]
    if got.volatile:
        entry["v"] = 1


def _read_small(
    chunker: Chunker, name: bytes, dir_fd: int | None, st: os.stat_result, batch: ScannedBatch
) -> FileRead:
    """Read a small file (``st``: its lstat) whole, its chunks into the batch (none left
    if the read fails). Most are one chunk without holes: read without the chunker."""
    codec = chunker.codec
    if st.st_size <= codec.chunk_min and st.st_blocks * 512 >= st.st_size:
        data, got = read_whole(name, dir_fd, st)
        if data:
            _keep(codec, batch, codec.chunk_id(data), data)
        return got
    kept = len(batch.chunk_ids)
    try:
        return read_file(chunker, name, _Collect(codec, batch), dir_fd=dir_fd)
    except BaseException:
        del batch.chunk_ids[kept:], batch.chunk_raw[kept:], batch.chunk_stored[kept:]
        raise


def scan(chunker: Chunker, root: bytes, paths: list[bytes], previous: list[bytes]) -> ScannedBatch:
    """Stat each path of a batch and make its entry; read the small files that changed.
    ``previous``: the lines of the previous pass's entries (in walk order) whose
    chunks are all in the store, among them those of these paths (see
    :meth:`~.manifest.SortedLines.take`). A file's line is reused as it is when nothing
    in its lstat moved."""
    batch = ScannedBatch()
    items = batch.items
    dumps, loads = jsoncodec.dumps, jsoncodec.loads
    budget = BATCH_BYTES
    # Finished lines are sent as runs (one item, one write for the pass), not path by path:
    # each a new line, or the index of a previous line reused as it is.
    run: list[bytes | int] = []
    reused = [0, 0]  # files and bytes in the run

    def keep(line: bytes | int, size: int | None = None) -> None:
        """A finished line; ``size``: a reused file's."""
        run.append(line)
        if size is not None:
            reused[0] += 1
            reused[1] += size

    def flush() -> None:
        if run:
            items.append((LINES, b"", (_segments(run), *reused), None))
            run.clear()
            reused[:] = [0, 0]

    def out(item: Item) -> None:
        flush()
        items.append(item)

    parents = _Parents(root)
    try:
        for rel, index in zip(paths, match_lines(paths, previous), strict=True):
            try:
                dir_fd, name = parents.of(rel)
                st = os.lstat(name, dir_fd=dir_fd)
                mode = st.st_mode
                old = None
                if index is not None and stat.S_ISREG(mode):
                    line = previous[index]
                    if st.st_nlink == 1 and _unchanged_line(line, st):
                        keep(index, st.st_size)
                        continue
                    old = loads(line)
                    if st.st_nlink == 1 and _unchanged(old, st):
                        keep(index, st.st_size)
                        continue
                entry: Entry = {}
                put_path(entry, "p", rel)
                entry["t"] = DIR
                entry["m"] = mode & 0o7777
                entry["u"] = st.st_uid
                entry["g"] = st.st_gid
                entry["mt"] = st.st_mtime_ns
                entry["at"] = st.st_atime_ns
                if stat.S_ISREG(mode):
                    link = (st.st_dev, st.st_ino) if st.st_nlink > 1 else None
                    entry["t"] = FILE
                    entry["s"] = st.st_size
                    entry["n"] = [st.st_ino, st.st_ctime_ns]
                    if old is not None and same_content_key(
                        old, st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns
                    ):
                        entry["c"] = old.get("c", [])
                        if "x" in old:
                            entry["x"] = old["x"]
                        if link is None:
                            keep(dumps(entry), st.st_size)
                        else:
                            out((REUSED, rel, entry, link))
                    elif st.st_size > SMALL or budget <= 0:
                        out((LARGE, rel, (entry, known_chunks(old)), link))
                    else:
                        first = len(batch.chunk_ids)
                        got = _read_small(chunker, name, dir_fd, st, batch)
                        fill(entry, got)
                        del entry["c"]  # the pass knows where the chunks go
                        budget -= got.bytes_read
                        batch.bytes_read += got.bytes_read
                        head = dumps(entry)[:-1]
                        count = len(batch.chunk_ids) - first
                        read = (head, first, count, got.size, got.bytes_read, got.changed)
                        out((READ, rel, read, link))
                    continue
                kind = stat.S_IFMT(mode)
                if kind == stat.S_IFDIR:
                    batch.dirs += 1
                elif kind == stat.S_IFLNK:
                    entry["t"] = SYMLINK
                    put_path(entry, "l", os.readlink(name, dir_fd=dir_fd))
                    batch.symlinks += 1
                elif kind == stat.S_IFSOCK:
                    out((SOCKET, rel, None, None))
                    continue
                else:
                    entry.update(t=SPECIAL, r=st.st_rdev, k=kind)
                    batch.specials += 1
                keep(dumps(entry))
            except FileNotFoundError:
                out((GONE, rel, None, None))
            except OSError as err:
                out((FAILED, rel, err.strerror or str(err), None))
    finally:
        parents.close()
    flush()
    return batch


def _segments(run: list[bytes | int]) -> list[bytes | tuple[int, int]]:
    """A run of lines as a LINES item's segments: new lines joined, previous lines (by
    index) as ranges."""
    segments: list[bytes | tuple[int, int]] = []
    fresh: list[bytes] = []
    start = stop = -1
    for one in run:
        if isinstance(one, int):
            if fresh:
                segments.append(b"\n".join(fresh))
                fresh = []
            if one == stop:
                stop += 1
                continue
            if start >= 0:
                segments.append((start, stop))
            start, stop = one, one + 1
        else:
            if start >= 0:
                segments.append((start, stop))
                start = stop = -1
            fresh.append(one)
    if start >= 0:
        segments.append((start, stop))
    if fresh:
        segments.append(b"\n".join(fresh))
    return segments


def run_lines(segments: list[bytes | tuple[int, int]], previous: list[bytes]) -> bytes:
    """The lines of a LINES item (its ``segments``), joined by newlines; ``previous``: the
    lines its batch was scanned with."""
    return b"\n".join(
        one if isinstance(one, bytes) else b"\n".join(previous[one[0] : one[1]]) for one in segments
    )


class _Parents:
    """The directory a batch's path is in, opened once for the paths in it one after the
    other: a path's lstat and open then look up its last name only (an lstat ~1 µs less
    than from the root, of ~4, on the development machine). Opened by its path as the walk
    found it, not through a symlink put in its place since."""

    def __init__(self, root: bytes) -> None:
        self.root = root
        self._parent: bytes | None = None
        self._fd: int | None = None

    def of(self, rel: bytes) -> tuple[int | None, bytes]:
        """An fd of the directory ``rel`` is in (None for the root itself) and its name
        there."""
        if not rel:
            return None, self.root
        parent, _, name = rel.rpartition(b"/")
        if parent != self._parent:
            self.close()
            flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
            self._fd = os.open(join(self.root, parent), flags)
            self._parent = parent
        return self._fd, name

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd = self._parent = None


def read_line(head: bytes, refs: list[bytes]) -> bytes:
    """The manifest line of a READ item: its ``head`` with its chunk references (each
    the JSON of a :data:`~.entries.Ref`) as its chunk list."""
    return b'%s,"c":[%s]}' % (head, b",".join(refs))


def ref_json(chunk_id: bytes, pack: str, offset: int, length: int, raw: int) -> bytes:
    """A chunk reference (:data:`~.entries.Ref`) as its manifest JSON."""
    return b'["%s","%s",%d,%d,%d]' % (hexlify(chunk_id), pack.encode(), offset, length, raw)


# A file entry's fields after its path, as scan builds its entry (see entries.FILE_LINE_HEAD).
_FILE_FIELDS = FILE_LINE_HEAD + b"%d" + FILE_LINE_SIZE + b'"n":[%d,%d]'


def _unchanged_line(line: bytes, st: os.stat_result) -> bool:
    """:func:`_unchanged` told from the line's bytes, without decoding it (most files of a
    pass after the first): its fields as they would be written now are in it, and no mark
    to read it again. Those fields cannot appear inside a string of the line (their quotes
    would be escaped there), so finding them is finding the entry's own. False when the
    line was written otherwise: the caller then decodes it."""
    fields = _FILE_FIELDS % (
        st.st_mode & 0o7777,
        st.st_uid,
        st.st_gid,
        st.st_mtime_ns,
        st.st_atime_ns,
        st.st_size,
        st.st_ino,
        st.st_ctime_ns,
    )
    return fields in line and b'"v":' not in line


def _unchanged(old: Entry, st: os.stat_result) -> bool:
    """Whether a file's previous entry is what its entry would be now: same content key,
    mode, owner and times."""
    return (
        same_content_key(old, st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)
        and old.get("at") == st.st_atime_ns
        and old.get("m") == st.st_mode & 0o7777
        and old.get("u") == st.st_uid
        and old.get("g") == st.st_gid
    )


def walk_runs(root: bytes, warn: Any) -> Iterator[list[bytes]]:
    """Every path under ``root`` (relative; the root first, as ``b""``) in the manifest's
    order, from directory listings alone, in runs of consecutive paths: a directory's
    entries up to and with its next subdirectory, then that subdirectory's, and so on (a
    path at a time would cost the pass's own process a few microseconds each). Only
    directories are stat'ed (not to cross into another file system mounted inside the
    volume)."""
    device = os.lstat(root).st_dev
    yield [b""]
    # Each level: its paths, the indexes of the subdirectories to descend into, how far.
    stack = [(*_listing(root, b"", device, warn), 0)]
    while stack:
        paths, descend, at = stack[-1]
        if not descend:
            stack.pop()
            if at < len(paths):
                yield paths[at:] if at else paths
            continue
        below = descend.pop()
        stack[-1] = paths, descend, below + 1
        yield paths[at : below + 1]
        stack.append((*_listing(root, paths[below], device, warn), 0))


def _listing(root: bytes, rel: bytes, device: int, warn: Any) -> tuple[list[bytes], list[int]]:
    """A directory's paths (sorted by name) and the indexes of its subdirectories on this
    file system, last first."""
    try:
        with os.scandir(join(root, rel)) as listing:
            entries = list(listing)
    except FileNotFoundError:
        warn(rel, "directory vanished during the pass")
        return [], []
    except NotADirectoryError:
        return [], []
    names = sorted(e.name for e in entries)
    prefix = rel + b"/" if rel else b""
    descend = []
    for entry in entries:
        if not entry.is_dir(follow_symlinks=False):
            continue
        try:
            if entry.stat(follow_symlinks=False).st_dev != device:
                warn(
                    prefix + entry.name,
                    "another file system is mounted here: its content is not copied",
                )
                continue
        except FileNotFoundError:
            continue  # the worker's lstat says it vanished
        descend.append(bisect.bisect_left(names, entry.name))
    descend.sort(reverse=True)
    return [prefix + name for name in names], descend
