"""Restore: one pass of a volume from the chunk store into a directory.

``plan(...)`` reads the pass's manifest once, through, and changes nothing: it checks every
entry (a path that is absolute, has ``..``, goes through a symlink or a non-directory, a
symlink pointing out of the target, a hard link to a later or unsafe path, chunks that do
not fill the file) and counts what would be written. One unsafe entry refuses the whole
restore before anything is written (:class:`~migrator.errors.UnsafeEntry`).

``apply(plan)`` streams the manifest again, in windows of a few hundred MiB or some
thousands of entries, each window written while the next is read:

- directories are made as they come (never through a symlink: a symlink or a file where a
  directory belongs is replaced);
- the packs the window needs are fetched by a bounded pool, a few ahead of the writes, each
  once (a small cache keeps the last ones across windows), decrypted, and every chunk is
  checked against its keyed id before it is written at its offset: holes stay holes;
- the files a pack holds whole (small files, by the thousand) go to writer processes
  (:mod:`.writers`), a directory at a time: each is written nameless and linked into place
  with its owner, mode and times once complete; a file whose chunks span packs is written
  by the threads under a temporary name beside its final one and renamed into place when
  its last chunk is written. Either way a reader sees the old file or the new, never a half;
- symlinks, hard links and special files follow in manifest order, directories' metadata
  when their content is done.

A restore that keeps nothing of its target (a new volume: the first restore of a
migration) stages instead: the whole tree is written into a directory of the target that
only it sees (``.mgr-``, 8 hex digits, ``-0``), every file under its own name at once, and
moved into place when complete, a top-level entry by one rename (entry by entry into a
directory the target holds already). Creating a file under its name costs the file system
a third less than a nameless file linked; a reader still never sees half a file, nor half
the tree. A restore killed before the move leaves the staged tree aside, and the next one
removes it.

A chunk that fails its check (a tampered or damaged pack) fails its files: their temporary
files are removed and the report lists them (exit "partial"); the rest is restored. Files
in the target that the manifest does not hold are kept and listed, or removed with
``delete=True``.

A target that is not empty is surveyed first, in one walk merged with the manifest (and,
when the target holds an earlier restore of the same volume, its record: :mod:`.restored`,
with that earlier pass's manifest). A file whose content (its chunk ids and extents) is
the same in that earlier pass and this one, and whose copy in the target is as that
restore left it (a regular file of the same size and mtime), is kept, its owner, mode and
mtime brought up to date if they moved; nothing of it is downloaded or written, and the
writing pass passes over its line without decoding it. So a migration's final restore,
inside the cutover window, costs what changed, as its backup does.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import itertools
import os
import re
import shutil
import stat
import threading
import time
from collections import OrderedDict, defaultdict, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from migrator.errors import (
    MigratorError,
    SnapshotCorrupt,
    StoreKeyNotFound,
    UnsafeEntry,
    VolumeNotFound,
)
from migrator.run.processes import default_processes, process_pool
from migrator.run.progress import Progress
from migrator.store.base import Store
from migrator.volumes import restored
from migrator.volumes.entries import (
    DIR,
    FILE,
    FILE_LINE_HEAD,
    FILE_LINE_SIZE,
    HARDLINK,
    SPECIAL,
    SYMLINK,
    Entry,
    display,
    entry_path,
    extents_of,
    get_path,
    path_key,
)
from migrator.volumes.files import bound_memory, join, quick_handoffs, walk
from migrator.volumes.flush import BackgroundFlush, flush
from migrator.volumes.manifest import (
    PassInfo,
    SortedPassLines,
    latest_complete,
    line_path,
    open_pass,
    parse_line,
    read_part_texts,
    read_parts,
)
from migrator.volumes.report import Meter, RestoreReport
from migrator.volumes.repository import Repository, codec_pool, new_id
from migrator.volumes.writers import (
    FileWriter,
    Meta,
    WholeFile,
    discard,
    meta_of,
    replace,
    set_metadata,
    start_writer,
    write_files,
    write_in_worker,
)

WINDOW_BYTES = 256 * 1024 * 1024
WINDOW_ENTRIES = 8_000
CACHED_PACKS = 4
_FILES_PER_TASK = 256
# Files a pack holds whole, from one directory, handed to a writer process at once. Two
# writers creating files in one directory contend for its lock in the kernel: batches of
# 1,024 keep them in different directories more of the time (on 200,000 small files in
# directories of 1,000, six alternating pairs: the writers' kernel time ~9.0 s against
# ~10.1 s, the restore 12.1 s against 13.1 s, medians, with batches of 256).
_WHOLE_FILES_PER_TASK = 1024
# Packs fetched ahead of the one being written, and packs whose writes may still be queued
# (each held decrypted, and its small files' chunks copied once more for the writers).
_PACKS_AHEAD = 3
_BYTES_PER_TASK = 4 * 1024 * 1024
_SPECIAL_KINDS = {stat.S_IFIFO, stat.S_IFCHR, stat.S_IFBLK}
_TYPES = {DIR, FILE, SYMLINK, HARDLINK, SPECIAL}
_TEMP = re.compile(rb"^\.mgr-[0-9a-f]{8}-[0-9]+$")
# What a rename says when something is in the way of a staged entry (see _merge).
_IN_THE_WAY = {errno.ENOTEMPTY, errno.EEXIST, errno.EISDIR, errno.ENOTDIR}


@dataclass
class RestorePlan:
    """A checked pass and what restoring it writes."""

    store: Store
    key: bytes | None
    info: PassInfo
    target: bytes
    allow_outside_symlinks: bool = False
    entries: int = 0
    files: int = 0
    bytes_total: int = 0
    packs: set[str] = field(default_factory=set)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.info.name,
            "pass": self.info.pass_id,
            "target": os.fsdecode(self.target),
            "entries": self.entries,
            "files": self.files,
            "bytesTotal": self.bytes_total,
            "packs": len(self.packs),
        }


def plan(
    store: Store,
    name: str,
    target: str | os.PathLike[str],
    *,
    key: bytes | None = None,
    pass_id: str | None = None,
    allow_outside_symlinks: bool = False,
    processes: int | None = None,
) -> RestorePlan:
    """Check the newest complete pass of ``name`` (or ``pass_id``) for a restore into
    ``target``; raises :class:`UnsafeEntry` at the first entry that could write outside.
    A large manifest is checked by worker processes (``processes``; default one per core;
    0: none), a part each."""
    repo, info = open_pass(store, name, key, pass_id)
    result = RestorePlan(
        store, key, info, os.fsencode(os.path.realpath(target)), allow_outside_symlinks
    )
    count = default_processes() if processes is None else processes
    entries = int(info.head.get("entries", 0)) if info.head is not None else 0
    pool = process_pool(count, [__name__]) if count and entries > _CHECK_IN_PROCESSES else None
    try:
        chain: list[tuple[bytes, ...]] = []  # the directory chain where the last part ended
        last: tuple[bytes, ...] | None = None
        for part in _checked_parts(repo, info, allow_outside_symlinks, pool, count):
            if last is not None and part.first is not None and part.first <= last:
                raise UnsafeEntry(
                    f"manifest entry {display(part.first_path)!r} is out of order or repeated"
                )
            for parent, rel in part.dangling:  # as if the part's check had gone on from there
                while chain and chain[-1] != parent:
                    chain.pop()
                if not chain:
                    raise _outside_the_tree(rel)
            if part.error is not None:
                raise part.error
            chain.extend(part.dirs)
            last = part.last if part.last is not None else last
            result.entries += part.entries
            result.files += part.files
            result.bytes_total += part.bytes_total
            result.packs |= part.packs
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return result


# A manifest of more entries than this is checked by worker processes, a part each; a
# smaller one is checked sooner than a pool starts.
_CHECK_IN_PROCESSES = 40_000


@dataclass
class _PartCheck:
    """What checking one part of a manifest found: its counts, its first and last paths,
    the directory chain where it ends, and the entries whose parent directory is not in it
    (their check goes on in the chain where the parts before ended)."""

    entries: int = 0
    files: int = 0
    bytes_total: int = 0
    packs: set[str] = field(default_factory=set)
    first: tuple[bytes, ...] | None = None
    first_path: bytes = b""
    last: tuple[bytes, ...] | None = None
    dirs: list[tuple[bytes, ...]] = field(default_factory=list)
    dangling: list[tuple[tuple[bytes, ...], bytes]] = field(default_factory=list)
    error: MigratorError | None = None  # at its first unsafe or unreadable entry


def _checked_parts(
    repo: Repository,
    info: PassInfo,
    allow_outside: bool,
    pool: ProcessPoolExecutor | None,
    processes: int,
) -> Iterator[_PartCheck]:
    """Each part of the pass checked (by ``pool``, a few parts ahead), in order."""
    texts = read_part_texts(repo, info)
    if pool is None:
        for number, (key, text) in enumerate(texts):
            yield check_part(text, key, allow_outside, number == 0)
        return
    pending: deque[Future[_PartCheck]] = deque()
    for number, (key, text) in enumerate(texts):
        pending.append(pool.submit(check_part, text, key, allow_outside, number == 0))
        while len(pending) > 2 * processes:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def check_part(text: bytes, key: str, allow_outside: bool, first: bool) -> _PartCheck:
    """Check the entries of one manifest part (``first``: the pass's first part, which
    starts with the root directory); stops at the first unsafe or unreadable one."""
    checker = _Checker(allow_outside, first)
    found = _PartCheck(dangling=checker.dangling)
    packs = found.packs
    try:
        for line in text.splitlines():
            entry = parse_line(line, key)
            checker.check(entry)
            found.entries += 1
            if entry["t"] == FILE:
                found.files += 1
                found.bytes_total += int(entry.get("s", 0))
                for ref in entry.get("c", ()):
                    packs.add(ref[1])
    except (UnsafeEntry, SnapshotCorrupt) as err:
        found.error = err
    found.first, found.first_path = checker.first, checker.first_path
    found.last, found.dirs = checker.last, checker.dirs
    return found


def _outside_the_tree(rel: bytes) -> UnsafeEntry:
    return UnsafeEntry(
        f"manifest entry {display(rel)!r} is not inside a directory of the manifest (its "
        "parent is a symlink, a file or missing): restoring it could write through a symlink"
    )


class _Checker:
    """Checks entries one by one, in order, holding only the current directory chain. The
    entries of a part after the first may sit in directories of earlier parts: an entry
    whose parent is not in the chain here is noted (``dangling``), for the caller to look
    for in the chain the parts before left."""

    def __init__(self, allow_outside_symlinks: bool, first_part: bool = True) -> None:
        self.allow_outside = allow_outside_symlinks
        self.first_part = first_part
        self.first: tuple[bytes, ...] | None = None
        self.first_path = b""
        self.last: tuple[bytes, ...] | None = None
        self.dirs: list[tuple[bytes, ...]] = []  # the directory chain of the last entry
        self.dangling: list[tuple[tuple[bytes, ...], bytes]] = []  # (its parent, path)

    def check(self, entry: Entry) -> None:
        try:
            rel = entry_path(entry)
        except ValueError as err:
            raise UnsafeEntry(f"a manifest entry has no readable path: {err}") from err
        key = _relative_key(rel)
        kind = entry.get("t")
        if kind not in _TYPES:
            raise UnsafeEntry(f"manifest entry {display(rel)!r} has an unknown type {kind!r}")
        if self.last is None:
            if self.first_part and (key != () or kind != DIR):
                raise UnsafeEntry(
                    "the manifest does not start with its root directory (first entry "
                    f"{display(rel)!r})"
                )
            self.first, self.first_path = key, rel
        elif key <= self.last:
            raise UnsafeEntry(f"manifest entry {display(rel)!r} is out of order or repeated")
        self.last = key
        parent = key[:-1]
        while self.dirs and self.dirs[-1] != parent:
            self.dirs.pop()
        if key and not self.dirs:
            if self.first_part:
                raise _outside_the_tree(rel)
            self.dangling.append((parent, rel))
        if kind == DIR:
            self.dirs.append(key)
        elif kind == FILE:
            _check_chunks(entry, rel)
        elif kind == SYMLINK:
            self._check_symlink(entry, rel)
        elif kind == HARDLINK:
            link = get_path(entry, "h") or b""
            if not link or _relative_key(link) >= key:
                raise UnsafeEntry(
                    f"hard link {display(rel)!r} points to {display(link)!r}, which is "
                    "not an earlier file of the manifest"
                )
        elif kind == SPECIAL and entry.get("k") not in _SPECIAL_KINDS:
            raise UnsafeEntry(
                f"special file {display(rel)!r} has an unknown kind {entry.get('k')!r}"
            )
        mode = entry.get("m", 0)
        if not isinstance(mode, int) or not 0 <= mode <= 0o7777:
            raise UnsafeEntry(f"manifest entry {display(rel)!r} has an invalid mode {mode!r}")

    def _check_symlink(self, entry: Entry, rel: bytes) -> None:
        where = display(rel)
        target = get_path(entry, "l")
        if target is None or not target or b"\0" in target:
            raise UnsafeEntry(f"symlink {where!r} has no valid target")
        if self.allow_outside:
            return
        depth = rel.count(b"/")  # directories between the root and the link
        for part in target.split(b"/") if not target.startswith(b"/") else [b".."] * (depth + 2):
            if part == b"..":
                depth -= 1
                if depth < 0:
                    raise UnsafeEntry(
                        f"symlink {where!r} points out of the volume ({display(target)!r})",
                        hint="pass --allow-outside-symlinks to restore such links as they are "
                        "(they are never followed while restoring)",
                    )
            elif part not in (b"", b"."):
                depth += 1


def _relative_key(rel: bytes) -> tuple[bytes, ...]:
    """The sort key of a manifest path (see :func:`path_key`), refusing one that is absolute,
    holds a NUL byte, or has an empty, ``.`` or ``..`` component."""
    if rel.startswith(b"/") or b"\0" in rel:
        raise UnsafeEntry(
            f"manifest entry {display(rel)!r} is an absolute path or holds a NUL byte"
        )
    key = path_key(rel)
    if b"" in key or b"." in key or b".." in key:
        raise UnsafeEntry(f"manifest entry {display(rel)!r} has an empty, '.' or '..' component")
    return key


def _check_chunks(entry: Entry, rel: bytes) -> None:
    size = entry.get("s")
    if not isinstance(size, int) or size < 0:
        raise UnsafeEntry(f"file {display(rel)!r} has an invalid size")
    try:
        placed = _placements(entry)
    except (ValueError, TypeError, IndexError) as err:
        raise UnsafeEntry(f"file {display(rel)!r}: {err}") from err
    if placed and placed[-1][0] + placed[-1][1][4] > size:
        raise UnsafeEntry(f"file {display(rel)!r} has chunks beyond its size")


def _same_content(old: Entry, new: Entry) -> bool:
    """Whether two file entries hold the same bytes: the same size, data extents and chunk
    ids (a chunk's id is a keyed hash of its bytes)."""
    if old.get("s") != new.get("s") or old.get("x") != new.get("x"):
        return False
    a, b = old.get("c", []), new.get("c", [])
    return len(a) == len(b) and all(x[0] == y[0] for x, y in zip(a, b, strict=True))


def _placements(entry: Entry) -> list[tuple[int, list[Any]]]:
    """(file offset, chunk ref) of every chunk of a file entry: chunks fill its data extents
    in order, never across one's end."""
    refs = entry.get("c", [])
    if len(refs) == 1 and "x" not in entry:  # a file in one chunk: most small files
        ref = refs[0]
        if 0 < int(ref[4]) == int(entry.get("s", 0)):
            return [(0, ref)]
    placed: list[tuple[int, list[Any]]] = []
    if "x" not in entry:  # one extent, the whole file (the usual case): no extent list
        size = int(entry.get("s", 0))
        pos = 0
        for ref in refs:
            raw = int(ref[4])
            if raw <= 0 or pos + raw > size:
                raise ValueError(
                    "a chunk crosses the end of a data extent"
                    if size
                    else "it has more chunks than its data extents hold"
                )
            placed.append((pos, ref))
            pos += raw
        if pos != size:
            raise ValueError("its chunks do not fill its data extents")
        return placed
    extents = extents_of(entry)
    i = 0
    for offset, length in extents:
        if offset < 0 or length <= 0:
            raise ValueError("an extent is empty or negative")
        pos = 0
        while pos < length:
            if i >= len(refs):
                raise ValueError("its chunks do not fill its data extents")
            ref = refs[i]
            raw = int(ref[4])
            if raw <= 0 or pos + raw > length:
                raise ValueError("a chunk crosses the end of a data extent")
            placed.append((offset + pos, ref))
            pos += raw
            i += 1
    if i != len(refs):
        raise ValueError("it has more chunks than its data extents hold")
    return placed


@dataclass(slots=True)
class _File:
    """A file of the current window: its entry, final path, the number of its temporary
    name (:meth:`_Restorer.temp_of`), chunks to go."""

    entry: Entry
    final: bytes
    number: int
    remaining: int
    chunks: int = 0  # how many in all
    failed: str | None = None
    done: bool = False


_Target = tuple[_File, int, list[Any]]  # a file, a chunk's offset in it, the chunk's ref


def _whole(
    item: _File, chunks: list[_Target], view: memoryview, parent: bytes = b""
) -> tuple[Any, ...]:
    """A file whose every chunk is in the pack ``view`` holds, for a writer: a
    :class:`WholeFile`'s fields as the plain tuple that travels to a writer process.
    ``parent``: the directory of the file before it, given as that very object when it is
    this file's too (pickled once for a batch, not once a file)."""
    folder, name = item.final.rsplit(b"/", 1)
    entry = item.entry
    return (
        parent if folder == parent else folder,
        name,
        [
            (
                offset,
                view[int(ref[2]) : int(ref[2]) + int(ref[3])].tobytes(),
                bytes.fromhex(ref[0]),
                int(ref[4]),
            )
            for _item, offset, ref in chunks
        ],
        int(entry["s"]),
        meta_of(entry),
    )


@dataclass
class _Window:
    entries: list[tuple[Entry, _File | None]] = field(default_factory=list)
    by_pack: dict[str, list[_Target]] = field(default_factory=lambda: defaultdict(list))
    dirs_done: list[tuple[bytes, Entry]] = field(default_factory=list)
    bytes: int = 0


class _Restorer:
    def __init__(
        self,
        plan: RestorePlan,
        repo: Repository,
        report: RestoreReport,
        workers: int,
        writers: ProcessPoolExecutor | None,
        progress: Progress | None,
        kept: bytearray | None = None,
        staged: bool = False,
        flusher: BackgroundFlush | None = None,
    ) -> None:
        self.plan = plan
        self.repo = repo
        self.report = report
        self.temp_prefix = f".mgr-{new_id(4)}-".encode()  # temporary names: prefix, number
        # Where the tree is written: the target, or with ``staged`` a directory of it that
        # only this restore sees, moved into place when complete (:meth:`_move_in`).
        self.staged = staged
        self.root = join(plan.target, self.temp_prefix + b"0") if staged else plan.target
        self.root_meta: Meta | None = None  # the target's own, set once the tree is in
        self.flusher = flusher  # flushes what each window wrote, while the next is written
        self.counter = itertools.count(1)  # temporary names (two threads take them)
        self.workers = workers
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="restore")
        self.writers = writers
        self.writer = FileWriter(repo.codec)  # this thread's
        self.lock = threading.Lock()
        self.cache: OrderedDict[str, bytes] = OrderedDict()
        self.meter = Meter(progress, plan.bytes_total, plan.files)
        self.meter.add_bytes(report.bytes_unchanged)
        self.meter.add_files(report.files_unchanged)
        self.owner = os.geteuid() == 0
        # The entries (by number) the target holds already (:func:`_survey`).
        self.kept = kept or bytearray()

    # -- windows ---------------------------------------------------------------------

    def run(self) -> None:
        """Read the manifest into windows; each window is written (:meth:`_finish`) while
        the next one is read, one at a time, in order."""
        finisher = ThreadPoolExecutor(1, thread_name_prefix="restore-window")
        writing: Future[None] | None = None

        def finish(window: _Window) -> None:
            nonlocal writing
            if writing is not None:
                writing.result()  # its files before the next window's hard links
            writing = finisher.submit(self._finish, window)

        if self.staged:
            os.mkdir(self.root, 0o700)
        try:
            self._read_windows(finish)
            if writing is not None:
                writing.result()
        finally:
            finisher.shutdown(wait=True, cancel_futures=True)
        if self.staged:
            self._move_in(self.root, self.plan.target, b"")
            shutil.rmtree(self.root)  # empty, or what could not be moved in (reported)
            if self.root_meta is not None:
                try:
                    set_metadata(self.plan.target, self.root_meta, self.owner)
                except OSError as err:
                    self.report.failures.add(b"", f"cannot set metadata: {err.strerror or err}")

    def _read_windows(self, finish: Callable[[_Window], None]) -> None:
        window = _Window()
        # Directories whose content is not done: (what the paths in it start with, its
        # path, its entry). The manifest's order puts a directory's content right after it.
        stack: list[tuple[bytes, bytes, Entry]] = []
        kept, number = self.kept, -1
        for part, lines in read_parts(self.repo, self.plan.info):
            for line in lines:
                number += 1
                entry: Entry | None = None
                if number < len(kept) and kept[number]:  # only its path is needed
                    rel = line_path(line)
                else:
                    entry = parse_line(line, part)
                    rel = entry_path(entry)
                # The directories this entry is not in are done.
                while stack and not rel.startswith(stack[-1][0]):
                    window.dirs_done.append(stack.pop()[1:])
                if entry is None:
                    continue
                kind = entry["t"]
                if kind == DIR:
                    if self._make_dir(rel):
                        stack.append((rel + b"/" if rel else b"", rel, entry))
                    continue
                item = self._add_file(window, rel, entry) if kind == FILE else None
                window.entries.append((entry, item))
                if window.bytes >= WINDOW_BYTES or len(window.entries) >= WINDOW_ENTRIES:
                    finish(window)
                    window = _Window()
        window.dirs_done.extend(done[1:] for done in reversed(stack))
        finish(window)

    def _add_file(self, window: _Window, rel: bytes, entry: Entry) -> _File:
        item = _File(entry, join(self.root, rel), next(self.counter), 0)
        placed = _placements(entry)
        by_pack = window.by_pack
        for offset, ref in placed:
            by_pack[ref[1]].append((item, offset, ref))
            window.bytes += int(ref[4])
        item.chunks = item.remaining = len(placed)
        return item

    def _finish(self, window: _Window) -> None:
        """Fetch the window's packs, a few ahead of the one being written, and write
        their chunks: the files a pack holds whole by the writer processes (a pack of small
        files holds thousands), the others' chunks by the threads; then what follows in
        order."""
        packs = iter(window.by_pack.items())
        fetching: deque[tuple[str, list[_Target], Future[memoryview | None]]] = deque()
        writes: deque[tuple[int, Future[None]]] = deque()

        def fetch_more() -> None:
            while len(fetching) < min(self.workers, _PACKS_AHEAD):
                pack, targets = next(packs, (None, None))
                if pack is None or targets is None:
                    return
                fetching.append((pack, targets, self.pool.submit(self._fetch_for, pack, targets)))

        fetch_more()
        number = 0
        while fetching:
            pack, targets, future = fetching.popleft()
            view = future.result()
            fetch_more()
            if view is not None:
                writes.extend((number, write) for write in self._dispatch(pack, view, targets))
            while writes and writes[0][0] <= number - _PACKS_AHEAD:  # bound what is held
                writes.popleft()[1].result()
            number += 1
        for _number, write in writes:
            write.result()
        for entry, item in window.entries:
            if item is not None and item.done:
                continue
            rel = entry_path(entry)
            try:
                if item is not None:
                    self._complete(item)
                    continue
                kind = entry["t"]
                if kind == SYMLINK:
                    self._symlink(rel, entry)
                elif kind == HARDLINK:
                    self._hardlink(rel, entry)
                elif kind == SPECIAL:
                    self._special(rel, entry)
            except OSError as err:
                self.report.failures.add(rel, f"cannot restore: {err.strerror or err}")
        for rel, entry in window.dirs_done:
            if self.staged and not rel:
                self.root_meta = meta_of(entry)  # the target's: once the tree is moved in
                continue
            try:
                set_metadata(join(self.root, rel), meta_of(entry), self.owner)
            except OSError as err:
                self.report.failures.add(rel, f"cannot set metadata: {err.strerror or err}")
        if self.flusher is not None:
            self.flusher.kick()

    def _dispatch(self, pack: str, view: memoryview, targets: list[_Target]) -> list[Future[None]]:
        """Start writing what a fetched pack holds: batches of the files it holds whole,
        groups of the other files' chunks."""
        # A file in one chunk is whole here (most small files); the others, by file.
        single: list[list[_Target]] = []
        by_file: dict[int, list[_Target]] = {}
        for target in targets:
            if target[0].chunks == 1:
                single.append([target])
            else:
                by_file.setdefault(id(target[0]), []).append(target)
        where = self.repo.pack_key(pack)
        futures: list[Future[None]] = []
        batch: list[tuple[_File, tuple[Any, ...]]] = []
        batch_bytes = 0
        parent = b""
        partial: list[list[_Target]] = []
        for chunks in itertools.chain(single, by_file.values()):
            item = chunks[0][0]
            if len(chunks) != item.chunks:  # its other chunks are in other packs
                partial.append(chunks)
                continue
            whole = _whole(item, chunks, view, parent)
            if batch and whole[0] is not parent:
                futures.append(self._write_whole(batch, where))  # one directory per batch:
                batch, batch_bytes = [], 0  # the writers' links contend less for its lock
            parent = whole[0]
            batch.append((item, whole))
            batch_bytes += whole[3]  # its size: at least what its chunks hold
            if len(batch) >= _WHOLE_FILES_PER_TASK or batch_bytes >= _BYTES_PER_TASK:
                futures.append(self._write_whole(batch, where))
                batch, batch_bytes = [], 0
        if batch:
            futures.append(self._write_whole(batch, where))
        for first in range(0, len(partial), _FILES_PER_TASK):
            group = partial[first : first + _FILES_PER_TASK]
            futures.append(self.pool.submit(self._write_files, pack, view, group))
        return futures

    def _write_whole(self, batch: list[tuple[_File, tuple[Any, ...]]], where: str) -> Future[None]:
        """Write files held whole in one pack (:func:`_whole`), in a writer process (or a
        thread), and count them when done."""
        if self.writers is not None:
            written: Future[list[str | None]] = self.writers.submit(
                write_in_worker, [whole for _item, whole in batch], where, self.staged
            )
        else:
            files = [WholeFile._make(whole) for _item, whole in batch]
            writer = FileWriter(self.repo.codec)
            written = self.pool.submit(write_files, writer, files, where, self.staged)
        done: Future[None] = Future()

        def settle(future: Future[list[str | None]]) -> None:
            try:
                results = future.result()
                written = []
                for (item, whole), failed in zip(batch, results, strict=True):
                    if failed is not None:
                        self._fail(item, failed)
                        continue
                    item.remaining = 0
                    item.done = True
                    written.append(whole[3])
                self._count_files(len(written), sum(written))
                self.meter.add_bytes(sum(written))
                done.set_result(None)
            except BaseException as err:  # handed to whoever waits on it
                done.set_exception(err)

        written.add_done_callback(settle)
        return done

    # -- packs and files -------------------------------------------------------------

    def _fetch_for(
        self, pack: str, targets: list[tuple[_File, int, list[Any]]]
    ) -> memoryview | None:
        """A pack's content, or None (its files marked failed) if it cannot be read."""
        try:
            return memoryview(self._fetch(pack))
        except (SnapshotCorrupt, StoreKeyNotFound) as err:
            with self.lock:
                for item, _offset, _ref in targets:
                    item.failed = str(err)
            return None

    def _write_files(
        self, pack: str, view: memoryview, files: list[list[tuple[_File, int, list[Any]]]]
    ) -> None:
        for chunks in files:
            item = chunks[0][0]
            try:
                self._write(item, chunks, view, pack)
            except SnapshotCorrupt as err:
                self._fail(item, str(err))
            except OSError as err:
                self._fail(item, f"cannot write: {err.strerror or err}")

    def _fail(self, item: _File, why: str) -> None:
        with self.lock:
            item.failed = item.failed or why

    def _fetch(self, pack: str) -> bytes:
        with self.lock:
            data = self.cache.get(pack)
            if data is not None:
                self.cache.move_to_end(pack)
                return data
        data = self.repo.read_pack(pack)
        with self.lock:
            self.report.bytes_downloaded += len(data)
            self.report.packs += 1
            self.cache[pack] = data
            while len(self.cache) > CACHED_PACKS:
                self.cache.popitem(last=False)
        return data

    def _write(
        self, item: _File, chunks: list[tuple[_File, int, list[Any]]], view: memoryview, pack: str
    ) -> None:
        where = self.repo.pack_key(pack)
        flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(self.temp_of(item), flags, 0o600)
        written = 0
        try:
            for _item, offset, ref in chunks:
                stored = view[int(ref[2]) : int(ref[2]) + int(ref[3])]
                data = self.repo.codec.decode_chunk(
                    stored, bytes.fromhex(ref[0]), int(ref[4]), where
                )
                os.pwrite(fd, data, offset)
                written += len(data)
            with self.lock:
                item.remaining -= len(chunks)
                last = item.remaining == 0 and item.failed is None
            if last:
                self._close_file(item, fd)
        finally:
            os.close(fd)
        self.meter.add_bytes(written)

    def _complete(self, item: _File) -> None:
        """A file whose chunks all arrived (or that has none), or that failed."""
        if item.failed is None and not item.remaining:  # it has no data: holes, or nothing
            try:
                empty = WholeFile._make(_whole(item, [], memoryview(b"")))
                self.writer.write(empty, "", staged=self.staged)
            finally:
                self.writer.close()
            item.done = True
            self._count_files(1, int(item.entry["s"]))
            return
        discard(self.temp_of(item))
        self.report.failures.add(entry_path(item.entry), item.failed or "chunks missing")

    def _close_file(self, item: _File, fd: int) -> None:
        """Size, owner, mode and times of a written file, then its rename into place."""
        entry = item.entry
        size = int(entry["s"])
        if os.fstat(fd).st_size != size:  # a hole at the end, or an empty file
            os.ftruncate(fd, size)
        set_metadata(fd, meta_of(entry), self.owner)
        if not self.staged:
            replace(self.temp_of(item), item.final)
        item.done = True
        self._count_files(1, size)

    def _count_files(self, count: int, size: int) -> None:
        """Count restored files (and their size) into the report and the progress."""
        with self.lock:
            self.report.files += count
            self.report.bytes_written += size
        self.meter.add_files(count)

    # -- the other kinds -------------------------------------------------------------

    def _make_dir(self, rel: bytes) -> bool:
        path = join(self.root, rel)
        if self.staged:  # a new tree: the directory is not there (but the root)
            with contextlib.suppress(FileExistsError):
                os.mkdir(path, 0o700)
                self.report.dirs += 1
                return True
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            os.mkdir(path, 0o700)
            self.report.dirs += 1
            return True
        if stat.S_ISDIR(st.st_mode):
            self.report.dirs += 1
            return True
        os.unlink(path)  # a file or a symlink where the manifest has a directory
        os.mkdir(path, 0o700)
        self.report.dirs += 1
        return True

    def _symlink(self, rel: bytes, entry: Entry) -> None:
        def make(path: bytes) -> None:
            os.symlink(get_path(entry, "l") or b"", path)
            set_metadata(path, meta_of(entry), self.owner, link=True)

        self._place(rel, make)
        self.report.symlinks += 1

    def _hardlink(self, rel: bytes, entry: Entry) -> None:
        source = join(self.root, get_path(entry, "h") or b"")
        final = join(self.root, rel)
        st = os.lstat(source)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"hard link target {display(source)} is not a restored file")
        try:
            if os.path.samestat(os.lstat(final), st):
                self.report.hardlinks += 1
                return
        except FileNotFoundError:
            pass
        self._place(rel, lambda path: os.link(source, path, follow_symlinks=False))
        self.report.hardlinks += 1

    def _special(self, rel: bytes, entry: Entry) -> None:
        def make(path: bytes) -> None:
            os.mknod(path, int(entry["k"]) | 0o600, int(entry.get("r", 0)))
            set_metadata(path, meta_of(entry), self.owner)

        self._place(rel, make)
        self.report.specials += 1

    def _place(self, rel: bytes, make: Callable[[bytes], None]) -> None:
        """Make a path other than a regular file (``make`` creates it and sets its
        metadata): under its own name in a staged tree, else under a temporary name renamed
        over it. Nothing is left behind when it fails."""
        final = join(self.root, rel)
        path = final if self.staged else self._temp_beside(rel)
        try:
            make(path)
        except OSError as err:
            if err.errno != errno.EEXIST:  # else not this restore's to remove
                discard(path)
            raise
        if path != final:
            replace(path, final)

    def _move_in(self, stage: bytes, target: bytes, rel: bytes) -> None:
        """Move what the staged tree holds into the target: an entry by one rename (a whole
        directory at once) where the target has nothing of its name, or a file or an empty
        directory the manifest replaces; into a directory the target holds already (with
        what the manifest does not hold, kept), entry by entry, its metadata set again. (A
        rename changes the times of the directories it moves from and to, not of what it
        moves.)"""
        for name in os.listdir(stage):
            source, final = stage + b"/" + name, target + b"/" + name
            path = rel + b"/" + name if rel else name
            try:
                _move(source, final)
            except OSError as err:
                try:
                    if err.errno not in _IN_THE_WAY:
                        raise
                    self._merge(source, final, path, os.lstat(source))
                except OSError as failed:  # what is left in the staged tree goes with it
                    self.report.failures.add(path, f"cannot restore: {failed.strerror or failed}")

    def _merge(self, source: bytes, final: bytes, rel: bytes, st: os.stat_result) -> None:
        """Move ``source`` over ``final``, which is in the way of a rename."""
        if not stat.S_ISDIR(st.st_mode):  # a directory where the manifest has a file
            replace(source, final)  # an empty one is removed, a full one refused
            return
        if stat.S_ISDIR(os.lstat(final).st_mode):
            if not st.st_mode & stat.S_IWUSR:  # its entries are moved out (its mode: below)
                os.chmod(source, stat.S_IMODE(st.st_mode) | stat.S_IWUSR)
            self._move_in(source, final, rel)
            shutil.rmtree(source)
            meta = (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), st.st_atime_ns, st.st_mtime_ns)
            set_metadata(final, meta, self.owner)
        else:  # a file where the manifest has a directory
            os.unlink(final)
            _move(source, final)

    def temp_of(self, item: _File) -> bytes:
        """The name a file the threads write has until it is complete (whichever thread
        asks: the same): a temporary one, or in a staged tree its own."""
        if self.staged:
            return item.final
        return b"%s/%s%d" % (item.final.rpartition(b"/")[0], self.temp_prefix, item.number)

    def _temp_beside(self, rel: bytes) -> bytes:
        parent = rel.rpartition(b"/")[0]
        name = b"%s%d" % (self.temp_prefix, next(self.counter))
        return join(self.root, parent + b"/" + name if parent else name)


