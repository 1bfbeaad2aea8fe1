"""The local directory store: atomic writes, sorted listing, clear errors, URL parsing."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from migrator.errors import ConfigError, StoreKeyNotFound, StoreNotFound
from migrator.store import LocalStore, open_store

pytestmark = pytest.mark.unit


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    s = LocalStore(tmp_path / "store")
    s.check(create=True)
    return s


def test_put_get_round_trip(store: LocalStore, tmp_path: Path) -> None:
    store.put_bytes("a/b/c.bin", b"\x00\x01binary\xff")
    source = tmp_path / "source"
    source.write_bytes(os.urandom(3 * 1024 * 1024))
    store.put_file("big", source)
    store.put_file("stream", io.BytesIO(b"from a stream"))

    assert store.get_bytes("a/b/c.bin") == b"\x00\x01binary\xff"
    assert store.get_bytes("big") == source.read_bytes()
    with store.open_read("stream") as stream:
        assert stream.read() == b"from a stream"
    assert store.size("big") == 3 * 1024 * 1024
    assert store.exists("a/b/c.bin") and not store.exists("a/b/nope")


def test_put_replaces_existing(store: LocalStore) -> None:
    store.put_bytes("k", b"old")
    store.put_bytes("k", b"new")
    assert store.get_bytes("k") == b"new"


def test_failed_write_leaves_no_file(store: LocalStore) -> None:
    class Exploding(io.RawIOBase):
        def readinto(self, buffer):  # type: ignore[no-untyped-def]
            raise OSError("disk went away")

    with pytest.raises(OSError, match="disk went away"):
        store.put_file("snap/part", Exploding())
    assert not store.exists("snap/part")
    assert list(store.list()) == []
    assert os.listdir(store.root / "snap") == []  # no temp file left behind either


def test_list_is_sorted_like_s3_and_filters_by_prefix(store: LocalStore) -> None:
    keys = ["a/b", "a-c", "a/a/z", "b", "a0", "ab/x"]
    for key in keys:
        store.put_bytes(key, b"x")
    assert list(store.list()) == sorted(keys)
    assert list(store.list("a/")) == ["a/a/z", "a/b"]
    assert list(store.list("a")) == sorted(k for k in keys if k.startswith("a"))
    assert list(store.list("zzz/")) == []
    assert list(store.children("")) == ["a", "a-c", "a0", "ab", "b"]
    assert list(store.children("a/")) == ["a", "b"]


def test_temp_files_are_not_listed(store: LocalStore) -> None:
    store.put_bytes("s/real", b"x")
    (store.root / "s" / ".tmp-half").write_bytes(b"half a write")
    assert list(store.list()) == ["s/real"]


def test_delete_and_delete_prefix(store: LocalStore) -> None:
    for key in ["s1/x/a", "s1/y", "s2/a", "s10/a"]:
        store.put_bytes(key, b"x")
    store.delete("s1/y")
    store.delete("s1/y")  # deleting twice is fine
    store.delete_prefix("s1/")
    assert list(store.list()) == ["s10/a", "s2/a"]
    assert not (store.root / "s1").exists()
    store.delete_prefix("s")
    assert list(store.list()) == []
    assert store.root.is_dir()


def test_missing_root_is_store_not_found(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "nowhere")
    for action in (
        store.check,
        lambda: list(store.list()),
        lambda: store.get_bytes("k"),
        lambda: store.exists("k"),
    ):
        with pytest.raises(StoreNotFound, match="nowhere"):
            action()


def test_missing_key(store: LocalStore) -> None:
    with pytest.raises(StoreKeyNotFound) as info:
        store.get_bytes("no/such")
    assert info.value.key == "no/such"
    with pytest.raises(StoreKeyNotFound):
        store.size("no/such")


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "..", "a\\b", "./a"])
def test_bad_keys_are_refused(store: LocalStore, key: str) -> None:
    with pytest.raises(ValueError):
        store.put_bytes(key, b"x")


def test_open_store_urls(tmp_path: Path) -> None:
    assert isinstance(open_store(str(tmp_path)), LocalStore)
    local = open_store(tmp_path.as_uri())
    assert isinstance(local, LocalStore) and local.root == tmp_path
    assert local.url == tmp_path.as_uri()
    s3 = open_store("s3://bucket/some/prefix", s3_endpoint="http://127.0.0.1:9")
    assert s3.url == "s3://bucket/some/prefix"
    with pytest.raises(ConfigError):
        open_store("ftp://host/x")
    with pytest.raises(ConfigError, match="not an s3:// URL"):
        open_store(str(tmp_path), s3_endpoint="http://127.0.0.1:9")
    with pytest.raises(ConfigError, match="no bucket"):
        open_store("s3:///prefix")


def test_sync_makes_the_files_under_a_prefix_and_their_folders_durable(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Puts are not flushed one by one; sync fsyncs exactly what the prefix covers, files
    and the folders up to the root (a renamed file is only durable with its folder)."""
    for key in ("a/b/1", "a/b/2", "a/c/3", "x/4"):
        store.put_bytes(key, b"data")
    synced: list[str] = []
    real_fsync = os.fsync

    def recording(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording)
    store.sync("a/b/")
    root = str(store.root)
    assert sorted(synced) == sorted([f"{root}/a/b/1", f"{root}/a/b/2", f"{root}/a/b",
                                     f"{root}/a", root])
    synced.clear()
    store.sync("nothing/here/")
    assert synced == [root]
    synced.clear()
    store.sync("a/b/", parents=False)  # the folder's files and itself, not the folders above
    assert sorted(synced) == sorted([f"{root}/a/b/1", f"{root}/a/b/2", f"{root}/a/b"])
