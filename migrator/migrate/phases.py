"""The phases of a migration, each one step the runner records when it ends.

Every phase is a function of the run's context returning a JSON-ready summary (counts,
names, server messages: never object content). It raises when it failed; a phase that
finished with problems it can live with (a stage volume pass with one volume behind: the
next pass catches it up) returns them in the summary under ``problems``. Each phase is
safe to run again after a crash: the stages it calls resume (export, import), skip what
is done (transform, verify) or only send what changed (volume passes).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from migrator.errors import (
    LockHeld,
    MigratorError,
    PartialFailure,
    PreflightFailed,
    ShiftPaused,
    ShiftRolledBack,
    SnapshotExists,
    VerificationFailed,
)
from migrator.export import ExportOptions, export_cluster
from migrator.importer import ImportOptions, import_snapshot
from migrator.kube import Cluster
from migrator.kube.wait import READY, Readiness, wait_for_all
from migrator.migrate.context import RunContext
from migrator.migrate.plan import Plan
from migrator.migrate.preflight import run_preflight
from migrator.resources import readiness as ready
from migrator.resources.scope import Scope
from migrator.run import Problem, Progress
from migrator.snapshot import SnapshotReader
from migrator.traffic import RESUME, START, StateStore, open_provider, replan, survey
from migrator.traffic import apply as shift_apply
from migrator.traffic.gates import StepContext, build_gates
from migrator.traffic.state import ROLLED_BACK as SHIFT_ROLLED_BACK
from migrator.transform.differences import DifferencesConfig, parse_pairs
from migrator.transform.rules import RuleSet, load_rules
from migrator.transform.stage import run_transform, target_from_cluster
from migrator.verify import VerifyOptions, verify_snapshot
from migrator.volumes import passes, sync
from migrator.volumes.claims import claims_in_snapshot
from migrator.volumes.quiesce import restore_scaled


@dataclass(frozen=True)
class RunIds:
    """The names a run gives what it makes, fixed when it starts (a resume reuses them)."""

    snapshot: str  # the export of the old cluster
    transformed: str  # ... rewritten for the new one
    final: str  # the old cluster's last snapshot, before teardown

    @classmethod
    def of(cls, plan: Plan, started_at: str) -> RunIds:
        stamp = "".join(ch for ch in started_at[:19] if ch.isdigit())
        base = f"{plan.name}-{stamp[:8]}t{stamp[8:]}"
        return cls(base, f"{base}-new", f"{base}-final")


Phase = Callable[[RunContext, RunIds], dict[str, Any]]


def snapshot_namespaces(plan: Plan, reader: SnapshotReader) -> list[str]:
    """The namespaces of a snapshot (its Namespace objects; without them, the plan's
    namespaces and those of its claims): where the old cluster's workloads are."""
    entry = reader.find("", "v1", "namespaces")
    if entry is None:
        claims = {c.namespace for c in claims_in_snapshot(reader)}
        return sorted({*plan.export.include_namespaces, *claims})
    return sorted(str(obj.get("metadata", {}).get("name")) for obj in reader.iter_objects(entry))


def problems_line(problems: Sequence[Problem]) -> str:
    """The first few problems of a stage report, for an error message."""
    return "; ".join(f"{p.what}: {p.error}" for p in problems[:5])


def pass_settings(plan: Plan, *, quiesce: str | None = None) -> passes.PassSettings:
    """The volume pass settings of a plan (``quiesce`` overrides the plan's method)."""
    v, q = plan.volumes, plan.quiesce
    how = quiesce or q.method
    return passes.PassSettings(
        method=v.method,
        image=v.image or passes.PassSettings.image,
        pull_policy=v.pull_policy,
        s3_endpoint=plan.store.s3_endpoint,
        pods_s3_endpoint=v.pods_s3_endpoint,
        region=v.region,
        zones=parse_pairs(v.zones, "volumes.zones"),
        parallel=v.parallel,
        attempts=v.attempts,
        job_timeout=v.job_timeout,
        start_timeout=v.start_timeout,
        quiesce=how,
        hook=q.hook if how == "hook" else None,
        unhook=q.unhook if how == "hook" else None,
        quiesce_timeout=q.timeout,
    )


# --- the phases ------------------------------------------------------------------------------


def preflight(ctx: RunContext, ids: RunIds) -> dict[str, Any]:
    """Every preflight check (run once: a fresh run checks before it takes its lock or
    writes its journal, and this step records that result)."""
    summary = ctx.checked if ctx.checked is not None else check(ctx)
    ctx.checked = None
    return summary


