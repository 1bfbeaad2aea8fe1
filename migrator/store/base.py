"""The one small interface every object store implements.

Snapshots, volume chunks and run state all go through it, so the stages never care whether
they write to a local directory or an S3 bucket. Keys are relative, ``/``-separated strings
(``snap-1/resources/core/v1/secrets/part-00000.jsonl.gz``); a backend maps them onto files
or object names under its own root.

Errors are :class:`~migrator.errors.StoreError` children: the store itself missing
(:class:`~migrator.errors.StoreNotFound`), refused credentials, an unreachable endpoint, or a
single missing key (:class:`~migrator.errors.StoreKeyNotFound`).

Durability is asked for, not paid on every put: a writer calls :meth:`Store.sync` where it
matters (a snapshot's parts before the marker that lists them, everything before the
manifest), so thousands of small writes do not each wait for the disk.

Integrity in transit is asked for too. Content that carries its own end-to-end check (a
chunk pack whose chunks are named by a keyed hash and sealed by AES-GCM, a snapshot part
whose SHA-256 its manifest records) is put and read with ``checked=True``: the reader
verifies it anyway, so a backend need not add a checksum of its own. Everything else (heads,
state documents, configuration) gets the backend's transport checksum, where it has one.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import IO, BinaryIO

# What ``put_file`` accepts: a path to copy from, or an open binary file read from its
# current position to the end.
Source = str | os.PathLike[str] | IO[bytes]


def check_key(key: str) -> str:
    """Return ``key`` if it is a clean relative key, else raise ``ValueError``.

    Refusing ``..``, empty segments and absolute keys keeps a local store inside its root
    and makes both backends agree on what a key means.
    """
    if not key or key.startswith("/") or "\\" in key:
        raise ValueError(f"invalid store key {key!r}")
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise ValueError(f"invalid store key {key!r}")
    return key


class Store(ABC):
    """A flat key → bytes store with streaming reads and writes."""

    @property
    @abstractmethod
    def url(self) -> str:
        """Where this store lives, as a URL a user can pass back (``file:///…``, ``s3://…``)."""

    @abstractmethod
    def check(self, *, create: bool = False) -> None:
        """Fail now, with a clear error, if the store cannot be used.

        Called before long work so a typo in a bucket name fails in a second, not after an
        hour of export. With ``create`` a local store makes its directory (a bucket is never
        created for the user).
        """

    @abstractmethod
    def put_bytes(self, key: str, data: bytes | bytearray, *, checked: bool = False) -> None:
        """Store ``data`` under ``key``, replacing what was there, all or nothing.
        ``checked``: its readers verify it themselves (see the module's docstring)."""

    @abstractmethod
    def put_file(self, key: str, source: Source, *, checked: bool = False) -> None:
        """Store a file's content under ``key``, streamed (multipart on S3 for big files)."""

    @abstractmethod
    def get_bytes(self, key: str, *, checked: bool = False) -> bytes:
        """The whole content of ``key``; ``checked``: the caller verifies it itself."""

    @abstractmethod
    def open_read(self, key: str, *, checked: bool = False) -> BinaryIO:
        """A binary stream over the content of ``key``; the caller closes it."""

    @abstractmethod
    def size(self, key: str) -> int:
        """The size in bytes of ``key`` (without reading it)."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether ``key`` is in the store."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[str]:
        """Every key starting with ``prefix`` (plain string prefix), in sorted order."""

    @abstractmethod
    def children(self, prefix: str = "") -> Iterator[str]:
        """The names one level below ``prefix`` (which ends with ``/`` or is empty), sorted.

        Like ``ls``: for keys ``a/x`` and ``a/b/y`` under ``a/``, yields ``x`` and ``b``.
        Lets a caller list snapshots without listing every key of every snapshot.
        """

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key``; removing a key that is not there is not an error."""

    def delete_prefix(self, prefix: str) -> None:
        """Remove every key starting with ``prefix``."""
        for key in list(self.list(prefix)):
            self.delete(key)

    def sync(self, prefix: str, *, parents: bool = True) -> None:  # noqa: B027 (no-op default)
        """Make every key starting with ``prefix`` durable: what was written survives a crash
        of the machine, not only of the process. A put is all or nothing either way; a store
        whose puts are durable when they return (S3) has nothing to do.

        ``parents=False`` leaves out the folders above the prefix's own (on a file system,
        their entries for new folders): for a writer that syncs a folder's files before a
        marker in the same folder, and everything with its parents at the end."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"
