"""What ``migrator migrate`` will do, read from both clusters before anything is touched.

:func:`preview` is what ``migrator plan`` shows: the objects per type the export will read
(and the types it leaves out), the objects whose API the target lacks and what they become,
the volumes with their sizes and classes, the DNS changes of each traffic step, and the
phases in order with the hooks at each point. It only reads: lists, discovery, the DNS
records. A part that cannot be read (a cluster or the DNS server unreachable) says so, with
the reason, instead of failing the preview: whether the migration may start is the
preflight's call (:mod:`migrator.migrate.preflight`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from migrator import export, kube, traffic
from migrator.errors import ApiError, MigratorError
from migrator.export.pages import list_total
from migrator.kube import Cluster, Discovery, discover
from migrator.kube.pager import METADATA_LIST, iter_items, iter_pages
from migrator.kube.retry import RetryPolicy
from migrator.migrate.phases import steps
from migrator.migrate.plan import HOOK_POINTS, ClusterRef, Hook, Plan
from migrator.resources.crds import live_crds
from migrator.resources.objects import dig, name_of, namespace_of
from migrator.resources.regenerated import skip_legend, type_skip
from migrator.resources.scope import Scope
from migrator.resources.types import ResourceType
from migrator.transform.checkapis import check_apis, live_objects
from migrator.transform.stage import (
    crd_group_versions,
    target_from_cluster,
    with_custom_resources,
)

log = logging.getLogger(__name__)

# A preview reads; an unreachable cluster is reported after a short while, not after the
# long budget a running stage gets.
PREVIEW_RETRY = RetryPolicy(budget=20.0)
PVC_PATH = "/api/v1/persistentvolumeclaims"

Part = dict[str, Any]


@dataclass
class Preview:
    """What a run of the plan will do (module doc). Each part is a JSON-ready mapping with
    ``available`` (False: ``reason`` says why it could not be read); ``traffic`` is None when
    the plan shifts no traffic."""

    plan: str
    source: Part
    target: Part
    objects: Part
    conversions: Part
    volumes: Part
    traffic: Part | None
    phases: list[dict[str, Any]] = field(default_factory=list)

    PARTS = ("source", "target", "objects", "conversions", "volumes", "traffic")

    def unavailable(self) -> dict[str, str]:
        """The parts that could not be read, with the reason of each."""
        parts: dict[str, Part | None] = {name: getattr(self, name) for name in self.PARTS}
        return {
            name: str(part.get("reason", ""))
            for name, part in parts.items()
            if part is not None and not part.get("available", False)
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "plan": self.plan,
            **{name: getattr(self, name) for name in self.PARTS},
            "phases": self.phases,
            "unavailable": self.unavailable(),
        }


def preview(plan: Plan, *, retry_policy: RetryPolicy = PREVIEW_RETRY) -> Preview:
    """Read both clusters (and the DNS records) and say what a run of ``plan`` will do;
    changes nothing and raises nothing for what it cannot read (module doc).
    ``retry_policy``: how long a cluster that does not answer is tried."""
    with contextlib.ExitStack() as stack:
        old, source = _open(stack, plan, plan.source, retry_policy)
        new, target = _open(stack, plan, plan.target, retry_policy)
        old_discovery = _discovered(old, source)
        new_discovery = _discovered(new, target)
        scope = plan.export.scope
        objects = _part(
            "the objects",
            _needs(source, "the source cluster"),
            lambda: _objects(plan, old, old_discovery, new_discovery),
        )
        conversions = _part(
            "the conversions",
            _needs(source, "the source cluster") or _needs(target, "the target cluster"),
            lambda: _conversions(plan, old, old_discovery, new, scope),
        )
        volumes = _part(
            "the volumes", _needs(source, "the source cluster"), lambda: _volumes(plan, old, scope)
        )
        shift = None
        if plan.traffic is not None:
            settings = plan.traffic
            clusters = {side: c for side, c in (("old", old), ("new", new)) if c is not None}
            shift = _part("the DNS records", None, lambda: _traffic(settings, clusters))
    return Preview(
        plan=plan.name,
        source=source,
        target=target,
        objects=objects,
        conversions=conversions,
        volumes=volumes,
        traffic=shift,
        phases=phases(plan),
    )


# -- reading, each part on its own ----------------------------------------------------------


def _open(
    stack: contextlib.ExitStack, plan: Plan, ref: ClusterRef, retry_policy: RetryPolicy
) -> tuple[Cluster | None, Part]:
    """A connection to one side, or None with why not (the part says)."""
    info: Part = {"context": ref.context, "name": ref.name}
    try:
        cluster = stack.enter_context(
            kube.connect(plan.kubeconfig, ref.context, retry_policy=retry_policy)
        )
    except MigratorError as exc:
        return None, {**info, "available": False, "reason": _reason(exc)}
    return cluster, {**info, "server": cluster.server, "available": True}


def _discovered(cluster: Cluster | None, info: Part) -> Discovery | None:
    """The cluster's discovery (its version noted in ``info``), or None with ``info`` saying
    why the cluster could not be read."""
    if cluster is None:
        return None
    try:
        discovery = discover(cluster)
    except MigratorError as exc:
        info.update(available=False, reason=_reason(exc))
        return None
    info["version"] = discovery.version.git_version
    return discovery


def _needs(info: Part, what: str) -> str | None:
    """Why a part cannot be read when it needs the cluster ``info`` describes."""
    if info.get("available"):
        return None
    return f"{what} ({info['context']}) cannot be read: {info.get('reason', '')}"


def _part(what: str, missing: str | None, read: Callable[[], Part]) -> Part:
    """``read()`` marked available, or unavailable with the reason: never an exception."""
    if missing is not None:
        return {"available": False, "reason": missing}
    try:
        return {"available": True, **read()}
    except MigratorError as exc:
        return {"available": False, "reason": _reason(exc)}
    except Exception as exc:  # a preview reports, it never fails the command
        log.warning("could not read %s for the preview", what, exc_info=True)
        return {"available": False, "reason": f"{type(exc).__name__}: {exc}"}


def _reason(exc: MigratorError) -> str:
    return str(exc) + (f" ({exc.hint})" if exc.hint else "")


# -- the objects ------------------------------------------------------------------------------


def _objects(plan: Plan, old: Any, discovery: Discovery | None, target: Discovery | None) -> Part:
    """The types the export reads with their object counts, and the types it leaves out."""
    assert old is not None and discovery is not None
    planned = export.plan(discovery, target, plan.export, live_crds(old, discovery))
    legend = skip_legend()
    types, left_out = [], []
    for rtype in planned.types:
        try:
            count: int | None = count_in_scope(
                old, rtype, planned.scope, plan.export.label_selector, plan.export.page_size
            )
            error = ""
        except ApiError as exc:
            count, error = None, str(exc)
        row: dict[str, Any] = {
            "resource": rtype.key,
            "kind": rtype.kind,
            "groupVersion": rtype.group_version,
            "namespaced": rtype.namespaced,
            "objects": count,
        }
        if error:
            row["error"] = error
        skip = type_skip(rtype.group, rtype.resource)
        if skip is not None and count != 0:  # a type with nothing in scope: no line
            left_out.append({**row, "rule": skip.name, "reason": legend.get(skip.name, "")})
        elif skip is None and (count or error):
            types.append(row)
    return {
        "scope": planned.scope.to_dict(),
        "labelSelector": plan.export.label_selector,
        "types": types,
        "total": sum(t["objects"] or 0 for t in types),
        "leftOut": left_out,
        "note": "counts are the objects listed; the export also leaves out single objects the "
        "new cluster makes itself (built-in RBAC and API services, pods of controllers, "
        "token secrets, kube-root-ca.crt)",
    }


def count_in_scope(
    cluster: Cluster,
    rtype: ResourceType,
    scope: Scope,
    label_selector: str | None,
    page_size: int,
) -> int:
    """How many objects of ``rtype`` the export of ``scope`` lists: from a one-item list
    when the server says how many remain, else by paging through the objects' metadata."""
    if not rtype.namespaced and rtype.identity == ("", "namespaces"):
        names = (name_of(ns) for ns in _metadata(cluster, rtype.list_path(), {}, page_size))
        return sum(1 for name in names if scope.admits_namespace(name))
    query: dict[str, str | int | bool] = {}
    if label_selector:
        query["labelSelector"] = label_selector
    namespaces = scope.namespaces_to_list() if rtype.namespaced else None
    if rtype.namespaced and namespaces is None and scope.field_selector():
        query["fieldSelector"] = str(scope.field_selector())
    total = 0
    for path in [rtype.list_path(ns) for ns in namespaces] if namespaces else [rtype.list_path()]:
        first = cluster.request("GET", path, query={**query, "limit": 1})
        counted = list_total(first)
        if counted is None:
            counted = sum(1 for _ in _metadata(cluster, path, query, page_size))
        total += counted
    return total


