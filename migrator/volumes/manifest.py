"""Per-volume manifests: what one pass found, written as it goes, committed last.

A pass over volume NAME lives under ``volumes/manifests/NAME/PASS/`` (PASS is the UTC start
time to the microsecond and a random suffix, after every earlier pass: passes sort by
time)::

    part-00000.jsonl.zst      entries (:mod:`.entries`), JSON lines, zstd; ``.enc`` when
    part-00001.jsonl.zst      sealed with the key. A part is written when it holds
    ...                       PART_ENTRIES entries or PART_SECONDS have passed: the
                              checkpoints a killed pass resumes from
    manifest.json             written LAST: the pass is complete. Plain JSON (no paths):
                              counts, times, the previous pass, the parts with their sha256

The reader holds one part at a time, the writer two (one being stored): a volume of
millions of files streams through in pieces of a few MiB.
"""

from __future__ import annotations

import bisect
import hashlib
import re
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

import zstandard

from migrator import jsoncodec
from migrator.errors import ConfigError, SnapshotCorrupt, StoreKeyNotFound, VolumeNotFound
from migrator.store.base import Store
from migrator.volumes.entries import Entry, entry_path
from migrator.volumes.repository import MANIFESTS, Repository, new_id

_T = TypeVar("_T")

HEAD = "manifest.json"
PART_ENTRIES = 20_000
PART_BYTES = 8 * 1024 * 1024
PART_SECONDS = 30.0
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}(/[A-Za-z0-9][A-Za-z0-9._-]{0,252})*$")
_PASS = re.compile(r"^\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{6}$")
_PASS_TIME = "%Y%m%dT%H%M%S.%fZ"


def check_name(name: str) -> str:
    """A volume name: ``/``-separated segments of letters, digits, ``.``, ``_``, ``-``
    (``NAMESPACE/PVC`` fits)."""
    if not _NAME.match(name) or len(name) > 1000:
        raise ConfigError(
            f"invalid volume name {name!r}",
            hint="use letters, digits, '.', '_', '-' in '/'-separated segments, e.g. shop/data",
        )
    return name


def new_pass_id(after: str | None = None) -> str:
    """A pass id that sorts after ``after`` (the newest pass there is), even when this
    machine's clock is behind the one that wrote it (movers run on many nodes)."""
    now = datetime.now(UTC)
    if after is not None:
        # ISO 8601's basic form: fromisoformat reads it, and costs no strptime (whose first
        # call imports and compiles its locale's patterns: ~20 ms of every pass's start).
        last = datetime.fromisoformat(after.partition("Z")[0] + "Z")
        now = max(now, last + timedelta(microseconds=1))
    return now.strftime(_PASS_TIME) + "-" + new_id(3)


def pass_prefix(name: str, pass_id: str) -> str:
    return f"{MANIFESTS}{name}/{pass_id}/"


@dataclass(frozen=True)
class PassInfo:
    """One pass of a volume as the store shows it: complete (with its head) or not."""

    name: str
    pass_id: str
    head: dict[str, Any] | None

    @property
    def complete(self) -> bool:
        return self.head is not None


def pass_ids(store: Store, name: str) -> list[str]:
    """The ids of volume ``name``'s passes, complete or not, oldest first: one listing."""
    return [child for child in store.children(f"{MANIFESTS}{name}/") if _PASS.match(child)]


def pass_info(store: Store, name: str, pass_id: str) -> PassInfo:
    """Pass ``pass_id`` of volume ``name`` with its head, if it is complete."""
    try:
        head = jsoncodec.loads(store.get_bytes(f"{pass_prefix(name, pass_id)}{HEAD}"))
    except StoreKeyNotFound:
        head = None
    return PassInfo(name, pass_id, head)


def list_passes(store: Store, name: str) -> list[PassInfo]:
    """The passes of volume ``name``, oldest first, with their heads (reading them needs no
    key): a request per pass, for listing them all."""
    return [pass_info(store, name, pass_id) for pass_id in pass_ids(store, name)]


def newest_complete(
    store: Store, name: str, ids: list[str] | None = None
) -> tuple[PassInfo | None, list[PassInfo]]:
    """The newest complete pass of volume ``name`` and the interrupted ones after it,
    oldest first: heads are read from the newest back to the first complete one, so a
    volume with hundreds of delta passes costs two requests, not hundreds."""
    after: list[PassInfo] = []
    for pass_id in reversed(pass_ids(store, name) if ids is None else ids):
        info = pass_info(store, name, pass_id)
        if info.complete:
            return info, after[::-1]
        after.append(info)
    return None, after[::-1]


