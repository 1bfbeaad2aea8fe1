"""A disaster-recovery rehearsal: the latest snapshot restored into a scratch place,
verified, timed, and cleaned up.

The scratch place is a set of namespaces (each of the snapshot's namespaces with a suffix,
``shop`` → ``shop-rehearsal``) in any cluster, the new one included, or a whole scratch
cluster (``rename=False``). In a namespace set, cluster-scoped objects are left out: the
rehearsal must not touch what the cluster's own workloads share. Resources are imported from
a transform of the snapshot for the scratch cluster (namespaces renamed), volume data is
restored by mover Jobs from each volume's newest pass, and verify waits for everything to
be ready. **RTO** is the time from the start to everything ready; **RPO** the age of the
snapshot when the rehearsal started (what a real disaster then would have lost). The
report is kept under ``runs/<plan>/rehearsals/`` of the store; the namespaces and the
rehearsal's snapshot are deleted at the end unless kept.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from migrator import kube
from migrator.errors import ApiError, MigratorError
from migrator.export import export_cluster
from migrator.importer import ImportOptions, import_snapshot
from migrator.kube.wait import WAITING, Readiness, wait_for_all
from migrator.migrate import report as reports
from migrator.migrate.context import OnEvent, RunContext
from migrator.migrate.phases import (
    export_options,
    holds_workloads,
    pass_settings,
    problems_line,
    snapshot_namespaces,
    start_held,
    transform_inputs,
)
from migrator.migrate.plan import Plan
from migrator.migrate.state import REHEARSALS, now_iso, parse_iso
from migrator.resources.scope import Scope
from migrator.snapshot.reader import list_snapshots
from migrator.transform.differences import DifferencesConfig
from migrator.transform.rules import RuleSet
from migrator.transform.stage import run_transform, target_from_cluster
from migrator.verify import VerifyOptions, verify_snapshot
from migrator.volumes import jobs, passes, sync
from migrator.volumes.claims import Claim, claims_in_snapshot


def latest_snapshot(ctx: RunContext) -> dict[str, Any] | None:
    """The newest complete export of the plan's old cluster in the store (None: none yet)."""
    name = ctx.plan.name
    found = [
        s
        for s in list_snapshots(ctx.store)
        if s["complete"] and s["id"].startswith(f"{name}-") and not s.get("parent")
    ]
    return max(found, key=lambda s: str(s["created_at"])) if found else None


