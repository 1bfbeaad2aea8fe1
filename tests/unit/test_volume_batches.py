"""The backup pass's batched paths: manifest lines matched by path without decoding them,
chunks added to packs a batch at a time, entries reused from the previous pass's lines; the
chunk index's records."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from migrator import jsoncodec, volumes
from migrator.errors import ConfigError, SnapshotCorrupt
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
    read_parts,
)
from migrator.volumes import records
from migrator.volumes import files as files_module
from migrator.volumes import scan as scan_module
from migrator.volumes.files import walk
from migrator.volumes.files import Chunker
from migrator.volumes.repository import ChunkCodec
from migrator.volumes.scan import FAILED, GONE, READ, _unchanged, _unchanged_line, scan, walk_runs
from migrator.volumes.packs import PackWriter, pack_chunks
from migrator.volumes.repository import CONFIG, INDEX, PACK_TARGET, Location, Repository

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


def _matched(paths: list[bytes], lines: list[bytes]) -> list[bytes | None]:
    """Each path's line among ``lines``, as :func:`match_lines` finds it (by index)."""
    return [None if index is None else lines[index] for index in match_lines(paths, lines)]


def test_sorted_lines_hand_each_batch_the_lines_of_its_paths():
    paths = sorted(_paths(), key=path_key)
    kept = paths[::3]  # the previous pass had a third of them
    lines = {p: _line(p) for p in kept}
    for run_size in (1, 2, 7, 1000):  # manifest parts of any size
        for batch_size in (1, 3, 256):
            previous = SortedLines(_runs([lines[p] for p in kept], run_size))
            for i in range(0, len(paths), batch_size):
                batch = paths[i : i + batch_size]
                got = _matched(batch, previous.take(batch))
                assert got == [lines.get(p) for p in batch]


def test_a_run_of_reused_and_new_lines_comes_back_whole_with_only_new_lines_sent():
    previous = [_line(b"p%d" % i) for i in range(10)]
    new = [_line(b"n%d" % i) for i in range(3)]
    run = [0, 1, 2, new[0], new[1], 3, 5, 6, new[2], 9]
    segments = scan_module._segments(run)
    # Previous lines go as ranges (a gap starts another), new ones joined.
    assert segments == [(0, 3), new[0] + b"\n" + new[1], (3, 4), (5, 7), new[2], (9, 10)]
    lines = [previous[one] if isinstance(one, int) else one for one in run]
    assert scan_module.run_lines(segments, previous) == b"\n".join(lines)
    assert scan_module._segments([]) == [] and scan_module._segments([new[0]]) == [new[0]]


def test_a_removed_directory_between_two_paths_is_not_handed_out_whole():
    """A directory removed since the previous pass may sort between two paths of the tree:
    its entries, any number of them, are passed over, not sent along with the batch."""
    gone = [b"b/" + str(i).encode() for i in range(100_000)]
    old = sorted([b"a", b"b", *gone, b"c", b"d"], key=path_key)
    previous = SortedLines(_runs([_line(p) for p in old], 20_000))
    batch = [b"a", b"c"]
    assert previous.take(batch) == [_line(b"a"), _line(b"c")]
    assert _matched([b"d"], previous.take([b"d"])) == [_line(b"d")]


def test_the_walk_in_runs_gives_every_path_in_the_manifest_s_order(tmp_path: Path):
    root = os.fsencode(tmp_path / "tree")
    os.mkdir(root)
    for first in ODD_NAMES[1:]:
        os.mkdir(root + b"/" + first)
        for second in ODD_NAMES[1:4]:
            os.mkdir(root + b"/" + first + b"/" + second)  # empty directories too
            with open(root + b"/" + first + b"/" + second + b"x", "wb"):
                pass
    os.symlink(b"a", root + b"/link-to-a")  # not followed
    for i in range(300):
        with open(root + b"/a/a/" + b"%03d" % i, "wb"):
            pass
    warnings: list = []
    runs = list(walk_runs(root, lambda *w: warnings.append(w)))
    assert [p for run in runs for p in run] == [rel for rel, _st in walk(root, warnings.append)]
    assert not warnings
    # A run ends with a directory (the walk goes into it next) or with its directory's last
    # entry.
    for run, after in zip(runs, runs[1:], strict=False):
        last = os.path.join(root, run[-1]) if run[-1] else root
        assert os.path.isdir(last) and not os.path.islink(last) or (
            path_key(after[0])[:-1] != path_key(run[-1])[:-1]
        )