def _move(source: bytes, final: bytes) -> None:
    """Rename ``source`` to ``final``, in another directory. A directory so moved is
    written to (its ``..`` entry): one its owner may not write to (and a restore that is
    not root's is its owner) is given that permission for the move, then its mode again."""
    try:
        os.rename(source, final)
    except PermissionError:
        st = os.lstat(source)
        if not stat.S_ISDIR(st.st_mode) or st.st_mode & stat.S_IWUSR:
            raise
        os.chmod(source, stat.S_IMODE(st.st_mode) | stat.S_IWUSR)
        try:
            os.rename(source, final)
        except OSError:
            os.chmod(source, stat.S_IMODE(st.st_mode))
            raise
        os.chmod(final, stat.S_IMODE(st.st_mode))


def apply(
    plan: RestorePlan,
    *,
    workers: int = 4,
    processes: int | None = None,
    delete: bool = False,
    sync: bool = True,
    progress: Progress | None = None,
) -> RestoreReport:
    """Restore the pass ``plan`` checked into its target; returns the report (partial when
    some files could not be restored). ``workers`` threads fetch packs and write large
    files, ``processes`` write the files a pack holds whole (default: one per core; 0: in
    this process). With ``sync`` (the default) the target's file system is flushed to its
    disk before this returns."""
    started = time.monotonic()
    bound_memory()
    repo = Repository.open(plan.store, plan.key)
    report = RestoreReport(plan.info.name, plan.info.pass_id, target=os.fsdecode(plan.target))
    os.makedirs(plan.target, exist_ok=True)
    record, base = _earlier(repo, plan)
    recorded = restored.write(plan.target, record)  # "writing" from here on
    if not recorded:
        base = None  # an earlier record this restore cannot mark is not trusted either
    report.base_pass = base.pass_id if base is not None else None
    surveyed = (
        _survey(repo, plan, report, delete, base)
        if os.listdir(plan.target)
        else _Surveyed(None, mounted=False)
    )
    kept = surveyed.kept
    # Nothing of the target kept: the tree is written aside, each file under its own name
    # at once (a third less of the file system's work per small file than a nameless file
    # linked), and moved in when complete; unless another file system is mounted in the
    # target (what goes there cannot be moved in by a rename).
    staged = not surveyed.mounted and (kept is None or 1 not in kept)
    pool, _count = codec_pool(processes, repo.codec, start_writer)  # before any thread
    flusher = BackgroundFlush(plan.target) if sync else None
    restorer = _Restorer(plan, repo, report, workers, pool, progress, kept, staged, flusher)
    collecting = gc.isenabled()
    gc.disable()  # a window is thousands of small acyclic objects: no cycles to look for
    try:
        with quick_handoffs():
            restorer.run()
    finally:
        if collecting:
            gc.enable()
        restorer.pool.shutdown(wait=True, cancel_futures=True)
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        if flusher is not None:
            flusher.close()
    if sync:
        flush(plan.target)  # the restore is durable when it returns
    if recorded and not report.partial:
        complete = restored.Record(record.name, record.store, plan.info.pass_id)
        restored.write(plan.target, complete, durable=sync)
    report.seconds = time.monotonic() - started
    return report


