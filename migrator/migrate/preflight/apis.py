"""``removed-apis``: objects of the source, within the export's scope, written through an
API version the target no longer serves, and what the transform will make of them.

This is ``migrator check-apis --from`` on the plan's two clusters
(:mod:`migrator.transform.checkapis`): objects read through each group/version the target
lacks, kept when they were written through it. Everything converts cleanly: pass; a
conversion a person should review or that loses fields: warn, naming them; an object with
no successor or no known conversion: fail. Scope: the export's namespaces (cluster-scoped
objects when it takes them); its label selector is not applied here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from migrator.migrate.preflight.context import SOURCE, TARGET, Context
from migrator.migrate.preflight.result import FAIL, PASS, WARN, CheckResult, bounded
from migrator.resources.crds import live_crds
from migrator.resources.objects import Obj, describe_ref, namespace_of
from migrator.transform.checkapis import ApiCheck, CheckReport, check_apis, live_objects
from migrator.transform.stage import crd_group_versions, target_from_cluster, with_custom_resources

FAILING = ("drop", "unsupported")
WARNING = ("review", "loss")


def _in_scope(ctx: Context, objects: Iterator[tuple[Obj, dict[str, Any]]]) -> Iterator[Any]:
    scope = ctx.scope
    for obj, via in objects:
        namespace = namespace_of(obj)
        if scope.admits_namespace(namespace) if namespace else scope.takes_cluster_scoped:
            yield obj, via


def _line(check: ApiCheck) -> str:
    becomes = f" → {check.becomes}" if check.becomes else ""
    why = f": {'; '.join(check.details)}" if check.details else ""
    return f"{describe_ref(check.object)} ({check.verdict}{becomes}){why}"


def api_result(report: CheckReport) -> CheckResult:
    """The verdict on a check-apis report."""
    failing = [c for c in report.checks if c.verdict in FAILING]
    warning = [c for c in report.checks if c.verdict in WARNING]
    counts = ", ".join(f"{n} {v}" for v, n in sorted(report.verdicts.items())) or "no objects"
    if failing:
        return CheckResult(
            "removed-apis",
            FAIL,
            f"{len(failing)} object(s) cannot be converted for the target ({counts})",
            "replace them before migrating (the details suggest the successor), or leave "
            "them out of the export (export.excludeResources)",
            bounded(_line(c) for c in failing + warning),
        )
    if warning:
        return CheckResult(
            "removed-apis",
            WARN,
            f"{len(warning)} object(s) convert with a change to review or a loss ({counts})",
            "read what each conversion changes; `migrator check-apis` shows it in full",
            bounded(_line(c) for c in warning),
        )
    converted = report.verdicts.get("convert", 0)
    return CheckResult(
        "removed-apis",
        PASS,
        f"{converted} object(s) at removed API versions, all converted cleanly"
        if converted
        else "no object in scope uses an API version the target lacks",
        details=bounded(_line(c) for c in report.checks if c.verdict == "convert"),
    )


def check_removed_apis(ctx: Context) -> CheckResult:
    source, source_discovery = ctx.source, ctx.discovery(SOURCE)
    crds = list(live_crds(source, source_discovery))
    target = target_from_cluster(ctx.target, ctx.discovery(TARGET))
    target = with_custom_resources(target, crd_group_versions(crds))
    objects = _in_scope(ctx, live_objects(source, source_discovery, target.serves))
    report = check_apis(
        objects,
        target.serves,
        target=target.describe,
        converter=target.converter(ctx.plan.transform.last_applied),
        crds=crds,
    )
    return api_result(report)
