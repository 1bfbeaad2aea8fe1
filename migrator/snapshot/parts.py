"""Objects into gzip'd JSON-lines parts of bounded size, each stored as soon as it is full.

A part is a sequence of gzip members (``zcat`` and every gzip reader read them as one
stream) collected in a spooled temporary file (memory up to a bound, then disk). Lines come
one object at a time (:meth:`PartRoller.add`, compressed in batches) or as a member already
compressed elsewhere, a whole page of objects at once (:meth:`PartRoller.add_member`, what
the export's page workers produce). When a part reaches ``max_bytes`` of uncompressed lines
or ``max_objects`` lines it is encrypted if there is a key, checksummed as stored, uploaded,
and dropped: memory stays bounded however big the resource. A member is never split, so a
part written a page at a time may pass its bound by up to one page.
"""

from __future__ import annotations

import gzip
import hashlib
import tempfile
from typing import IO, Any

from migrator import crypto, jsoncodec
from migrator.snapshot.layout import PartInfo, part_key, sha256_stream
from migrator.store.base import Store

_SPOOL_MEMORY = 2 * 1024 * 1024  # a part's compressed bytes stay in memory up to this
# zlib's fast levels (1-3) compress JSON lines several times faster than the default 9, for
# parts about a fifth larger: export is CPU-bound on the client, the store is not.
COMPRESS_LEVEL = 3
_BATCH_BYTES = 256 * 1024  # lines added one by one are compressed in members of this size


def gzip_member(lines: bytes) -> bytes:
    """``lines`` as one complete gzip member, as parts store them (no timestamp, so the same
    lines always give the same bytes)."""
    return gzip.compress(lines, compresslevel=COMPRESS_LEVEL, mtime=0)


class PartRoller:
    """Writes ``<folder>/<stem>-00000.jsonl.gz``, ``-00001``, ... under ``prefix`` in ``store``."""

    def __init__(
        self,
        store: Store,
        prefix: str,
        folder: str,
        stem: str,
        *,
        key: bytes | None,
        max_bytes: int,
        max_objects: int,
    ) -> None:
        self._store = store
        self._prefix = prefix
        self._folder = folder
        self._stem = stem
        self._key = key
        self._max_bytes = max_bytes
        self._max_objects = max_objects
        self.parts: list[PartInfo] = []
        self._spool: IO[bytes] | None = None
        self._bytes = 0
        self._objects = 0
        self._batch: list[bytes] = []
        self._batch_bytes = 0

    def add(self, doc: dict[str, Any]) -> None:
        """Append one document as a compact JSON line; store the part if it is now full."""
        line = jsoncodec.dumps(doc) + b"\n"
        self._batch.append(line)
        self._batch_bytes += len(line)
        self._counted(1, len(line))
        if self._batch_bytes >= _BATCH_BYTES:
            self._flush_batch()
        self._store_if_full()

    def add_member(self, member: bytes, objects: int, line_bytes: int) -> None:
        """Append a gzip member of ``objects`` lines (``line_bytes`` uncompressed), as made by
        :func:`gzip_member`; store the part if it is now full."""
        if not objects:
            return
        self._flush_batch()
        self._counted(objects, line_bytes)
        self._spooled().write(member)
        self._store_if_full()

    def finish(self) -> list[PartInfo]:
        """Store the last, partly filled part; the list of every part stored."""
        if self._objects:
            self._store_part()
        return self.parts

    def discard(self) -> None:
        """Drop the part being filled (after a failure); stored parts stay where they are."""
        self._batch, self._batch_bytes = [], 0
        if self._spool is not None:
            self._spool.close()
        self._spool = None
        self._bytes = self._objects = 0

    def _counted(self, objects: int, line_bytes: int) -> None:
        self._objects += objects
        self._bytes += line_bytes

    def _spooled(self) -> IO[bytes]:
        if self._spool is None:
            # Closed in _store_part or discard: it lives across many add() calls.
            self._spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_MEMORY)  # noqa: SIM115
        return self._spool

    def _flush_batch(self) -> None:
        if self._batch:
            self._spooled().write(gzip_member(b"".join(self._batch)))
            self._batch, self._batch_bytes = [], 0

    def _store_if_full(self) -> None:
        if self._bytes >= self._max_bytes or self._objects >= self._max_objects:
            self._store_part()

    def _store_part(self) -> None:
        self._flush_batch()
        spool = self._spooled()
        relative = part_key(self._folder, self._stem, len(self.parts), self._key is not None)
        spool.seek(0)
        if self._key is not None:
            data = crypto.encrypt(self._key, spool.read(), relative)
            digest, size = hashlib.sha256(data).hexdigest(), len(data)
            self._store.put_bytes(self._prefix + relative, data, checked=True)
        else:
            digest, size = sha256_stream(spool)
            spool.seek(0)
            self._store.put_file(self._prefix + relative, spool, checked=True)
        self.parts.append(PartInfo(key=relative, sha256=digest, bytes=size, objects=self._objects))
        self.discard()
