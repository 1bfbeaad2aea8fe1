"""ObjectMeta fields Kubernetes removed: ``clusterName`` (gone from the API in 1.25).

An old API server stores ``metadata.clusterName`` when a client sends it, at the top of an
object and in the object metadata it embeds (pod templates, a CronJob's job template, a
StatefulSet's claim templates, ephemeral volume claim templates). A 1.25+ server-side apply
refuses the whole object ("field not declared in schema"), so the field is removed wherever
it appears, as a loss the report shows: no release since 1.25 can hold it.
"""

from __future__ import annotations

from typing import Any

from migrator.resources.objects import Path, lookup
from migrator.transform.base import Result, Severity
from migrator.transform.conversions.rewriter import Rewriter
from migrator.transform.podspecs import POD_SPEC_PATHS

REMOVED = ("clusterName",)
# By kind: where the pod spec is, and the metadata of the pod template around it.
_POD_SPECS: dict[str, Path] = {kind: tokens for (_group, kind), tokens in POD_SPEC_PATHS.items()}
_TEMPLATE_METADATA: dict[str, Path] = {
    kind: (*tokens[:-1], "metadata") for kind, tokens in _POD_SPECS.items() if tokens[:-1]
}
_REASON = "metadata.{field} was removed from Kubernetes in 1.25: the new release cannot hold it"
_SOURCE = "removed metadata fields"


def metadata_paths(obj: dict[str, Any]) -> list[Path]:
    """Every ObjectMeta of ``obj`` a built-in kind can hold: its own, its pod template's, its
    job template's, its claim templates' and its ephemeral volumes' claim templates'."""
    kind = str(obj.get("kind") or "")
    paths: list[Path] = [("metadata",)]
    template = _TEMPLATE_METADATA.get(kind)
    if template is not None:
        paths.append(template)
    spec = _POD_SPECS.get(kind)
    if spec is not None:
        for index, volume in enumerate(lookup(obj, (*spec, "volumes")) or ()):
            if isinstance(volume, dict) and "ephemeral" in volume:
                paths.append(
                    (*spec, "volumes", index, "ephemeral", "volumeClaimTemplate", "metadata")
                )
    if kind == "CronJob":
        paths.append(("spec", "jobTemplate", "metadata"))
    elif kind == "StatefulSet":
        for index in range(len(lookup(obj, ("spec", "volumeClaimTemplates")) or ())):
            paths.append(("spec", "volumeClaimTemplates", index, "metadata"))
    return paths


def normalize_object_meta(obj: dict[str, Any]) -> Result:
    """``obj`` without the ObjectMeta fields Kubernetes removed (see the module doc)."""
    found = [
        (*path, name)
        for path in metadata_paths(obj)
        if isinstance(meta := lookup(obj, path), dict)
        for name in REMOVED
        if name in meta
    ]
    if not found:
        return Result(obj)
    rw = Rewriter(obj, _SOURCE)
    for path in found:
        rw.remove(path, _REASON.format(field=path[-1]), Severity.LOSS)
    return rw.result()