def check(ctx: RunContext) -> dict[str, Any]:
    """Run the preflight; :class:`PreflightFailed` (nothing changed) when a check fails."""
    report = run_preflight(ctx.plan)
    if not report.ready:
        failed = [c.name for c in report.checks if c.status == "fail"]
        raise PreflightFailed(
            f"{len(failed)} preflight check(s) failed: "
            + "; ".join(f"{c.name}: {c.summary}" for c in report.checks if c.status == "fail"),
            hint="`migrator plan -f PLAN` shows each with what to do; nothing was changed",
        )
    return report.to_dict()


def export(ctx: RunContext, ids: RunIds) -> dict[str, Any]:
    hooks = {"pre": ctx.run_hooks("preExport", "export")}
    try:
        result = export_cluster(
            ctx.old,
            ctx.store,
            snapshot_id=ids.snapshot,
            options=export_options(ctx.plan),
            target=ctx.new,
            key=ctx.key,
            on_progress=ctx.progress,
        )
    except SnapshotExists:
        # committed by a run killed before it could record it: the snapshot is whole
        summary: dict[str, Any] = {"snapshot": ids.snapshot, "alreadyComplete": True}
    else:
        report = result.report.to_dict()
        if result.report.partial:
            raise PartialFailure(
                f"snapshot {ids.snapshot} is missing {len(result.report.errors)} resource "
                f"type(s) that could not be listed: {', '.join(sorted(result.report.errors))}"
            )
        summary = {"snapshot": ids.snapshot, "totals": report.get("totals", {})}
    summary["hooks"] = {**hooks, "post": ctx.run_hooks("postExport", "export")}
    return summary


def export_options(plan: Plan) -> ExportOptions:
    """The plan's export options; when volume data moves, without PersistentVolumes (the
    new cluster makes its own, which the movers fill)."""
    options = plan.export
    if plan.volumes.method == "none" or "persistentvolumes" in options.exclude_resources:
        return options
    return replace(options, exclude_resources=(*options.exclude_resources, "persistentvolumes"))


def volume_pass(pass_kind: str, *, restore: bool = True) -> Phase:
    """A volume pass of the export's claims: ``stage`` while the applications run (the
    first one before the import only backs up), ``final`` after the quiesce."""

    def phase(ctx: RunContext, ids: RunIds) -> dict[str, Any]:
        plan = ctx.plan
        if plan.volumes.method == "none":
            return {"skipped": "volumes.method is none"}
        reader = ctx.reader(ids.snapshot)
        if not claims_in_snapshot(reader):
            return {"skipped": "the snapshot holds no PersistentVolumeClaims"}
        quiesce = None if pass_kind == sync.FINAL else "none"
        report = passes.run_pass(
            reader,
            ctx.old,
            ctx.new,
            pass_kind,
            pass_settings(plan, quiesce=quiesce),
            store_url=plan.store.url,
            key=ctx.key,
            restore=restore,
            progress=ctx.progress,
            stop=ctx.stop,
        )
        summary = report.to_dict()
        failed = [v for v in report.volumes if not v.ok]
        if report.quiesce_error:
            raise MigratorError(
                f"the quiesce failed (writers started again): {report.quiesce_error}"
            )
        if failed and pass_kind == sync.FINAL:
            raise PartialFailure(
                f"{len(failed)} volume(s) of {len(report.volumes)} failed in the final pass "
                "(the writers were started again): "
                + "; ".join(f"{v.claim.volume}: {v.error}" for v in failed[:5])
            )
        summary["problems"] = [f"{v.claim.volume}: {v.error}" for v in failed]
        return summary

    return phase


def transform_inputs(plan: Plan) -> tuple[RuleSet | None, DifferencesConfig]:
    """The plan's rules file and its cluster differences, the plan's own over the file's."""
    settings = plan.transform
    rules = load_rules(settings.rules_file) if settings.rules_file else None
    differences = settings.differences
    if rules is not None:
        differences = rules.differences.merged(differences)
    return rules, differences


def transform(ctx: RunContext, ids: RunIds) -> dict[str, Any]:
    settings = ctx.plan.transform
    rules, differences = transform_inputs(ctx.plan)
    if holds_workloads(ctx.plan):
        differences = differences.merged(DifferencesConfig(move_volume_data=True))
    try:
        result = run_transform(
            source=ctx.store,
            source_id=ids.snapshot,
            out=ctx.store,
            out_id=ids.transformed,
            target=target_from_cluster(ctx.new),
            rules=rules,
            differences=differences,
            key=ctx.key,
            validate=settings.validate,
            last_applied=settings.last_applied,
            pod_security_labels=settings.pod_security_labels,
            on_progress=ctx.progress,
        )
    except SnapshotExists:
        return {"snapshot": ids.transformed, "alreadyComplete": True}
    summary = {"snapshot": ids.transformed, **result.report.summary()}
    if result.validation is not None:
        validation = result.validation.to_dict()
        summary["validation"] = validation
        if result.validation.rejected:
            raise MigratorError(
                f"the new cluster rejected {len(result.validation.rejected)} transformed "
                "object(s) in a dry-run: "
                + "; ".join(str(r) for r in list(result.validation.rejected)[:5]),
                hint="add a rule (transform.rules) that fixes them, then resume",
            )
    return summary


