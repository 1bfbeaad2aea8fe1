"""A store in an S3 bucket (AWS or any S3-compatible server such as MinIO), through boto3.

Endpoint, region and credentials come from the usual AWS settings (environment variables,
profiles, ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``, which boto3 reads itself), plus an
explicit ``endpoint_url`` (the CLI's ``--s3-endpoint``). With a custom endpoint we address
buckets path-style, which S3-compatible servers expect.

Transport checksums are asked for per object, not by botocore's default (a CRC32 of every
put, checked on every get): content its readers verify themselves (``checked=True``, see
:mod:`migrator.store.base`) goes without, which saves ~0.4 s of the client's CPU per GiB
uploaded (measured: 2 GiB of 8 MiB puts took 4.5-5.2 s of CPU with the CRC32, 3.3-3.9 s
without); the rest keeps its CRC32.

Over plain HTTP botocore signs every body with its SHA-256, and that signature is then what
guards a body on its way, so it stays. Over HTTPS (AWS itself, or an ``https://`` endpoint)
TLS guards it: the client sends ``UNSIGNED-PAYLOAD`` and does not hash the body at all.
Without this, a put without a checksum would be hashed even over HTTPS (botocore signs the
body unless a checksum header is there): measured on 1 GiB of 8 MiB puts as they leave the
client, 0.94-1.04 s of CPU with the hash, 0.08-0.11 s without.

Retries are botocore's own (standard mode); this module adds none. Every botocore failure is
turned into a :class:`~migrator.errors.StoreError` child that says what to do, raised
``from`` the botocore error; messages name the bucket and endpoint, never a credential.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import IO, Any, BinaryIO, cast
from urllib.parse import urlparse

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from migrator.errors import (
    ConfigError,
    StoreAccessDenied,
    StoreError,
    StoreKeyNotFound,
    StoreNotFound,
    StoreUnreachable,
)
from migrator.store.base import Source, Store, check_key
from migrator.store.boto_session import quick_session

MiB = 1024 * 1024

_NOT_FOUND = frozenset({"404", "NoSuchKey", "NotFound"})
_DENIED = frozenset(
    {
        "403",
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
        "AllAccessDisabled",
        "AccountProblem",
    }
)
_CREDENTIALS_HINT = (
    "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) and that they may "
    "read and write this bucket"
)
_DELETE_BATCH = 1000  # the most keys one DeleteObjects call takes


def _put_checksum(checked: bool) -> dict[str, str]:
    """A put's checksum arguments: CRC32, computed here and checked by the server, unless
    the content's readers verify it themselves."""
    return {} if checked else {"ChecksumAlgorithm": "CRC32"}


