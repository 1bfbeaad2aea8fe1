"""The plan commands: ``plan``, ``migrate``, ``resume``, ``pause``, ``status``, ``rollback``,
``teardown``, ``rehearse`` and ``report``, each ``-f PLAN``.

They parse, call :mod:`migrator.migrate` and render: a line per event while a run goes on
(on stderr, so ``-o json`` leaves stdout to the final document), then the report.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from migrator.cli.options import OUTPUT_OPTION
from migrator.cli.render import make_console
from migrator.errors import PreflightFailed

if TYPE_CHECKING:
    from migrator.migrate.plan import Plan

PLAN_OPTION = click.option(
    "-f",
    "--file",
    "plan_file",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    metavar="PLAN",
    help="The plan file (YAML): see examples/plan.yaml.",
)


def _load(plan_file: Path) -> Plan:
    from migrator.migrate.planfile import load

    return load(plan_file)


def _events(output: str) -> Callable[[dict[str, Any]], None]:
    """A line per event on stderr: what a person watching the run wants to see."""

    def show(event: dict[str, Any]) -> None:
        if output == "json":
            click.echo(json.dumps(event), err=True)
            return
        at = str(event.get("at", ""))[11:19]
        kind = event.get("type")
        if kind == "phase":
            status = event.get("status")
            seconds = f" in {event['seconds']} s" if event.get("seconds") is not None else ""
            message = f": {event['message']}" if event.get("message") else ""
            click.echo(f"[{at}] {event.get('phase')} {status}{seconds}{message}", err=True)
        elif kind == "hook":
            click.echo(f"[{at}]   hook {event.get('hook')} {event.get('status')}", err=True)
        elif kind == "traffic":
            detail = event.get("detail") or {}
            click.echo(f"[{at}]   traffic: {_traffic_line(detail)}", err=True)
        elif kind in ("alert", "end", "run"):
            text = event.get("message") or event.get("status")
            click.echo(f"[{at}] {kind}: {text}", err=True)

    return show


def _traffic_line(detail: dict[str, Any]) -> str:
    parts = [str(detail.get("type", ""))]
    for key in ("percent", "move", "outcome", "reason"):
        if detail.get(key) not in (None, ""):
            parts.append(f"{key} {detail[key]}")
    return ", ".join(parts)


def _show_run(report: dict[str, Any], output: str) -> None:
    if output == "json":
        click.echo(json.dumps(report, indent=2))
        return
    from migrator.cli.plan_view import render_run
    from migrator.migrate.report import RunReport

    render_run(make_console(), RunReport.from_dict(report))


@click.command("plan")
@PLAN_OPTION
@OUTPUT_OPTION
def plan_command(plan_file: Path, output: str) -> None:
    """Check PLAN and show everything `migrate` would do, changing nothing.

    Runs every preflight check (each a pass/warn/fail line with what to do) and previews
    the objects per kind, the conversions and what they lose, the volumes and their sizes,
    and the DNS weights at each traffic step. Exit code 0 when the plan is ready, 14 when a
    check fails.
    """
    from migrator.migrate.preflight import run_preflight
    from migrator.migrate.preview import preview

    plan = _load(plan_file)
    checks = run_preflight(plan)
    shown = preview(plan)
    if output == "json":
        click.echo(
            json.dumps({"preflight": checks.to_dict(), "preview": shown.to_dict()}, indent=2)
        )
    else:
        from migrator.cli.plan_view import render_preflight, render_preview

        console = make_console()
        render_preview(console, shown)
        render_preflight(console, checks.to_dict())
    if not checks.ready:
        failed = [c.name for c in checks.checks if c.status == "fail"]
        raise PreflightFailed(
            f"the plan is not ready: {len(failed)} check(s) failed: {', '.join(failed)}",
            hint="do what each failed check says, then run `migrator plan` again",
        )


@click.command("migrate")
@PLAN_OPTION
@click.option(
    "--restart",
    is_flag=True,
    help="Start the plan's run over, forgetting its journal (snapshots stay in the store).",
)
@OUTPUT_OPTION
def migrate_command(plan_file: Path, restart: bool, output: str) -> None:
    """Run the whole migration of PLAN, or go on with it where it stopped.

    Preflight, export and a first volume pass while the applications run, transform,
    import, stage volume passes, verify, quiesce and the final volume pass, the data
    checked in the new cluster, the traffic shift, and the soak. Every finished step is
    recorded in the store: after a crash, a kill or `migrator pause`, `migrator resume`
    goes on from there. Exit code 10 when paused, 15 when a step failed.
    """
    from migrator.migrate.runner import migrate

    report = migrate(_load(plan_file), restart=restart, on_event=_events(output))
    _show_run(report, output)


@click.command("resume")
@PLAN_OPTION
@OUTPUT_OPTION
def resume_command(plan_file: Path, output: str) -> None:
    """Go on with PLAN's run from its last finished step (after a crash, a kill, a pause,
    a failure once fixed, or a traffic step waiting for approval)."""
    from migrator.migrate.runner import migrate, status

    plan = _load(plan_file)
    status(plan)  # refuses a plan that has no run yet
    report = migrate(plan, on_event=_events(output))
    _show_run(report, output)


@click.command("pause")
@PLAN_OPTION
@OUTPUT_OPTION
def pause_command(plan_file: Path, output: str) -> None:
    """Ask PLAN's running migration to stop at its next step boundary."""
    from migrator.migrate.runner import pause

    state = pause(_load(plan_file))
    if output == "json":
        click.echo(json.dumps(state, indent=2))
    else:
        click.echo(
            f"pause requested: the run stops after {state.get('phase')} "
            "(`migrator resume -f PLAN` goes on)"
        )


