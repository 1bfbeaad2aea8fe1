"""Packs: many stored chunks in one object, written by a bounded pool of uploads.

A pack is its chunks' stored forms one after the other, then its own index (its
:func:`~.records.record`), the index's length (8 bytes, big-endian) and ``MGRPACK2``: with
the trailer a lost index can be rebuilt from the packs alone. Encrypted repositories seal
the whole pack (AES-256-GCM, the pack's key as associated data). Right after a pack is
uploaded, its index document is written under ``volumes/index/packs/``: a pack is finished
when that document exists, and a pass that resumes after a kill loads those documents and
does not upload those chunks again. Every :data:`MERGE_EVERY` finished packs the writer
merges their documents into one, and the rest at the end of the pass, while its head is
written.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from migrator.volumes import records
from migrator.volumes.records import Chunk
from migrator.volumes.repository import (
    PACK_INDEX,
    PACK_TARGET,
    ChunkIndex,
    Location,
    Repository,
    Stored,
    new_id,
)

TRAILER_MAGIC = b"MGRPACK2"
_JSON_TRAILER_MAGIC = b"MGRPACK1"  # earlier releases: the trailer in JSON
MERGE_EVERY = 256


class PackWriter:
    """Collects new chunks into packs and uploads them, ``uploads`` at a time.

    Thread-safe: chunk workers call :meth:`add` concurrently. ``on_uploaded(nbytes)`` is
    called after each pack is stored (progress). Memory: the open pack plus at most
    ``uploads + 1`` sealed packs waiting or in flight; a worker that would exceed that waits.
    """

    def __init__(
        self,
        repo: Repository,
        index: ChunkIndex,
        pass_id: str,
        *,
        uploads: int = 4,
        on_uploaded: Callable[[int], None] | None = None,
    ) -> None:
        self.repo = repo
        self.index = index
        self.pass_id = pass_id
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(uploads, thread_name_prefix="pack-upload")
        self._slots = threading.BoundedSemaphore(uploads + 1)
        self._futures: list[Future[None]] = []
        self._on_uploaded = on_uploaded
        self._merge_lock = threading.Lock()
        self._unmerged: list[bytes] = []  # packs' records, to merge
        self._merged = 0
        self._new_pack()
        self.packs = 0
        self.bytes_uploaded = 0
        self.chunks_new = 0

    def _new_pack(self) -> None:
        self._pack = new_id()
        self._buffer = bytearray()
        self._chunks: list[Chunk] = []

    def add(self, chunk_id: bytes, stored: Stored, raw: int) -> Location:
        """Store a chunk (its codec byte and payload) unless the repository has it; its
        location either way."""
        sealed: tuple[str, bytearray, list[Chunk]] | None = None
        with self._lock:
            known = self.index.get(chunk_id)
            if known is not None:
                return known
            codec, payload = stored
            where = Location(self._pack, len(self._buffer), 1 + len(payload), raw)
            self._buffer.append(codec)
            self._buffer += payload
            self._chunks.append((chunk_id, where.offset, where.length, raw))
            self.index.add(chunk_id, where)
            self.chunks_new += 1
            if len(self._buffer) >= PACK_TARGET:
                sealed = (self._pack, self._buffer, self._chunks)
                self._new_pack()
        if sealed is not None:
            self._submit(*sealed)
        return where

    def add_many(
        self, ids: Sequence[bytes], raws: Sequence[int], stored: Sequence[bytes]
    ) -> list[tuple[str, int, int]]:
        """Store many chunks at once (``stored``: each one's codec byte, then its payload)
        unless the repository has them; each one's (pack, offset, stored length), in order."""
        places: list[tuple[str, int, int]] = []
        sealed: list[tuple[str, bytearray, list[Chunk]]] = []
        index = self.index
        with self._lock:
            added: dict[bytes, tuple[str, int, int]] = {}
            fresh: list[tuple[bytes, int, int, int]] = []  # the open pack's, to index
            for chunk_id, raw, blob in zip(ids, raws, stored, strict=True):
                place = added.get(chunk_id)
                if place is None and (known := index.get(chunk_id)) is not None:
                    place = known.pack, known.offset, known.length
                if place is not None:
                    places.append(place)
                    continue
                pack, offset, length = self._pack, len(self._buffer), len(blob)
                self._buffer += blob
                chunk = (chunk_id, offset, length, raw)
                self._chunks.append(chunk)
                fresh.append(chunk)
                place = added[chunk_id] = pack, offset, length
                places.append(place)
                self.chunks_new += 1
                if offset + length >= PACK_TARGET:
                    index.add_places(pack, fresh)
                    fresh = []
                    sealed.append((self._pack, self._buffer, self._chunks))
                    self._new_pack()
            index.add_places(self._pack, fresh)
        for one in sealed:
            self._submit(*one)
        return places

    def close(self) -> None:
        """Upload the last pack and wait for every upload: every chunk is stored when this
        returns. Raises the first upload failure. The remaining index documents are merged
        by :meth:`merge_rest`, which a pass runs beside writing its head."""
        with self._lock:
            sealed = (self._pack, self._buffer, self._chunks) if self._chunks else None
            self._new_pack()
        if sealed is not None:
            self._submit(*sealed)
        try:
            for future in self._futures:
                future.result()
        finally:
            self._pool.shutdown(wait=True)

    def merge_rest(self) -> None:
        """Merge the index documents of the packs uploaded since the last merge (after
        :meth:`close`). Not needed for the packs to count as finished: each has its own
        document until then."""
        with self._merge_lock:
            self._merge()

    def abort(self) -> None:
        """Stop without waiting for what is queued (the pass failed)."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _submit(self, pack: str, buffer: bytearray, chunks: list[Chunk]) -> None:
        for future in self._futures:  # an upload that failed stops the pass at once
            if future.done():
                future.result()
        self._futures = [f for f in self._futures if not f.done()]
        self._slots.acquire()
        try:
            self._futures.append(self._pool.submit(self._upload, pack, [buffer], chunks))
        except BaseException:
            self._slots.release()
            raise

    def _upload(self, pack: str, holder: list[bytearray], chunks: list[Chunk]) -> None:
        try:
            buffer = holder.pop()  # the only reference: freed as soon as it is sealed
            trailer = records.record(pack, chunks)
            buffer += trailer + len(trailer).to_bytes(8, "big") + TRAILER_MAGIC
            key = self.repo.pack_key(pack)
            blob = self.repo.seal(key, buffer)
            del buffer
            self.repo.store.put_bytes(key, blob, checked=True)  # chunk ids, GCM
            with self._merge_lock:
                # Under this pass's own folder, one per merge group: once merged, the group's
                # single-pack documents go in one prefix deletion (batched on S3).
                group = f"{PACK_INDEX}{self.pass_id}/{self._merged:05d}/"
                self.repo.put_encoded(f"{group}{pack}.idx", records.document([trailer]))
                self.packs += 1
                self.bytes_uploaded += len(blob)
                self._unmerged.append(trailer)
                if len(self._unmerged) >= MERGE_EVERY:
                    self._merge()
            if self._on_uploaded is not None:
                self._on_uploaded(len(blob))
        finally:
            self._slots.release()

    def _merge(self) -> None:
        if self._unmerged:
            self.repo.merge_pack_indexes(self.pass_id, self._merged, self._unmerged)
            self._merged += 1
            self._unmerged = []


def pack_chunks(plain: bytes) -> list[Chunk]:
    """The chunks of a pack's own trailer (to rebuild or check an index)."""
    magic = plain[-len(TRAILER_MAGIC) :]
    if magic not in (TRAILER_MAGIC, _JSON_TRAILER_MAGIC):
        raise ValueError("not a migrator pack (no trailer)")
    end = len(plain) - len(TRAILER_MAGIC)
    length = int.from_bytes(plain[end - 8 : end], "big")
    trailer = plain[end - 8 - length : end - 8]
    if magic == TRAILER_MAGIC:
        trailer = records.MAGIC + trailer
    return [chunk for record in records.records(trailer) for chunk in record.chunks()]
