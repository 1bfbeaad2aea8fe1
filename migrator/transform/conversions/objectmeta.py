"""ObjectMeta fields Kubernetes removed: ``clusterName`` (gone from the API in 1.25).

An old API server stores ``metadata.clusterName`` when a client sends it, at the top of an
object and in the object metadata it embeds (pod templates, a CronJob's job template, a
StatefulSet's claim templates, ephemeral volume claim templates). A 1.25+ server-side apply
refuses the whole object ("field not declared in schema"), so the field is removed wherever
it appears, as a loss the report shows: no release since 1.25 can hold it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from migrator.resources.objects import Path, lookup
from migrator.transform.base import Result, Severity
from migrator.transform.conversions.rewriter import Rewriter
from migrator.transform.podspecs import POD_SPEC_PATHS, group_kind

REMOVED = ("clusterName",)
_REASON = "metadata.{field} was removed from Kubernetes in 1.25: the new release cannot hold it"
_SOURCE = "removed metadata fields"


def _pod_spec_metas(spec: Path, obj: dict[str, Any]) -> Iterator[Path]:
    """The ObjectMeta a pod spec embeds: its ephemeral volumes' claim templates."""
    for index, volume in enumerate(lookup(obj, (*spec, "volumes")) or ()):
        if isinstance(volume, dict) and "ephemeral" in volume:
            yield (*spec, "volumes", index, "ephemeral", "volumeClaimTemplate", "metadata")


def metadata_paths(obj: dict[str, Any]) -> Iterator[Path]:
    """Every ObjectMeta of ``obj`` a built-in kind can hold: its own, its pod template's, its
    job template's and its claim templates'."""
    yield ("metadata",)
    group, kind = group_kind(obj)
    spec = POD_SPEC_PATHS.get((group, kind))
    if spec is not None:
        if spec[:-1]:
            yield (*spec[:-1], "metadata")
        yield from _pod_spec_metas(spec, obj)
    if kind == "CronJob":
        yield ("spec", "jobTemplate", "metadata")
    if kind == "StatefulSet":
        for index in range(len(lookup(obj, ("spec", "volumeClaimTemplates")) or ())):
            yield ("spec", "volumeClaimTemplates", index, "metadata")


def normalize_object_meta(obj: dict[str, Any]) -> Result:
    """``obj`` without the ObjectMeta fields Kubernetes removed (see the module doc)."""
    found = [
        (*path, name)
        for path in metadata_paths(obj)
        for name in REMOVED
        if isinstance(lookup(obj, path), dict) and name in lookup(obj, path)
    ]
    if not found:
        return Result(obj)
    rw = Rewriter(obj, _SOURCE)
    for path in found:
        rw.remove(path, _REASON.format(field=path[-1]), Severity.LOSS)
    return rw.result()
