"""Verify: a directory compared with a pass's manifest, entry by entry.

The tree is walked in the manifest's order and merged with it (neither is held whole).
Each path must exist with the same type, mode, owner, mtime, symlink target or hard link;
each file's content is cut again along the manifest's data extents with the repository's
chunker and every chunk's keyed 128-bit BLAKE3 must equal the manifest's, length for length
(the same content gives the same cuts; any other content gives other ids); data the file
holds outside those extents must be zeros. Nothing is downloaded. Paths in the directory
that the manifest does not hold are differences too.
"""

from __future__ import annotations

import os
import stat
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from migrator.run.progress import Progress
from migrator.store.base import Store
from migrator.volumes.entries import (
    DIR,
    FILE,
    HARDLINK,
    SPECIAL,
    SYMLINK,
    Entry,
    entry_path,
    extents_of,
    get_path,
    known_chunks,
    path_key,
)
from migrator.volumes.files import Chunker, data_extents, join, open_for_reading, walk
from migrator.volumes.manifest import open_pass, read_entries
from migrator.volumes.report import VerifyReport

_KINDS = {DIR: stat.S_IFDIR, FILE: stat.S_IFREG, SYMLINK: stat.S_IFLNK, HARDLINK: stat.S_IFREG}
_AHEAD = 256


def verify(
    store: Store,
    name: str,
    directory: str | os.PathLike[str],
    *,
    key: bytes | None = None,
    pass_id: str | None = None,
    workers: int = 4,
    progress: Progress | None = None,
) -> VerifyReport:
    """Compare ``directory`` with the newest complete pass of ``name`` (or ``pass_id``)."""
    started = time.monotonic()
    repo, info = open_pass(store, name, key, pass_id)
    root = os.fsencode(os.path.realpath(directory))
    report = VerifyReport(name, info.pass_id, os.fsdecode(root))
    chunker = Chunker(repo.codec)
    tree = walk(root, lambda rel, why: None)
    here = next(tree, None)  # the walk's current (path, lstat)
    pending: list[tuple[bytes, Future[str | None]]] = []
    total = int((info.head or {}).get("bytes", 0)) or None

    def settle(limit: int) -> None:
        while len(pending) > limit:
            rel, future = pending.pop(0)
            problem = future.result()
            if problem:
                report.differences.add(rel, problem)

    with ThreadPoolExecutor(workers, thread_name_prefix="verify") as pool:
        for entry in read_entries(repo, info):
            rel = entry_path(entry)
            key_ = path_key(rel)
            while here is not None and path_key(here[0]) < key_:
                report.differences.add(here[0], "in the directory, not in the manifest")
                here = next(tree, None)
            if here is None or here[0] != rel:
                report.differences.add(rel, "missing")
                continue
            st = here[1]
            here = next(tree, None)
            problem = _compare_metadata(root, rel, entry, st)
            if problem:
                report.differences.add(rel, problem)
                continue
            if entry["t"] == FILE:
                report.files += 1
                report.bytes_read += sum(length for _o, length in extents_of(entry))
                pending.append(
                    (rel, pool.submit(_compare_content, chunker, join(root, rel), entry))
                )
                if progress is not None:
                    progress("bytes", report.bytes_read, total)
                settle(_AHEAD)
        while here is not None:
            report.differences.add(here[0], "in the directory, not in the manifest")
            here = next(tree, None)
        settle(0)
    report.seconds = time.monotonic() - started
    return report


def _compare_metadata(root: bytes, rel: bytes, entry: Entry, st: os.stat_result) -> str | None:
    kind = entry["t"]
    expected = int(entry["k"]) if kind == SPECIAL else _KINDS[kind]
    if stat.S_IFMT(st.st_mode) != expected:
        return f"is a {_kind_name(st.st_mode)}, the manifest has a {_kind_name(expected)}"
    if kind == HARDLINK:
        first = os.lstat(join(root, get_path(entry, "h") or b""))
        return (
            None
            if os.path.samestat(first, st)
            else (f"is not a hard link of {(get_path(entry, 'h') or b'').decode(errors='replace')}")
        )
    differences = []
    if kind != SYMLINK and stat.S_IMODE(st.st_mode) != entry["m"]:
        differences.append(f"mode {stat.S_IMODE(st.st_mode):o} != {entry['m']:o}")
    if (st.st_uid, st.st_gid) != (entry["u"], entry["g"]):
        differences.append(f"owner {st.st_uid}:{st.st_gid} != {entry['u']}:{entry['g']}")
    if kind != DIR and st.st_mtime_ns != entry["mt"]:
        differences.append(f"mtime {st.st_mtime_ns} != {entry['mt']}")
    if kind == SYMLINK and os.readlink(join(root, rel)) != get_path(entry, "l"):
        differences.append("symlink target differs")
    if kind == FILE and st.st_size != entry["s"]:
        differences.append(f"size {st.st_size} != {entry['s']}")
    if kind == SPECIAL and st.st_rdev != entry.get("r", 0):
        differences.append("device number differs")
    return "; ".join(differences) or None


def _compare_content(chunker: Chunker, path: bytes, entry: Entry) -> str | None:
    """None if the file holds exactly the manifest's bytes, else what differs."""
    refs: list[Any] = entry.get("c", [])
    found: list[tuple[str, int]] = []
    extents = extents_of(entry)
    known = known_chunks(entry)  # the same bytes are checked by their ids, not cut again
    fd = open_for_reading(path)
    try:
        for offset, length in extents:
            chunker.cut(
                fd,
                offset,
                length,
                lambda data, chunk_id: found.append((chunk_id.hex(), len(data))),
                known.get(offset),
            )
        if found != [(ref[0], ref[4]) for ref in refs]:
            return "content differs"
        return _only_zeros_outside(fd, extents, int(entry["s"]))
    finally:
        os.close(fd)


def _only_zeros_outside(fd: int, extents: list[tuple[int, int]], size: int) -> str | None:
    """Data the file holds where the manifest has holes must be zeros."""
    covered = iter(extents)
    current = next(covered, None)
    for offset, length in data_extents(fd, size):
        end = offset + length
        pos = offset
        while pos < end:
            while current is not None and current[0] + current[1] <= pos:
                current = next(covered, None)
            if current is not None and current[0] <= pos:
                pos = min(end, current[0] + current[1])
                continue
            stop = end if current is None else min(end, current[0])
            while pos < stop:
                block = os.pread(fd, min(stop - pos, 8 << 20), pos)
                if not block or block.count(0) != len(block):
                    return "content differs (data where the manifest has a hole)"
                pos += len(block)
    return None


def _kind_name(mode: int) -> str:
    kind = stat.S_IFMT(mode)
    return {
        stat.S_IFDIR: "directory",
        stat.S_IFREG: "file",
        stat.S_IFLNK: "symlink",
        stat.S_IFIFO: "fifo",
        stat.S_IFCHR: "character device",
        stat.S_IFBLK: "block device",
        stat.S_IFSOCK: "socket",
    }.get(kind, "special file")
