"""``gitops``: objects in the export's scope that Argo CD or Flux manages (see
:func:`migrator.resources.gitops.gitops_manager`), counted per tool and namespace.

Such objects belong to their tool: with ``gitops: leave`` they are not imported (the tool
must be pointed at the new cluster), with ``gitops: import`` they are, and the tool will
apply them there too. Either way a person should know, so any is a warn.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from migrator.kube.pager import METADATA_LIST
from migrator.migrate.preflight.context import Context
from migrator.migrate.preflight.result import PASS, WARN, CheckResult, bounded
from migrator.resources.gitops import TOOL_NAMES, gitops_manager
from migrator.resources.objects import namespace_of
from migrator.resources.types import ResourceType

LIST_WORKERS = 4


def _count(ctx: Context, rtype: ResourceType) -> Counter[tuple[str, str]]:
    found: Counter[tuple[str, str]] = Counter()
    for obj in ctx.objects_of(rtype, accept=METADATA_LIST):
        tool = gitops_manager(obj)
        if tool is not None:
            found[(tool, namespace_of(obj) or "(cluster-scoped)")] += 1
    return found


def gitops_result(counts: Counter[tuple[str, str]], mode: str) -> CheckResult:
    """The verdict on the objects ``counts`` (per (tool, namespace)) under ``mode``."""
    if not counts:
        return CheckResult("gitops", PASS, "no object in scope is managed by Argo CD or Flux")
    per_tool: Counter[str] = Counter()
    for (tool, _namespace), n in counts.items():
        per_tool[tool] += n
    tools = " and ".join(TOOL_NAMES[t] for t in sorted(per_tool))
    ordered = sorted(per_tool.items())
    details = bounded(
        f"{TOOL_NAMES[tool]}: {n} in {namespace}" for (tool, namespace), n in sorted(counts.items())
    )
    if mode == "import":
        return CheckResult(
            "gitops",
            WARN,
            " and ".join(f"{n} object(s) managed by {TOOL_NAMES[t]}" for t, n in ordered)
            + f" will be imported; {tools} will apply them to the new cluster too",
            f"point {tools} at the new cluster after the import, or set gitops: leave",
            details,
        )
    return CheckResult(
        "gitops",
        WARN,
        "; ".join(f"{n} object(s) are left to {TOOL_NAMES[t]}" for t, n in ordered)
        + ": they will not be imported",
        f"make sure {tools} targets the new cluster (or set gitops: import)",
        details,
    )


def check_gitops(ctx: Context) -> CheckResult:
    counts: Counter[tuple[str, str]] = Counter()
    with ThreadPoolExecutor(LIST_WORKERS, thread_name_prefix="preflight-gitops") as pool:
        for found in pool.map(lambda rtype: _count(ctx, rtype), ctx.export_types()):
            counts.update(found)
    return gitops_result(counts, ctx.plan.gitops)
