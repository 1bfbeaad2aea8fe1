"""Which built-in conversion applies to an object, and converting it for a given target.

``convert_for`` follows conversions (v2beta1 → v2beta2 → v2) to the newest version the target
serves, drops kinds with no successor, and rewrites what embeds manifests: the last-applied
annotation and Helm release records. Pod templates of objects already at a served version are
the runner's to normalize (``podtemplate.normalize_pod_template``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from migrator.kube import removals
from migrator.transform.base import Change, Conversion, Result, Severity
from migrator.transform.conversions import ALL, helm, lastapplied
from migrator.transform.conversions.rewriter import lookup

Serves = Callable[[str], bool]
KindServes = Callable[[str, str], bool]
__all__ = [
    "CONVERSIONS",
    "chain",
    "convert_for",
    "find",
    "lookup",
    "release_serves",
    "removals_by_release",
]

CONVERSIONS: tuple[Conversion, ...] = ALL
_BY_SOURCE: dict[tuple[str, str], Conversion] = {c.source: c for c in CONVERSIONS}
if len(_BY_SOURCE) != len(CONVERSIONS):
    raise RuntimeError("two built-in conversions declare the same source")


def find(api_version: str, kind: str) -> Conversion | None:
    """The conversion for objects of ``kind`` at ``api_version``, or None."""
    return _BY_SOURCE.get((api_version, kind))


def chain(api_version: str, kind: str) -> list[Conversion]:
    """The conversions from (api_version, kind) to the newest successor, in order."""
    steps: list[Conversion] = []
    conversion = find(api_version, kind)
    while conversion is not None and len(steps) < 8:
        steps.append(conversion)
        conversion = find(*conversion.target) if conversion.target else None
    return steps


def removals_by_release(target_minor: int) -> set[tuple[str, str]]:
    """Every (apiVersion, kind) migrator converts that a 1.``target_minor`` server no longer
    serves."""
    return {c.source for c in CONVERSIONS if c.removed_in <= (1, target_minor)}


def release_serves(target_minor: int) -> KindServes:
    """What a 1.``target_minor`` server serves, for ``--target-version`` (built-in tables only)."""
    removed = removals_by_release(target_minor)
    release = (1, target_minor)

    def serves(api_version: str, kind: str) -> bool:
        if (api_version, kind) in removed or removals.is_removed_by(api_version, release):
            return False
        added = removals.kind_added_in(api_version, kind)
        return added is None or added <= release

    return serves


def convert_for(
    obj: dict[str, Any],
    serves: Serves,
    *,
    kind_serves: KindServes | None = None,
    last_applied: str = "rewrite",
) -> Result:
    """``obj`` as the target can take it: converted, or dropped; with every change recorded.

    ``serves(apiVersion)`` says what the target serves (its discovery); ``kind_serves`` may
    refine it per kind (storage.k8s.io/v1beta1 kept CSIStorageCapacity after StorageClass left).
    ``last_applied``: ``rewrite``, ``drop`` or ``keep`` the kubectl annotation when stale.
    """
    served = kind_serves or (lambda api_version, kind: serves(api_version))
    api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
    current: dict[str, Any] = obj
    changes: list[Change] = []
    if not served(api_version, kind):
        converted = _convert(obj, api_version, kind, served)
        if converted.obj is None:
            return converted
        current, changes = converted.obj, converted.changes

    def nested_convert(doc: dict[str, Any]) -> Result:
        return convert_for(doc, serves, kind_serves=kind_serves, last_applied="keep")

    if helm.is_release(current):
        nested = helm.rewrite_release(current, nested_convert)
        current, changes = nested.obj or current, [*changes, *nested.changes]
    if lastapplied.stale_api_version(current, served):
        nested = lastapplied.rewrite_last_applied(current, nested_convert, last_applied)
        current, changes = nested.obj or current, [*changes, *nested.changes]
    return Result(current, changes)


def _convert(obj: dict[str, Any], api_version: str, kind: str, served: KindServes) -> Result:
    steps = chain(api_version, kind)
    if not steps:
        return Result(
            obj,
            [
                Change(
                    "",
                    "keep",
                    f"the target does not serve {api_version} and migrator has no "
                    f"conversion for {kind}",
                    Severity.REVIEW,
                    source="registry",
                )
            ],
        )
    stop = None
    for index, step in enumerate(steps):
        if step.target is None:
            stop = index if stop is None else stop
            break
        if served(*step.target):
            stop = index
    if stop is None:
        targets = ", ".join(s.target[0] for s in steps if s.target)
        return Result(
            None,
            [
                Change(
                    "",
                    "drop",
                    f"the target serves neither {api_version} nor any successor ({targets})",
                    Severity.DROP,
                    source="registry",
                )
            ],
        )
    changes: list[Change] = []
    current: dict[str, Any] | None = obj
    for step in steps[: stop + 1]:
        if current is None:
            break
        step_result = step.convert(current)
        changes.extend(step_result.changes)
        current = step_result.obj
    return Result(current, changes)
