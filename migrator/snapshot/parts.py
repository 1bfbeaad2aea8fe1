"""Objects into gzip'd JSON-lines parts of bounded size, each stored as soon as it is full.

A part collects lines through gzip into a spooled temporary file (memory up to a bound, then
disk). When it reaches ``max_bytes`` of uncompressed lines or ``max_objects`` lines it is
encrypted if there is a key, checksummed as stored, uploaded, and dropped: memory stays
bounded however big the resource.
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
_BATCH_BYTES = 256 * 1024  # lines reach gzip in batches: one compress call per batch


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
        self._gzip: gzip.GzipFile | None = None
        self._bytes = 0
        self._objects = 0
        self._batch: list[bytes] = []
        self._batch_bytes = 0

    def add(self, doc: dict[str, Any]) -> None:
        """Append one document as a compact JSON line; store the part if it is now full."""
        line = jsoncodec.dumps(doc) + b"\n"
        if self._gzip is None:
            # Closed in _store_part or discard: it lives across many add() calls.
            self._spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_MEMORY)  # noqa: SIM115
            self._gzip = gzip.GzipFile(
                fileobj=self._spool, mode="wb", mtime=0, compresslevel=COMPRESS_LEVEL
            )
            self._bytes = self._objects = 0
        self._batch.append(line)
        self._batch_bytes += len(line)
        if self._batch_bytes >= _BATCH_BYTES:
            self._flush_batch()
        self._bytes += len(line)
        self._objects += 1
        if self._bytes >= self._max_bytes or self._objects >= self._max_objects:
            self._store_part()

    def finish(self) -> list[PartInfo]:
        """Store the last, partly filled part; the list of every part stored."""
        if self._gzip is not None:
            self._store_part()
        return self.parts

    def discard(self) -> None:
        """Drop the part being filled (after a failure); stored parts stay where they are."""
        self._batch, self._batch_bytes = [], 0
        if self._spool is not None:
            self._spool.close()
        self._spool = self._gzip = None

    def _flush_batch(self) -> None:
        assert self._gzip is not None
        self._gzip.write(b"".join(self._batch))
        self._batch, self._batch_bytes = [], 0

    def _store_part(self) -> None:
        assert self._spool is not None and self._gzip is not None
        self._flush_batch()
        self._gzip.close()
        spool = self._spool
        relative = part_key(self._folder, self._stem, len(self.parts), self._key is not None)
        spool.seek(0)
        if self._key is not None:
            data = crypto.encrypt(self._key, spool.read(), relative)
            digest, size = hashlib.sha256(data).hexdigest(), len(data)
            self._store.put_bytes(self._prefix + relative, data)
        else:
            digest, size = sha256_stream(spool)
            spool.seek(0)
            self._store.put_file(self._prefix + relative, spool)
        self.parts.append(PartInfo(key=relative, sha256=digest, bytes=size, objects=self._objects))
        self.discard()
