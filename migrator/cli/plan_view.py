"""The plan, the preflight and a run's report for people on a terminal: what ``migrator
plan``, ``status`` and ``report`` print unless ``-o json``.

The figures come from :mod:`migrator.migrate.preview` and :mod:`migrator.migrate.report`
(the same headline rows the Markdown and HTML reports show); this module only lays them out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from migrator.cli.render import MAX_LISTED, render, render_table
from migrator.migrate.report import (
    RunReport,
    alert_line,
    duration,
    headline,
    run_rows,
    size,
    when,
)

if TYPE_CHECKING:
    from rich.console import Console

    from migrator.migrate.preview import Preview

CHECK_STYLES = {"pass": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}


def render_preview(console: Console, preview: Preview) -> None:
    """What a run of the plan will do: clusters, objects, conversions, volumes, DNS steps,
    and the phases with their hooks; a part that could not be read says why."""
    render(
        console,
        f"Plan {preview.plan}",
        [
            (side, _cluster_line(part))
            for side, part in (("source", preview.source), ("target", preview.target))
        ],
    )
    _objects(console, preview.objects)
    _conversions(console, preview.conversions)
    _volumes(console, preview.volumes)
    if preview.traffic is not None:
        _traffic(console, preview.traffic)
    rows = []
    for phase in preview.phases:
        does = ("(skipped) " if phase.get("skipped") else "") + str(phase["does"])
        hooks = [f"{h['when']} ({h['point']}): {h['does']}" for h in phase.get("hooks") or ()]
        rows.append([str(phase["name"]), "\n".join([does, *hooks])])
    render_table(console, "Phases", ["phase", "what it does"], rows)


def _cluster_line(part: Mapping[str, Any]) -> str:
    name = f"{part.get('name')} (context {part.get('context')})"
    if not part.get("available"):
        return f"{name}: unavailable: {part.get('reason', '')}"
    return f"{name}, {part.get('version', '?')} at {part.get('server', '?')}"


def _unavailable(console: Console, title: str, part: Mapping[str, Any]) -> bool:
    """Say the part could not be read (True), or nothing (False)."""
    if part.get("available"):
        return False
    render(console, title, [("unavailable", str(part.get("reason", "")))])
    return True


def _objects(console: Console, part: Mapping[str, Any]) -> None:
    if _unavailable(console, "Objects", part):
        return
    types = part.get("types") or []
    excluded = (part.get("scope") or {}).get("excludeNamespaces") or []
    render(
        console,
        "Objects",
        [
            ("objects", f"{part.get('total', 0)} in {len(types)} resource types"),
            ("namespaces left out", ", ".join(excluded) or "none"),
            ("labels", str(part.get("labelSelector") or "any")),
            ("note", str(part.get("note", ""))),
        ],
    )
    render_table(
        console,
        "Objects per type",
        ["resource", "kind", "version", "objects"],
        [
            [
                str(t["resource"]),
                str(t["kind"]),
                str(t["groupVersion"]),
                "?" if t.get("objects") is None else str(t["objects"]),
            ]
            for t in types
        ],
    )
    errors = [[str(t["resource"]), str(t["error"])] for t in types if t.get("error")]
    render_table(console, "Types that could not be counted", ["resource", "error"], errors)
    render_table(
        console,
        "Types left out (the new cluster makes their objects)",
        ["resource", "objects", "why"],
        [
            [
                str(t["resource"]),
                "?" if t.get("objects") is None else str(t["objects"]),
                str(t.get("reason") or t.get("rule") or ""),
            ]
            for t in part.get("leftOut") or []
        ],
    )


def _conversions(console: Console, part: Mapping[str, Any]) -> None:
    if _unavailable(console, "Conversions", part):
        return
    objects = part.get("objects") or []
    verdicts = part.get("verdicts") or {}
    render(
        console,
        "Conversions",
        [
            (
                "objects checked",
                ", ".join(f"{n} {v}" for v, n in verdicts.items()) or "none at a removed API",
            ),
            ("need a person", str(len(part.get("needsPerson") or []))),
        ],
    )
    render_table(
        console,
        "Objects at an API the target does not serve",
        ["object", "verdict", "becomes", "details"],
        [
            [
                _ref(c.get("object") or {}),
                str(c.get("verdict", "")),
                str(c.get("becomes", "")),
                "; ".join(c.get("details") or ()),
            ]
            for c in objects[:MAX_LISTED]
        ],
    )


def _ref(ref: Mapping[str, Any]) -> str:
    where = f"{ref['namespace']}/" if ref.get("namespace") else ""
    return f"{ref.get('apiVersion', '')} {ref.get('kind', '')} {where}{ref.get('name', '')}"


def _volumes(console: Console, part: Mapping[str, Any]) -> None:
    if _unavailable(console, "Volumes", part):
        return
    claims = part.get("claims") or []
    passes = int(part.get("stagePasses") or 0)
    render(
        console,
        "Volumes",
        [
            ("claims", f"{len(claims)}, {size(part.get('totalBytes'))} requested in all"),
            ("method", str(part.get("method"))),
            (
                "passes",
                f"{passes} stage pass{'es' if passes != 1 else ''} + final, "
                f"{part.get('parallel')} at a time, quiesce: {part.get('quiesce')}",
            ),
        ],
    )
    render_table(
        console,
        "Claims",
        ["claim", "size", "class", "class on the target", "phase"],
        [
            [
                str(c["claim"]),
                str(c.get("size") or "?"),
                str(c.get("storageClass") or "(default)"),
                str(c.get("targetClass") or "(default)"),
                str(c.get("phase") or ""),
            ]
            for c in claims[:MAX_LISTED]
        ],
    )


def _traffic(console: Console, part: Mapping[str, Any]) -> None:
    if _unavailable(console, "Traffic", part):
        return
    names = part.get("names") or {}
    render(
        console,
        f"Traffic ({part.get('provider')})",
        [
            (
                "names",
                "\n".join(f"{n}  old: {r['old']}  new: {r['new']}" for n, r in names.items()),
            ),
            ("records before", "\n".join(part.get("before") or ()) or "(none)"),
        ],
    )
    rows = []
    for step in part.get("steps") or []:
        weights = "\n".join(
            f"{name}: old {w['old']:.0%} → new {w['new']:.0%}"
            for name, w in (step.get("weights") or {}).items()
        )
        then = f"wait {step.get('waitSeconds', 0):g}s" + (
            " with gates" if step.get("gated") else ""
        )
        if step.get("approve"):
            then = "approval first; " + then
        rows.append([str(step.get("label")), weights, then, str(step.get("changes", 0))])
    render_table(console, "DNS steps", ["step", "weights", "then", "record changes"], rows)


def render_preflight(console: Console, report: Mapping[str, Any]) -> None:
    """One line per check (a coloured PASS/WARN/FAIL/SKIP and its summary), the action and
    the details under it, then whether the migration may start."""
    from rich.text import Text

    for check in report.get("checks") or ():
        status = str(check.get("status", "?")).lower()
        line = Text()
        line.append(f"{status.upper():<4}", style=CHECK_STYLES.get(status, ""))
        line.append(f"  {check.get('name', '')}: {check.get('summary', '')}")
        console.print(line)
        if check.get("action"):
            console.print(Text(f"      → {check['action']}"))
        for detail in check.get("details") or ():
            console.print(Text(f"      - {detail}"))
    ready = bool(report.get("ready"))
    verdict = Text()
    verdict.append("ready" if ready else "not ready", style="bold green" if ready else "bold red")
    verdict.append(": the migration may start" if ready else ": fix the failed checks first")
    console.print(verdict)


def render_run(console: Console, run_report: RunReport) -> None:
    """A run's report: the run, its phases with status and times, each phase's headline
    figures and problems, and the alerts."""
    from rich.text import Text

    render(console, f"Migration {run_report.plan_name}", run_rows(run_report))
    render_table(
        console,
        "Phases",
        ["phase", "status", "started", "took", "resumed"],
        [
            [
                p.name,
                p.status,
                when(p.started_at),
                duration(p.seconds) if p.started_at is not None else "-",
                str(p.resumed),
            ]
            for p in run_report.phases
        ],
    )
    for phase in run_report.phases:
        rows = headline(phase)
        if rows:
            render(console, f"{phase.name} ({phase.status})", rows)
        if phase.problems:
            console.print(Text(f"{phase.name}: {len(phase.problems)} problem(s)", style="bold red"))
            for problem in phase.problems[:MAX_LISTED]:
                console.print(Text(f"  - {problem}"))
    if run_report.alerts:
        console.print(Text("Alerts", style="bold"))
        for alert in run_report.alerts:
            console.print(Text(f"  - {alert_line(alert)}"))
