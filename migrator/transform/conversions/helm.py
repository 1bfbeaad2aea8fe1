"""Helm v3 release records whose manifests name removed apiVersions.

Helm stores each release revision in a Secret of type ``helm.sh/release.v1`` (or a ConfigMap
labelled ``owner: helm`` with the ConfigMap driver): ``data.release`` is
base64(gzip(JSON release)) — and, in a Secret, base64 once more. The release's ``manifest``
(and each hook's) is a multi-document YAML string; ``helm upgrade`` diffs against it and fails
on kinds the cluster no longer serves. Each document at a removed version is rewritten with the
same conversion as live objects; the others are kept byte for byte, comments included.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
from collections.abc import Callable
from typing import Any

import yaml

from migrator.transform.base import Result, Severity
from migrator.transform.conversions.convert import worst_severity
from migrator.transform.conversions.rewriter import Rewriter

RELEASE_SECRET_TYPE = "helm.sh/release.v1"
_GZIP_MAGIC = b"\x1f\x8b\x08"
_SEPARATOR = re.compile(r"^---[ \t]*(?:#.*)?$", re.MULTILINE)
_SOURCE = "helm release"
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

Convert = Callable[[dict[str, Any]], Result]


def is_release(obj: dict[str, Any]) -> bool:
    """True for a Helm v3 release record (Secret or ConfigMap driver)."""
    if obj.get("kind") == "Secret":
        return obj.get("type") == RELEASE_SECRET_TYPE
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return (
        obj.get("kind") == "ConfigMap"
        and labels.get("owner") == "helm"
        and "release" in (obj.get("data") or {})
    )


def decode_release(encoded: str) -> dict[str, Any]:
    """Helm's ``decodeRelease``: base64, gunzip when compressed, JSON."""
    raw = base64.b64decode(encoded)
    if raw[:3] == _GZIP_MAGIC:
        raw = gzip.decompress(raw)
    return json.loads(raw)


def encode_release(release: dict[str, Any]) -> str:
    """Helm's ``encodeRelease``: compact JSON, gzip at best compression, base64."""
    data = json.dumps(release, separators=(",", ":"), ensure_ascii=False).encode()
    return base64.b64encode(gzip.compress(data, compresslevel=9, mtime=0)).decode()


def _split(manifest: str) -> list[str]:
    """The manifest cut at ``---`` lines, separators kept, so joining gives it back."""
    parts, start = [], 0
    for match in _SEPARATOR.finditer(manifest):
        parts.append(manifest[start : match.start()])
        parts.append(match.group(0))
        start = match.end()
    parts.append(manifest[start:])
    return parts


def _rewrite_doc(
    text: str, convert: Convert, notes: list[str], changes: list, unreadable: list[str]
) -> str:
    if "apiVersion" not in text:
        return text
    try:
        doc = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as error:
        # Only where and what: the document may be a Secret's manifest, never quote it.
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        unreadable.append(f"{getattr(error, 'problem', None) or 'invalid YAML'}{where}")
        return text
    if not isinstance(doc, dict) or "apiVersion" not in doc:
        return text
    result = convert(doc)
    if not result.changes:
        return text
    changes.extend(result.changes)
    name = f"{doc.get('kind')} {(doc.get('metadata') or {}).get('name', '')}".strip()
    if result.obj is None:
        notes.append(f"{name} ({doc['apiVersion']}) removed: no successor")
        return "\n" if text.startswith("\n") else ""
    notes.append(f"{name}: {doc['apiVersion']} → {result.obj.get('apiVersion')}")
    comments = "".join(
        line + "\n" for line in text.strip("\n").splitlines() if line.startswith("#")
    )
    body = yaml.dump(
        result.obj, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True
    )
    return ("\n" if text.startswith("\n") else "") + comments + body


def rewrite_manifest(
    manifest: str,
    convert: Convert,
    notes: list[str],
    changes: list,
    unreadable: list[str] | None = None,
) -> str:
    """``manifest`` with every document ``convert`` changes rewritten (notes say which);
    documents that are not valid YAML are kept as they are and listed in ``unreadable``."""
    parts = _split(manifest)
    for index in range(0, len(parts), 2):
        parts[index] = _rewrite_doc(
            parts[index], convert, notes, changes, unreadable if unreadable is not None else []
        )
    return "".join(parts)


def rewrite_release(obj: dict[str, Any], convert: Convert) -> Result:
    """The release record with its manifests rewritten; unchanged when nothing needed it."""
    rw = Rewriter(obj, _SOURCE)
    secret = obj.get("kind") == "Secret"
    stored = rw.get(("data", "release"))
    if not isinstance(stored, str):
        return Result(obj)
    try:
        encoded = base64.b64decode(stored).decode() if secret else stored
        release = decode_release(encoded)
    except (ValueError, OSError, EOFError) as error:
        rw.record(
            ("data", "release"),
            "keep",
            f"cannot decode the Helm release ({error})",
            Severity.REVIEW,
        )
        return rw.result()
    notes: list[str] = []
    changes: list = []
    unreadable: list[str] = []
    if isinstance(release.get("manifest"), str):
        release["manifest"] = rewrite_manifest(
            release["manifest"], convert, notes, changes, unreadable
        )
    for hook in release.get("hooks") or ():
        if isinstance(hook, dict) and isinstance(hook.get("manifest"), str):
            hook["manifest"] = rewrite_manifest(
                hook["manifest"], convert, notes, changes, unreadable
            )
    if unreadable:
        rw.record(
            ("data", "release"),
            "keep",
            f"{len(unreadable)} document(s) of the Helm release manifest are not valid "
            f"YAML ({'; '.join(unreadable)}): kept as they are, not converted; check "
            "them before `helm upgrade`",
            Severity.REVIEW,
        )
    if not notes:
        return rw.result() if unreadable else Result(obj)
    encoded = encode_release(release)
    rw.put(("data", "release"), base64.b64encode(encoded.encode()).decode() if secret else encoded)
    # never before/after: a release can hold Secret manifests
    rw.record(
        ("data", "release"),
        "convert",
        "Helm release manifest rewritten so `helm upgrade` works: " + "; ".join(notes),
        worst_severity(changes),
    )
    return rw.result()