def _tree_beside_a_secret(tmp_path: Path) -> tuple[bytes, Path]:
    """A tree of two directories, d and e, each holding a file f; and a directory outside
    it holding a file f too, a secret."""
    root, outside = os.fsencode(tmp_path / "tree"), tmp_path / "outside"
    for directory in (b"d", b"e"):
        os.makedirs(root + b"/" + directory)
        with open(root + b"/" + directory + b"/f", "wb") as out:
            out.write(b"inside")
    outside.mkdir()
    (outside / "f").write_bytes(b"a secret of the node")
    return root, outside


_CODEC = ChunkCodec(b"s" * 32, 128 * 1024, 512 * 1024, 2 * 1024 * 1024)


def test_a_directory_swapped_for_a_symlink_after_the_walk_is_not_read_through(tmp_path: Path):
    root, outside = _tree_beside_a_secret(tmp_path)
    paths = [p for run in walk_runs(root, print) for p in run]
    assert paths == [b"", b"d", b"d/f", b"e", b"e/f"]
    os.rename(root + b"/d", root + b"/gone")
    os.symlink(outside, root + b"/d")  # after the walk, before the scan
    os.rename(root + b"/e", root + b"/e2")
    chunker = Chunker(_CODEC)
    batch = scan(chunker, root, paths[2:], [])
    assert [(item[0], item[1]) for item in batch.items] == [(FAILED, b"d/f"), (GONE, b"e"),
                                                          (GONE, b"e/f")]
    assert batch.chunk_ids == [] and batch.bytes_read == 0
    assert scan(chunker, root, [b"gone/f"], []).items[0][0] == READ


def _settled_file(path: Path, data: bytes) -> bytes:
    """A file written and dated ten minutes back (not re-read as just modified)."""
    path.write_bytes(data)
    then = time.time() - 600
    os.utime(path, (then, then))
    return os.fsencode(path)


def test_a_small_file_read_whole_gives_what_the_chunker_gives(tmp_path: Path):
    """A pass's small files are read without the chunker: the same chunk, the same
    record of the read."""
    chunker = Chunker(_CODEC)
    sizes = [0, 1, 3000, _CODEC.chunk_min]
    paths = [_settled_file(tmp_path / f"f{size}", os.urandom(size)) for size in sizes]
    recent = tmp_path / "recent"
    recent.write_bytes(b"just written")
    for path in [*paths, os.fsencode(recent)]:
        data, whole = files_module.read_whole(path, None, os.lstat(path))
        chunks: list[tuple[bytes, bytes]] = []

        class Sink:
            def locate(self, chunk_id, chunk):
                chunks.append((chunk_id, bytes(chunk)))
                return Location("p", 0, len(chunk), len(chunk))

        read = files_module.read_file(chunker, path, Sink())
        assert chunks == ([(_CODEC.chunk_id(data), data)] if data else [])
        assert data == open(path, "rb").read()
        fields = ("extents", "size", "bytes_read", "changed", "volatile", "inode", "ctime_ns",
                  "mtime_ns")
        assert [getattr(whole, f) for f in fields] == [getattr(read, f) for f in fields], path
        assert whole.volatile == (path == os.fsencode(recent))


