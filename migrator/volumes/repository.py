"""The chunk store of volume data inside a migrator store: its config, packs and index.

Layout under ``volumes/`` of the store (everything readable with ``migrator volumes ls``)::

    volumes/config.json                       the repository: format, chunker, hash, the
                                              chunk-id secret (encrypted under the user's key
                                              when packs are encrypted), the key id
    volumes/packs/<ab>/<pack id>.pack         pack objects: compressed chunks one after the
                                              other, then the pack's own index (a trailer),
                                              the whole encrypted when a key is in use
    volumes/index/packs/<pass>/<n>/<pack>.idx one finished pack's index (written right after
                                              the pack: a pack without it is not finished)
    volumes/index/<pass id>-<n>.idx           the indexes of merge group n (256 packs) of a
                                              pass, merged (fewer objects to read at start)
    volumes/manifests/<name>/<pass id>/...    one pass over one volume (:mod:`.manifest`)

A chunk is named by a keyed hash: BLAKE3 keyed with the repository's 32-byte random secret,
cut to 128 bits. Without the secret, an id says nothing about the chunk's content: nobody who
reads the bucket can test whether it holds a file they know by hashing that file. The secret
is useful only with encryption on (when packs are plain, whoever reads the ids can read the
data), so it is stored encrypted under the user's key then, and in the clear otherwise. The
chunker's gear table is seeded from the same secret, so chunk boundaries (visible as sizes)
do not fingerprint known files either; the index and the manifests are encrypted too.

A stored chunk is one codec byte (0 raw, 1 zstd) and its payload: chunks that zstd cannot
shrink (media, compressed archives) are stored raw, after a probe of their first 64 KiB.
"""

from __future__ import annotations

import base64
import os
import secrets
import threading
from array import array
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import blake3
import zstandard

from migrator import crypto, jsoncodec
from migrator.errors import ConfigError, DecryptionError, SnapshotCorrupt, StoreKeyNotFound
from migrator.run.processes import default_processes, process_pool
from migrator.store.base import Store
from migrator.volumes import records

ROOT = "volumes/"
CONFIG = ROOT + "config.json"
PACKS = ROOT + "packs/"
INDEX = ROOT + "index/"
PACK_INDEX = INDEX + "packs/"
MANIFESTS = ROOT + "manifests/"
# 2: pack trailers and index documents as binary records (:mod:`.records`). A store of
# format 1 (the same, in JSON) is read as it is, and made format 2 by the first backup
# into it: a release that reads only format 1 then says so, rather than failing on a record.
FORMAT = 2
_FORMATS_READ = (1, 2)

KiB, MiB = 1024, 1024 * 1024
# FastCDC 2020 bounds. 512 KiB on average (the library adds about min_size/4 to its avg):
# small enough that a change of a few KiB in a large file (a database page) costs one chunk
# of ~0.5 MiB, not a whole file (on the benchmark's 1 % change of a 2 GiB tree, 1 MiB chunks
# sent 2.0 % of a full pass, these 1.8 %); big enough that per-chunk work (a hash, a
# compressor call, an index entry) stays negligible beside the bytes and the index small
# (~130 bytes of memory per distinct chunk: a 100 GiB volume is ~200,000 chunks, ~26 MB).
# A file smaller than the minimum is one chunk. A store keeps the bounds it was made with.
CHUNK_MIN, CHUNK_AVG, CHUNK_MAX = 128 * KiB, 512 * KiB, 2 * MiB
# Packs close at 8 MiB: one S3 PUT each (boto3's multipart threshold), so millions of small
# files make thousands of objects, not millions; and a killed pass loses at most the packs
# in flight.
PACK_TARGET = 8 * MiB
ZSTD_LEVEL = 1
ID_BYTES = 16
_PROBE = 64 * KiB
_RAW, _ZSTD = 0, 1
_INDEX_FETCHERS = 8

Stored = tuple[int, bytes | memoryview]  # codec byte, payload
T = TypeVar("T")


def new_id(nbytes: int = 12) -> str:
    """A random id in hex (packs: 96 bits, no collision among concurrent writers)."""
    return secrets.token_hex(nbytes)


@dataclass(frozen=True)
class Location:
    """Where a chunk is stored: its pack, the offset and length of its stored form, and its
    length once decoded."""

    pack: str
    offset: int
    length: int
    raw: int