def _metadata(
    cluster: Cluster, path: str, query: Mapping[str, str | int | bool], page_size: int
) -> Iterator[dict[str, Any]]:
    """The objects of a list, metadata only (never their content)."""
    for page in iter_pages(cluster, path, limit=page_size, query=query, accept=METADATA_LIST):
        yield from page.get("items") or ()


# -- conversions and losses ------------------------------------------------------------------


def _conversions(plan: Plan, old: Any, discovery: Discovery | None, new: Any, scope: Scope) -> Part:
    """What ``check-apis`` says of the objects in scope written through an API the target
    does not serve: what each becomes, and what is lost or needs a person."""
    assert old is not None and discovery is not None and new is not None
    crds = list(live_crds(old, discovery))
    target = with_custom_resources(target_from_cluster(new), crd_group_versions(crds))
    objects = (
        (obj, via)
        for obj, via in live_objects(old, discovery, target.serves)
        if _in_scope(obj, scope)
    )
    report = check_apis(
        objects,
        target.serves,
        target=target.describe,
        converter=target.converter(plan.transform.last_applied),
        crds=crds,
    )
    return report.to_dict()


def _in_scope(obj: Mapping[str, Any], scope: Scope) -> bool:
    namespace = namespace_of(obj)
    if namespace:
        return scope.admits_namespace(namespace)
    return scope.takes_cluster_scoped