def test_a_small_file_replaced_grown_or_shrunk_after_its_lstat_counts_as_changed(
        tmp_path: Path):
    original = os.urandom(3000)
    names = ["kept", "replaced", "grown", "shrunk", "dir", "fifo"]
    paths = {name: _settled_file(tmp_path / name, original) for name in names}
    seen = {name: os.lstat(path) for name, path in paths.items()}
    # After the lstat, before the read: another file of the same size and times in its
    # place (only its inode differs), data appended, the file cut short, a directory.
    other = _settled_file(tmp_path / "other", os.urandom(3000))
    os.utime(other, ns=(seen["replaced"].st_atime_ns, seen["replaced"].st_mtime_ns))
    os.rename(other, paths["replaced"])
    with open(paths["grown"], "ab") as out:
        out.write(b"more")
    os.truncate(paths["shrunk"], 10)
    os.unlink(paths["dir"])
    os.mkdir(paths["dir"])
    os.unlink(paths["fifo"])
    os.mkfifo(paths["fifo"])

    def read(name: str) -> tuple[bytes, files_module.FileRead]:
        return files_module.read_whole(paths[name], None, seen[name])

    data, got = read("kept")
    assert data == original and not got.changed and not got.volatile
    _data, got = read("replaced")
    assert got.changed and got.volatile and got.inode == seen["replaced"].st_ino
    data, got = read("grown")
    assert data == original and got.size == 3000 and got.changed and got.volatile
    data, got = read("shrunk")
    assert data == original[:10] and got.size == got.bytes_read == 10 and got.changed
    with pytest.raises(FileNotFoundError):
        read("dir")
    # A FIFO is opened without waiting for a writer (an open that blocked would hang the
    # pass): the alarm fails the test instead.
    def hung(_signum, _frame):
        raise AssertionError("opening a FIFO in a file's place blocked")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(5)
    try:
        with pytest.raises(FileNotFoundError):
            read("fifo")
        with pytest.raises(FileNotFoundError):
            files_module.read_file(Chunker(_CODEC), paths["fifo"], None)  # type: ignore[arg-type]
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_the_walk_gives_each_path_its_lstat_at_any_depth_and_leaves_no_directory_open(
        tmp_path: Path):
    root = os.fsencode(tmp_path / "tree")
    deep = root
    for level in range(files_module._OPEN_LEVELS + 6):  # past the levels kept open
        deep += b"/" + ODD_NAMES[1 + level % (len(ODD_NAMES) - 1)]
        os.makedirs(deep)
        with open(deep + b"x", "wb") as out:  # a file beside each directory
            out.write(b"%d" % level)
    os.symlink(b"..", root + b"/up")  # not followed
    expected = [(b"", os.lstat(root))]
    for top, dirs, names in os.walk(root):
        for name in dirs + names:
            path = os.path.join(top, name)
            expected.append((os.path.relpath(path, root), os.lstat(path)))
    expected.sort(key=lambda item: order_key(item[0]))
    before = _open_fds()
    got = list(walk(root, print))
    assert [(rel, st.st_ino, st.st_mode, st.st_size) for rel, st in got] == [
        (rel, st.st_ino, st.st_mode, st.st_size) for rel, st in expected]
    assert _open_fds() == before
    deep_walk = walk(root, print)
    for _ in range(files_module._OPEN_LEVELS + 2):
        next(deep_walk)
    deep_walk.close()  # abandoned half way down
    assert _open_fds() == before


def test_a_directory_swapped_for_a_symlink_while_walked_is_not_listed_through(tmp_path: Path):
    root, outside = _tree_beside_a_secret(tmp_path)
    warnings: list = []
    paths = []
    for rel, _st in walk(root, lambda *w: warnings.append(w)):
        paths.append(rel)
        if rel == b"d":  # listed as a directory, then swapped before the walk goes in
            os.rename(root + b"/d", root + b"/gone")
            os.symlink(outside, root + b"/d")
    assert paths == [b"", b"d", b"e", b"e/f"] and not warnings