class S3Store(Store):
    """Keys live under ``s3://bucket/prefix/``."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        multipart_threshold: int = 8 * MiB,
        multipart_chunksize: int = 8 * MiB,
        max_attempts: int = 5,
        session: boto3.session.Session | None = None,
    ) -> None:
        if not bucket:
            raise ConfigError("S3 store URL has no bucket name", hint="use s3://BUCKET[/PREFIX]")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        session = session or quick_session()  # its first client starts sooner
        custom_endpoint = (
            endpoint_url
            or os.environ.get("AWS_ENDPOINT_URL_S3")
            or os.environ.get("AWS_ENDPOINT_URL")
        )
        options: dict[str, Any] = {
            "retries": {"mode": "standard", "max_attempts": max_attempts},
            "request_checksum_calculation": "when_required",
            "response_checksum_validation": "when_required",
        }
        s3_options: dict[str, Any] = {}
        if custom_endpoint:
            s3_options["addressing_style"] = "path"
        if not custom_endpoint or custom_endpoint.lower().startswith("https://"):
            s3_options["payload_signing_enabled"] = False  # TLS guards the body (module doc)
        if s3_options:
            options["s3"] = s3_options
        # A custom endpoint still needs some region to sign with; S3-compatible servers
        # accept the AWS default.
        region = region or session.region_name or ("us-east-1" if custom_endpoint else None)
        self._client = session.client(
            "s3", endpoint_url=endpoint_url, region_name=region, config=Config(**options)
        )
        self._transfer = TransferConfig(
            multipart_threshold=multipart_threshold,
            multipart_chunksize=multipart_chunksize,
            max_concurrency=4,
        )
        self._bucket_seen = False

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> S3Store:
        """Build from ``s3://bucket[/prefix]``; ``kwargs`` go to the constructor."""
        parsed = urlparse(url)
        return cls(parsed.netloc, parsed.path, **kwargs)

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    @property
    def endpoint(self) -> str:
        """The endpoint boto3 resolved (explicit, from the environment, or AWS's own)."""
        return str(self._client.meta.endpoint_url)

    def check(self, *, create: bool = False) -> None:
        with self._errors():
            self._client.head_bucket(Bucket=self.bucket)
        self._bucket_seen = True

    def put_bytes(self, key: str, data: bytes | bytearray, *, checked: bool = False) -> None:
        with self._errors(key):
            self._client.put_object(
                Bucket=self.bucket, Key=self._full(key), Body=data, **_put_checksum(checked)
            )

    def put_file(self, key: str, source: Source, *, checked: bool = False) -> None:
        with self._errors(key):
            if isinstance(source, (str, os.PathLike)):
                with open(source, "rb") as stream:
                    self._upload(key, stream, checked)
            else:
                self._upload(key, source, checked)

    def get_bytes(self, key: str, *, checked: bool = False) -> bytes:
        with self.open_read(key, checked=checked) as stream, self._errors(key):
            return stream.read()

    def open_read(self, key: str, *, checked: bool = False) -> BinaryIO:
        extra = {} if checked else {"ChecksumMode": "ENABLED"}
        with self._errors(key):
            response = self._client.get_object(Bucket=self.bucket, Key=self._full(key), **extra)
        return cast(BinaryIO, response["Body"])

    def size(self, key: str) -> int:
        with self._errors(key):
            head = self._client.head_object(Bucket=self.bucket, Key=self._full(key))
        return int(head["ContentLength"])

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except StoreKeyNotFound:
            return False
        return True

    def list(self, prefix: str = "") -> Iterator[str]:
        strip = len(self._full_prefix(""))
        with self._errors():
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._full_prefix(prefix)
            )
            for page in pages:
                for item in page.get("Contents", []):
                    yield item["Key"][strip:]

    def children(self, prefix: str = "") -> Iterator[str]:
        full = self._full_prefix(prefix)
        with self._errors():
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=full, Delimiter="/"
            )
            for page in pages:
                dirs = [
                    p["Prefix"][len(full) :].rstrip("/") for p in page.get("CommonPrefixes", [])
                ]
                files = [item["Key"][len(full) :] for item in page.get("Contents", [])]
                yield from sorted(dirs + files)

    def delete(self, key: str) -> None:
        with self._errors(key):
            self._client.delete_object(Bucket=self.bucket, Key=self._full(key))

    def delete_prefix(self, prefix: str) -> None:
        batch: list[str] = []
        for key in self.list(prefix):
            batch.append(key)
            if len(batch) == _DELETE_BATCH:
                self._delete_batch(batch)
                batch = []
        if batch:
            self._delete_batch(batch)

    # -- helpers -------------------------------------------------------------------------

    def _upload(self, key: str, stream: IO[bytes], checked: bool) -> None:
        self._client.upload_fileobj(
            stream,
            self.bucket,
            self._full(key),
            ExtraArgs=_put_checksum(checked),
            Config=self._transfer,
        )

    def _delete_batch(self, keys: Sequence[str]) -> None:
        with self._errors():
            response = self._client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": self._full(k)} for k in keys], "Quiet": True},
            )
        errors = response.get("Errors", [])
        if errors:
            first = errors[0]
            error_class = StoreAccessDenied if first.get("Code") in _DENIED else StoreError
            raise error_class(
                f"could not delete {len(errors)} key(s) in {self.url}, first {first.get('Key')!r}: "
                f"{first.get('Code')}: {first.get('Message')}"
            )

    def _full(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _full_prefix(self, prefix: str) -> str:
        return f"{self.prefix}/{prefix}" if self.prefix else prefix

    @contextmanager
    def _errors(self, key: str | None = None) -> Iterator[None]:
        """Turn botocore failures inside the block into store errors."""
        try:
            yield
        except ClientError as err:
            raise self._translate(err, key) from err
        except (BotoConnectionError, HTTPClientError) as err:
            raise StoreUnreachable(
                f"cannot reach the S3 endpoint {self.endpoint} for bucket {self.bucket!r}: {err}",
                hint="check the endpoint URL (--s3-endpoint, AWS_ENDPOINT_URL_S3) and the network",
            ) from err
        except (NoCredentialsError, PartialCredentialsError) as err:
            raise StoreAccessDenied(
                f"no usable AWS credentials for bucket {self.bucket!r}", hint=_CREDENTIALS_HINT
            ) from err

    def _translate(self, err: ClientError, key: str | None) -> StoreError:
        code = str(err.response.get("Error", {}).get("Code", ""))
        if code == "NoSuchBucket" or (code in _NOT_FOUND and key is None):
            return self._no_bucket()
        if code in _NOT_FOUND:
            # A HEAD answers a bare 404 for a missing key and a missing bucket alike.
            if not self._bucket_seen and not self._bucket_exists():
                return self._no_bucket()
            return StoreKeyNotFound(f"{key!r} not found in {self.url}", key=key or "")
        if code in _DENIED:
            return StoreAccessDenied(
                f"S3 at {self.endpoint} denied access to bucket {self.bucket!r} ({code})",
                hint=_CREDENTIALS_HINT,
            )
        message = err.response.get("Error", {}).get("Message") or "no message"
        what = f"{key!r} in {self.url}" if key else self.url
        return StoreError(f"S3 request on {what} failed: {code}: {message}")

    def _bucket_exists(self) -> bool:
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError as err:
            # Anything but "not found" (say, no permission to HEAD the bucket) says nothing
            # about the bucket being there; the key is what is missing.
            return str(err.response.get("Error", {}).get("Code")) not in _NOT_FOUND | {
                "NoSuchBucket"
            }
        self._bucket_seen = True
        return True

    def _no_bucket(self) -> StoreNotFound:
        return StoreNotFound(
            f"bucket {self.bucket!r} does not exist at {self.endpoint}",
            hint=f"create it first (aws s3 mb s3://{self.bucket}) or fix the store URL",
        )
