"""A backup pass: a directory tree (a mounted volume) into the chunk store.

``plan(...)`` reads the tree and the previous manifest and changes nothing: what the pass
would read (files new or changed since the previous pass) and reuse. ``apply(plan)`` does
the pass:

- the tree's names are walked in the manifest's order; each batch of paths goes with the
  previous pass's entries in its range (both sorted the same way, neither held whole;
  found by binary search, so this process does no per-entry work for them);
- the batches go to worker processes (:mod:`.scan`) that match paths with entries, stat
  them, and read, chunk, hash and compress the small files; a file whose size, mtime,
  inode and ctime match the previous entry, and whose chunks the store holds, is not read:
  its entry is reused (its line as it was, when nothing else moved either), and finished
  lines come back in runs;
- large files go to a bounded pool of reader threads (reading, FastCDC, BLAKE3 and zstd all
  release the interpreter lock), streamed in blocks;
- new chunks go into packs that a bounded pool uploads (:class:`~.packs.PackWriter`);
  entries are written in order, part by part (:class:`~.manifest.ManifestWriter`), and the
  head last, once every pack is stored.

Resume: a killed pass leaves finished packs (with their index documents) and manifest
parts. The next pass loads the index (finished packs' chunks are not uploaded again) and
takes the interrupted pass's parts as its previous entries up to where they end, so files
finished before the kill are not read again either.
"""

from __future__ import annotations

import bisect
import os
import stat
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from migrator import __version__, jsoncodec
from migrator.errors import ConfigError, MigratorError, StoreKeyNotFound, StoreNotFound
from migrator.run.progress import Progress
from migrator.store.base import Store
from migrator.volumes import scan as scan_module
from migrator.volumes.entries import (
    FILE,
    HARDLINK,
    Entry,
    Ref,
    entry_path,
    path_key,
    put_path,
    same_content_key,
)
from migrator.volumes.files import (
    Chunker,
    FileRead,
    bound_memory,
    join,
    quick_handoffs,
    read_file,
    walk,
)
from migrator.volumes.manifest import (
    ManifestWriter,
    PassInfo,
    SortedEntries,
    SortedLines,
    check_name,
    delete_pass,
    interrupted_before,
    line_key,
    new_pass_id,
    newest_complete,
    order_key,
    parse_line,
    pass_ids,
    pass_info,
    pass_prefix,
    read_entries,
    read_parts,
)
from migrator.volumes.packs import PackWriter
from migrator.volumes.report import BackupReport, Meter
from migrator.volumes.repository import ChunkIndex, Location, Repository, codec_pool
from migrator.volumes.scan import (
    BATCH_ENTRIES,
    FAILED,
    GONE,
    LARGE,
    LINES,
    READ,
    REUSED,
    SOCKET,
    ScannedBatch,
    fill,
    read_line,
    ref_json,
    run_lines,
    walk_runs,
)

# Entries waiting for their file to be read, beyond the workers' own: how far the walk may
# run ahead of the oldest file still being read.
_AHEAD = 512


@dataclass
class BackupPlan:
    """What a pass would do. The passes it builds on and the counts are filled only when
    the plan was asked to count."""

    store: Store
    key: bytes | None
    name: str
    source: bytes
    previous: PassInfo | None
    interrupted: PassInfo | None
    counted: bool = False
    files: int = 0
    bytes_total: int = 0
    files_to_read: int = 0
    bytes_to_read: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "source": os.fsdecode(self.source),
            "previous": self.previous.pass_id if self.previous else None,
            "resumes": self.interrupted.pass_id if self.interrupted else None,
            "files": self.files,
            "bytesTotal": self.bytes_total,
            "filesToRead": self.files_to_read,
            "bytesToRead": self.bytes_to_read,
        }


def plan(
    store: Store,
    source: str | os.PathLike[str],
    name: str,
    *,
    key: bytes | None = None,
    count: bool = True,
) -> BackupPlan:
    """What a pass of ``source`` as volume ``name`` would read; with ``count``, look up the
    passes it builds on and walk the tree to say how much. Without it only the source and
    the name are checked: :func:`apply` looks the passes up itself, so nothing is read
    from the store twice."""
    check_name(name)
    root = os.fsencode(os.path.realpath(source))
    if not os.path.isdir(root):
        raise ConfigError(
            f"{os.fsdecode(root)} is not a directory",
            hint="give the directory the volume is mounted at",
        )
    if not count:
        return BackupPlan(store, key, name, root, None, None)
    try:
        repo: Repository | None = Repository.open(store, key)
    except (StoreKeyNotFound, StoreNotFound):  # no pass into this store yet (apply makes it)
        repo = None
    previous, interrupted, _after = _bases(repo, name) if repo is not None else (None, None, [])
    result = BackupPlan(store, key, name, root, previous, interrupted)
    _count(result, _previous_entries(repo, previous, interrupted))
    return result