def rehearse(
    plan: Plan,
    scratch: str,
    *,
    snapshot: str | None = None,
    suffix: str = "-rehearsal",
    rename: bool = True,
    keep: bool = False,
    wait: float | None = None,
    on_event: OnEvent | None = None,
) -> dict[str, Any]:
    """Rehearse a recovery of ``plan``'s old cluster into the cluster ``scratch`` (a
    kubeconfig context); returns the rehearsal's report (see the module doc)."""
    with RunContext.open(plan, on_event=on_event) as ctx:
        started_wall, t0 = now_iso(), time.monotonic()
        began_at = time.time()
        stamp = started_wall.replace(":", "").replace("-", "")[:15].lower()
        phases: list[reports.PhaseReport] = []
        cluster = ctx.enter(kube.connect(plan.kubeconfig, scratch))
        wait = plan.verify.wait if wait is None else wait

        def step(name: str, work: Any) -> dict[str, Any]:
            ctx.emit("phase", phase=f"rehearse-{name}", status="started")
            began, t = time.time(), time.monotonic()
            try:
                summary = work()
            except MigratorError as exc:
                seconds = round(time.monotonic() - t, 3)
                phases.append(
                    reports.PhaseReport(name, "failed", began, time.time(), seconds, {}, [str(exc)])
                )
                ctx.emit("phase", phase=f"rehearse-{name}", status="failed", message=str(exc))
                raise
            seconds = round(time.monotonic() - t, 3)
            status = "skipped" if "skipped" in summary else "done"
            phases.append(reports.PhaseReport(name, status, began, time.time(), seconds, summary))
            ctx.emit("phase", phase=f"rehearse-{name}", status=status, seconds=seconds)
            return summary

        chosen = (
            {"id": snapshot, "created_at": ctx.reader(snapshot).manifest.get("created_at")}
            if snapshot
            else latest_snapshot(ctx)
        )
        if chosen is None:  # nothing to recover from yet: take a snapshot now
            new_id = f"{plan.name}-{stamp[:8]}t{stamp[9:15]}"
            step("snapshot", lambda: _take_snapshot(ctx, new_id))
            chosen = {"id": new_id, "created_at": ctx.reader(new_id).manifest.get("created_at")}
        snapshot_id = str(chosen["id"])
        created = parse_iso(str(chosen.get("created_at") or ""))
        rpo = (datetime.now(UTC) - created).total_seconds() if created else None
        source = ctx.reader(snapshot_id)
        namespaces = snapshot_namespaces(plan, source)
        rules, differences = transform_inputs(plan)
        mapping = {
            ns: f"{differences.namespaces.get(ns, ns)}{suffix if rename else ''}"[:63]
            for ns in namespaces
        }
        differences = differences.merged(
            DifferencesConfig(namespaces=mapping, move_volume_data=holds_workloads(plan))
        )
        rehearsal_id = f"{snapshot_id}-rh{stamp[9:15]}"
        made_crds: list[str] = []
        status, error = "rehearsed", ""
        rto: float | None = None
        try:
            step(
                "transform",
                lambda: _transform(ctx, snapshot_id, rehearsal_id, cluster, rules, differences),
            )
            step("import", lambda: _import(ctx, rehearsal_id, cluster, rename, made_crds))
            step("verify", lambda: _verify(ctx, rehearsal_id, cluster, rename, wait))
            step("volumes", lambda: _restore_volumes(ctx, source, cluster, mapping))
            step(
                "start",
                lambda: {
                    "started": start_held(cluster, sorted(mapping.values()), wait, ctx.progress)
                },
            )
            rto = time.monotonic() - t0
        except MigratorError as exc:
            status, error = "failed", str(exc)
        finally:
            if not keep:
                step(
                    "cleanup",
                    lambda: _cleanup(
                        ctx, cluster, sorted(mapping.values()), made_crds, rehearsal_id
                    ),
                )
        report = reports.RunReport(
            plan_name=plan.name,
            source=snapshot_id,
            target=scratch,
            store=plan.store.url,
            status=status,
            started_at=began_at,
            ended_at=time.time(),
            phases=phases,
            preflight=None,
            alerts=[],
            rto_seconds=round(rto, 3) if rto is not None else None,
            rpo_seconds=round(rpo, 3) if rpo is not None else None,
            extra={
                "kind": "rehearsal",
                "snapshot": snapshot_id,
                "namespaces": mapping,
                "kept": keep,
                "error": error,
            },
        )
        doc = report.to_dict()
        where = f"{REHEARSALS}/{stamp}"
        ctx.runs.save(f"{where}.json", doc)
        ctx.runs.put_text(f"{where}.md", reports.markdown(report))
        ctx.runs.put_text(f"{where}.html", reports.html(report))
        ctx.emit("end", status=status, message=f"rehearsal of {plan.name}: {status}")
        if status == "failed":
            raise MigratorError(
                f"the rehearsal failed: {error}",
                hint=f"its report is {ctx.runs.url}{where}.md",
            )
        return doc


def _take_snapshot(ctx: RunContext, snapshot_id: str) -> dict[str, Any]:
    """A snapshot of the old cluster now: its resources, and a backup pass of its volumes."""
    result = export_cluster(
        ctx.old, ctx.store, snapshot_id=snapshot_id, options=export_options(ctx.plan), key=ctx.key
    )
    summary: dict[str, Any] = {"snapshot": snapshot_id, **result.report.to_dict()["totals"]}
    reader = ctx.reader(snapshot_id)
    if ctx.plan.volumes.method == "mover" and claims_in_snapshot(reader):
        report = passes.run_pass(
            reader,
            ctx.old,
            ctx.old,
            sync.STAGE,
            pass_settings(ctx.plan, quiesce="none"),
            store_url=ctx.plan.store.url,
            key=ctx.key,
            restore=False,
            progress=ctx.progress,
            stop=ctx.stop,
        )
        failed = [v for v in report.volumes if not v.ok]
        if failed:
            raise MigratorError(
                "the volume backup failed: "
                + "; ".join(f"{v.claim.volume}: {v.error}" for v in failed[:5])
            )
        summary["volumes"] = len(report.volumes)
        summary["bytes"] = report.to_dict().get("bytes")
    return summary


def _transform(
    ctx: RunContext,
    snapshot: str,
    out_id: str,
    cluster: Any,
    rules: RuleSet | None,
    differences: DifferencesConfig,
) -> dict[str, Any]:
    result = run_transform(
        source=ctx.store,
        source_id=snapshot,
        out=ctx.store,
        out_id=out_id,
        target=target_from_cluster(cluster),
        rules=rules,
        differences=differences,
        key=ctx.key,
        last_applied=ctx.plan.transform.last_applied,
        on_progress=ctx.progress,
    )
    return {"snapshot": out_id, **result.report.summary()}