def test_lines_of_a_batch_s_own_paths_in_order_match_one_to_one_and_look_alikes_do_not():
    paths = sorted(_paths(), key=path_key)
    plain = [p for p in paths if b'"' not in p and b"\\" not in p]
    for batch in (paths, plain, plain[1:4]):
        lines = [_line(p) for p in batch]
        assert _matched(batch, lines) == lines
        assert _matched(batch, [_line(p + b"x") for p in batch]) == [None] * len(batch)
    # A path that ends with a backslash is written escaped: the start of another's line.
    assert _line(b'a"b').startswith(b'{"p":"a\\"')
    assert _matched([b"a\\"], [_line(b'a"b')]) == [None]
    assert _matched([b"ab"], [_line(b"ab/c")]) == [None]
    assert _matched([b"a", b"b"], [_line(b"b"), _line(b"c")]) == [None, _line(b"b")]


def test_an_unchanged_file_is_told_from_its_line_as_from_its_entry(tmp_path: Path):
    source, store = tmp_path / "src", LocalStore(tmp_path / "store")
    names = [n for n in ODD_NAMES[1:] if n != b"\xff\xfe"] + [b"recent", b"sparse"]
    source.mkdir()
    then = time.time() - 600
    for name in names:
        path = os.fsencode(source) + b"/" + name
        with open(path, "wb") as out:
            out.write(os.urandom(3000))
            if name == b"sparse":
                out.truncate(1 << 20)
        if name != b"recent":  # "recent": modified just before the pass, marked to reread
            os.utime(path, (then, then))
    volumes.apply_backup(volumes.plan_backup(store, source, "ns/u"), processes=0)
    repo = Repository.open(store, None)
    (info,) = list_passes(store, "ns/u")
    lines = {line_path(line): line for _key, part in read_parts(repo, info) for line in part}

    def agree(name: bytes) -> bool:
        line, st = lines[name], os.lstat(os.fsencode(source) + b"/" + name)
        fast, slow = _unchanged_line(line, st), _unchanged(jsoncodec.loads(line), st)
        assert fast == slow, name
        # Fields in another order: not told from the bytes; the decoded entry says.
        shuffled = jsoncodec.dumps(dict(sorted(jsoncodec.loads(line).items())))
        assert not _unchanged_line(shuffled, st)
        return fast

    assert [agree(n) for n in names] == [True] * (len(names) - 2) + [False, True]
    changes = [
        lambda p: os.utime(p, (then, then + 1)),
        lambda p: os.utime(p, (then + 1, then)),
        lambda p: os.chmod(p, 0o600),
        lambda p: os.truncate(p, 10),
    ]
    for name, change in zip(names, changes, strict=False):
        change(os.fsencode(source) + b"/" + name)
        assert not agree(name)


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


def test_the_index_loads_every_chunk_where_its_pack_holds_it(tmp_path: Path):
    """Binary records, as written now (single-pack and merged documents, sealed), and the
    JSON documents of stores written by earlier releases, side by side in one store."""
    repo = Repository.open(LocalStore(tmp_path / "store"), b"k" * 32, create=True)
    packs = PackWriter(repo, repo.load_index(), "pass-1")
    blobs = [os.urandom(size) for size in (1, 700, 5000, PACK_TARGET, 100)]
    ids = [repo.codec.chunk_id(blob) for blob in blobs]
    places = packs.add_many(ids, [len(b) + 9 for b in blobs], [b"\x00" + b for b in blobs])
    packs.close()
    assert len({place[0] for place in places}) == 2  # two packs, each with its own record
    older = [(os.urandom(16), "0a" * 12, 12, 34, 56), (os.urandom(16), "0b" * 12, 0, 7, 8)]
    repo.put_doc(f"{INDEX}older-single.idx", {"pack": older[0][1], "size": 99,
                                               "chunks": [[older[0][0].hex(), 12, 34, 56]]})
    repo.put_doc(f"{INDEX}older-merged.idx",
                 {"packs": [{"pack": older[1][1], "chunks": [[older[1][0].hex(), 0, 7, 8]]}]})
    index = repo.load_index()
    assert len(index) == len(blobs) + len(older)
    for chunk_id, (pack, offset, length), blob in zip(ids, places, blobs, strict=True):
        assert index.get(chunk_id) == Location(pack, offset, length, len(blob) + 9)
    for chunk_id, pack, offset, length, raw in older:
        assert index.get(chunk_id) == Location(pack, offset, length, raw)
    # Each pack's trailer lists what the index says of it.
    for pack in {place[0] for place in places}:
        assert {(c[0], pack, *c[1:]) for c in pack_chunks(repo.read_pack(pack))} == {
            (chunk_id, pack, offset, length, len(blob) + 9)
            for chunk_id, (where, offset, length), blob in zip(ids, places, blobs, strict=True)
            if where == pack
        }


