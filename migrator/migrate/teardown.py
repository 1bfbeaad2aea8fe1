"""Retiring the old cluster, and going back to it: teardown and rollback of a plan's run.

**Teardown** runs only when the run says it is safe: verify passed and the soak ended
(traffic wholly on the new cluster, its gates passing for the soak time); and only when a
person says so twice: ``--yes``, and the old cluster's name typed back. Then: a last
snapshot of the old cluster (kept in the store: a way back even after the teardown), its
workloads scaled to zero in reverse import order respecting PodDisruptionBudgets, and last
the user's teardown command. Each step is recorded, so a teardown killed half way resumes.

**Rollback** (before the teardown command ran) puts the traffic back on the old cluster and
starts its workloads again (undoing the quiesce or the teardown's scale-down); with
``data``, a reverse volume pass first brings what the new cluster wrote back into the old
volumes (the new cluster's writers stopped for it). The steps after the import are
forgotten, so a later ``migrator resume`` runs the final pass and the shift again.
"""

from __future__ import annotations

import time
from typing import Any

from migrator.errors import MigratorError, RunRefused, SnapshotExists
from migrator.export import export_cluster
from migrator.migrate.context import OnEvent, RunContext
from migrator.migrate.phases import RunIds, pass_settings, snapshot_namespaces
from migrator.migrate.plan import Plan
from migrator.migrate.runner import (
    ROLLED_BACK,
    TORN_DOWN,
    locked,
    write_report,
)
from migrator.migrate.scaledown import scale_down, scale_up
from migrator.migrate.state import now_iso
from migrator.traffic import ABORT, StateStore, open_provider, replan
from migrator.traffic import apply as shift_apply
from migrator.traffic.state import ROLLED_BACK as SHIFT_ROLLED_BACK
from migrator.volumes import passes, sync
from migrator.volumes.claims import claims_in_snapshot
from migrator.volumes.quiesce import restore_scaled

TEARDOWN_STEPS = ("teardown-snapshot", "teardown-scale", "teardown-hook")
# what a rollback forgets: a resume runs them again, after the old cluster took over
REDONE_AFTER_ROLLBACK = ("volumes-final", "verify-data", "start", "shift", "soak")


def _ids(ctx: RunContext) -> RunIds:
    head = ctx.runs.load("run.json")
    if head is None:
        raise RunRefused(
            f"plan {ctx.plan.name} has no run in {ctx.runs.url}",
            hint="start it with `migrator migrate -f PLAN`",
        )
    return RunIds.of(ctx.plan, str(head.get("startedAt")))


def refusals(plan: Plan, records: dict[str, Any], *, yes: bool, confirm: str | None) -> list[str]:
    """Why a teardown may not run now (empty: it may)."""
    why = []
    if "verify" not in records:
        why.append("verify has not passed: the new cluster is not known to hold everything")
    if "verify-data" not in records or "volumes-final" not in records:
        why.append("the final volume pass and its check have not run")
    if "soak" not in records:
        why.append(
            "the soak has not ended: traffic must be wholly on the new cluster, its gates "
            f"passing for {plan.soak:.0f} s (`migrator migrate` runs it)"
        )
    if not yes:
        why.append("--yes was not given")
    if confirm != plan.source.name:
        why.append(
            f"the old cluster's name was not typed back (--confirm {plan.source.name})"
            if confirm is None
            else f"{confirm!r} is not the old cluster's name"
        )
    return why


def teardown(
    plan: Plan, *, yes: bool, confirm: str | None, on_event: OnEvent | None = None
) -> dict[str, Any]:
    """Retire the old cluster (see the module doc); returns the run's report."""
    with RunContext.open(plan, on_event=on_event) as ctx:
        ids = _ids(ctx)
        records = ctx.runs.records()
        why = refusals(plan, records, yes=yes, confirm=confirm)
        if why:
            raise RunRefused(
                "teardown refused: " + "; ".join(why),
                hint="nothing was changed in either cluster",
            )
        with locked(ctx, "teardown"), ctx.watching():
            namespaces = snapshot_namespaces(ctx.plan, ctx.reader(ids.snapshot))
            steps = {
                "teardown-snapshot": lambda: _final_snapshot(ctx, ids),
                "teardown-scale": lambda: scale_down(
                    ctx.old, namespaces, on_progress=ctx.progress
                ).to_dict(),
                "teardown-hook": lambda: _hook(ctx),
            }
            for name in TEARDOWN_STEPS:
                if name in records:
                    continue
                _record(ctx, name, steps[name])
            ctx.runs.set_state(status=TORN_DOWN, phase="teardown", waiting="")
            report = write_report(ctx)
            ctx.emit("end", status=TORN_DOWN, message=f"{plan.name}: the old cluster is retired")
            return report


def _record(ctx: RunContext, name: str, step: Any) -> dict[str, Any]:
    started_at, t0 = now_iso(), time.monotonic()
    ctx.runs.set_state(phase=name, phaseStartedAt=started_at)
    ctx.emit("phase", phase=name, status="started")
    ctx.step(name)
    try:
        summary = step()
    except MigratorError as exc:
        ctx.runs.set_state(error=f"{name}: {exc}")
        ctx.emit("phase", phase=name, status="failed", message=str(exc))
        raise
    record = {
        "phase": name,
        "status": "skipped" if "skipped" in summary else "done",
        "startedAt": started_at,
        "endedAt": now_iso(),
        "seconds": round(time.monotonic() - t0, 3),
        "summary": summary,
        "problems": [],
    }
    ctx.runs.save(f"phases/{name}", record)
    ctx.emit("phase", phase=name, status=record["status"], seconds=record["seconds"])
    return summary