def interrupted_before(store: Store, name: str, pass_id: str, ids: list[str]) -> list[PassInfo]:
    """The interrupted passes of volume ``name`` just before its complete pass ``pass_id``,
    back to the complete one before them (``ids``: its passes, oldest first). A pass removes
    the interrupted ones it supersedes once its head is written; these are what a pass
    killed in between left. Usually none: one request, for the head of the pass before."""
    found: list[PassInfo] = []
    for older in reversed(ids[: ids.index(pass_id)] if pass_id in ids else []):
        info = pass_info(store, name, older)
        if info.complete:
            break
        found.append(info)
    return found


def list_volumes(store: Store) -> Iterator[str]:
    """Every volume name with at least one pass, sorted (names may nest: ``ns/pvc``)."""
    names = set()
    for key in store.list(MANIFESTS):
        parts = key[len(MANIFESTS) :].split("/")
        for i, part in enumerate(parts):
            if _PASS.match(part) and i > 0:
                names.add("/".join(parts[:i]))
                break
    yield from sorted(names)


def latest_complete(repo: Repository, name: str, pass_id: str | None = None) -> PassInfo:
    """The newest complete pass of ``name`` (or the pass ``pass_id``)."""
    if pass_id is not None:
        valid = _PASS.match(pass_id) is not None
        passes = [info] if valid and (info := pass_info(repo.store, name, pass_id)).complete else []
    else:
        newest, _interrupted = newest_complete(repo.store, name)
        passes = [newest] if newest is not None else []
    if not passes:
        what = f"pass {pass_id} of volume {name!r}" if pass_id else f"volume {name!r}"
        raise VolumeNotFound(
            f"no complete {what} in {repo.store.url}",
            hint="list what the store holds with `migrator volumes ls --store URL`",
        )
    return passes[-1]


def open_pass(
    store: Store, name: str, key: bytes | None, pass_id: str | None = None
) -> tuple[Repository, PassInfo]:
    """The repository of ``store`` and the newest complete pass of volume ``name`` (or the
    pass ``pass_id``): what a restore or a verify reads."""
    check_name(name)
    repo = Repository.open(store, key)
    return repo, latest_complete(repo, name, pass_id)