def preview(plan: RestorePlan, *, delete: bool = False) -> dict[str, Any]:
    """What applying ``plan`` would do, changing nothing: the plan's counts, and for a target
    that is not empty, the files it would keep as an earlier restore left them (and so not
    download nor write), and what the target holds that the manifest does not (removed
    with ``delete``)."""
    repo = Repository.open(plan.store, plan.key)
    report = RestoreReport(plan.info.name, plan.info.pass_id, target=os.fsdecode(plan.target))
    if os.path.isdir(plan.target) and os.listdir(plan.target):
        _record, base = _earlier(repo, plan)
        report.base_pass = base.pass_id if base is not None else None
        _survey(repo, plan, report, delete, base, act=False)
    return {
        **plan.to_dict(),
        "basePass": report.base_pass,
        "filesUnchanged": report.files_unchanged,
        "bytesUnchanged": report.bytes_unchanged,
        "filesToWrite": plan.files - report.files_unchanged,
        "bytesToWrite": plan.bytes_total - report.bytes_unchanged,
        "extra": report.extra.count,
        "toDelete": report.deleted,
    }


def _earlier(repo: Repository, plan: RestorePlan) -> tuple[restored.Record, PassInfo | None]:
    """The record a restore of ``plan`` leaves while it writes, and the complete pass the
    target holds that it may build on (None: it writes everything)."""
    name, pass_id = plan.info.name, plan.info.pass_id
    tag = repo.codec.chunk_id(b"migrator restore record").hex()  # the store, revealing nothing
    earlier = restored.read(plan.target)
    base_id = earlier.base_for(name, tag, pass_id) if earlier is not None else None
    base = None
    if base_id is not None:
        with contextlib.suppress(VolumeNotFound):  # removed from the store since
            base = latest_complete(repo, name, base_id)
    return restored.Record(name, tag, base_id if base is not None else None, pass_id), base