def import_(ctx: RunContext, ids: RunIds) -> dict[str, Any]:
    hooks = {"pre": ctx.run_hooks("preImport", "import")}
    settings = ctx.plan.imports
    options = ImportOptions(
        conflict=settings.conflict,
        scope=Scope(),
        workers=settings.workers,
        qps=settings.qps,
        restore_status=settings.restore_status,
        leave_to_gitops=ctx.plan.gitops == "leave",
    )
    while True:
        try:
            report = import_snapshot(
                ctx.reader(ids.transformed),
                ctx.cluster("new", pool_size=settings.workers + 2),
                options,
                on_progress=ctx.progress,
            )
            break
        except LockHeld as exc:  # another import into the new cluster: wait for it
            ctx.runs.set_state(waiting=f"the new cluster's import lock: {exc}")
            if ctx.stop.wait(IMPORT_LOCK_POLL):
                raise
    ctx.runs.set_state(waiting="")
    summary = report.to_dict()
    if report.partial:
        problems = report.problems()
        raise PartialFailure(
            f"the new cluster refused {len(problems)} object(s): " + problems_line(problems),
            hint="fix them (a transform rule, or the new cluster), then resume",
        )
    summary["hooks"] = {**hooks, "post": ctx.run_hooks("postImport", "import")}
    return summary


IMPORT_LOCK_POLL = 5.0  # seconds between tries while another import holds the new cluster


def verify(ctx: RunContext, ids: RunIds) -> dict[str, Any]:
    report = verify_snapshot(
        ctx.reader(ids.transformed),
        ctx.new,
        VerifyOptions(scope=Scope(), wait=ctx.plan.verify.wait),
        on_progress=ctx.progress,
    )
    summary = report.to_dict()
    if report.partial:
        problems = report.problems()
        raise VerificationFailed(
            f"{len(problems)} object(s) differ, are missing or are not ready in the new "
            "cluster: " + problems_line(problems),
            hint="`migrator verify` shows every difference; fix them, then resume",
        )
    return summary


def verify_data(ctx: RunContext, ids: RunIds) -> dict[str, Any]:
    """Every claim the final pass moved, compared in the new cluster with that pass."""
    plan = ctx.plan
    if plan.volumes.method != "mover":
        return {"skipped": f"volumes.method is {plan.volumes.method}"}
    final = ctx.runs.records().get("volumes-final", {}).get("summary", {})
    moved = {
        v["volume"] for v in final.get("volumes", []) if not v.get("error") and not v.get("skipped")
    }
    claims = [c for c in claims_in_snapshot(ctx.reader(ids.snapshot)) if c.volume in moved]
    if not claims:
        return {"skipped": "no volume was moved"}
    results = passes.verify_claims(
        claims,
        ctx.new,
        pass_settings(plan),
        store_url=plan.store.url,
        key=ctx.key,
        stop=ctx.stop,
    )
    bad = [r for r in results if not r["ok"]]
    if bad:
        raise VerificationFailed(
            f"{len(bad)} volume(s) differ from their final pass in the new cluster: "
            + "; ".join(f"{r['volume']}: {r['reason'] or r['differences']}" for r in bad[:5]),
            hint="resume runs the final pass and this check again",
        )
    return {
        "volumes": results,
        "files": sum(r["files"] or 0 for r in results),
        "bytes": sum(r["bytes"] or 0 for r in results),
    }


def start(ctx: RunContext, ids: RunIds) -> dict[str, Any]:
    """Start the new cluster's workloads the import held at zero (their volumes' data is in
    and checked), and wait until they are ready."""
    if not holds_workloads(ctx.plan):
        return {"skipped": "no workload was held (volumes.method is none)"}
    namespaces = sorted({c.namespace for c in claims_in_snapshot(ctx.reader(ids.transformed))})
    started = start_held(ctx.new, namespaces, ctx.plan.verify.wait, ctx.progress)
    return {"started": started}


def start_held(
    cluster: Cluster, namespaces: Sequence[str], timeout: float, progress: Progress | None = None
) -> list[dict[str, Any]]:
    """Scale up every workload held at zero in ``namespaces`` (to the replicas recorded on
    it) and wait until they are ready; raises naming those that are not."""
    started = restore_scaled(cluster, namespaces)
    readiness = {"Deployment": ready.deployment, "StatefulSet": ready.statefulset}
    waited = wait_for_all(
        range(len(started)),
        lambda i: cluster.request("GET", started[i].workload.path),
        lambda obj: readiness.get(str(obj.get("kind")), lambda _o: Readiness(READY))(obj),
        timeout=timeout,
        on_progress=(lambda done, total: progress("start", done, total)) if progress else None,
    )
    late = [
        f"{started[i].workload}: {w.readiness.reason}" for i, w in waited.items() if not w.ready
    ]
    if late:
        raise VerificationFailed(
            f"{len(late)} workload(s) did not become ready once their data was in place: "
            + "; ".join(late[:5]),
            hint="look at their pods; resume waits again",
        )
    return [s.to_dict() for s in started]