class ManifestWriter:
    """Writes one pass's entries part by part; :meth:`commit` writes the head last.

    A part is compressed, sealed and stored by a thread of its own while the pass goes on
    (for 200,000 small files, ten parts held the pass up ~0.1 s each): one part at a time,
    in order, so the parts in the store are always the first ones, whole. A failure to
    store one is raised by the next :meth:`flush` or by :meth:`commit`."""

    def __init__(self, repo: Repository, name: str, pass_id: str) -> None:
        self.repo = repo
        self.prefix = pass_prefix(name, pass_id)
        self.parts: list[dict[str, Any]] = []
        self.entries = 0
        # One buffer, not a list of lines: an encoder's small result may hold a few KiB it
        # never gives back (orjson's does), which for a part of 20,000 lines was ~80 MB.
        self._buffer = bytearray()
        self._count = 0
        self._since = time.monotonic()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="manifest")
        self._writing: Future[None] | None = None

    def add(self, entry: Entry) -> None:
        self.add_lines(jsoncodec.dumps(entry))

    def add_lines(self, lines: bytes) -> None:
        """Add entries already encoded as JSON lines, joined by newlines (one or more
        lines, no newline at the end; JSON lines hold none of their own)."""
        self._buffer += lines
        self._buffer += b"\n"
        count = lines.count(b"\n") + 1
        self._count += count
        self.entries += count
        if (
            self._count >= PART_ENTRIES
            or len(self._buffer) >= PART_BYTES
            or time.monotonic() - self._since >= PART_SECONDS
        ):
            self.flush()

    def flush(self) -> None:
        """Start writing what is buffered as the next part (a checkpoint), once the part
        before it is stored."""
        if not self._count:
            return
        self._wait()
        suffix = ".enc" if self.repo.encrypted else ""
        key = f"{self.prefix}part-{len(self.parts):05d}.jsonl.zst{suffix}"
        buffer, count = self._buffer, self._count
        self._buffer, self._count, self._since = bytearray(), 0, time.monotonic()
        self._writing = self._pool.submit(self._write, key, buffer, count)

    def _write(self, key: str, buffer: bytearray, count: int) -> None:
        blob = self.repo.sealed_doc(key, buffer)
        self.repo.store.put_bytes(key, blob)
        self.parts.append(
            {
                "key": key,
                "entries": count,
                "size": len(blob),
                "sha256": hashlib.sha256(blob).hexdigest(),
            }
        )

    def _wait(self) -> None:
        writing, self._writing = self._writing, None
        if writing is not None:
            writing.result()

    def abort(self) -> None:
        """Stop (the pass failed): the part being written, if any, is finished alone."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def commit(self, head: dict[str, Any]) -> dict[str, Any]:
        """Write the last part, make the pass durable, then its head: the pass is complete."""
        self.flush()
        self._wait()
        self._pool.shutdown()
        self.repo.store.sync(self.prefix)
        head = {**head, "entries": self.entries, "parts": self.parts}
        self.repo.store.put_bytes(self.prefix + HEAD, jsoncodec.dumps(head))
        self.repo.store.sync(self.prefix + HEAD)
        return head


def read_parts(repo: Repository, info: PassInfo) -> Iterator[tuple[str, list[bytes]]]:
    """The parts of a pass, one at a time: each part's key and its entries' JSON lines
    (see :func:`read_part_texts`)."""
    for key, text in read_part_texts(repo, info):
        yield key, text.splitlines()


def read_part_texts(repo: Repository, info: PassInfo) -> Iterator[tuple[str, bytes]]:
    """The parts of a pass, one at a time: each part's key and its entries' JSON lines,
    one per line. A complete pass's parts are checked against the sha256 its head
    recorded; an interrupted pass's parts are read as they are (each is whole: parts are
    written all or nothing)."""
    if info.head is not None:
        parts = [(p["key"], p["sha256"]) for p in info.head["parts"]]
    else:
        prefix = pass_prefix(info.name, info.pass_id)
        parts = [(k, None) for k in repo.store.list(prefix + "part-")]
    for key, sha in parts:
        blob = repo.store.get_bytes(key)
        if sha is not None and hashlib.sha256(blob).hexdigest() != sha:
            raise SnapshotCorrupt(
                f"manifest part {key} does not match its checksum: it was modified or damaged",
                part=key,
            )
        try:
            text = zstandard.decompress(repo.unseal(key, blob))
        except zstandard.ZstdError as err:
            raise SnapshotCorrupt(
                f"manifest part {key} does not decompress: {err}", part=key
            ) from err
        yield key, text


def parse_line(line: bytes, key: str = "a manifest part") -> Entry:
    """The entry of one line of manifest part ``key``; a line that is not one is corruption."""
    try:
        entry = jsoncodec.loads(line)
    except ValueError as err:
        raise SnapshotCorrupt(
            f"manifest part {key} holds a line that is not JSON", part=key
        ) from err
    if not isinstance(entry, dict):
        raise SnapshotCorrupt(f"manifest part {key} holds a line that is not an entry", part=key)
    return entry


def read_entries(repo: Repository, info: PassInfo) -> Iterator[Entry]:
    """The entries of a pass, part by part (see :func:`read_parts`)."""
    for key, lines in read_parts(repo, info):
        for line in lines:
            yield parse_line(line, key)


_PLAIN_PATH = b'{"p":"'


def line_path(line: bytes) -> bytes:
    """The path of a manifest line, without decoding the whole entry when its path is plain
    (written first, as UTF-8 without escapes: the usual case)."""
    if line.startswith(_PLAIN_PATH):
        end = line.find(b'"', len(_PLAIN_PATH))
        path = line[len(_PLAIN_PATH) : end]
        if end > 0 and b"\\" not in path:
            return path
    return entry_path(parse_line(line))


def order_key(path: bytes) -> bytes:
    """The sort key of a relative path in the walk's order, as bytes: compares as
    :func:`~.entries.path_key` does (no name holds a NUL byte), for less."""
    return path.replace(b"/", b"\0")


class _InWalkOrder(Generic[_T]):
    """Items in the walk's order, looked up by path in that same order: a merge of a stream
    with a walk of a tree that holds neither whole."""

    def __init__(self, items: Iterator[tuple[bytes, _T]]) -> None:
        self._items = items  # each keyed by its path's order_key
        self._head: tuple[bytes, _T] | None = next(self._items, None)

    def find(self, rel: bytes) -> _T | None:
        """The item of ``rel``, if there is one (ask in walk order: items before ``rel``
        are passed over for good)."""
        key = order_key(rel)
        while self._head is not None and self._head[0] < key:
            self._head = next(self._items, None)
        if self._head is not None and self._head[0] == key:
            return self._head[1]
        return None


class SortedEntries(_InWalkOrder[Entry]):
    """Entries in the walk's order, looked up by path in that order."""

    def __init__(self, entries: Iterator[Entry]) -> None:
        super().__init__((order_key(entry_path(entry)), entry) for entry in entries)