def _count(self: BackupPlan, old: SortedEntries) -> None:
    """Fill the plan's counts: walk the tree, compare it with the previous entries."""
    seen: set[tuple[int, int]] = set()
    for rel, st in walk(self.source, lambda rel, why: None):
        if not stat.S_ISREG(st.st_mode):
            continue
        if st.st_nlink > 1:
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
        self.files += 1
        self.bytes_total += st.st_size
        entry = old.find(rel)
        if entry is None or not same_content_key(
            entry, st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns
        ):
            self.files_to_read += 1
            self.bytes_to_read += (
                min(st.st_size, st.st_blocks * 512) or st.st_size
            )  # data, not holes
    self.counted = True


def _bases(
    repo: Repository, name: str, ids: list[str] | None = None
) -> tuple[PassInfo | None, PassInfo | None, list[PassInfo]]:
    """The newest complete pass of ``name``, the interrupted pass after it that got
    furthest (the one a new pass resumes from), if any, and all the interrupted passes
    after it (a new pass supersedes them). ``ids``: its passes, if known."""
    previous, after = newest_complete(repo.store, name, ids)
    best = None
    most = 0
    for candidate in after:
        prefix = pass_prefix(candidate.name, candidate.pass_id)
        parts = sum(1 for _ in repo.store.list(f"{prefix}part-"))
        if parts >= most and parts > 0:
            best, most = candidate, parts
    return previous, best, after


def _previous_entries(
    repo: Repository | None, previous: PassInfo | None, interrupted: PassInfo | None
) -> SortedEntries:
    """The entries a pass compares the tree with, as one sorted stream: an interrupted
    pass's entries up to where it stopped, then the previous complete pass's after that."""

    def chain() -> Iterator[Entry]:
        if repo is None:
            return
        last: tuple[bytes, ...] | None = None
        if interrupted is not None:
            for entry in read_entries(repo, interrupted):
                last = path_key(entry_path(entry))
                yield entry
        if previous is not None:
            for entry in read_entries(repo, previous):
                if last is None or path_key(entry_path(entry)) > last:
                    yield entry

    return SortedEntries(chain())


def _previous_lines(
    repo: Repository,
    previous: PassInfo | None,
    interrupted: PassInfo | None,
    index: ChunkIndex,
) -> SortedLines:
    """What a pass may reuse, as manifest lines in the walk's order: the previous complete
    pass's entries (its chunks are in finished packs: it was committed after them), after
    an interrupted pass's file entries up to where it stopped, those whose chunks are all
    in finished packs (found again in the index: an interrupted pass may name chunks of a
    pack that never finished)."""

    def runs() -> Iterator[list[bytes]]:
        last: bytes | None = None
        if interrupted is not None:
            for part, lines in read_parts(repo, interrupted):
                kept = []
                for line in lines:
                    entry = parse_line(line, part)
                    last = order_key(entry_path(entry))
                    refs = _reusable(entry, index)
                    if refs is not None:
                        kept.append(jsoncodec.dumps({**entry, "c": refs}))
                yield kept
        if previous is not None:
            for _part, lines in read_parts(repo, previous):
                start = 0 if last is None else bisect.bisect_right(lines, last, key=line_key)
                yield lines[start:] if start else lines

    return SortedLines(runs())


class _Sink:
    """Chunks of a pass: found in the index, or encoded and added to a pack."""

    def __init__(self, repo: Repository, index: ChunkIndex, packs: PackWriter) -> None:
        self.repo = repo
        self.index = index
        self.packs = packs

    def locate(self, chunk_id: bytes, data: memoryview) -> Location:
        where = self.index.get(chunk_id)
        if where is not None:
            return where
        return self.packs.add(chunk_id, self.repo.codec.encode_chunk(data), len(data))


