"""``kubectl.kubernetes.io/last-applied-configuration`` at a removed apiVersion.

``kubectl apply`` three-way merges the manifest with this annotation; left at the old layout
(``spec.backend``, ``serviceName``...), the next apply on the new cluster computes wrong
deletions. It is rewritten with the same conversion as the object (mode ``rewrite``), or
dropped (mode ``drop``: the next apply then does a two-way merge and cannot prune fields the
manifest no longer names), or left alone (``keep``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from migrator.transform.base import Result, Severity
from migrator.transform.conversions.convert import worst_severity
from migrator.transform.conversions.rewriter import Rewriter

ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"
MODES = ("rewrite", "drop", "keep")
_PATH = ("metadata", "annotations", ANNOTATION)
_SOURCE = "last-applied-configuration"
# kubectl writes compact JSON with sorted keys: apiVersion comes first.
_API_VERSION = re.compile(r'"apiVersion"\s*:\s*"([^"]*)"')


def stale_api_version(obj: dict[str, Any], served: Callable[[str, str], bool]) -> str | None:
    """The annotation's apiVersion when the target does not serve it, else None (cheap)."""
    raw = ((obj.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION)
    if not isinstance(raw, str):
        return None
    match = _API_VERSION.search(raw)
    if match is None or served(match.group(1), obj.get("kind", "")):
        return None
    return match.group(1)


def rewrite_last_applied(
    obj: dict[str, Any], convert: Callable[[dict[str, Any]], Result], mode: str = "rewrite"
) -> Result:
    """Rewrite (or drop) the annotation of ``obj`` by running ``convert`` on its content."""
    if mode not in MODES:
        raise ValueError(f"last-applied mode must be one of {', '.join(MODES)}, not {mode!r}")
    rw = Rewriter(obj, _SOURCE)
    raw = rw.get(_PATH)
    if mode == "keep" or not isinstance(raw, str):
        return Result(obj)
    if mode == "drop":
        rw.remove(
            _PATH,
            "its apiVersion is not served by the target: the next `kubectl apply` does a "
            "two-way merge",
            Severity.INFO,
        )
        return rw.result()
    try:
        applied = json.loads(raw)
    except ValueError:
        rw.remove(_PATH, "not JSON: kubectl could not use it either", Severity.LOSS)
        return rw.result()
    converted = convert(applied)
    if converted.obj is None:
        rw.remove(_PATH, "its kind has no successor", Severity.INFO)
        return rw.result()
    text = json.dumps(converted.obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    new = text + "\n" if raw.endswith("\n") else text
    reason = (
        f"rewritten from {applied.get('apiVersion')} to {converted.obj.get('apiVersion')} with the "
        f"object's conversion ({len(converted.changes)} changes: "
        f"{', '.join(sorted({c.path for c in converted.changes}))})"
    )
    rw.put(_PATH, new)
    # no before/after: the values are the user's whole manifest, the reason names the fields
    rw.record(_PATH, "convert", reason, _carried(worst_severity(converted.changes)))
    return rw.result()


def _carried(severity: Severity) -> Severity:
    """A loss inside the annotation is worth a look; defaults and renames are not."""
    return Severity.REVIEW if severity in (Severity.LOSS, Severity.DROP) else Severity.INFO
