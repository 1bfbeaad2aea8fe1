"""A store in a local directory: the default, and what the CLI uses for ``./snapshots``.

Every write goes to a temporary file beside its target and is moved into place with
``os.replace``, so a killed writer never leaves a half-written file under the final key
(at most a ``.tmp-*`` file, which listing ignores and the next write of that key replaces).
Writes are not flushed to the disk one by one: :meth:`LocalStore.sync` fsyncs the files and
directories under a prefix when the writer needs them durable.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from migrator.errors import StoreAccessDenied, StoreError, StoreKeyNotFound, StoreNotFound
from migrator.store.base import Source, Store, check_key

_TMP_PREFIX = ".tmp-"


class LocalStore(Store):
    """Keys are files under ``root``; ``a/b/c`` is ``root/a/b/c``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().absolute()

    @property
    def url(self) -> str:
        return self.root.as_uri()

    def check(self, *, create: bool = False) -> None:
        if create:
            try:
                self.root.mkdir(parents=True, exist_ok=True)
            except PermissionError as err:
                raise StoreAccessDenied(
                    f"cannot create directory {self.root}: {err.strerror}"
                ) from err
            except OSError as err:
                raise StoreError(f"cannot create directory {self.root}: {err.strerror}") from err
        self._require_root()

    def put_bytes(self, key: str, data: bytes | bytearray, *, checked: bool = False) -> None:
        with self._atomic_write(key) as out:
            out.write(data)

    def put_file(self, key: str, source: Source, *, checked: bool = False) -> None:
        with self._atomic_write(key) as out:
            if isinstance(source, (str, os.PathLike)):
                with open(source, "rb") as src:
                    shutil.copyfileobj(src, out)
            else:
                shutil.copyfileobj(source, out)

    def get_bytes(self, key: str, *, checked: bool = False) -> bytes:
        with self.open_read(key) as stream:
            return stream.read()

    def open_read(self, key: str, *, checked: bool = False) -> BinaryIO:
        path = self._path(key)
        try:
            return open(path, "rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as err:
            raise self._missing(key) from err
        except PermissionError as err:
            raise StoreAccessDenied(f"cannot read {path}: {err.strerror}") from err

    def size(self, key: str) -> int:
        path = self._path(key)
        if not path.is_file():
            raise self._missing(key)
        return path.stat().st_size

    def exists(self, key: str) -> bool:
        self._require_root()
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> Iterator[str]:
        self._require_root()
        # Walk only the deepest directory the prefix names; its last segment may be partial.
        start = self._dir(prefix.rpartition("/")[0])
        if not start.is_dir():
            return
        base = start.relative_to(self.root).as_posix()
        for key in _walk(start, "" if base == "." else base + "/"):
            if key.startswith(prefix):
                yield key

    def children(self, prefix: str = "") -> Iterator[str]:
        self._require_root()
        directory = self._dir(prefix)
        if not directory.is_dir():
            return
        yield from sorted(
            e.name for e in os.scandir(directory) if not e.name.startswith(_TMP_PREFIX)
        )

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        self._prune(path.parent)

    def delete_prefix(self, prefix: str) -> None:
        directory = self._dir(prefix)
        if prefix.endswith("/") and directory != self.root and directory.is_dir():
            shutil.rmtree(directory)  # a whole folder: no need to list it key by key
            self._prune(directory.parent)
            return
        super().delete_prefix(prefix)

    def sync(self, prefix: str, *, parents: bool = True) -> None:
        top = self._dir(prefix.rpartition("/")[0])  # the folder the prefix is in
        directories = {top}
        for key in self.list(prefix):
            path = self._path(key)
            _fsync(path, os.O_RDONLY)
            directories.update(p for p in path.parents if top in p.parents)
        if parents:
            directories.update(p for p in top.parents if p == self.root or self.root in p.parents)
        for directory in sorted(directories, key=lambda d: -len(d.parts)):  # deepest first
            _fsync(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))

    # -- helpers -------------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _dir(self, prefix: str) -> Path:
        """The directory a key prefix names (``a/b/`` or ``a/b`` → ``root/a/b``)."""
        prefix = prefix.strip("/")
        return self.root / check_key(prefix) if prefix else self.root

    def _require_root(self) -> None:
        if not self.root.is_dir():
            raise StoreNotFound(
                f"directory {self.root} does not exist",
                hint="check the store path, or export a snapshot there first",
            )

    def _missing(self, key: str) -> Exception:
        self._require_root()
        return StoreKeyNotFound(f"{key!r} not found in {self.url}", key=key)

    def _atomic_write(self, key: str) -> _AtomicFile:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        return _AtomicFile(path)

    def _prune(self, directory: Path) -> None:
        """Remove empty directories from ``directory`` up to (not including) the root."""
        while directory != self.root and self.root in directory.parents:
            try:
                directory.rmdir()
            except OSError:
                return
            directory = directory.parent


def _walk(directory: Path, key_prefix: str) -> Iterator[str]:
    """Keys under ``directory`` in sorted key order, without collecting them all first.

    A directory ``a`` sorts as ``a/`` among its siblings, which is exactly where its keys
    fall in a plain string sort of the full keys (and so the order matches S3's listing).
    """
    entries = [e for e in os.scandir(directory) if not e.name.startswith(_TMP_PREFIX)]
    entries.sort(key=lambda e: e.name + "/" if e.is_dir() else e.name)
    for entry in entries:
        if entry.is_dir():
            yield from _walk(Path(entry.path), f"{key_prefix}{entry.name}/")
        else:
            yield key_prefix + entry.name


def _fsync(path: Path, flags: int) -> None:
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:  # deleted meanwhile: nothing left to make durable
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _AtomicFile:
    """A context manager writing to a temp file that replaces ``path`` only on success."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> BinaryIO:
        fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=self.path.parent)
        self._tmp = tmp
        self._file = os.fdopen(fd, "wb")
        return self._file

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            self._file.close()
            if exc_type is None:
                os.replace(self._tmp, self.path)
        finally:
            if os.path.exists(self._tmp):
                os.unlink(self._tmp)