# -- volumes ----------------------------------------------------------------------------------


def _volumes(plan: Plan, old: Any, scope: Scope) -> Part:
    """The claims in scope with their requested size and class (and the class they get on
    the target), how their data moves, and the total."""
    assert old is not None
    from kubernetes.utils.quantity import parse_quantity  # slow import, only needed here

    query: dict[str, str | int | bool] = {}
    if plan.export.label_selector:
        query["labelSelector"] = plan.export.label_selector
    namespaces = scope.namespaces_to_list()
    paths = [f"/api/v1/namespaces/{ns}/persistentvolumeclaims" for ns in namespaces or ()]
    classes = plan.transform.differences.storage_classes
    claims = []
    total = 0
    for path in paths or [PVC_PATH]:
        for claim in iter_items(old, path, query=query, limit=plan.export.page_size):
            namespace = namespace_of(claim)
            if not scope.admits_namespace(namespace):
                continue
            size = dig(claim, "spec", "resources", "requests", "storage")
            try:
                size_bytes: int | None = int(parse_quantity(size)) if size else None
            except ValueError:
                size_bytes = None
            total += size_bytes or 0
            storage_class = dig(claim, "spec", "storageClassName")
            claims.append(
                {
                    "claim": f"{namespace}/{name_of(claim)}",
                    "size": size,
                    "bytes": size_bytes,
                    "storageClass": storage_class,
                    "targetClass": classes.get(storage_class, storage_class)
                    if storage_class
                    else None,
                    "phase": dig(claim, "status", "phase"),
                }
            )
    settings = plan.volumes
    return {
        "method": settings.method,
        "stagePasses": settings.stage_passes,
        "parallel": settings.parallel,
        "quiesce": plan.quiesce.method,
        "claims": sorted(claims, key=lambda c: str(c["claim"])),
        "totalBytes": total,
    }


# -- traffic ----------------------------------------------------------------------------------


def _traffic(settings: traffic.ShiftSettings, clusters: dict[str, Cluster]) -> Part:
    """The shift's moves, planned from the records as they are (nothing written)."""
    provider = traffic.open_provider(settings.provider, clusters)
    with provider:
        planned = traffic.survey(settings, provider, clusters)
    return {
        "provider": settings.provider.kind,
        "names": {
            name: {"old": route.old.describe(), "new": route.new.describe()}
            for name, route in planned.routes.items()
        },
        "before": [r.describe() for recs in planned.original.values() for r in recs],
        "steps": [
            {
                "label": move.label,
                "kind": move.kind,
                "percent": move.percent,
                "approve": move.approve,
                "waitSeconds": move.wait,
                "gated": move.gated,
                "weights": {
                    name: {"old": round(1.0 - share, 4), "new": round(share, 4)}
                    for name, share in move.shares.items()
                },
                "changes": len(move.changes),
            }
            for move in planned.moves
        ],
    }


# -- the phases -------------------------------------------------------------------------------

# Where each hook point runs: before or after which phase.
HOOKS_AT = {
    "preExport": ("export", "before"),
    "postExport": ("export", "after"),
    "preImport": ("import", "before"),
    "postImport": ("import", "after"),
    "preShift": ("shift", "before"),
    "postShift": ("shift", "after"),
}
assert set(HOOKS_AT) == set(HOOK_POINTS)


