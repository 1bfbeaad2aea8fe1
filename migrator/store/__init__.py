"""Object storage behind one small interface: a local directory (default) or an S3 bucket.

``open_store("./snapshots")``, ``open_store("file:///srv/snaps")`` and
``open_store("s3://bucket/prefix", s3_endpoint="http://127.0.0.1:9000")`` all give a
:class:`Store`.
"""

from __future__ import annotations

from urllib.parse import unquote, urlparse

from migrator.errors import ConfigError
from migrator.store.base import Store
from migrator.store.local import LocalStore

__all__ = ["LocalStore", "Store", "open_store"]


def open_store(url: str, *, s3_endpoint: str | None = None) -> Store:
    """The store a URL names: ``s3://bucket[/prefix]``, ``file:///abs/path`` or a plain path.

    ``s3_endpoint`` overrides the S3 endpoint (MinIO and other S3-compatible servers); it is
    an error with a non-S3 URL, since it would silently do nothing.
    """
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        from migrator.store.s3 import S3Store  # boto3 is slow to import; only load it for S3

        return S3Store.from_url(url, endpoint_url=s3_endpoint)
    if s3_endpoint:
        raise ConfigError(f"an S3 endpoint was given but the store {url!r} is not an s3:// URL")
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise ConfigError(f"file URL {url!r} names a host; use file:///absolute/path")
        return LocalStore(unquote(parsed.path))
    if "://" in url:
        raise ConfigError(
            f"unsupported store URL {url!r}",
            hint="use a directory path, file:///path or s3://bucket/prefix",
        )
    return LocalStore(url)
