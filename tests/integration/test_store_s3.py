"""The S3 store against the proving ground's MinIO: round trips, multipart, mapped errors,
and a whole snapshot written to a bucket and read back."""

from __future__ import annotations

import base64
import os
import socket
import zlib
from collections.abc import Iterator

import pytest

from migrator.errors import StoreAccessDenied, StoreKeyNotFound, StoreNotFound, StoreUnreachable
from migrator.snapshot import SnapshotReader, SnapshotWriter, list_snapshots
from migrator.store import open_store
from migrator.store.s3 import MiB, S3Store

pytestmark = pytest.mark.integration


@pytest.fixture
def aws_env(s3, monkeypatch: pytest.MonkeyPatch, tmp_path) -> Iterator[None]:
    """Only the proving ground's settings, as a user would export them (no profile files)."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    yield


def test_round_trip_with_settings_from_the_environment(s3, aws_env) -> None:
    store = open_store(f"s3://{s3.bucket}/team/a")  # endpoint from AWS_ENDPOINT_URL_S3
    store.check()
    store.put_bytes("snap/x/1", b"one")
    store.put_bytes("snap/x/2", b"\x00two\xff")
    store.put_bytes("snap-b/y", b"three")
    store.put_bytes("other", b"four")

    assert store.get_bytes("snap/x/2") == b"\x00two\xff"
    with store.open_read("snap/x/1") as stream:
        assert stream.read() == b"one"
    assert store.size("snap-b/y") == 5
    assert store.exists("other") and not store.exists("nothing")
    assert list(store.list()) == ["other", "snap-b/y", "snap/x/1", "snap/x/2"]
    assert list(store.list("snap/")) == ["snap/x/1", "snap/x/2"]
    assert list(store.children("")) == ["other", "snap", "snap-b"]
    # The keys really live under the URL's prefix.
    listed = s3.client().list_objects_v2(Bucket=s3.bucket)["Contents"]
    assert {o["Key"] for o in listed} == {
        "team/a/snap/x/1",
        "team/a/snap/x/2",
        "team/a/snap-b/y",
        "team/a/other",
    }

    store.delete("other")
    store.delete("other")
    store.delete_prefix("snap/")
    assert list(store.list()) == ["snap-b/y"]
    with pytest.raises(StoreKeyNotFound):
        store.get_bytes("snap/x/1")
    with pytest.raises(StoreKeyNotFound):
        store.size("snap/x/1")


def test_multipart_upload_reads_back_byte_exact(s3, aws_env, tmp_path) -> None:
    store = S3Store(
        s3.bucket,
        endpoint_url=s3.endpoint,
        multipart_threshold=5 * MiB,
        multipart_chunksize=5 * MiB,
    )
    data = os.urandom(12 * MiB + 123)
    path = tmp_path / "big"
    path.write_bytes(data)
    store.put_file("big/from-path", path)
    with open(path, "rb") as stream:
        store.put_file("big/from-stream", stream)

    for key in ("big/from-path", "big/from-stream"):
        etag = s3.client().head_object(Bucket=s3.bucket, Key=key)["ETag"]
        assert etag.strip('"').endswith("-3")  # three 5 MiB parts: it really went multipart
        assert store.get_bytes(key) == data


def test_content_its_readers_verify_is_stored_without_a_transport_checksum(
    s3, aws_env, tmp_path
) -> None:
    """A pack or snapshot part (``checked=True``) is verified by its reader end to end, so
    it skips botocore's CRC32 on both sides; heads and state documents keep one, stored
    with the object and checked on every read."""
    store = S3Store(
        s3.bucket,
        endpoint_url=s3.endpoint,
        multipart_threshold=5 * MiB,
        multipart_chunksize=5 * MiB,
    )
    small, big = b"a state document", os.urandom(11 * MiB)
    (tmp_path / "big").write_bytes(big)
    store.put_bytes("doc", small)
    store.put_bytes("pack", small, checked=True)
    store.put_file("part", tmp_path / "big")
    store.put_file("part-checked", tmp_path / "big", checked=True)

    def stored_crc(key: str) -> str | None:
        head = s3.client().head_object(Bucket=s3.bucket, Key=key, ChecksumMode="ENABLED")
        return head.get("ChecksumCRC32")

    assert stored_crc("doc") == base64.b64encode(zlib.crc32(small).to_bytes(4, "big")).decode()
    assert stored_crc("part") is not None  # multipart: a checksum of the parts' checksums
    assert stored_crc("pack") is None
    assert stored_crc("part-checked") is None
    for key, data in [("doc", small), ("pack", small), ("part", big), ("part-checked", big)]:
        assert store.get_bytes(key) == data
        assert store.get_bytes(key, checked=True) == data


def test_missing_bucket_is_store_not_found(s3, aws_env) -> None:
    store = open_store(f"s3://{s3.bucket}-missing/prefix", s3_endpoint=s3.endpoint)
    for action in (
        store.check,
        lambda: store.get_bytes("k"),
        lambda: list(store.list()),
        lambda: store.put_bytes("k", b"x"),
        lambda: store.exists("k"),
    ):
        with pytest.raises(StoreNotFound) as info:
            action()
        assert f"bucket '{s3.bucket}-missing' does not exist" in str(info.value)
        assert "aws s3 mb" in (info.value.hint or "")


def test_wrong_secret_is_access_denied_without_the_secret(s3, aws_env, monkeypatch) -> None:
    wrong = "Wr0ngSecretValue-" + os.urandom(8).hex()
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong)
    store = open_store(f"s3://{s3.bucket}", s3_endpoint=s3.endpoint)
    for action in (store.check, lambda: store.put_bytes("k", b"x"), lambda: store.get_bytes("k")):
        with pytest.raises(StoreAccessDenied) as info:
            action()
        error: BaseException | None = info.value
        while error is not None:  # nowhere in the chain either
            assert wrong not in str(error) and s3.secret_key not in str(error)
            error = error.__cause__
        assert wrong not in (info.value.hint or "")


def test_unreachable_endpoint(s3, aws_env) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = S3Store(s3.bucket, endpoint_url=f"http://127.0.0.1:{port}", max_attempts=2)
    with pytest.raises(StoreUnreachable, match=f"127.0.0.1:{port}"):
        store.check()
    with pytest.raises(StoreUnreachable):
        store.put_bytes("k", b"x")


def test_snapshot_written_to_s3_and_read_back(s3, aws_env) -> None:
    store = open_store(f"s3://{s3.bucket}/snapshots", s3_endpoint=s3.endpoint)
    key = os.urandom(32)
    cms = [
        {
            "kind": "ConfigMap",
            "metadata": {"name": f"c{i}", "namespace": "n"},
            "data": {"i": str(i)},
        }
        for i in range(250)
    ]
    writer = SnapshotWriter(store, "s3-snap", key=key, part_max_objects=100)
    with writer.resource("", "v1", "configmaps", "ConfigMap", True) as out:
        for obj in cms:
            out.write(obj)
    with writer.resource("apps", "v1", "deployments", "Deployment", True) as out:
        out.write(
            {"kind": "Deployment", "metadata": {"name": "d", "namespace": "n"}},
            aside={"status": {"replicas": 2}},
        )
    writer.commit(source={"gitVersion": "v1.21.14"})

    reader = SnapshotReader(store, "s3-snap", key=key)
    assert reader.verify().ok
    entry = reader.find("", "v1", "configmaps")
    assert entry is not None and len(entry["parts"]) == 3
    assert list(reader.iter_objects(entry)) == cms
    deploy = reader.find("apps", "v1", "deployments")
    assert list(reader.iter_aside(deploy)) == [
        {"namespace": "n", "name": "d", "status": {"replicas": 2}}
    ]
    [listed] = list_snapshots(store)
    assert (
        listed["id"] == "s3-snap"
        and listed["complete"]
        and listed["objects"] == 251
        and listed["encrypted"]
    )
    names = {o["Key"] for o in s3.client().list_objects_v2(Bucket=s3.bucket)["Contents"]}
    assert "snapshots/s3-snap/resources/core/v1/configmaps/part-00002.jsonl.gz.enc" in names
