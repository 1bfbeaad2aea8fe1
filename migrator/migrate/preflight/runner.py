"""Running every check: connect, ask both clusters their version, then the other checks
side by side in a small thread pool (each costs a few API round trips), and close.

A check that needs a cluster that did not answer is skipped with the reason; a check the
plan skips (``preflight.skip``) is listed as skipped; a check that cannot finish (an API
error, a store that refuses) is a fail with the error, never an exception of the run.
Nothing is changed in either cluster: reads, SelfSubjectAccessReviews (which store
nothing), and in the store a probe object that is deleted again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from migrator.errors import MigratorError
from migrator.migrate.plan import Plan
from migrator.migrate.preflight.apis import check_removed_apis
from migrator.migrate.preflight.capacity import check_capacity
from migrator.migrate.preflight.certificates import check_certificates
from migrator.migrate.preflight.context import SOURCE, TARGET, Context
from migrator.migrate.preflight.controllers import check_crd_controllers
from migrator.migrate.preflight.dns import check_dns
from migrator.migrate.preflight.gitops import check_gitops
from migrator.migrate.preflight.permissions import check_permissions
from migrator.migrate.preflight.reachable import check_reachable, connect_both
from migrator.migrate.preflight.result import CHECKS, FAIL, SKIP, CheckResult, PreflightReport
from migrator.migrate.preflight.storage import check_storage_classes
from migrator.migrate.preflight.store import check_store
from migrator.migrate.preflight.versions import check_version_skew
from migrator.migrate.preflight.webhooks import check_admission_webhooks

log = logging.getLogger(__name__)

Check = Callable[[Context], CheckResult]
BOTH = (SOURCE, TARGET)

# Each check after ``reachable``, and the clusters it needs.
REGISTRY: dict[str, tuple[Check, tuple[str, ...]]] = {
    "permissions": (check_permissions, BOTH),
    "removed-apis": (check_removed_apis, BOTH),
    "crd-controllers": (check_crd_controllers, BOTH),
    "storage-classes": (check_storage_classes, BOTH),
    "capacity": (check_capacity, BOTH),
    "admission-webhooks": (check_admission_webhooks, BOTH),
    "certificates": (check_certificates, ()),
    "version-skew": (check_version_skew, BOTH),
    "dns": (check_dns, ()),
    "store": (check_store, ()),
    "gitops": (check_gitops, BOTH),
}
WORKERS = 4
REACH_FOR = 5.0


def run_preflight(
    plan: Plan, *, now: datetime | None = None, reach_for: float = REACH_FOR
) -> PreflightReport:
    """Run every check of :data:`CHECKS` for ``plan``; ``now`` (default: the current time)
    dates the certificates; ``reach_for`` is how long a cluster may take to first answer."""
    when = now or datetime.now(UTC)
    ctx = Context(plan, when if when.tzinfo else when.replace(tzinfo=UTC))
    skipped = set(plan.preflight.skip)
    results: dict[str, CheckResult] = {}
    try:
        if "reachable" in skipped:
            results["reachable"] = _skipped_by_plan("reachable")
            connect_both(ctx, reach_for=reach_for)
        else:
            connect_both(ctx, reach_for=reach_for)
            results["reachable"] = check_reachable(ctx)
        runnable = []
        for name, (check, needs) in REGISTRY.items():
            if name in skipped:
                results[name] = _skipped_by_plan(name)
            elif absent := [side for side in needs if side not in ctx.clusters]:
                why = " and ".join(f"the {ctx.label(side)} did not answer" for side in absent)
                results[name] = CheckResult(name, SKIP, f"not checked: {why}")
            else:
                runnable.append((name, check))
        with ThreadPoolExecutor(WORKERS, thread_name_prefix="preflight") as pool:
            futures = {name: pool.submit(_run, name, check, ctx) for name, check in runnable}
            for name, future in futures.items():
                results[name] = future.result()
    finally:
        for cluster in ctx.clusters.values():
            cluster.close()
    return PreflightReport([results[name] for name in CHECKS])


def _skipped_by_plan(name: str) -> CheckResult:
    return CheckResult(name, SKIP, "skipped by the plan (preflight.skip)")


def _run(name: str, check: Check, ctx: Context) -> CheckResult:
    """One check; what stops it is its fail, with the reason."""
    try:
        return check(ctx)
    except MigratorError as exc:
        log.debug("preflight check %s stopped: %s", name, exc)
        return CheckResult(name, FAIL, f"could not check: {exc}", "fix the cause and run it again")
    except Exception as exc:  # a bug must not hide the other checks' findings
        log.exception("preflight check %s crashed", name)
        return CheckResult(
            name, FAIL, f"could not check: {type(exc).__name__}: {exc}", "report this as a bug"
        )
