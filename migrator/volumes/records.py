"""A pack's index as bytes: the pack's trailer, its index document, a merged document.

One record per pack: a head (the pack id's length and how many chunks), the pack's id, then
column by column each chunk's id (16 bytes), offset and stored length in the pack, and length
once decoded (4 bytes each, little-endian): 28 bytes a chunk. A document is :data:`MAGIC`
and one or more records (a merged document is its packs' records joined).

Why not JSON, as the stores of earlier releases have it (still read): every pass loads the
index of the whole store before it starts, the final pass inside the cutover window too,
and the index grows with every chunk stored. Columns load with a few calls into C for all
of a pack's chunks (no Python work per chunk): the index of 201,971 chunks (200,000 small
files) took 0.36-0.48 s to parse and hex-decode from JSON into the pass's index, 0.07-0.08 s
from these records (half the bytes: 5.7 against 10.9 MB before compression).
"""

from __future__ import annotations

import operator
import struct
import sys
from array import array
from collections.abc import Sequence
from dataclasses import dataclass

from migrator import jsoncodec

MAGIC = b"MGRIDX2\n"
_HEAD = struct.Struct("<HI")  # the pack id's length, how many chunks
_ID = struct.Struct("16s")  # a chunk id: 128 bits (repository.ID_BYTES)
_COLUMN = 4  # bytes of an offset or a length
_PER_CHUNK = _ID.size + 3 * _COLUMN

# A chunk as a pack holds it: (id, offset in the pack, stored length, raw length).
Chunk = tuple[bytes, int, int, int]


@dataclass(frozen=True)
class PackRecord:
    """The chunks of one pack, column by column."""

    pack: str
    ids: list[bytes]
    offsets: array[int]
    lengths: array[int]
    raws: array[int]

    @classmethod
    def of(cls, pack: str, chunks: Sequence[Chunk]) -> PackRecord:
        return cls(
            pack,
            [chunk[0] for chunk in chunks],
            array("I", [chunk[1] for chunk in chunks]),
            array("I", [chunk[2] for chunk in chunks]),
            array("I", [chunk[3] for chunk in chunks]),
        )

    def chunks(self) -> list[Chunk]:
        return list(zip(self.ids, self.offsets, self.lengths, self.raws, strict=True))


def record(pack: str, chunks: Sequence[Chunk]) -> bytes:
    """The record of ``pack`` holding ``chunks``."""
    columns = PackRecord.of(pack, chunks)
    name = pack.encode()
    return b"".join(
        [
            _HEAD.pack(len(name), len(chunks)),
            name,
            *columns.ids,
            *(_little(column) for column in (columns.offsets, columns.lengths, columns.raws)),
        ]
    )


def document(records: Sequence[bytes]) -> bytes:
    """An index document of one or more packs' records."""
    return MAGIC + b"".join(records)


def records(doc: bytes) -> list[PackRecord]:
    """Each pack of an index document (as :func:`document` writes it, or the JSON of
    earlier releases). Raises ValueError if it is cut short or malformed."""
    if not doc.startswith(MAGIC):
        return _json_records(doc)
    view = memoryview(doc)
    at, end = len(MAGIC), len(doc)
    packs = []
    while at < end:
        if at + _HEAD.size > end:
            raise ValueError(f"index document cut short at byte {at}")
        name_length, count = _HEAD.unpack_from(view, at)
        at += _HEAD.size
        name = bytes(view[at : at + name_length]).decode()
        at += name_length
        if at + count * _PER_CHUNK > end:
            raise ValueError(f"index document cut short at byte {at}")
        ids_end = at + count * _ID.size
        ids = list(map(operator.itemgetter(0), _ID.iter_unpack(view[at:ids_end])))
        columns = []
        for start in range(ids_end, ids_end + 3 * count * _COLUMN, count * _COLUMN):
            column = array("I")
            column.frombytes(view[start : start + count * _COLUMN])
            columns.append(_native(column))
        packs.append(PackRecord(name, ids, *columns))
        at = ids_end + 3 * count * _COLUMN
    return packs


def _little(column: array[int]) -> bytes:
    if sys.byteorder == "big":
        column = array("I", column)
        column.byteswap()
    return column.tobytes()


def _native(column: array[int]) -> array[int]:
    if sys.byteorder == "big":
        column.byteswap()
    return column


def _json_records(doc: bytes) -> list[PackRecord]:
    """The packs of a JSON index document (``{"pack", "chunks"}``, or ``{"packs": [...]}``
    merged; chunk ids in hex)."""
    parsed = jsoncodec.loads(doc)
    try:
        return [
            PackRecord.of(
                str(pack["pack"]),
                [
                    (bytes.fromhex(chunk_id), offset, length, raw)
                    for chunk_id, offset, length, raw in pack["chunks"]
                ],
            )
            for pack in parsed.get("packs", [parsed])
        ]
    except (KeyError, TypeError, AttributeError, OverflowError) as err:
        raise ValueError(f"not an index document ({err!r})") from err