def _import(
    ctx: RunContext, snapshot: str, cluster: Any, rename: bool, made_crds: list[str]
) -> dict[str, Any]:
    """Import the rehearsal's snapshot. In a namespace set, the only cluster-scoped objects
    imported are the CRDs its custom resources need; those it created are noted (``made_crds``)
    so the cleanup removes them, and those that were there are left alone."""
    settings = ctx.plan.imports
    reader = ctx.reader(snapshot)

    def run(scope: Scope) -> Any:
        report = import_snapshot(
            reader,
            cluster,
            ImportOptions(
                conflict=settings.conflict,
                scope=scope,
                workers=settings.workers,
                qps=settings.qps,
                restore_status=settings.restore_status,
                restart=True,  # each rehearsal its own: no progress shared with another
            ),
            on_progress=ctx.progress,
        )
        if report.partial:
            problems = report.problems()
            raise MigratorError(
                f"the scratch cluster refused {len(problems)} object(s): " + problems_line(problems)
            )
        return report.to_dict()

    summary: dict[str, Any] = {}
    if rename:
        crds = [
            str(o.get("metadata", {}).get("name"))
            for e in reader.resources()
            if e["resource"] == "customresourcedefinitions"
            for o in reader.iter_objects(e)
        ]
        base = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
        made_crds += [name for name in crds if not _exists(cluster, base + name)]
        if crds:
            summary["crds"] = run(
                Scope(include_resources=("customresourcedefinitions",), cluster_scoped=True)
            )
    summary["objects"] = run(Scope(cluster_scoped=not rename))
    return summary


def _exists(cluster: Any, path: str) -> bool:
    try:
        cluster.request("GET", path)
    except ApiError as exc:
        if exc.status == 404:
            return False
        raise
    return True


def _restore_volumes(
    ctx: RunContext, source: Any, cluster: Any, mapping: dict[str, str]
) -> dict[str, Any]:
    plan = ctx.plan
    claims = claims_in_snapshot(source)
    if not claims or plan.volumes.method != "mover":
        return {"skipped": "no volume data to restore (no claims, or not moved by the mover)"}
    targets = [(Claim(mapping.get(c.namespace, c.namespace), c.name), c.volume) for c in claims]
    results = passes.claim_jobs(
        jobs.RESTORE,
        targets,
        cluster,
        pass_settings(plan),
        store_url=plan.store.url,
        key=ctx.key,
        stop=ctx.stop,
    )
    bad = [r for r in results if not r["ok"]]
    if bad:
        raise MigratorError(
            f"{len(bad)} volume(s) could not be restored: "
            + "; ".join(f"{r['claim']}: {r['reason']}" for r in bad[:5])
        )
    return {"volumes": results, "bytes": sum(r["bytes"] or 0 for r in results)}


def _verify(
    ctx: RunContext, snapshot: str, cluster: Any, rename: bool, wait: float | None
) -> dict[str, Any]:
    report = verify_snapshot(
        ctx.reader(snapshot),
        cluster,
        VerifyOptions(
            scope=Scope(cluster_scoped=not rename),
            wait=ctx.plan.verify.wait if wait is None else wait,
        ),
        on_progress=ctx.progress,
    )
    if report.partial:
        problems = report.problems()
        raise MigratorError(
            f"{len(problems)} object(s) differ, are missing or are not ready: "
            + problems_line(problems)
        )
    return report.to_dict()


def _cleanup(
    ctx: RunContext, cluster: Any, namespaces: list[str], crds: list[str], snapshot: str
) -> dict[str, Any]:
    """Delete the rehearsal's namespaces (and wait until they are gone), the CRDs it made,
    and its snapshot."""
    deleted = []
    for ns in namespaces:
        try:
            cluster.request("DELETE", f"/api/v1/namespaces/{ns}")
            deleted.append(ns)
        except ApiError as exc:
            if exc.status != 404:
                raise

    # a namespace still there is "waiting"; its 404 ends its wait (as failed: it is gone)
    waited = wait_for_all(
        deleted,
        lambda ns: cluster.request("GET", f"/api/v1/namespaces/{ns}"),
        lambda _ns: Readiness(WAITING, "terminating"),
        timeout=300,
    )
    left = [ns for ns, w in waited.items() if w.value is not None]
    if left:
        raise MigratorError(
            f"the rehearsal's namespaces are still terminating after 300 s: {', '.join(left)}",
            hint="look at what holds them (finalizers), then delete them by hand",
        )
    for name in crds:
        try:
            cluster.request(
                "DELETE", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
            )
        except ApiError as exc:
            if exc.status != 404:
                raise
    ctx.store.delete_prefix(f"{snapshot}/")
    return {"namespacesDeleted": deleted, "crdsDeleted": crds, "snapshotDeleted": snapshot}