def _survey(
    repo: Repository,
    plan: RestorePlan,
    report: RestoreReport,
    delete: bool,
    base: PassInfo | None,
    *,
    act: bool = True,
) -> _Surveyed:
    """Walk the target once, merged with the pass's manifest: what the target holds and the
    manifest does not is listed, or removed with ``delete`` (also a directory where the
    manifest has something else); leftovers of a killed restore are removed. With ``base``
    (the pass the target holds, per its record), the files the target holds as that
    restore left them, with the same content in this pass, are kept and counted. Without
    ``act`` nothing is changed, only counted."""
    lines = SortedPassLines(repo, plan.info)
    earlier = SortedPassLines(repo, base) if base is not None else None
    kept = bytearray(plan.entries) if earlier is not None else None
    owner = os.geteuid() == 0 if act else None
    removed: bytes | None = None  # the last directory removed (or that would be)
    device, mounted = 0, False
    for rel, st in walk(plan.target, lambda rel, why: None):
        if not rel:
            device = st.st_dev
            continue
        if removed is not None and rel.startswith(removed):
            continue
        mounted = mounted or st.st_dev != device
        found = lines.find(rel)
        if found is None and _TEMP.match(rel.rpartition(b"/")[2]):
            # Left by a restore that was killed: a file, or the tree it staged.
            if stat.S_ISDIR(st.st_mode):
                removed = rel + b"/"
                if act:
                    shutil.rmtree(join(plan.target, rel))
            elif act:
                discard(join(plan.target, rel))
            continue
        if found is not None:
            number, line = found
            if stat.S_ISDIR(st.st_mode):
                if parse_line(line)["t"] == DIR:
                    continue  # else a directory in the way: an extra
            else:
                old = earlier.find(rel) if earlier is not None else None
                if old is not None and kept is not None and number < len(kept):
                    size = _holds(plan.target, rel, st, line, old[1], owner)
                    if size is not None:
                        kept[number] = 1
                        report.files += 1
                        report.files_unchanged += 1
                        report.bytes_unchanged += size
                continue
        if not delete:
            report.extra.add(rel, "in the target, not in the manifest: kept (--delete removes it)")
            continue
        path = join(plan.target, rel)
        if stat.S_ISDIR(st.st_mode):
            removed = rel + b"/"
            if act:
                shutil.rmtree(path)
        elif act:
            os.unlink(path)
        report.deleted += 1
    return _Surveyed(kept, mounted)