class ChunkIndex:
    """Every chunk the repository holds: id → location. Compact: a chunk's id maps to its
    number; its pack (a number too), offset and lengths are in arrays at that number."""

    def __init__(self) -> None:
        self._map: dict[bytes, int] = {}
        self._pack_of = array("I")
        self._offsets = array("I")
        self._lengths = array("I")
        self._raws = array("I")
        self._packs: list[str] = []
        self._pack_numbers: dict[str, int] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._map)

    def __contains__(self, chunk_id: bytes) -> bool:
        return chunk_id in self._map

    def add(self, chunk_id: bytes, where: Location) -> None:
        self.add_places(where.pack, [(chunk_id, where.offset, where.length, where.raw)])

    def add_places(self, pack: str, chunks: Sequence[records.Chunk]) -> None:
        """Add chunks of one pack: (id, offset, stored length, raw length), a few at a time
        (a pass's new chunks; a pack's whole record goes through :meth:`add_record`)."""
        with self._lock:
            number = self._pack_number(pack)
            for chunk_id, offset, length, raw in chunks:
                self._pack_of.append(number)
                self._offsets.append(offset)
                self._lengths.append(length)
                self._raws.append(raw)
                self._map[chunk_id] = len(self._offsets) - 1

    def add_record(self, record: records.PackRecord) -> None:
        """Add the chunks of one pack's record, all at once (a chunk added again is found
        where it was added last)."""
        count = len(record.ids)
        with self._lock:
            number = self._pack_number(record.pack)
            first = len(self._offsets)
            # The arrays first: whoever finds a number in the map finds its place.
            self._pack_of.extend(array("I", [number]) * count)
            self._offsets.extend(record.offsets)
            self._lengths.extend(record.lengths)
            self._raws.extend(record.raws)
            self._map.update(zip(record.ids, range(first, first + count), strict=True))

    def _pack_number(self, pack: str) -> int:
        number = self._pack_numbers.get(pack)
        if number is None:
            number = self._pack_numbers[pack] = len(self._packs)
            self._packs.append(pack)
        return number

    def get(self, chunk_id: bytes) -> Location | None:
        number = self._map.get(chunk_id)
        if number is None:
            return None
        return Location(
            self._packs[self._pack_of[number]],
            self._offsets[number],
            self._lengths[number],
            self._raws[number],
        )


def codec_pool(
    processes: int | None, codec: ChunkCodec, start: Callable[[tuple[bytes, int, int, int]], None]
) -> tuple[ProcessPoolExecutor | None, int]:
    """Worker processes (``processes``; default one per core; 0: none) that each make their
    own ``codec`` (``start(codec.params())``), and how many. Call it before the caller
    starts a thread (see :mod:`migrator.run.processes`)."""
    count = default_processes() if processes is None else processes
    if not count:
        return None, 0
    pool = process_pool(
        count, preload=[start.__module__], initializer=start, initargs=(codec.params(),)
    )
    return pool, count


class ChunkCodec:
    """What names and encodes chunks: the keyed hash, the chunker's parameters and seed,
    zstd. Built from plain values, so worker processes make their own."""

    def __init__(self, secret: bytes, chunk_min: int, chunk_avg: int, chunk_max: int) -> None:
        self.secret = secret
        # FastCDC XORs its gear table with the seed (and shifts it left by one: 62 bits).
        seed = int.from_bytes(blake3.blake3(b"chunker", key=secret).digest(8))
        self.seed = (seed >> 2) | 1
        self.chunk_min, self.chunk_avg, self.chunk_max = chunk_min, chunk_avg, chunk_max
        self._local = threading.local()

    def params(self) -> tuple[bytes, int, int, int]:
        """What rebuilds this codec elsewhere: ``ChunkCodec(*codec.params())``."""
        return self.secret, self.chunk_min, self.chunk_avg, self.chunk_max

    def chunk_id(self, data: bytes | memoryview) -> bytes:
        """The keyed 128-bit id of a chunk."""
        return blake3.blake3(data, key=self.secret).digest(ID_BYTES)

    def encode_chunk(self, data: bytes | memoryview) -> Stored:
        """The stored form of a chunk, as (codec byte, payload): zstd if that pays, else the
        data itself (not copied: the pack copies it once, into its buffer)."""
        compressor = self._compressor()
        if len(data) > _PROBE:
            probe = compressor.compress(data[:_PROBE])
            if len(probe) > _PROBE * 0.95:
                return _RAW, data
        packed = compressor.compress(data)
        if len(packed) >= len(data):
            return _RAW, data
        return _ZSTD, packed

    def decode_chunk(
        self, stored: bytes | memoryview, chunk_id: bytes, raw: int, where: str
    ) -> bytes:
        """The chunk a stored form holds, checked against its id and length."""
        codec = stored[0]
        if codec == _RAW:
            data = bytes(stored[1:])
        elif codec == _ZSTD:
            try:
                data = self._decompressor().decompress(stored[1:], max_output_size=raw)
            except zstandard.ZstdError as err:
                raise SnapshotCorrupt(
                    f"chunk {chunk_id.hex()} in {where} does not decompress: {err}", part=where
                ) from err
        else:
            raise SnapshotCorrupt(
                f"chunk {chunk_id.hex()} in {where} has an unknown codec {codec}", part=where
            )
        if len(data) != raw or self.chunk_id(data) != chunk_id:
            raise SnapshotCorrupt(
                f"chunk {chunk_id.hex()} in {where} does not match its id: the pack was "
                "modified or damaged",
                part=where,
            )
        return data

    def _decompressor(self) -> zstandard.ZstdDecompressor:
        # One per thread: making one costs more than decoding a small chunk.
        decompressor = getattr(self._local, "decompressor", None)
        if decompressor is None:
            decompressor = self._local.decompressor = zstandard.ZstdDecompressor()
        return decompressor

    def _compressor(self) -> zstandard.ZstdCompressor:
        compressor = getattr(self._local, "compressor", None)
        if compressor is None:
            compressor = self._local.compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
        return compressor


