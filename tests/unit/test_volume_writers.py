"""The restore's file writer: atomic, nameless where it can be, checked chunk by chunk."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from migrator.errors import SnapshotCorrupt
from migrator.volumes.repository import ChunkCodec
from migrator.volumes.writers import FileWriter, Meta, WholeFile, write_files

CODEC = ChunkCodec(bytes(range(32)), 256 * 1024, 1024 * 1024, 4 * 1024 * 1024)
META: Meta = (os.geteuid(), os.getegid(), 0o640, 1_000_000_000, 2_000_000_123)


def whole(parent: Path, name: str, parts: list[tuple[int, bytes]], size: int) -> WholeFile:
    chunks = []
    for offset, data in parts:
        codec, payload = CODEC.encode_chunk(data)
        chunks.append((offset, bytes((codec,)) + bytes(payload), CODEC.chunk_id(data), len(data)))
    return WholeFile(os.fsencode(parent), name.encode(), chunks, size, META)


@pytest.fixture(params=[True, False], ids=["nameless", "temporary-name"])
def writer(request) -> FileWriter:
    made = FileWriter(CODEC)
    if request.param and not made.nameless:
        pytest.fail("this machine's /tmp cannot make nameless files (O_TMPFILE)")
    made.nameless = request.param
    yield made
    made.close()


def test_a_file_is_written_with_its_holes_and_metadata_and_nothing_else(
        writer: FileWriter, tmp_path: Path):
    item = whole(tmp_path, "db", [(0, b"a" * 5000), (1 << 20, b"b" * 3000)], 3 << 20)
    writer.write(item, "pack-1")
    path = tmp_path / "db"
    st = path.stat()  # before reading it moves the atime
    data = path.read_bytes()
    assert len(data) == 3 << 20
    assert data[:5000] == b"a" * 5000 and data[1 << 20 : (1 << 20) + 3000] == b"b" * 3000
    assert data[5000 : 1 << 20] == bytes((1 << 20) - 5000)
    assert st.st_blocks * 512 < 1 << 20  # the holes stayed holes
    assert (st.st_mode & 0o7777, st.st_mtime_ns, st.st_atime_ns) == (0o640, 2_000_000_123,
                                                                     1_000_000_000)
    assert os.listdir(tmp_path) == ["db"]


def test_an_existing_file_is_replaced_whole(writer: FileWriter, tmp_path: Path):
    path = tmp_path / "conf"
    path.write_bytes(b"old content that is longer than the new")
    before = path.stat().st_ino
    writer.write(whole(tmp_path, "conf", [(0, b"new")], 3), "pack-1")
    assert path.read_bytes() == b"new"
    assert path.stat().st_ino != before  # a new file took the name: readers saw old or new
    assert os.listdir(tmp_path) == ["conf"]


def test_a_chunk_that_fails_its_check_writes_nothing(writer: FileWriter, tmp_path: Path):
    (tmp_path / "kept").write_bytes(b"as it was")
    item = whole(tmp_path, "kept", [(0, b"x" * 4000)], 4000)
    offset, stored, chunk_id, raw = item.chunks[0]
    item.chunks[0] = (offset, stored[:-1] + bytes((stored[-1] ^ 1,)), chunk_id, raw)
    with pytest.raises(SnapshotCorrupt, match="pack-7"):
        writer.write(item, "pack-7")
    assert (tmp_path / "kept").read_bytes() == b"as it was"
    assert os.listdir(tmp_path) == ["kept"]


def test_a_directory_in_the_way_is_replaced_only_when_empty(writer: FileWriter, tmp_path: Path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "inside").write_bytes(b"not in the manifest")
    results = write_files(writer, [whole(tmp_path, "empty", [(0, b"e")], 1),
                                   whole(tmp_path, "full", [(0, b"f")], 1)], "pack-1")
    assert results[0] is None and (tmp_path / "empty").read_bytes() == b"e"
    assert results[1] is not None and "--delete removes it" in results[1]
    assert (tmp_path / "full" / "inside").exists()
    assert sorted(os.listdir(tmp_path)) == ["empty", "full"]


def test_a_staged_file_is_made_under_its_own_name_and_removed_if_a_chunk_fails(tmp_path: Path):
    writer = FileWriter(CODEC)
    try:
        writer.write(whole(tmp_path, "db", [(0, b"a" * 5000), (1 << 20, b"b" * 3000)],
                           3 << 20), "pack-1", staged=True)
        st = (tmp_path / "db").stat()
        assert st.st_size == 3 << 20 and st.st_blocks * 512 < 1 << 20
        assert (st.st_mode & 0o7777, st.st_mtime_ns) == (0o640, 2_000_000_123)
        bad = whole(tmp_path, "half", [(0, b"c" * 4000), (8192, b"d" * 4000)], 12192)
        offset, stored, chunk_id, raw = bad.chunks[1]
        bad.chunks[1] = (offset, stored[:-1] + bytes((stored[-1] ^ 1,)), chunk_id, raw)
        with pytest.raises(SnapshotCorrupt, match="pack-7"):
            writer.write(bad, "pack-7", staged=True)  # its first chunk was written
        assert os.listdir(tmp_path) == ["db"]  # the unfinished file is gone
        with pytest.raises(FileExistsError):  # a staged tree is new: never over a file
            writer.write(whole(tmp_path, "db", [(0, b"x")], 1), "pack-1", staged=True)
        assert (tmp_path / "db").stat().st_size == 3 << 20
    finally:
        writer.close()
