"""Key loading in its three text forms (and raw bytes), key ids, AES-GCM parts."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from migrator import crypto
from migrator.errors import ConfigError, SnapshotCorrupt

pytestmark = pytest.mark.unit

KEY = bytes(range(32))


@pytest.mark.parametrize(
    "content",
    [
        KEY,
        KEY.hex().encode(),
        (KEY.hex() + "\n").encode(),
        base64.b64encode(KEY) + b"\n",
        KEY.hex().upper().encode(),
    ],
    ids=["raw", "hex", "hex-newline", "base64", "hex-upper"],
)
def test_load_key_file_forms(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "key"
    path.write_bytes(content)
    assert crypto.load_key(path, env={}) == KEY


@pytest.mark.parametrize("text", [KEY.hex(), base64.b64encode(KEY).decode(), f"  {KEY.hex()}\n"])
def test_load_key_from_env(text: str) -> None:
    assert crypto.load_key(env={crypto.KEY_ENV: text}) == KEY


def test_file_wins_over_env_and_nothing_means_none(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_text(KEY.hex())
    assert crypto.load_key(path, env={crypto.KEY_ENV: os.urandom(32).hex()}) == KEY
    assert crypto.load_key(env={}) is None


@pytest.mark.parametrize(
    "content",
    [b"too short", KEY.hex()[:-2].encode(), base64.b64encode(KEY[:16]), b"g" * 64, b""],
    ids=["text", "hex-31", "base64-16", "not-hex", "empty"],
)
def test_malformed_key_file_is_a_clear_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "key"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as info:
        crypto.load_key(path, env={})
    assert str(path) in str(info.value) and "valid key" in str(info.value)
    assert "64 hex" in (info.value.hint or "")
    if content:
        assert content.decode() not in str(info.value)  # never echo key material


def test_malformed_env_key_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=crypto.KEY_ENV):
        crypto.load_key(env={crypto.KEY_ENV: "nope"})
    with pytest.raises(ConfigError, match="cannot read key file"):
        crypto.load_key(tmp_path / "absent", env={})


def test_key_id_is_short_stable_and_distinct() -> None:
    assert crypto.key_id(KEY) == crypto.key_id(bytes(KEY))
    assert len(crypto.key_id(KEY)) == 16
    assert crypto.key_id(KEY) != crypto.key_id(crypto.generate_key())
    assert KEY.hex()[:16] != crypto.key_id(KEY)


def test_encrypt_round_trip_and_layout() -> None:
    blob = crypto.encrypt(
        KEY, b"secret payload", "resources/core/v1/secrets/part-00000.jsonl.gz.enc"
    )
    assert blob.startswith(crypto.MAGIC) and b"secret payload" not in blob
    assert len(blob) == 4 + 12 + len(b"secret payload") + 16
    assert (
        crypto.decrypt(KEY, blob, "resources/core/v1/secrets/part-00000.jsonl.gz.enc")
        == b"secret payload"
    )
    assert crypto.encrypt(KEY, b"x", "n") != crypto.encrypt(KEY, b"x", "n")  # fresh nonce each time
    # A pack is sealed from its bytearray; what is stored may come back as bytes.
    sealed = crypto.encrypt(KEY, bytearray(b"pack" * 100), "p")
    assert crypto.decrypt(KEY, bytes(sealed), "p") == crypto.decrypt(KEY, sealed, "p") == b"pack" * 100


@pytest.mark.parametrize("damage", ["flip", "truncate", "other-name", "header", "short"])
def test_decrypt_refuses_damaged_blobs(damage: str) -> None:
    blob = crypto.encrypt(KEY, b"payload" * 10, "a/part-00000")
    name = "a/part-00000"
    if damage == "flip":
        blob = blob[:30] + bytes([blob[30] ^ 1]) + blob[31:]
    elif damage == "truncate":
        blob = blob[:-5]
    elif damage == "other-name":
        name = "b/part-00000"
    elif damage == "header":
        blob = b"ZZZZ" + blob[4:]  # not the format's magic
    else:
        blob = blob[:20]
    with pytest.raises(SnapshotCorrupt) as info:
        crypto.decrypt(KEY, blob, name)
    assert info.value.part == name and name in str(info.value)