class Repository:
    """The volumes' chunk store in ``store``: chunk ids, (de)compression, encryption, packs,
    index documents and manifest parts."""

    def __init__(self, store: Store, config: dict[str, Any], key: bytes | None) -> None:
        self.store = store
        self.config = config
        self.key = key
        chunker = config["chunker"]
        self.codec = ChunkCodec(
            _secret(config, key), int(chunker["min"]), int(chunker["avg"]), int(chunker["max"])
        )

    # -- opening -------------------------------------------------------------------------

    @classmethod
    def open(cls, store: Store, key: bytes | None, *, create: bool = False) -> Repository:
        """The repository in ``store``; with ``create``, made first if the store has none.

        A store's volumes are encrypted or not from their first pass on: a key given for a
        plain repository, none for an encrypted one, or another key, is refused before
        anything is read or written.
        """
        store.check(create=create)
        try:
            config = jsoncodec.loads(store.get_bytes(CONFIG))
        except StoreKeyNotFound:
            if not create:
                raise
            config = cls._new_config(key)
            cls._put_config(store, config)
            return cls(store, config, key)
        repo = cls(store, config, key)  # checks the format and the key first
        if create and config.get("format") != FORMAT:
            config["format"] = FORMAT  # what it writes from now on
            cls._put_config(store, config)
        return repo

    @staticmethod
    def _put_config(store: Store, config: dict[str, Any]) -> None:
        store.put_bytes(CONFIG, jsoncodec.dumps(config))
        store.sync(CONFIG)

    @staticmethod
    def _new_config(key: bytes | None) -> dict[str, Any]:
        secret = os.urandom(32)
        config: dict[str, Any] = {
            "format": FORMAT,
            "chunker": {
                "algorithm": "fastcdc-2020",
                "min": CHUNK_MIN,
                "avg": CHUNK_AVG,
                "max": CHUNK_MAX,
                "normalization": 1,
            },
            "hash": "blake3-keyed-128",
            "compression": f"zstd-{ZSTD_LEVEL}",
            "packTarget": PACK_TARGET,
        }
        if key is None:
            config["encryption"] = None
            config["chunkSecret"] = base64.b64encode(secret).decode()
        else:
            config["encryption"] = {"algorithm": crypto.ALGORITHM, "keyId": crypto.key_id(key)}
            sealed = crypto.encrypt(key, secret, CONFIG + "#chunkSecret")
            config["chunkSecretEncrypted"] = base64.b64encode(sealed).decode()
        return config

    @property
    def encrypted(self) -> bool:
        return bool(self.config.get("encryption"))

    # -- sealed objects: packs, indexes, manifest parts ----------------------------------

    def seal(self, key: str, data: bytes | bytearray) -> bytes | bytearray:
        """``data`` as stored under ``key``: encrypted (bound to the key) when a key is in
        use, else ``data`` itself (a pack's bytearray is neither copied nor made bytes: an
        S3 put sends a bytearray as it is, see :func:`~migrator.crypto.encrypt`)."""
        if self.key is None:
            return data
        return crypto.encrypt(self.key, data, key)

    def unseal(self, key: str, blob: bytes) -> bytes:
        """What :meth:`seal` stored under ``key``; a blob that was changed fails here."""
        return crypto.decrypt(self.key, blob, key) if self.key is not None else blob

    def put_doc(self, key: str, doc: Any) -> None:
        """Store a JSON document (compressed, and sealed when the store is encrypted)."""
        self.put_encoded(key, jsoncodec.dumps(doc))

    def put_encoded(self, key: str, body: bytes | bytearray) -> None:
        """:meth:`put_doc` of a document already encoded (JSON, or an index's records)."""
        self.store.put_bytes(key, self.sealed_doc(key, body))

    def sealed_doc(self, key: str, body: bytes | bytearray) -> bytes | bytearray:
        """An encoded document as stored under ``key``: compressed, then sealed. At the
        chunks' zstd level: on a manifest part of 20,000 entries, level 1 compressed 282
        MB/s to 4.75:1, level 3 207 MB/s to 4.23:1 (its chunk ids do not compress)."""
        return self.seal(key, zstandard.compress(body, ZSTD_LEVEL))

    def get_doc(self, key: str) -> Any:
        return self.read_doc(key, jsoncodec.loads)

    def read_doc(self, key: str, parse: Callable[[bytes], T]) -> T:
        """A document's ``parse`` d content; one that cannot be decoded is corrupt."""
        blob = self.unseal(key, self.store.get_bytes(key))
        try:
            return parse(zstandard.decompress(blob))
        except (zstandard.ZstdError, ValueError) as err:
            raise SnapshotCorrupt(f"{key} is not a readable document: {err}", part=key) from err

    # -- packs ---------------------------------------------------------------------------

    @staticmethod
    def pack_key(pack: str) -> str:
        return f"{PACKS}{pack[:2]}/{pack}.pack"

    def read_pack(self, pack: str) -> bytes:
        """A pack's plain content (decrypted and authenticated when encrypted)."""
        key = self.pack_key(pack)
        try:
            return self.unseal(key, self.store.get_bytes(key, checked=True))
        except SnapshotCorrupt as err:
            raise SnapshotCorrupt(
                f"pack {key} fails authentication: it was modified, truncated or moved", part=key
            ) from err

    def load_index(self) -> ChunkIndex:
        """Every chunk of every finished pack (merged and single-pack index documents)."""
        index = ChunkIndex()

        def load(key: str) -> None:
            for record in self.read_doc(key, records.records):
                index.add_record(record)

        with ThreadPoolExecutor(_INDEX_FETCHERS) as pool:
            for _ in pool.map(load, self.store.list(INDEX)):
                pass
        return index

    def merge_pack_indexes(self, pass_id: str, number: int, packs: Sequence[bytes]) -> None:
        """Write the indexes of merge group ``number`` of a pass (finished packs; each one's
        :func:`~.records.record`) as one document, then remove the group's single-pack
        documents in one prefix deletion, batched on S3 (whoever loads the index meanwhile
        sees both: no harm)."""
        self.put_encoded(f"{INDEX}{pass_id}-{number:05d}.idx", records.document(packs))
        self.store.delete_prefix(f"{PACK_INDEX}{pass_id}/{number:05d}/")