class SortedPassLines(_InWalkOrder[tuple[int, bytes]]):
    """A pass's manifest lines in the walk's order, each with its number (0 for the first
    line of the pass), looked up by path in that order; a line whose path is plain is not
    decoded (:func:`line_path`)."""

    def __init__(self, repo: Repository, info: PassInfo) -> None:
        lines = (line for _key, part in read_parts(repo, info) for line in part)
        super().__init__(
            (order_key(line_path(line)), (number, line)) for number, line in enumerate(lines)
        )


class SortedLines:
    """Manifest lines in the walk's order, handed out a batch of paths at a time: each
    batch gets the lines whose paths fall within its first and last path, found by binary
    search (a worker then matches them with the batch's paths: :func:`match_lines`). Fed
    a run of lines at a time (a part), it holds one run and what it hands out."""

    # Lines in one batch's range beyond this many per path are filtered here, to the
    # batch's own paths: a directory removed since the previous pass may sort between
    # two paths of the tree with any number of entries.
    FILTER_BEYOND = 4

    def __init__(self, runs: Iterator[list[bytes]]) -> None:
        self._runs = runs
        self._lines: list[bytes] = []
        self._at = 0

    def take(self, paths: list[bytes]) -> list[bytes]:
        """The lines of the paths in ``paths`` (in walk order, after every path asked
        before), with at most a few others in their range; lines before ``paths`` are
        passed over for good."""
        if not paths:
            return []
        first, last = order_key(paths[0]), order_key(paths[-1])
        limit = self.FILTER_BEYOND * len(paths) + 64
        wanted: set[bytes] | None = None
        out: list[bytes] = []
        while True:
            lines = self._lines
            begin = bisect.bisect_left(lines, first, self._at, key=line_key)
            end = bisect.bisect_right(lines, last, begin, key=line_key)
            if wanted is None and end - begin + len(out) > limit:
                wanted = {order_key(p) for p in paths}
                out = [line for line in out if line_key(line) in wanted]
            if wanted is not None:
                out += [line for line in lines[begin:end] if line_key(line) in wanted]
            else:
                out += lines[begin:end]
            self._at = end
            if end < len(lines):
                return out
            run = next(self._runs, None)
            if run is None:
                self._lines, self._at = [], 0
                return out
            self._lines, self._at = run, 0


def line_key(line: bytes) -> bytes:
    """The :func:`order_key` of a manifest line's path."""
    return order_key(line_path(line))


def match_lines(paths: list[bytes], lines: list[bytes]) -> list[int | None]:
    """For each path (in walk order), the index of its line among ``lines`` (in walk
    order), or None."""
    if _aligned(paths, lines):
        return list(range(len(lines)))
    found: list[int | None] = []
    keys = [line_key(line) for line in lines]
    at, count = 0, len(keys)
    for path in paths:
        want = order_key(path)
        while at < count and keys[at] < want:
            at += 1
        found.append(at if at < count and keys[at] == want else None)
    return found


def _aligned(paths: list[bytes], lines: list[bytes]) -> bool:
    """Whether ``lines`` are the lines of ``paths``, one each, in order: the usual case on a
    volume that did not change much, told without working out each line's path. Only plain
    paths count (a quote or a backslash is written escaped; a name that is not UTF-8 under
    another key): a plain path followed by a quote is a whole JSON string, so a line that
    starts with it is that path's."""
    if len(paths) != len(lines):
        return False
    joined = b"".join(paths)
    if b'"' in joined or b"\\" in joined:
        return False
    return all(
        line.startswith(b'{"p":"%s"' % path) for path, line in zip(paths, lines, strict=True)
    )


def delete_pass(repo: Repository, name: str, pass_id: str) -> None:
    repo.store.delete_prefix(pass_prefix(name, pass_id))