class _Surveyed(NamedTuple):
    """What a survey found besides its counts."""

    kept: bytearray | None  # one byte per manifest entry, 1 for kept (None without a base)
    mounted: bool  # another file system is mounted in the target


def _holds(
    root: bytes,
    rel: bytes,
    st: os.stat_result,
    line: bytes,
    old_line: bytes,
    owner: bool | None,
) -> int | None:
    """The size of a file the target holds as the earlier restore (``old_line``) left it,
    with the same content in this pass (``line``), its owner, mode and times brought up to
    date if they moved (``owner``: whether its owner is restored too; None: nothing is
    changed); None if it is to be written."""
    if old_line == line and stat.S_ISREG(st.st_mode) and _as_restored(line, st):
        return st.st_size  # the usual case, told without decoding the line
    entry = parse_line(line)
    if entry.get("t") != FILE or not stat.S_ISREG(st.st_mode):
        return None
    # An entry a pass reused as it was is the same line in both (the usual case).
    old = entry if old_line == line else parse_line(old_line)
    if old is not entry and (old.get("t") != FILE or not _same_content(old, entry)):
        return None
    size = int(entry["s"])
    # Same content in both passes, so a copy with either pass's mtime holds it (one with
    # this pass's was written by a restore of it that did not finish). A copy with other
    # names (hard links) is kept too: every other name has its own entry, which links it
    # again, or replaces it with a file of its own.
    if st.st_size != size or st.st_mtime_ns not in (old.get("mt"), entry.get("mt")):
        return None
    if owner is None:
        return size
    meta = meta_of(entry)
    moved = (stat.S_IMODE(st.st_mode), st.st_mtime_ns) != (meta[2], meta[4]) or (
        owner and (st.st_uid, st.st_gid) != meta[:2]
    )
    if moved:
        try:
            fd = os.open(join(root, rel), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return None  # written again instead
        try:
            set_metadata(fd, meta, owner)
        except OSError:
            return None
        finally:
            os.close(fd)
    return size


def _as_restored(line: bytes, st: os.stat_result) -> bool:
    """Whether a file's line says what its copy's lstat does: its mode, owner, mtime and
    size, so that nothing of the copy is to be brought up to date (what :func:`_holds`
    would find decoding the line; see :data:`~.entries.FILE_LINE_HEAD`). False when the
    line was written otherwise, or anything differs: the caller then decodes it."""
    return (
        FILE_LINE_HEAD % (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime_ns) in line
        and FILE_LINE_SIZE % st.st_size in line
    )