def apply(
    plan: BackupPlan,
    *,
    workers: int = 4,
    uploads: int = 4,
    processes: int | None = None,
    progress: Progress | None = None,
) -> BackupReport:
    """Run the pass ``plan`` describes; returns its report (the pass is complete when this
    returns, partial if some files could not be read). ``processes`` scan and read small
    files (default: one per core; 0: in this process), ``workers`` threads stream large
    files, ``uploads`` packs are stored at a time."""
    bound_memory()
    repo = Repository.open(plan.store, plan.key, create=True)
    pool, count = codec_pool(processes, repo.codec, scan_module.start_worker)  # before threads
    try:
        with quick_handoffs():
            report = _Pass(plan, repo, pool, max(count, 1), workers, uploads, progress).run()
    except BaseException:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        raise
    if pool is not None:
        pool.shutdown(wait=True)
    return report


class _Pass:
    """One backup pass: batches of paths to the scanners, entries out in order."""

    def __init__(
        self,
        plan: BackupPlan,
        repo: Repository,
        pool: ProcessPoolExecutor | None,
        lanes: int,
        workers: int,
        uploads: int,
        progress: Progress | None,
    ) -> None:
        self.started = time.monotonic()
        self.plan = plan
        self.repo = repo
        self.pool = pool
        self.lanes = lanes
        self.root = plan.source
        self.readers = ThreadPoolExecutor(workers, thread_name_prefix="chunk")
        indexing = self.readers.submit(repo.load_index)  # while the passes are looked up
        passes = pass_ids(repo.store, plan.name)
        self.previous, self.interrupted, self.superseded = _bases(repo, plan.name, passes)
        # Interrupted passes before the previous complete one: it was killed before it
        # removed them (they are superseded twice over now).
        self.abandoned = (
            interrupted_before(repo.store, plan.name, self.previous.pass_id, passes)
            if self.previous is not None
            else []
        )
        self.pass_id = new_pass_id(passes[-1] if passes else None)
        self.report = BackupReport(
            plan.name,
            self.pass_id,
            previous=self.previous.pass_id if self.previous else None,
            resumed_from=self.interrupted.pass_id if self.interrupted else None,
        )
        self.index = indexing.result()
        self.meter = Meter(
            progress,
            plan.bytes_to_read if plan.counted else None,
            plan.files if plan.counted else None,
        )
        self.packs = PackWriter(repo, self.index, self.pass_id, uploads=uploads)
        self.writer = ManifestWriter(repo, plan.name, self.pass_id)
        self.chunker = Chunker(repo.codec)
        self.sink = _Sink(repo, self.index, self.packs)
        self.workers = workers
        # Entries waiting for a large file's read (the first one's), and all after them.
        self.pending: deque[tuple[Entry | bytes, Future[FileRead] | None]] = deque()
        self.links: dict[tuple[int, int], bytes] = {}
        self._metered = 0  # files the progress meter was told of

    def run(self) -> BackupReport:
        # Each batch's scan, and the previous lines it was scanned with (see run_lines).
        inflight: deque[tuple[Future[ScannedBatch], list[bytes]]] = deque()
        old = _previous_lines(self.repo, self.previous, self.interrupted, self.index)
        paths: list[bytes] = []  # walked, not yet in a batch
        size = BATCH_ENTRIES
        try:
            for run in walk_runs(self.root, self.report.warnings.add):
                paths += run
                if len(paths) < size:
                    continue
                whole = len(paths) - len(paths) % size
                for start in range(0, whole, size):
                    inflight.append(self._scan(paths[start : start + size], old))
                    while inflight and (inflight[0][0].done() or len(inflight) > 2 * self.lanes):
                        self._take(*inflight.popleft())
                paths = paths[whole:]
            if paths:
                inflight.append(self._scan(paths, old))
            while inflight:
                self._take(*inflight.popleft())
            while self.pending:
                self._emit(*self.pending.popleft())
            self._meter_files()
            # The last part is stored while the last packs are: the head alone waits for
            # them (a part without a head is a checkpoint, its chunks checked on resume).
            self.writer.flush()
            self.packs.close()
            # The last index documents are merged while the head is written: a pack is
            # finished with its own document already, merged or not.
            merging = self.readers.submit(self.packs.merge_rest)
            self.readers.shutdown(wait=False)
            report = self._commit()
        except BaseException:
            self.readers.shutdown(wait=False, cancel_futures=True)
            self.packs.abort()
            self.writer.abort()
            raise
        merging.result()
        return report

    def _scan(
        self, batch: list[bytes], old: SortedLines
    ) -> tuple[Future[ScannedBatch], list[bytes]]:
        """Start scanning a batch of paths with the previous lines in their range; the
        scan, and those lines."""
        previous = old.take(batch)
        if self.pool is not None:
            scanned = self.pool.submit(scan_module.scan_in_worker, self.root, batch, previous)
            return scanned, previous
        done: Future[ScannedBatch] = Future()
        done.set_result(scan_module.scan(self.chunker, self.root, batch, previous))
        return done, previous

    def _take(self, future: Future[ScannedBatch], previous: list[bytes]) -> None:
        """Turn a scanned batch into entries (in order): its new chunks into packs at once,
        its large files to the reader threads. ``previous``: the lines it was scanned with."""
        try:
            scanned = future.result()
        except BrokenProcessPool as err:
            raise MigratorError(
                "a volume scanner process died (was it killed, or out of memory?)",
                hint="run the same backup again: it resumes; --processes 0 keeps the work in "
                "one process",
            ) from err
        report = self.report
        report.dirs += scanned.dirs
        report.symlinks += scanned.symlinks
        report.specials += scanned.specials
        refs = self._store_chunks(scanned)
        if scanned.bytes_read:
            self.meter.add_bytes(scanned.bytes_read)
        pending, add_lines = self.pending, self.writer.add_lines
        # Finished lines while none waits for a read, written once (joined), in order.
        ready: list[bytes] = []
        for what, rel, payload, link in scanned.items:
            item: tuple[Entry | bytes, Future[FileRead] | None] | None
            if what == LINES:
                segments, files, size = payload
                lines = run_lines(segments, previous)
                if files:
                    report.files_reused += files
                    report.files += files
                    report.bytes_total += size
                if not pending:
                    ready.append(lines)
                    continue
                item = lines, None
            elif what == READ and link is None:  # a small file read (most, in a first pass)
                line = self._read_line(rel, payload, refs)
                if not pending:
                    ready.append(line)
                    continue
                item = line, None
            else:
                item = self._item(what, rel, payload, link, refs)
                if item is None:
                    continue
                if ready:
                    add_lines(b"\n".join(ready))
                    ready.clear()
                if item[1] is None and not pending:
                    self._emit(*item)
                    continue
            pending.append(item)
            if len(pending) > self.workers + _AHEAD:
                self._drain()
        if ready:
            add_lines(b"\n".join(ready))
        self._drain()
        self._meter_files()

    def _store_chunks(self, scanned: ScannedBatch) -> list[bytes]:
        """Put a batch's new chunks into packs; each one's reference, as manifest JSON."""
        if not scanned.chunk_ids:
            return []
        ids, raws = scanned.chunk_ids, scanned.chunk_raw
        places = self.packs.add_many(ids, raws, scanned.chunk_stored)
        return [
            ref_json(chunk_id, *place, raw)
            for chunk_id, place, raw in zip(ids, places, raws, strict=True)
        ]

    def _meter_files(self) -> None:
        """Tell the progress meter the files counted since it was last told (once a batch,
        not once a file)."""
        if self.report.files != self._metered:
            self.meter.add_files(self.report.files - self._metered)
            self._metered = self.report.files

    def _drain(self) -> None:
        """Write the waiting entries whose file is read (in order), and wait for the first
        one's read while too many wait."""
        pending = self.pending
        while pending and (
            pending[0][1] is None or pending[0][1].done() or len(pending) > self.workers + _AHEAD
        ):
            self._emit(*pending.popleft())

    def _item(
        self,
        what: int,
        rel: bytes,
        payload: Any,
        link: tuple[int, int] | None,
        refs: list[bytes],
    ) -> tuple[Entry | bytes, Future[FileRead] | None] | None:
        """The entry of a scanned path that needs this process: a new file's line (with
        its chunks' places: ``refs``, the batch's), a large file's read, a hard link's first
        path; None if it has none."""
        report = self.report
        if what == GONE:
            report.warnings.add(rel, "vanished during the pass")
            return None
        if what == FAILED:
            report.failures.add(rel, f"cannot read: {payload}")
            return None
        if what == SOCKET:
            report.warnings.add(rel, "a socket: not copied (a program makes it again)")
            return None
        # A file's first path, this one unless it is a later name of a file seen already.
        first_path = self.links.setdefault(link, rel) if link is not None else rel
        known = None
        if what == READ:
            if first_path == rel:
                return self._read_line(rel, payload, refs), None
            head, first, count = payload[:3]
            entry: Entry = jsoncodec.loads(read_line(head, refs[first : first + count]))
        elif what == LARGE:
            entry, known = payload
        else:
            entry = payload
        if first_path != rel:
            for key in ("s", "n", "c", "x", "v"):
                entry.pop(key, None)
            entry["t"] = HARDLINK
            put_path(entry, "h", first_path)
            report.hardlinks += 1
            return entry, None
        if what == REUSED:
            report.files_reused += 1
            return entry, None
        return entry, self.readers.submit(
            read_file,
            self.chunker,
            join(self.root, rel),
            self.sink,
            self.meter.add_bytes,
            known=known,
        )

    def _read_line(self, rel: bytes, payload: Any, refs: list[bytes]) -> bytes:
        """The manifest line of a file a scanner read (a READ item's ``payload``), counted."""
        head, first, count, size, bytes_read, changed = payload
        self._count_read(rel, bytes_read, changed)
        self._count_file(size)
        return read_line(head, refs[first : first + count])

    def _count_read(self, rel: bytes, bytes_read: int, changed: bool) -> None:
        self.report.files_read += 1
        self.report.bytes_read += bytes_read
        if changed:
            self.report.warnings.add(rel, "changed while it was read: the next pass reads it again")

    def _emit(self, entry: Entry | bytes, future: Future[FileRead] | None) -> None:
        """Write an entry (or a line) to the manifest, once its large file is read."""
        if isinstance(entry, bytes):
            self.writer.add_lines(entry)
            return
        report = self.report
        if future is not None:
            path = entry_path(entry)
            try:
                got = future.result()
            except FileNotFoundError:
                report.warnings.add(path, "vanished during the pass")
                return
            except OSError as err:
                report.failures.add(path, f"cannot read: {err.strerror or err}")
                return
            fill(entry, got)
            self._count_read(path, got.bytes_read, got.changed)
        if entry["t"] == FILE:
            self._count_file(entry["s"])
        self.writer.add(entry)

    def _count_file(self, size: int) -> None:
        self.report.files += 1
        self.report.bytes_total += size

    def _commit(self) -> BackupReport:
        report, repo, plan = self.report, self.repo, self.plan
        report.bytes_uploaded, report.packs, report.chunks_new = (
            self.packs.bytes_uploaded,
            self.packs.packs,
            self.packs.chunks_new,
        )
        report.seconds = time.monotonic() - self.started
        self.writer.commit(
            {
                "format": 1,
                "name": plan.name,
                "pass": self.pass_id,
                "previous": report.previous,
                "resumedFrom": report.resumed_from,
                "source": os.fsdecode(self.root),
                "tool": f"migrator {__version__}",
                "host": os.uname().nodename,
                "completedAt": datetime.now(UTC).isoformat(timespec="seconds"),
                "encryption": repo.config.get("encryption"),
                "files": report.files,
                "bytes": report.bytes_total,
                "bytesUploaded": report.bytes_uploaded,
                "warnings": report.warnings.count,
                "problems": report.failures.count,
            }
        )
        # The interrupted passes found at the start are superseded: this one holds all they
        # did (those before the previous complete pass went when it was committed, or go
        # now if it was killed before). Each is looked at again: one completed meanwhile is
        # kept.
        for info in [*self.abandoned, *self.superseded]:
            if not pass_info(repo.store, plan.name, info.pass_id).complete:
                delete_pass(repo, plan.name, info.pass_id)
        return report


def _reusable(previous: Entry | None, index: ChunkIndex) -> list[Ref] | None:
    """The previous entry's chunks, at their current locations, if it may be reused (a file
    not read while changing) and the store holds every chunk (an interrupted pass may name
    chunks whose pack never finished)."""
    if previous is None or previous.get("t") != FILE or previous.get("v"):
        return None
    refs = []
    for ref in previous.get("c", []):
        where = index.get(bytes.fromhex(ref[0]))
        if where is None:
            return None
        refs.append([ref[0], where.pack, where.offset, where.length, where.raw])
    return refs
