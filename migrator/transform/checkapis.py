"""``check-apis``: what the transform will do to each object whose API the target lacks.

Like pluto or kubent, but from the objects themselves, not from last-applied annotations
(which miss everything deployed by operators or server-side apply). For a snapshot, every
object's own apiVersion is checked. For a live cluster, objects are read through each
group/version the target does not serve, and kept when they were written through it (their
``managedFields`` say so, or a last-applied annotation as a fallback) or when no other
version serves them at all (PodSecurityPolicy, a beta-only CronJob).

Verdicts: ``ok``, ``convert``, ``review`` (converted, meaning may differ), ``loss``
(converted, something dropped), ``drop`` (no successor: the suggested replacement is in the
details), ``unsupported`` (not served by the target and no conversion known).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from migrator.kube import Cluster, Discovery, iter_items
from migrator.kube.discovery import listable
from migrator.resources.crds import webhook_notes
from migrator.resources.identity import identity_of
from migrator.resources.objects import Obj, describe_ref, object_ref
from migrator.resources.regenerated import classify, type_skip
from migrator.resources.types import ResourceType
from migrator.snapshot import SnapshotReader
from migrator.snapshot.layout import typed
from migrator.transform import builtin
from migrator.transform.base import Severity

log = logging.getLogger(__name__)

Serves = Callable[[str], bool]
NEEDS_PERSON = ("review", "loss", "drop", "unsupported")
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


@dataclass
class ApiCheck:
    """The verdict on one object."""

    object: dict[str, Any]
    verdict: str
    becomes: str | None = None  # "networking.k8s.io/v1 Ingress" when converted
    details: list[str] = field(default_factory=list)
    written_via: dict[str, Any] | None = None  # live clusters: group/version and managers

    @property
    def needs_person(self) -> bool:
        return self.verdict in NEEDS_PERSON

    def to_dict(self) -> dict[str, Any]:
        data = {
            "object": self.object,
            "verdict": self.verdict,
            "needsPerson": self.needs_person,
            "details": self.details,
        }
        if self.becomes:
            data["becomes"] = self.becomes
        if self.written_via:
            data["writtenVia"] = self.written_via
        return data


@dataclass
class CheckReport:
    """Every object that is not simply ``ok``, and counts of all verdicts."""

    target: dict[str, Any]
    checks: list[ApiCheck] = field(default_factory=list)
    verdicts: Counter[str] = field(default_factory=Counter)
    # CRDs that convert through a webhook, and what migrator will do about them.
    conversion_webhooks: dict[str, str] = field(default_factory=dict)

    @property
    def needs_person(self) -> list[ApiCheck]:
        return [c for c in self.checks if c.needs_person]

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "verdicts": dict(sorted(self.verdicts.items())),
            "needsPerson": [describe_ref(c.object) for c in self.needs_person],
            "objects": [c.to_dict() for c in self.checks],
            "conversionWebhooks": dict(self.conversion_webhooks),
        }


def verdict(obj: Obj, serves: Serves, converter: builtin.Converter = builtin.convert) -> ApiCheck:
    """What the transform does to ``obj`` for a target that serves what ``serves`` says.

    An object at a served version is ``ok`` unless the normalizers must change it in a way a
    person should see (what the old server's conversion left that the new release refuses,
    such as a webhook's ``sideEffects: Unknown``): then ``review`` or ``loss``.
    """
    ref = object_ref(obj)
    if serves(str(obj.get("apiVersion") or "")):
        return _normalized_verdict(ref, obj)
    result = converter(obj, serves)
    worst = {c.severity for c in result.changes}
    details = [
        c.reason
        for c in result.changes
        if c.severity in (Severity.REVIEW, Severity.LOSS, Severity.DROP)
    ]
    if result.obj is None:
        return ApiCheck(ref, "drop", details=details or [c.reason for c in result.changes])
    becomes = f"{result.obj.get('apiVersion')} {result.obj.get('kind')}"
    if not serves(str(result.obj.get("apiVersion") or "")):
        return ApiCheck(
            ref,
            "unsupported",
            details=[
                f"the target does not serve {obj.get('apiVersion')} and no conversion is known"
            ],
        )
    name = "loss" if Severity.LOSS in worst else "review" if Severity.REVIEW in worst else "convert"
    return ApiCheck(ref, name, becomes=becomes, details=details)


def _normalized_verdict(ref: dict[str, Any], obj: Obj) -> ApiCheck:
    changes = []
    for _name, normalize in builtin.NORMALIZERS:
        result = normalize(obj)
        changes += result.changes
        obj = result.obj if result.obj is not None else obj
    details = [c.reason for c in changes if c.severity in (Severity.REVIEW, Severity.LOSS)]
    if not details:
        return ApiCheck(ref, "ok")
    name = "loss" if any(c.severity is Severity.LOSS for c in changes) else "review"
    return ApiCheck(ref, name, becomes=f"{ref['apiVersion']} {ref['kind']}", details=details)


def check_apis(
    objects: Iterable[Obj | tuple[Obj, dict[str, Any]]],
    serves: Serves,
    *,
    target: dict[str, Any],
    converter: builtin.Converter = builtin.convert,
    crds: Iterable[Obj] = (),
) -> CheckReport:
    """Check every object; live objects come as (object, written_via) pairs. ``crds`` (the
    source's) say which custom resources convert through a webhook."""
    report = CheckReport(target=target, conversion_webhooks=webhook_notes(crds))
    for item in objects:
        obj, via = item if isinstance(item, tuple) else (item, None)
        check = verdict(obj, serves, converter)
        check.written_via = via
        report.verdicts[check.verdict] += 1
        if check.verdict != "ok":
            report.checks.append(check)
    return report


def snapshot_objects(reader: SnapshotReader) -> Iterator[Obj]:
    """Every object of a snapshot, streamed, with its apiVersion and kind (from its entry)."""
    for entry in reader.resources():
        yield from (typed(obj, entry) for obj in reader.iter_objects(entry))


def _writers(obj: Obj, group_version: str) -> list[str] | None:
    """Managers that wrote ``obj`` through ``group_version``; None if the object cannot say."""
    meta = obj.get("metadata") or {}
    managed = meta.get("managedFields")
    if managed:
        return sorted(
            {str(m.get("manager", "?")) for m in managed if m.get("apiVersion") == group_version}
        )
    applied = (meta.get("annotations") or {}).get(LAST_APPLIED)
    if applied:
        try:
            if json.loads(applied).get("apiVersion") == group_version:
                return ["kubectl (last-applied)"]
        except (ValueError, AttributeError):
            return None
        return []
    return None


def live_objects(
    cluster: Cluster,
    discovery: Discovery,
    serves: Serves,
) -> Iterator[tuple[Obj, dict[str, Any]]]:
    """Objects of ``cluster`` written through a group/version the target does not serve."""
    seen: set[str] = set()
    for gv in discovery.group_versions():
        if serves(gv):
            continue
        for resource in listable(discovery.resources(gv)):
            rtype = ResourceType(
                resource.group, resource.version, resource.name, resource.kind, resource.namespaced
            )
            if type_skip(rtype.group, rtype.resource) is not None:
                continue
            ident = identity_of(resource.group, resource.name)
            only_here = not any(
                r.group_version != gv and identity_of(r.group, r.name) == ident
                for r in listable(discovery.iter_resources())
            )
            for obj in iter_items(cluster, rtype.list_path()):
                uid = str((obj.get("metadata") or {}).get("uid") or "")
                writers = _writers(obj, gv)
                if uid in seen or not (only_here or writers or writers is None):
                    continue
                if classify(obj, rtype.group, rtype.resource) is not None:
                    continue  # export leaves it behind (built-in, regenerated): nothing to convert
                seen.add(uid)
                obj.setdefault("apiVersion", gv)
                obj.setdefault("kind", resource.kind)
                yield obj, {"groupVersion": gv, "managers": writers or [], "onlyVersion": only_here}