def _final_snapshot(ctx: RunContext, ids: RunIds) -> dict[str, Any]:
    try:
        result = export_cluster(
            ctx.old,
            ctx.store,
            snapshot_id=ids.final,
            options=ctx.plan.export,
            key=ctx.key,
            on_progress=ctx.progress,
        )
    except SnapshotExists:
        return {"snapshot": ids.final, "alreadyComplete": True}
    return {"snapshot": ids.final, "totals": result.report.to_dict().get("totals", {})}


def _hook(ctx: RunContext) -> dict[str, Any]:
    hook = ctx.plan.teardown.hook
    if hook is None:
        return {"skipped": "the plan has no teardown hook"}
    return ctx.run_hook(hook, "teardown").to_dict()


def rollback(plan: Plan, *, data: bool = False, on_event: OnEvent | None = None) -> dict[str, Any]:
    """Return the traffic and the workloads to the old cluster (see the module doc)."""
    with RunContext.open(plan, on_event=on_event) as ctx:
        ids = _ids(ctx)
        records = ctx.runs.records()
        if "teardown-hook" in records:
            raise RunRefused(
                "the teardown command has run: the old cluster is gone, nothing to roll back to",
                hint=f"the last snapshot of the old cluster is {ids.final} in {plan.store.url}",
            )
        with locked(ctx, "rollback"), ctx.watching():
            summary: dict[str, Any] = {"traffic": _traffic_back(ctx)}
            namespaces = snapshot_namespaces(ctx.plan, ctx.reader(ids.snapshot))
            if data:
                summary["data"] = _reverse_pass(ctx, ids, records)
            summary["restarted"] = [str(s.workload) for s in restore_scaled(ctx.old, namespaces)]
            summary["scaledUp"] = scale_up(ctx.old, namespaces)
            _forget(ctx, records)
            ctx.runs.save(
                "phases/rollback",
                {
                    "phase": "rollback",
                    "status": "done",
                    "startedAt": now_iso(),
                    "endedAt": now_iso(),
                    "summary": summary,
                    "problems": [],
                },
            )
            ctx.runs.set_state(
                status=ROLLED_BACK,
                phase="rollback",
                error="",
                waiting="the old cluster serves again; `migrator resume -f PLAN` migrates again "
                "from the final volume pass",
            )
            report = write_report(ctx)
            ctx.emit(
                "end", status=ROLLED_BACK, message=f"{plan.name}: rolled back to the old cluster"
            )
            return report


def _traffic_back(ctx: RunContext) -> dict[str, Any]:
    settings = ctx.plan.traffic
    if settings is None:
        return {"skipped": "the plan has no traffic section"}
    states = StateStore(ctx.store, ctx.runs.prefix.rstrip("/"))
    existing = states.load()
    if existing is None or existing.phase == SHIFT_ROLLED_BACK:
        return {"skipped": "the traffic never left the old cluster"}
    with open_provider(settings.provider, ctx.clusters()) as provider:
        shift_plan = replan(settings, provider, existing)
        report = shift_apply(shift_plan, provider, states, mode=ABORT)
    return report.to_dict()


def _reverse_pass(ctx: RunContext, ids: RunIds, records: dict[str, Any]) -> dict[str, Any]:
    """What the new cluster wrote, back into the old volumes: a final pass from new to old,
    the new cluster's writers stopped first (and left stopped: the old one takes over)."""
    plan = ctx.plan
    if "volumes-final" not in records or plan.volumes.method != "mover":
        return {"skipped": "no final volume pass ran (the old volumes hold the latest data)"}
    if plan.transform.differences.namespaces:
        raise RunRefused(
            "a reverse volume pass needs the claims under the same names in both clusters; "
            "this plan renames namespaces",
            hint="roll back without --data, and copy the data back with `migrator volumes`",
        )
    reader = ctx.reader(ids.snapshot)
    if not claims_in_snapshot(reader):
        return {"skipped": "the snapshot holds no PersistentVolumeClaims"}
    report = passes.run_pass(
        reader,
        ctx.new,  # the new cluster's volumes are the source now
        ctx.old,
        sync.FINAL,
        pass_settings(plan, quiesce="scale"),
        store_url=plan.store.url,
        key=ctx.key,
        progress=ctx.progress,
        stop=ctx.stop,
    )
    failed = [v for v in report.volumes if not v.ok]
    if report.quiesce_error or failed:
        raise MigratorError(
            "the reverse volume pass failed: "
            + (report.quiesce_error or "; ".join(f"{v.claim.volume}: {v.error}" for v in failed)),
            hint="the traffic is back on the old cluster; run the rollback again with --data",
        )
    return report.to_dict()


def _forget(ctx: RunContext, records: dict[str, Any]) -> None:
    for name in REDONE_AFTER_ROLLBACK + TEARDOWN_STEPS:
        if name in records:
            ctx.store.delete(f"{ctx.runs.prefix}phases/{name}")
    state = ctx.runs.state()
    if "soakStartedAt" in state:
        state.pop("soakStartedAt")
        ctx.runs.save("state.json", state)