def holds_workloads(plan: Plan) -> bool:
    """Whether the run holds the new cluster's workloads that mount claims until their
    data is moved (whenever it moves volume data)."""
    return plan.volumes.method != "none"


def shift(ctx: RunContext, ids: RunIds) -> dict[str, Any]:
    settings = ctx.plan.traffic
    if settings is None:
        return {"skipped": "the plan has no traffic section"}
    hooks = {"pre": ctx.run_hooks("preShift", "shift")}
    states = StateStore(ctx.store, ctx.runs.prefix.rstrip("/"))
    with open_provider(settings.provider, ctx.clusters()) as provider:
        existing = states.load()
        if existing is not None and existing.phase != SHIFT_ROLLED_BACK:
            shift_plan = replan(settings, provider, existing)
            mode = RESUME
        else:
            shift_plan = survey(settings, provider, ctx.clusters())
            mode = START

        def on_event(event: dict[str, Any]) -> None:
            ctx.progress("traffic", 0)
            if event.get("type") in ("step", "rollback", "written"):
                ctx.emit("traffic", phase="shift", detail=event)

        report = shift_apply(shift_plan, provider, states, mode=mode, on_event=on_event)
    summary = report.to_dict()
    if report.outcome == "paused":
        raise ShiftPaused(
            "the shift waits for approval before its next step",
            hint="`migrator resume -f PLAN` approves it and goes on",
        )
    if report.outcome != "done":
        raise ShiftRolledBack(
            f"the shift {report.outcome}: {report.reason}; the names point at the old "
            "cluster again",
            hint="fix the new cluster, then `migrator resume -f PLAN` shifts again",
        )
    summary["hooks"] = {**hooks, "post": ctx.run_hooks("postShift", "shift")}
    return summary


def soak(ctx: RunContext, ids: RunIds) -> dict[str, Any]:
    """Traffic fully on the new cluster for the soak time, its gates passing throughout.
    The soak's start is recorded, so a resumed run only waits out what is left of it."""
    plan = ctx.plan
    started = ctx.runs.state().get("soakStartedAt")
    if not isinstance(started, (int, float)):
        started = time.time()
        ctx.runs.set_state(soakStartedAt=started)
    ctx.runs.set_state(
        waiting=f"soak until {time.strftime('%H:%M:%S', time.gmtime(started + plan.soak))} UTC"
    )
    if plan.traffic is None:
        while time.time() < started + plan.soak and not ctx.stop.is_set():
            ctx.progress("soak", 0)
            time.sleep(min(5.0, max(0.0, started + plan.soak - time.time())))
        return {"seconds": plan.soak, "gates": "none (no traffic section)"}
    states = StateStore(ctx.store, ctx.runs.prefix.rstrip("/"))
    state = states.load()
    routes = list(state.routes.values()) if state is not None else []
    runner = build_gates(plan.traffic.gates, routes)
    outcome = runner.run(
        StepContext(states.id, len(plan.traffic.steps), 100, tuple(plan.traffic.dns_names)),
        started,
        plan.soak,
        on_check=lambda check, _outcome: ctx.progress("soak", len(_outcome.checks)),
    )
    checks = [c.to_dict() for c in outcome.checks]
    if not outcome.passed:
        raise MigratorError(
            f"a gate failed during the soak: {outcome.reason}",
            hint="`migrator rollback -f PLAN` puts the traffic back on the old cluster; or "
            "fix the new cluster and resume (the soak starts over)",
        )
    return {"seconds": plan.soak, "checks": len(checks), "failedChecks": outcome.failed_checks}


PHASES: list[tuple[str, Phase]] = [
    ("preflight", preflight),
    ("export", export),
    ("volumes-first", volume_pass(sync.STAGE, restore=False)),
    ("transform", transform),
    ("import", import_),
]


def steps(plan: Plan) -> list[tuple[str, Phase]]:
    """Every step of ``plan``'s run, in order (the stage passes one step each)."""
    stage_passes = [
        (f"volumes-stage-{n}", volume_pass(sync.STAGE))
        for n in range(1, plan.volumes.stage_passes + 1)
    ]
    return [
        *PHASES,
        *stage_passes,
        ("verify", verify),
        ("volumes-final", volume_pass(sync.FINAL)),
        ("verify-data", verify_data),
        ("start", start),
        ("shift", shift),
        ("soak", soak),
    ]