def test_a_store_of_the_earlier_format_is_read_and_the_next_backup_upgrades_it(tmp_path: Path):
    """Format 1 held the index in JSON: a backup into such a store finds every chunk it
    holds (uploads nothing for a tree it holds) and marks the store format 2."""
    source, store = tmp_path / "src", LocalStore(tmp_path / "store")
    source.mkdir()
    for i in range(40):
        (source / f"f{i}").write_bytes(os.urandom(20_000))
    volumes.apply_backup(volumes.plan_backup(store, source, "ns/old"), processes=0)
    repo = Repository.open(store, None)
    for key in list(store.list(INDEX)):  # as a release of format 1 wrote them
        packs = [
            {"pack": r.pack, "chunks": [[c[0].hex(), *c[1:]] for c in r.chunks()]}
            for r in repo.read_doc(key, records.records)
        ]
        repo.put_doc(key, {"packs": packs})
    config = jsoncodec.loads(store.get_bytes(CONFIG))
    store.put_bytes(CONFIG, jsoncodec.dumps({**config, "format": 1}))
    assert len(Repository.open(store, None).load_index()) == 40
    assert jsoncodec.loads(store.get_bytes(CONFIG))["format"] == 1  # reading leaves it

    again = volumes.apply_backup(volumes.plan_backup(store, source, "ns/new"), processes=0)
    assert again.files_read == 40 and again.bytes_uploaded < 20_000  # manifest, no chunk
    assert jsoncodec.loads(store.get_bytes(CONFIG)) == {**config, "format": 2}
    store.put_bytes(CONFIG, jsoncodec.dumps({**config, "format": 3}))
    with pytest.raises(ConfigError, match="has format 3; this migrator reads formats 1, 2"):
        Repository.open(store, None)


def test_a_pack_trailer_of_an_earlier_release_is_read():
    trailer = jsoncodec.dumps({"pack": "ab" * 12, "size": 3, "chunks": [["cd" * 16, 0, 3, 9]]})
    plain = b"\x00xyz" + trailer + len(trailer).to_bytes(8, "big") + b"MGRPACK1"
    assert pack_chunks(plain) == [(bytes.fromhex("cd" * 16), 0, 3, 9)]
    with pytest.raises(ValueError, match="no trailer"):
        pack_chunks(plain[:-1])


@pytest.mark.parametrize(
    "body",
    [
        records.document([records.record("p" * 24, [(b"i" * 16, 0, 5, 5)] * 3)])[:-1],
        records.MAGIC + b"\x05",
        b'{"pack": "p", "chunks": [["zz", 0, 1, 1]]}',
        b'{"packs": [{"chunks": []}]}',
    ],
    ids=["cut-short", "no-head", "bad-hex", "no-pack"],
)
def test_an_unreadable_index_document_is_named(tmp_path: Path, body: bytes):
    repo = Repository.open(LocalStore(tmp_path / "store"), None, create=True)
    repo.put_encoded(f"{INDEX}broken.idx", body)
    with pytest.raises(SnapshotCorrupt, match="broken.idx is not a readable document"):
        repo.load_index()


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
