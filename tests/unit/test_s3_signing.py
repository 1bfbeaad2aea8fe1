"""How the S3 store signs what it uploads: the body's SHA-256 over plain HTTP (the only
guard of content without a checksum on its way), none over HTTPS (TLS guards it)."""
from __future__ import annotations

import hashlib

import pytest
from botocore.awsrequest import AWSResponse

from migrator.store.s3 import S3Store


class _Empty:
    def stream(self, **_kwargs):
        yield b""


def _sent_headers(store: S3Store) -> list[dict[str, str]]:
    """Every request the store's client sends is recorded, signed as it would go out, and
    answered with an empty 200 instead of reaching a server."""
    sent: list[dict[str, str]] = []

    def answer(request, **_kwargs):
        sent.append({k.lower(): v.decode() if isinstance(v, bytes) else v
                     for k, v in request.headers.items()})
        return AWSResponse(request.url, 200, {}, _Empty())

    store._client.meta.events.register("before-send.s3", answer)
    return sent


@pytest.fixture(autouse=True)
def _credentials(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-a-real-secret")
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


@pytest.mark.parametrize("checked", [True, False], ids=["checked", "unchecked"])
def test_over_https_a_body_is_not_hashed_for_the_signature(checked: bool):
    store = S3Store("bucket", endpoint_url="https://s3.example.invalid", region="us-east-1")
    sent = _sent_headers(store)
    store.put_bytes("packs/p1", b"x" * 4096, checked=checked)
    headers = sent[-1]
    if checked:
        assert headers["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
        assert "x-amz-checksum-crc32" not in headers and "x-amz-trailer" not in headers
    else:  # content its readers do not verify still carries a CRC32 the server checks
        assert headers["x-amz-content-sha256"] == "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
        assert headers["x-amz-trailer"] == "x-amz-checksum-crc32"


def test_without_an_endpoint_aws_itself_is_reached_over_https_unsigned():
    store = S3Store("bucket", region="eu-west-1")
    sent = _sent_headers(store)
    store.put_bytes("k", b"data", checked=True)
    assert store.endpoint.startswith("https://")
    assert sent[-1]["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"


@pytest.mark.parametrize("body_type", [bytes, bytearray])
@pytest.mark.parametrize("checked", [True, False], ids=["checked", "unchecked"])
def test_over_plain_http_the_signature_covers_the_body(checked: bool, body_type: type):
    """Also a bytearray's (a sealed pack is one), which is hashed and sent as it is."""
    store = S3Store("bucket", endpoint_url="http://127.0.0.1:9", region="us-east-1")
    sent = _sent_headers(store)
    body = body_type(b"y" * 4096 + b"z")
    store.put_bytes("packs/p1", body, checked=checked)
    assert sent[-1]["x-amz-content-sha256"] == hashlib.sha256(body).hexdigest()
    assert sent[-1]["content-length"] == str(len(body))