@click.command("status")
@PLAN_OPTION
@click.option("--watch", is_flag=True, help="Show it again every --interval until the run ends.")
@click.option(
    "--interval",
    type=click.FloatRange(0.2),
    default=2.0,
    show_default=True,
    metavar="SECONDS",
    help="How often --watch looks.",
)
@OUTPUT_OPTION
def status_command(plan_file: Path, watch: bool, interval: float, output: str) -> None:
    """Show what PLAN's run is doing: its phase, what it waits for, and its journal."""
    from migrator.migrate.runner import status

    plan = _load(plan_file)
    while True:
        state = status(plan)
        if output == "json":
            click.echo(json.dumps(state, indent=None if watch else 2))
        else:
            if watch and sys.stdout.isatty():
                click.clear()
            _render_status(state)
        if not watch or state["status"] not in ("running",):
            return
        time.sleep(interval)


def _render_status(state: dict[str, Any]) -> None:
    from migrator.cli.render import render, render_table

    console = make_console()
    process = state["process"]
    alive = {True: "alive", False: "gone", None: "on another host"}[process.get("alive")]
    render(
        console,
        f"Run of {state['plan']}",
        [
            ("status", state["status"] + (" (pause requested)" if state["pauseRequested"] else "")),
            ("phase", state.get("phase") or "-"),
            ("waiting for", state.get("waiting") or "-"),
            ("error", state.get("error") or "-"),
            ("process", f"{process.get('host')} pid {process.get('pid')} ({alive})"),
            ("updated", state.get("updatedAt") or "-"),
        ],
    )
    done = {j["step"]: j for j in state["journal"]}
    render_table(
        console,
        "Steps",
        ["step", "status", "ended", "seconds"],
        [
            [
                step,
                done.get(step, {}).get("status") or ("now" if step == state.get("phase") else ""),
                str(done.get(step, {}).get("endedAt") or ""),
                str(done.get(step, {}).get("seconds") or ""),
            ]
            for step in state["steps"] + [s for s in done if s not in state["steps"]]
        ],
    )
    render_table(
        console,
        "Alerts",
        ["at", "phase", "message"],
        [[a.get("at", ""), a.get("phase", ""), a.get("message", "")] for a in state["alerts"]],
    )


@click.command("rollback")
@PLAN_OPTION
@click.option(
    "--data",
    is_flag=True,
    help="Also bring the volume data the new cluster wrote back into the old volumes (a "
    "reverse final pass; the new cluster's writers are stopped for it).",
)
@OUTPUT_OPTION
def rollback_command(plan_file: Path, data: bool, output: str) -> None:
    """Put PLAN's traffic back on the old cluster and start its workloads again.

    Works until the teardown command has run. The steps from the final volume pass on are
    forgotten: `migrator resume` migrates again from there.
    """
    from migrator.migrate.teardown import rollback

    report = rollback(_load(plan_file), data=data, on_event=_events(output))
    _show_run(report, output)


