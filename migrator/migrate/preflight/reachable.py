"""``reachable``: both clusters answer their version endpoint.

A cluster that does not answer is this check's "fail", never an exception: the checks that
need it are then skipped with the reason.
"""

from __future__ import annotations

import logging

from migrator import kube
from migrator.errors import MigratorError
from migrator.kube.discovery import parse_version
from migrator.kube.retry import RetryPolicy
from migrator.migrate.preflight.context import SOURCE, TARGET, Context
from migrator.migrate.preflight.result import FAIL, PASS, CheckResult

log = logging.getLogger(__name__)


def connect_both(ctx: Context, *, reach_for: float) -> None:
    """Connect to both sides and ask each its version; fills ``ctx.clusters``, ``versions``
    and ``unreachable``. ``reach_for`` bounds the retries of that first request (seconds)."""
    for side in (SOURCE, TARGET):
        ref = ctx.plan.source if side == SOURCE else ctx.plan.target
        try:
            cluster = kube.connect(ctx.plan.kubeconfig, ref.context)
        except MigratorError as exc:  # no such context, unreadable credentials
            ctx.unreachable[side] = str(exc)
            continue
        try:
            probe = kube.connect(
                ctx.plan.kubeconfig,
                ref.context,
                pool_size=1,
                connect_timeout=min(5.0, max(0.5, reach_for)),
                read_timeout=max(5.0, reach_for),
                retry_policy=RetryPolicy(budget=reach_for),
            )
            with probe:
                ctx.versions[side] = parse_version(probe.request("GET", "/version"))
        except MigratorError as exc:
            log.debug("%s does not answer: %s", ref.context, exc)
            ctx.unreachable[side] = str(exc)
            cluster.close()
            continue
        ctx.clusters[side] = cluster


def check_reachable(ctx: Context) -> CheckResult:
    lines = []
    for side in (SOURCE, TARGET):
        if side in ctx.versions:
            lines.append(f"{ctx.label(side)}: {ctx.versions[side].git_version}")
        else:
            lines.append(f"{ctx.label(side)}: {ctx.unreachable.get(side, 'not reached')}")
    if ctx.unreachable:
        names = " and ".join(ctx.label(side) for side in ctx.unreachable)
        return CheckResult(
            "reachable",
            FAIL,
            f"{names} did not answer",
            "check the kubeconfig context, the network path and the API server",
            tuple(lines),
        )
    return CheckResult(
        "reachable",
        PASS,
        " and ".join(
            f"{ctx.plan.source.context if side == SOURCE else ctx.plan.target.context} "
            f"{ctx.versions[side].git_version}"
            for side in (SOURCE, TARGET)
        )
        + " answer",
    )