def phases(plan: Plan) -> list[dict[str, Any]]:
    """The phases of a run in order, each with one line on what it will do (from the plan
    alone) and the hooks run before and after it."""
    order = [name for name, _phase in steps(plan)] + ["teardown"]
    lines = sorted(_phase_lines(plan), key=lambda line: order.index(line[0]))
    rows: list[dict[str, Any]] = [
        {"name": name, "does": does, "skipped": skipped} for name, does, skipped in lines
    ]
    for row in rows:
        row["hooks"] = [
            {"point": point, "when": when, "does": describe_hook(hook)}
            for point, (phase, when) in HOOKS_AT.items()
            if phase == row["name"]
            for hook in plan.hooks.at(point)
        ]
    return rows


def describe_hook(hook: Hook) -> str:
    """One line on a hook: what it runs, where, and its limits."""
    what = f"run {hook.run}" if hook.run else f"Job {hook.job} in the {hook.cluster} cluster"
    retries = f", {hook.retries} retries" if hook.retries else ""
    return f"{what} (at most {hook.timeout:g}s{retries})"


def _phase_lines(plan: Plan) -> list[tuple[str, str, bool]]:
    scope = plan.export.scope
    volumes, quiesce = plan.volumes, plan.quiesce
    moves = volumes.method != "none"
    mover = {"mover": "mover Jobs", "ebs": "EBS snapshots"}.get(volumes.method, volumes.method)
    if scope.include_namespaces:
        where = "namespaces " + ", ".join(scope.include_namespaces)
    else:
        where = "every namespace" + (
            f" but {', '.join(sorted(scope.excluded))}" if scope.excluded else ""
        )
    differences = plan.transform.differences
    mapped = [
        f"{label} {', '.join(f'{a}→{b}' for a, b in pairs.items())}"
        for label, pairs in (
            ("storage classes", differences.storage_classes),
            ("registries", differences.registries),
            ("namespaces", differences.namespaces),
            ("ingress classes", differences.ingress_classes),
        )
        if pairs
    ]
    imports = plan.imports
    quiesce_line = {
        "scale": "scale the workloads mounting the claims to zero (undone on rollback)",
        "hook": f"run {quiesce.hook} in each pod mounting a claim",
        "none": "nothing: the applications keep writing during the final pass",
    }.get(quiesce.method, quiesce.method)
    shift = plan.traffic
    return [
        (
            "preflight",
            "check both clusters, the store and the plan"
            + (f"; skipping {', '.join(plan.preflight.skip)}" if plan.preflight.skip else ""),
            False,
        ),
        (
            "export",
            f"export {where} from {plan.source.name} into {plan.store.url}"
            + (f", labels {plan.export.label_selector}" if plan.export.label_selector else ""),
            False,
        ),
        (
            "transform",
            f"convert for {plan.target.name}"
            + (f"; {'; '.join(mapped)}" if mapped else "")
            + ("; the target dry-runs every object" if plan.transform.validate else ""),
            False,
        ),
        (
            "import",
            f"import into {plan.target.name}: conflicts {imports.conflict.value}, "
            f"{imports.workers} workers" + (f", {imports.qps:g} requests/s" if imports.qps else ""),
            False,
        ),
        (
            "volumes-first",
            f"first volume pass while the applications run: backups ({mover}), "
            f"{volumes.parallel} at a time"
            if moves
            else "volumes: no data moved (volumes.method: none)",
            not moves,
        ),
        *[
            (
                f"volumes-stage-{n}",
                f"stage volume pass {n} of {volumes.stage_passes}: what changed, old to new",
                not moves,
            )
            for n in range(1, volumes.stage_passes + 1)
        ],
        ("verify", f"compare the target with the snapshot; wait {plan.verify.wait:g}s", False),
        (
            "volumes-final",
            f"stop the writers ({quiesce_line}), then the final volume pass ({mover})",
            not moves,
        ),
        (
            "verify-data",
            "compare each new volume with the final pass, byte for byte",
            volumes.method != "mover",
        ),
        (
            "start",
            "start the new cluster's workloads that mount claims (held at zero until now)",
            not moves,
        ),
        (
            "shift",
            f"shift {', '.join(s.name for s in shift.names)} through "
            f"{shift.provider.kind} in {len(shift.steps)} steps"
            if shift is not None
            else "no traffic shift in the plan",
            shift is None,
        ),
        ("soak", f"watch the new cluster for {plan.soak:g}s", False),
        (
            "teardown",
            f"retire {plan.source.name}: {describe_hook(plan.teardown.hook)} "
            "(needs --yes and the cluster's name)"
            if plan.teardown.hook is not None
            else "no teardown in the plan: the old cluster stays",
            plan.teardown.hook is None,
        ),
    ]