@click.command("teardown")
@PLAN_OPTION
@click.option("--yes", is_flag=True, help="Really retire the old cluster.")
@click.option(
    "--confirm",
    metavar="NAME",
    default=None,
    help="The old cluster's name (source.name in the plan), typed back. Asked for on a "
    "terminal when not given.",
)
@OUTPUT_OPTION
def teardown_command(plan_file: Path, yes: bool, confirm: str | None, output: str) -> None:
    """Retire PLAN's old cluster, once verify passed and the soak ended.

    Takes a last snapshot of the old cluster, scales its workloads to zero (reverse import
    order, PodDisruptionBudgets respected) and runs the plan's teardown command. Refused
    without --yes and the old cluster's name typed back.
    """
    from migrator.migrate.teardown import teardown

    plan = _load(plan_file)
    if yes and confirm is None and sys.stdin.isatty():
        confirm = click.prompt(f"Type the old cluster's name ({plan.source.name}) to retire it")
    report = teardown(plan, yes=yes, confirm=confirm, on_event=_events(output))
    _show_run(report, output)


@click.command("rehearse")
@PLAN_OPTION
@click.option(
    "--scratch",
    required=True,
    metavar="CONTEXT",
    help="Kubeconfig context of the cluster to rehearse in (the new one will do: the "
    "rehearsal has namespaces of its own).",
)
@click.option("--snapshot", metavar="ID", default=None, help="Default: the newest export.")
@click.option(
    "--suffix",
    default="-rehearsal",
    show_default=True,
    help="Added to every namespace's name in the scratch cluster.",
)
@click.option(
    "--whole-cluster",
    is_flag=True,
    help="The scratch cluster is yours alone: keep the namespaces' names and import "
    "cluster-scoped objects too.",
)
@click.option("--keep", is_flag=True, help="Leave what the rehearsal made, to look at it.")
@click.option(
    "--wait",
    type=click.FloatRange(0),
    default=None,
    metavar="SECONDS",
    help="How long to wait for everything to be ready. Default: the plan's verify.wait.",
)
@OUTPUT_OPTION
def rehearse_command(
    plan_file: Path,
    scratch: str,
    snapshot: str | None,
    suffix: str,
    whole_cluster: bool,
    keep: bool,
    wait: float | None,
    output: str,
) -> None:
    """Rehearse a recovery: restore the latest snapshot of PLAN's old cluster (resources and
    volume data) into a scratch cluster, verify it, measure RTO and RPO, and clean up."""
    from migrator.migrate.rehearse import rehearse

    report = rehearse(
        _load(plan_file),
        scratch,
        snapshot=snapshot,
        suffix="" if whole_cluster else suffix,
        rename=not whole_cluster,
        keep=keep,
        wait=wait,
        on_event=_events(output),
    )
    _show_run(report, output)


@click.command("report")
@PLAN_OPTION
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "markdown", "html", "json"]),
    default="text",
    show_default=True,
    help="How to render it.",
)
@click.option(
    "--out",
    "out_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write it to this file instead of stdout.",
)
@click.option(
    "--rehearsal",
    metavar="STAMP",
    is_flag=False,
    flag_value="latest",
    default=None,
    help="A rehearsal's report instead: the newest, or the one of STAMP (its key's name).",
)
def report_command(plan_file: Path, fmt: str, out_file: Path | None, rehearsal: str | None) -> None:
    """Render the report of PLAN's last run again, or of a rehearsal (both are kept in the
    store)."""
    from migrator.migrate import report as reports
    from migrator.migrate.runner import last_report, rehearsal_report

    plan = _load(plan_file)
    report = rehearsal_report(plan, rehearsal) if rehearsal else last_report(plan)
    if fmt == "text" and out_file is None:
        from migrator.cli.plan_view import render_run

        render_run(make_console(), report)
        return
    text = {
        "markdown": reports.markdown,
        "html": reports.html,
        "json": lambda r: json.dumps(r.to_dict(), indent=2) + "\n",
        "text": reports.markdown,
    }[fmt](report)
    if out_file is None:
        click.echo(text, nl=False)
    else:
        out_file.write_text(text, encoding="utf-8")
        click.echo(f"wrote {out_file}", err=True)
