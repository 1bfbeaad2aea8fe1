"""JSON for the hot paths: list pages in from the API server, snapshot lines out.

orjson parses and encodes several times faster than the standard library, which matters
when every object of a cluster passes through both (the export's CPU shares two cores with
the API server). What orjson refuses to encode (an integer beyond 64 bits, a subclass it
does not know) falls back to the standard encoder. orjson reads an integer beyond 64 bits
as a float; the API server cannot send one (Go decodes JSON numbers into int64 or float64
before it stores or serves them), so nothing is lost on the way in.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def loads(data: bytes | str) -> Any:
    """Parse a JSON document; a malformed one raises ``json.JSONDecodeError`` (orjson's
    error is a subclass of it)."""
    return orjson.loads(data)


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON of ``value``."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return _ENCODER.encode(value).encode("utf-8")
