"""Cutting a file again with the chunks a previous pass cut (``Chunker.cut``'s ``known``):
the chunks are exactly FastCDC's, whatever changed, and FastCDC runs only near the change.
Plain files, no store."""
from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from migrator.volumes.entries import FILE, known_chunks
from migrator.volumes.files import Chunker
from migrator.volumes.repository import ChunkCodec
from tests.volume_trees import CutBytes

KiB, MiB = 1024, 1024 * 1024
# Small chunks (FastCDC's lower bounds are 64 / 256 / 1024): many cuts in a small file, so
# a few hundred cases reach every edge (a change on a boundary, one byte past one, ...).
SMALL = (2 * KiB, 8 * KiB, 32 * KiB)


def cuts(chunker: Chunker, path: Path, known=None) -> list[tuple[bytes, int]]:
    found: list[tuple[bytes, int]] = []
    with open(path, "rb") as source:
        size = os.fstat(source.fileno()).st_size
        got = chunker.cut(source.fileno(), 0, size,
                          lambda data, chunk_id: found.append((chunk_id, len(data))), known)
    assert got == size
    assert all(chunker.codec.chunk_id(b"") != chunk_id for chunk_id, _ in found)
    return found


def _data(rng: random.Random, size: int) -> bytes:
    # Half random, half repetitive: runs without any cut point (max-size cuts) too.
    half = size // 2
    return rng.randbytes(half) + (b"0123456789abcdef" * (size // 16 + 1))[: size - half]


def _mutate(rng: random.Random, data: bytes, bounds: list[int]) -> bytes:
    kind = rng.choice(["page", "pages", "byte", "insert", "delete", "append", "append1",
                       "truncate", "at-bound", "bound+1", "bound-1", "prepend", "same"])
    at = rng.randrange(len(data))
    bound = rng.choice(bounds[1:-1]) if len(bounds) > 2 else len(data) // 2
    if kind == "page":
        at -= at % (4 * KiB)
        return data[:at] + rng.randbytes(4 * KiB) + data[at + 4 * KiB:]
    if kind == "pages":
        out = bytearray(data)
        for _ in range(rng.randint(2, 6)):
            page = rng.randrange(len(data) // (4 * KiB)) * 4 * KiB
            out[page:page + 4 * KiB] = rng.randbytes(4 * KiB)
        return bytes(out)
    if kind == "byte":  # one byte, often on a boundary or the byte after one
        at = rng.choice([at, bound, bound - 1, bound + 1])
        return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]
    if kind == "insert":
        return data[:at] + rng.randbytes(rng.randint(1, 3000)) + data[at:]
    if kind == "delete":
        return data[:at] + data[at + rng.randint(1, 3000):]
    if kind == "append":
        return data + rng.randbytes(rng.randint(1, 100_000))
    if kind == "append1":
        return data + b"x"
    if kind == "truncate":
        return data[:at]
    if kind == "at-bound":
        return data[:bound]
    if kind == "bound+1":
        return data[:bound + 1]
    if kind == "bound-1":
        return data[:bound - 1]
    if kind == "prepend":
        return rng.randbytes(rng.randint(1, 5000)) + data
    return data


@pytest.mark.parametrize("seed", range(6))
def test_cutting_with_known_chunks_gives_fastcdcs_chunks_whatever_changed(
        tmp_path: Path, seed: int):
    rng = random.Random(seed)
    chunker = Chunker(ChunkCodec(rng.randbytes(32), *SMALL))
    path = tmp_path / "f"
    for _ in range(60):
        before = _data(rng, rng.randint(40 * KiB, 600 * KiB))
        path.write_bytes(before)
        known = cuts(chunker, path)
        bounds = [0]
        for _, raw in known:
            bounds.append(bounds[-1] + raw)
        after = _mutate(rng, before, bounds)
        path.write_bytes(after)
        assert cuts(chunker, path, known) == cuts(chunker, path)
        # Known chunks of some other file: nothing matches, FastCDC does it all.
        path.write_bytes(rng.randbytes(len(after)))
        assert cuts(chunker, path, known) == cuts(chunker, path)


def test_a_rewritten_page_is_cut_again_near_it_only(tmp_path: Path, monkeypatch):
    rng = random.Random(7)
    cut_bytes = CutBytes(monkeypatch)
    chunker = Chunker(ChunkCodec(rng.randbytes(32), *SMALL))
    path = tmp_path / "db"
    data = bytearray(rng.randbytes(4 * MiB))
    path.write_bytes(data)
    known = cuts(chunker, path)
    assert cut_bytes.count >= len(data)
    # Nothing changed: every chunk checked by its id, none cut.
    cut_bytes.count = 0
    assert cuts(chunker, path, known) == known
    assert cut_bytes.count == 0
    # Two pages rewritten far apart: FastCDC runs over a few blocks around each.
    for page in (300, 700):
        data[page * 4 * KiB:(page + 1) * 4 * KiB] = rng.randbytes(4 * KiB)
    path.write_bytes(data)
    cut_bytes.count = 0
    again = cuts(chunker, path, known)
    guided = cut_bytes.count
    assert again == cuts(chunker, path)
    assert again != known
    assert guided <= 2 * 3 * (2 * SMALL[2]), guided  # three blocks of 2 x max at most
    # A file that grew: the old chunks are checked, the new tail cut.
    with open(path, "ab") as out:
        out.write(rng.randbytes(100 * KiB))
    cut_bytes.count = 0
    grown = cuts(chunker, path, known)
    assert cut_bytes.count < 4 * (2 * SMALL[2]), cut_bytes.count
    assert grown == cuts(chunker, path)


def test_large_chunks_across_blocks_are_the_same_with_or_without_known_chunks(tmp_path: Path):
    """The store's own sizes, and a file larger than the 8 MiB blocks a plain cut reads."""
    rng = random.Random(11)
    chunker = Chunker(ChunkCodec(rng.randbytes(32), 128 * KiB, 512 * KiB, 2 * MiB))
    path = tmp_path / "big"
    data = bytearray(rng.randbytes(20 * MiB))
    path.write_bytes(data)
    known = cuts(chunker, path)
    for at in (3 * MiB + 5, 8 * MiB - 1, 8 * MiB, 16 * MiB + 77):
        data[at:at + 4 * KiB] = rng.randbytes(4 * KiB)
    path.write_bytes(bytes(data[:19 * MiB + 3]))
    assert cuts(chunker, path, known) == cuts(chunker, path)


def test_known_chunks_of_an_entry_by_extent():
    def ref(n: int, raw: int) -> list:
        return [f"{n:032x}", "pack", 0, raw, raw]

    dense = {"t": FILE, "s": 30, "c": [ref(1, 10), ref(2, 20)]}
    assert known_chunks(dense) == {0: [(bytes.fromhex(f"{1:032x}"), 10),
                                       (bytes.fromhex(f"{2:032x}"), 20)]}
    sparse = {"t": FILE, "s": 100, "x": [[0, 10], [50, 25]],
              "c": [ref(1, 10), ref(2, 5), ref(3, 20)]}
    assert {k: [raw for _, raw in v] for k, v in known_chunks(sparse).items()} == {
        0: [10], 50: [5, 20]}
    # Chunks that do not add up to the extents are no guide at all.
    assert known_chunks({**dense, "s": 31}) == {}
    assert known_chunks({**sparse, "c": sparse["c"][:2]}) == {}
    assert known_chunks({"t": FILE, "s": 10, "c": [["zz", "p", 0, 10, 10]]}) == {}
    assert known_chunks({"t": "h", "h": "a"}) == {} and known_chunks(None) == {}
