"""The backup pass's batched paths: manifest lines matched by path without decoding them,
chunks added to packs a batch at a time, entries reused from the previous pass's lines."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

from migrator import jsoncodec, volumes
from migrator.store import LocalStore
from migrator.volumes.entries import entry_path, path_key, put_path
from migrator.volumes.manifest import (
    SortedLines,
    line_key,
    line_path,
    list_passes,
    match_lines,
    order_key,
    read_entries,
)
from migrator.volumes.packs import PackWriter, pack_chunks
from migrator.volumes.repository import Repository

ODD_NAMES = [
    b"",
    b"a",
    b"a b",
    b'q"uote',
    b"back\\slash",
    b"tab\there",
    b"\xff\xfe",
    "ü ✓".encode(),
]


def _paths() -> list[bytes]:
    paths = []
    for first in ODD_NAMES[1:]:
        paths.append(first)
        for second in ODD_NAMES[1:]:
            paths.append(first + b"/" + second)
    return [b"", *paths, b"a/b/c", b"a!", b"a/\x01", b"ab", b"a\x7f"]


def test_order_key_sorts_paths_as_the_walk_does():
    paths = _paths()
    assert sorted(paths, key=order_key) == sorted(paths, key=path_key)


def test_line_path_reads_the_path_of_any_entry_line():
    for path in _paths():
        entry: dict = {}
        put_path(entry, "p", path)
        entry.update(t="f", s=3, c=[["00", "pack", 0, 4, 3]])
        line = jsoncodec.dumps(entry)
        assert line_path(line) == path == entry_path(jsoncodec.loads(line))
        assert line_key(line) == order_key(path)


def _runs(lines: list[bytes], size: int) -> Iterator[list[bytes]]:
    for i in range(0, len(lines), size):
        yield lines[i : i + size]


def test_sorted_lines_hand_each_batch_the_lines_of_its_paths():
    paths = sorted(_paths(), key=path_key)
    kept = paths[::3]  # the previous pass had a third of them
    lines = {p: _line(p) for p in kept}
    for run_size in (1, 2, 7, 1000):  # manifest parts of any size
        for batch_size in (1, 3, 256):
            previous = SortedLines(_runs([lines[p] for p in kept], run_size))
            for i in range(0, len(paths), batch_size):
                batch = paths[i : i + batch_size]
                got = match_lines(batch, previous.take(batch))
                assert got == [lines.get(p) for p in batch]


def test_a_removed_directory_between_two_paths_is_not_handed_out_whole():
    """A directory removed since the previous pass may sort between two paths of the tree:
    its entries, any number of them, are passed over, not sent along with the batch."""
    gone = [b"b/" + str(i).encode() for i in range(100_000)]
    old = sorted([b"a", b"b", *gone, b"c", b"d"], key=path_key)
    previous = SortedLines(_runs([_line(p) for p in old], 20_000))
    batch = [b"a", b"c"]
    assert previous.take(batch) == [_line(b"a"), _line(b"c")]
    assert match_lines([b"d"], previous.take([b"d"])) == [_line(b"d")]


def _line(path: bytes) -> bytes:
    entry: dict = {}
    put_path(entry, "p", path)
    entry["t"] = "f"
    return jsoncodec.dumps(entry)


def test_add_many_stores_each_new_chunk_once_where_it_says(tmp_path: Path):
    repo = Repository.open(LocalStore(tmp_path / "store"), None, create=True)
    index = repo.load_index()
    packs = PackWriter(repo, index, "pass-1")
    first = packs.add_many([b"A" * 16, b"B" * 16], [3, 4], [b"\x00abc", b"\x00defg"])
    again = packs.add_many(
        [b"B" * 16, b"C" * 16, b"C" * 16], [4, 2, 2], [b"\x00defg", b"\x00hi", b"\x00hi"]
    )
    packs.close()
    assert packs.chunks_new == 3
    assert again[0] == first[1] and again[1] == again[2]
    for (pack, offset, length), stored in zip(
        first + again, [b"\x00abc", b"\x00defg", b"\x00defg", b"\x00hi", b"\x00hi"], strict=True
    ):
        assert repo.read_pack(pack)[offset : offset + length] == stored
    (pack,) = {place[0] for place in first + again}
    assert len(pack_chunks(repo.read_pack(pack))) == 3
    assert len(repo.load_index()) == 3


def test_a_quiet_pass_reuses_every_file_whatever_its_name(tmp_path: Path):
    source, store = tmp_path / "src", LocalStore(tmp_path / "store")
    root = os.fsencode(source)
    os.mkdir(root)
    for i, name in enumerate(ODD_NAMES[1:]):
        os.mkdir(root + b"/" + name)
        for j, inner in enumerate(ODD_NAMES[1:]):
            with open(root + b"/" + name + b"/" + inner, "wb") as out:
                out.write(os.urandom(100 * (i + j)))
    then = time.time() - 60  # settled: not "just modified"
    for top, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            os.utime(os.path.join(top, name), (then, then))

    def backup() -> volumes.BackupReport:
        return volumes.apply_backup(volumes.plan_backup(store, source, "ns/odd"), processes=1)

    full = backup()
    quiet = backup()
    assert full.files == quiet.files == len(ODD_NAMES[1:]) ** 2
    assert quiet.files_read == 0 and quiet.files_reused == quiet.files
    assert quiet.bytes_uploaded == 0
    repo = Repository.open(store, None)
    first, second = (list(read_entries(repo, info)) for info in list_passes(store, "ns/odd"))
    assert first == second


def test_a_file_only_read_since_the_last_pass_is_not_read_again_and_gets_its_new_atime(
    tmp_path: Path,
):
    """A reused file's line is copied as it was only when nothing in its lstat moved: a
    file that was only read since (its atime moved, on a relatime mount) is not read
    again, and its entry says when it was last read."""
    source, store = tmp_path / "src", LocalStore(tmp_path / "store")
    source.mkdir()
    then = time.time() - 600
    for name in ("a", "b", "c"):
        (source / name).write_bytes(os.urandom(5000))
        os.utime(source / name, (then, then))

    def backup() -> volumes.BackupReport:
        return volumes.apply_backup(volumes.plan_backup(store, source, "ns/at"), processes=1)

    backup()
    (source / "b").read_bytes()  # atime <= mtime: relatime moves it, ctime stays
    again = backup()
    assert again.files_read == 0 and again.files_reused == 3 and again.bytes_uploaded == 0
    repo = Repository.open(store, None)
    first, second = (
        {entry_path(e): e for e in read_entries(repo, info)} for info in list_passes(store, "ns/at")
    )
    assert first[b"a"] == second[b"a"] and first[b"c"] == second[b"c"]
    assert second[b"b"]["at"] == os.stat(source / "b").st_atime_ns != first[b"b"]["at"]
    assert {k: v for k, v in second[b"b"].items() if k != "at"} == {
        k: v for k, v in first[b"b"].items() if k != "at"
    }