def _secret(config: dict[str, Any], key: bytes | None) -> bytes:
    """The chunk-id secret of ``config``, checking the key against the repository's."""
    encryption = config.get("encryption")
    if config.get("format") not in _FORMATS_READ:
        raise ConfigError(
            f"{CONFIG} has format {config.get('format')!r}; this migrator reads formats "
            f"{', '.join(map(str, _FORMATS_READ))}",
            hint="use the migrator release that wrote it",
        )
    if not encryption:
        if key is not None:
            raise ConfigError(
                "the store's volume data is not encrypted, but a key was given",
                hint="drop --key-file / $MIGRATOR_ENCRYPT_KEY, or use another store",
            )
        return base64.b64decode(config["chunkSecret"])
    if key is None:
        raise DecryptionError(
            "the store's volume data is encrypted and no key was given",
            hint="pass --key-file or set $MIGRATOR_ENCRYPT_KEY",
        )
    if crypto.key_id(key) != encryption.get("keyId"):
        raise DecryptionError(
            f"the key given (id {crypto.key_id(key)}) is not the one the store's volume data "
            f"was encrypted with (id {encryption.get('keyId')})",
            hint="pass the key file used for the first backup into this store",
        )
    sealed = base64.b64decode(config["chunkSecretEncrypted"])
    return crypto.decrypt(key, sealed, CONFIG + "#chunkSecret")
