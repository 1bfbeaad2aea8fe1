"""The report of a migration run: each phase's status, times, headline figures and problems.

:class:`RunReport` is what the runner keeps in the store (its :meth:`~RunReport.to_dict` as
JSON, read back by :meth:`~RunReport.from_dict`) and what ``migrator report`` renders again:
:func:`markdown` for a ticket or a wiki, :func:`html` for one self-contained page (inline CSS,
no scripts, nothing fetched) with the phases as a timeline. A phase's ``summary`` is its
stage report's ``to_dict()`` (or the part of it worth keeping); :func:`headline` picks the
figures a person looks for first from the known shapes, and lists anything else compactly.
Reports hold counts, names and server messages, never object content or secrets.
"""

from __future__ import annotations

import html as htmlmod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

PHASE_STATUSES = ("pending", "running", "done", "failed", "skipped")
RUN_STATUSES = ("running", "paused", "failed", "done", "rolled-back", "rehearsed")
MAX_ROWS = 20  # key/value rows of a summary of unknown shape
MAX_PROBLEMS = 50  # problems listed per phase in a report a person reads

Rows = list[tuple[str, str]]


@dataclass
class PhaseReport:
    """One phase of the run. Times are seconds since the epoch (UTC); ``seconds`` is the
    time the phase worked (over every attempt), ``resumed`` how many times it was resumed."""

    name: str
    status: str = "pending"
    started_at: float | None = None
    ended_at: float | None = None
    seconds: float = 0.0
    summary: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    resumed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "startedAt": self.started_at,
            "endedAt": self.ended_at,
            "seconds": self.seconds,
            "summary": self.summary,
            "problems": list(self.problems),
            "resumed": self.resumed,
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> PhaseReport:
        return cls(
            name=str(doc["name"]),
            status=str(doc.get("status", "pending")),
            started_at=doc.get("startedAt"),
            ended_at=doc.get("endedAt"),
            seconds=float(doc.get("seconds") or 0.0),
            summary=dict(doc.get("summary") or {}),
            problems=[str(p) for p in doc.get("problems") or ()],
            resumed=int(doc.get("resumed") or 0),
        )


@dataclass
class RunReport:
    """A whole run: the plan, both clusters, the store, where it ended, every phase, the
    preflight's report, the alerts raised, and for a rehearsal the recovery times."""

    plan_name: str
    source: str
    target: str
    store: str
    status: str = "running"
    started_at: float | None = None
    ended_at: float | None = None
    phases: list[PhaseReport] = field(default_factory=list)
    preflight: dict[str, Any] | None = None
    alerts: list[dict[str, Any]] = field(default_factory=list)
    rto_seconds: float | None = None
    rpo_seconds: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def phase(self, name: str) -> PhaseReport | None:
        return next((p for p in self.phases if p.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "plan": self.plan_name,
            "source": self.source,
            "target": self.target,
            "store": self.store,
            "status": self.status,
            "startedAt": self.started_at,
            "endedAt": self.ended_at,
            "phases": [p.to_dict() for p in self.phases],
            "preflight": self.preflight,
            "alerts": list(self.alerts),
            "rtoSeconds": self.rto_seconds,
            "rpoSeconds": self.rpo_seconds,
            "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> RunReport:
        return cls(
            plan_name=str(doc["plan"]),
            source=str(doc.get("source", "")),
            target=str(doc.get("target", "")),
            store=str(doc.get("store", "")),
            status=str(doc.get("status", "running")),
            started_at=doc.get("startedAt"),
            ended_at=doc.get("endedAt"),
            phases=[PhaseReport.from_dict(p) for p in doc.get("phases") or ()],
            preflight=doc.get("preflight"),
            alerts=[dict(a) for a in doc.get("alerts") or ()],
            rto_seconds=doc.get("rtoSeconds"),
            rpo_seconds=doc.get("rpoSeconds"),
            extra=dict(doc.get("extra") or {}),
        )


# -- figures ----------------------------------------------------------------------------------


def when(stamp: float | None) -> str:
    """A time of the report as people read it (UTC), or "-"."""
    if stamp is None:
        return "-"
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: float | None) -> str:
    """``42.0s``, ``3m 05s``, ``2h 03m``; "-" when unknown."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def size(count: float | None) -> str:
    """Bytes in decimal units (``1.5 GB``)."""
    if count is None:
        return "-"
    value = float(count)
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(value) < 1000 or unit == "PB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} PB"  # pragma: no cover (the loop returns)


def run_rows(report: RunReport) -> Rows:
    """The run's facts, one row each."""
    span = (
        report.ended_at - report.started_at
        if report.started_at is not None and report.ended_at is not None
        else None
    )
    rows = [
        ("status", report.status),
        ("source", report.source),
        ("target", report.target),
        ("store", report.store),
        ("started", when(report.started_at)),
        ("ended", when(report.ended_at)),
        ("took", duration(span)),
    ]
    if report.rto_seconds is not None:
        rows.append(("RTO", duration(report.rto_seconds)))
    if report.rpo_seconds is not None:
        rows.append(("RPO", duration(report.rpo_seconds)))
    if report.preflight is not None:
        rows.append(("preflight", preflight_line(report.preflight)))
    rows += [(f"extra {k}", _scalar(v)) for k, v in sorted(report.extra.items())]
    return rows


def preflight_line(doc: Mapping[str, Any]) -> str:
    """``ready: 9 pass, 1 warn`` from a preflight report's dict."""
    counts: dict[str, int] = {}
    for check in doc.get("checks") or ():
        status = str(check.get("status", "?"))
        counts[status] = counts.get(status, 0) + 1
    head = "ready" if doc.get("ready") else "not ready"
    return head + (": " + ", ".join(f"{n} {s}" for s, n in counts.items()) if counts else "")


def alert_line(alert: Mapping[str, Any]) -> str:
    """An alert in one line: its time, phase and message when it has them."""
    message = str(alert.get("message") or alert.get("text") or "")
    if not message:
        return ", ".join(f"{k}={_scalar(v)}" for k, v in alert.items())
    if alert.get("phase"):
        message = f"{alert['phase']}: {message}"
    if isinstance(alert.get("at"), int | float):
        message = f"{when(alert['at'])} {message}"
    return message


def headline(phase: PhaseReport) -> Rows:
    """The figures of ``phase`` a person looks for first, from its summary's shape (a known
    stage report), or a compact key/value listing of the summary."""
    summary = phase.summary
    if not summary:
        return []
    for recognises, rows_of in _KNOWN:
        if recognises(phase.name, summary):
            return rows_of(summary)
    return compact(summary)


def compact(doc: Mapping[str, Any], prefix: str = "", depth: int = 2) -> Rows:
    """A mapping as ``key: value`` rows: nested mappings flattened (``a.b``) to ``depth``,
    lists counted unless short lists of words; at most :data:`MAX_ROWS` rows."""
    rows: Rows = []
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value and depth > 1:
            rows += compact(value, f"{name}.", depth - 1)
        else:
            rows.append((name, _scalar(value)))
        if len(rows) >= MAX_ROWS:
            rows = rows[:MAX_ROWS]
            rows.append(("…", f"{len(doc)} keys in all"))
            break
    return rows


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        if value and len(value) <= 5 and all(isinstance(v, str | int | float) for v in value):
            return ", ".join(str(v) for v in value)
        return f"{len(value)} item{'' if len(value) == 1 else 's'}"
    if isinstance(value, Mapping):
        return f"{len(value)} entr{'y' if len(value) == 1 else 'ies'}"
    return "-" if value is None else str(value)


def _totals(summary: Mapping[str, Any]) -> Mapping[str, Any]:
    totals = summary.get("totals")
    return totals if isinstance(totals, Mapping) else {}


def _counts(doc: Mapping[str, Any], keys: tuple[str, ...]) -> str:
    return ", ".join(f"{doc.get(k, 0)} {k}" for k in keys)


def _is_export(_name: str, s: Mapping[str, Any]) -> bool:
    return {"exported", "listed"} <= set(_totals(s))


def _export_rows(s: Mapping[str, Any]) -> Rows:
    t = _totals(s)
    rows = [
        (
            "objects",
            f"{t.get('exported', 0)} exported of {t.get('listed', 0)} listed, "
            f"{t.get('skipped', 0)} skipped",
        ),
        ("types", f"{t.get('resources', 0)} exported, {t.get('failedResources', 0)} failed"),
    ]
    if s.get("snapshotId"):
        rows.insert(0, ("snapshot", str(s["snapshotId"])))
    return rows + _seconds(s)


def _is_transform(_name: str, s: Mapping[str, Any]) -> bool:
    return "bySeverity" in s or {"read", "written", "changed"} <= set(_totals(s))


def _transform_rows(s: Mapping[str, Any]) -> Rows:
    t = _totals(s)
    severities = s.get("bySeverity") or {}
    rows = [
        ("objects", _counts(t, ("read", "written", "changed", "dropped"))),
        ("conversions", str(s.get("conversions", t.get("changed", 0)))),
        (
            "changes",
            ", ".join(f"{n} {sev}" for sev, n in severities.items()) or "none",
        ),
        ("losses", str(severities.get("loss", 0))),
    ]
    needs = s.get("needsPerson") or []
    if needs:
        rows.append(
            (
                "needs a person",
                "; ".join(
                    f"{n.get('object')}: {', '.join(n.get('why') or ())}"
                    if isinstance(n, Mapping)
                    else str(n)
                    for n in needs[:MAX_ROWS]
                ),
            )
        )
    if s.get("snapshotId"):
        rows.insert(0, ("snapshot", str(s["snapshotId"])))
    return rows + _seconds(s)


def _is_import(_name: str, s: Mapping[str, Any]) -> bool:
    return {"created", "updated", "failed"} <= set(_totals(s))


def _import_rows(s: Mapping[str, Any]) -> Rows:
    t = _totals(s)
    rows = [("objects", _counts(t, ("created", "updated", "unchanged", "skipped", "failed")))]
    if t.get("fromEarlierRuns"):
        rows.append(("from earlier runs", str(t["fromEarlierRuns"])))
    return rows + _seconds(s)


def _is_verify(_name: str, s: Mapping[str, Any]) -> bool:
    return {"checked", "missing", "differing"} <= set(_totals(s))


def _verify_rows(s: Mapping[str, Any]) -> Rows:
    t = _totals(s)
    return [
        ("ok", _scalar(s.get("ok"))),
        (
            "objects",
            f"{t.get('checked', 0)} checked, {t.get('differing', 0)} different, "
            f"{t.get('missing', 0)} missing, {t.get('notReady', 0)} not ready "
            f"(of {t.get('ready', 0) + t.get('notReady', 0)} with a readiness)",
        ),
        *_seconds(s),
    ]


def _is_volumes(_name: str, s: Mapping[str, Any]) -> bool:
    passes = s.get("passes")
    if isinstance(passes, list) and passes and all(isinstance(p, Mapping) for p in passes):
        return all(_is_volumes("", p) for p in passes)
    return {"volumes", "files", "bytes"} <= set(s)


def _volume_rows(s: Mapping[str, Any]) -> Rows:
    passes = s.get("passes", [s])
    rows: Rows = []
    for one in passes:
        volumes = one.get("volumes")
        count = len(volumes) if isinstance(volumes, list) else int(volumes or 0)
        seconds = float(one.get("seconds") or 0.0)
        rate = f"{size(one.get('bytes', 0) / seconds)}/s" if seconds else "-"
        line = (
            f"{count} volumes ({one.get('failed', 0)} failed), {one.get('files', 0)} files, "
            f"{size(one.get('bytes', 0))}, {rate}, {duration(seconds)}"
        )
        if one.get("stoppedSeconds") is not None:
            line += f"; writers stopped {duration(one['stoppedSeconds'])}"
        rows.append((f"{one.get('pass', 'pass')} pass ({one.get('method', '?')})", line))
    return rows


def _is_traffic(_name: str, s: Mapping[str, Any]) -> bool:
    return "outcome" in s and isinstance(s.get("moves"), list)


def _traffic_rows(s: Mapping[str, Any]) -> Rows:
    rows = [
        ("outcome", str(s["outcome"]) + (f": {s['reason']}" if s.get("reason") else "")),
        ("names", ", ".join(s.get("names") or ())),
    ]
    for move in s["moves"]:
        shares = ", ".join(
            f"{name} {float(share):.0%} new" for name, share in (move.get("shares") or {}).items()
        )
        gates = f"{move.get('checks', 0)} checks, {move.get('failedChecks', 0)} failed"
        passed = "passed" if move.get("passedAt") else "not passed"
        rows.append((f"step {move.get('label', '?')}", f"{shares}; gates {gates}; {passed}"))
    rollback = s.get("rollback")
    if isinstance(rollback, Mapping):
        rows.append(("rollback", f"records restored in {duration(rollback.get('seconds'))}"))
    return rows


def _is_teardown(name: str, s: Mapping[str, Any]) -> bool:
    return name == "teardown" or bool({"scaled", "workloads"} & set(s) and "hook" in s)


def _teardown_rows(s: Mapping[str, Any]) -> Rows:
    rows: Rows = []
    for key in ("scaled", "workloads"):
        if key in s:
            value = s[key]
            rows.append(
                ("workloads scaled", str(len(value)) if isinstance(value, list) else str(value))
            )
    hook = s.get("hook")
    if isinstance(hook, Mapping):
        result = (
            hook.get("result")
            or hook.get("status")
            or ("ok" if hook.get("ok") else "failed" if "ok" in hook else "")
        )
        code = f" (exit {hook['exitCode']})" if hook.get("exitCode") is not None else ""
        rows.append(("hook", f"{result}{code}" or _scalar(hook)))
    elif hook is not None:
        rows.append(("hook", _scalar(hook)))
    rest = {k: v for k, v in s.items() if k not in ("scaled", "workloads", "hook")}
    return rows + compact(rest)


def _is_rehearsal(_name: str, s: Mapping[str, Any]) -> bool:
    return "rtoSeconds" in s or "rpoSeconds" in s


def _rehearsal_rows(s: Mapping[str, Any]) -> Rows:
    rows = [
        ("RTO", duration(s.get("rtoSeconds"))),
        ("RPO", duration(s.get("rpoSeconds"))),
    ]
    rest = {k: v for k, v in s.items() if k not in ("rtoSeconds", "rpoSeconds")}
    return rows + compact(rest)


def _is_preflight(_name: str, s: Mapping[str, Any]) -> bool:
    return "ready" in s and isinstance(s.get("checks"), list)


def _seconds(s: Mapping[str, Any]) -> Rows:
    return [("time", duration(s["seconds"]))] if isinstance(s.get("seconds"), int | float) else []


def _is_data_check(name: str, s: Mapping[str, Any]) -> bool:
    """The run's check of the moved volumes (``verify-data``)."""
    return name == "verify-data" and isinstance(s.get("volumes"), list) and bool(s["volumes"])


def _data_check_rows(s: Mapping[str, Any]) -> Rows:
    volumes = s["volumes"]
    differ = [v for v in volumes if not v.get("ok")]
    verdict = "all identical" if not differ else f"{len(differ)} differ"
    return [
        ("compared", f"{len(volumes)} volumes, {s.get('files', 0)} files, {size(s.get('bytes'))}"),
        ("verdict", verdict),
    ]


_KNOWN = (
    (_is_preflight, lambda s: [("preflight", preflight_line(s))]),
    (_is_data_check, _data_check_rows),
    (_is_rehearsal, _rehearsal_rows),
    (_is_traffic, _traffic_rows),
    (_is_volumes, _volume_rows),
    (_is_export, _export_rows),
    (_is_transform, _transform_rows),
    (_is_import, _import_rows),
    (_is_verify, _verify_rows),
    (_is_teardown, _teardown_rows),
)


# -- Markdown ---------------------------------------------------------------------------------


def markdown(report: RunReport) -> str:
    """The report as Markdown: the run, a table of the phases, then each phase's figures and
    problems."""
    lines = [f"# Migration {_md(report.plan_name)}: {report.status}", ""]
    lines += ["| | |", "|---|---|"]
    lines += [f"| {_md(k)} | {_md(v)} |" for k, v in run_rows(report)]
    lines += ["", "## Phases", "", "| phase | status | started | took | resumed |"]
    lines.append("|---|---|---|---|---|")
    for p in report.phases:
        lines.append(
            f"| {_md(p.name)} | {p.status} | {when(p.started_at)} | "
            f"{duration(p.seconds) if p.started_at is not None else '-'} | {p.resumed} |"
        )
    for p in report.phases:
        rows = headline(p)
        if not rows and not p.problems:
            continue
        lines += ["", f"### {_md(p.name)} ({p.status})", ""]
        lines += [f"- **{_md(k)}**: {_md(v)}" for k, v in rows]
        if p.problems:
            lines += ["", f"Problems ({len(p.problems)}):", ""]
            lines += [f"- {_md(problem)}" for problem in p.problems[:MAX_PROBLEMS]]
            if len(p.problems) > MAX_PROBLEMS:
                lines.append(f"- … and {len(p.problems) - MAX_PROBLEMS} more")
    if report.alerts:
        lines += ["", "## Alerts", ""]
        lines += [f"- {_md(alert_line(a))}" for a in report.alerts]
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    """Text safe in a Markdown table cell or list item: no pipes, tags or line breaks."""
    return (
        str(text)
        .replace("\\", "\\\\")
        .replace("|", "\\|")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("\n", " ")
    )


# -- HTML -------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:72em}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.5em}
table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f4f4f4}
.timeline{border:1px solid #ddd;padding:.5em;margin:.5em 0}
.row{display:flex;align-items:center;margin:.2em 0}
.label{width:10em;flex:none;font-size:.9em}
.track{flex:1;position:relative;height:1.1em;background:#f7f7f7}
.bar{position:absolute;top:0;height:100%;min-width:1px}
.took{width:6em;flex:none;text-align:right;font-size:.85em}
.done{background:#3a8f4b}.failed{background:#c0392b}.running{background:#2d7dd2}
.pending{background:#bbb}.skipped{background:#ddd}
.status-failed,.problems{color:#c0392b}.status-done{color:#3a8f4b}
"""


def html(report: RunReport) -> str:
    """The report as one self-contained HTML page (inline CSS, no scripts): the run, a
    timeline of the phases (bars as long as each phase took), each phase's figures and
    problems, the alerts. Everything from the report is escaped."""
    e = _escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Migration {e(report.plan_name)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f'<h1>Migration {e(report.plan_name)}: <span class="status-{e(report.status)}">'
        f"{e(report.status)}</span></h1>",
        _html_rows(run_rows(report)),
        "<h2>Timeline</h2>",
        _timeline(report.phases),
    ]
    for p in report.phases:
        rows = headline(p)
        parts.append(
            f'<h2 id="phase-{e(p.name)}">{e(p.name)} '
            f'<span class="status-{e(p.status)}">({e(p.status)})</span></h2>'
        )
        facts = [("took", duration(p.seconds))] if p.started_at is not None else []
        if p.resumed:
            facts.append(("resumed", str(p.resumed)))
        parts.append(_html_rows(facts + rows))
        if p.problems:
            parts.append(f'<p class="problems">Problems ({len(p.problems)}):</p><ul>')
            parts += [f"<li>{e(problem)}</li>" for problem in p.problems[:MAX_PROBLEMS]]
            if len(p.problems) > MAX_PROBLEMS:
                parts.append(f"<li>… and {len(p.problems) - MAX_PROBLEMS} more</li>")
            parts.append("</ul>")
    if report.alerts:
        parts.append("<h2>Alerts</h2><ul>")
        parts += [f"<li>{e(alert_line(a))}</li>" for a in report.alerts]
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _escape(text: Any) -> str:
    return htmlmod.escape(str(text), quote=True)


def _html_rows(rows: Rows) -> str:
    if not rows:
        return ""
    body = "".join(f"<tr><th>{_escape(k)}</th><td>{_escape(v)}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def timeline_bars(phases: list[PhaseReport]) -> list[tuple[PhaseReport, float, float]]:
    """Each phase with its bar's left edge and width in percent of the run: the width is
    the time the phase worked, the edge when it started (phases without times sit after
    the last one with no width)."""
    timed = [p for p in phases if p.started_at is not None]
    if not timed:
        return [(p, 0.0, 0.0) for p in phases]
    start = min(float(p.started_at or 0.0) for p in timed)
    end = max(
        max(float(p.ended_at or p.started_at or 0.0) for p in timed),
        max(float(p.started_at or 0.0) + p.seconds for p in timed),
    )
    span = end - start or 1.0
    bars = []
    for p in phases:
        if p.started_at is None:
            bars.append((p, 100.0, 0.0))
            continue
        left = (float(p.started_at) - start) / span * 100
        width = min(p.seconds / span * 100, 100.0 - left)
        bars.append((p, left, width))
    return bars


def _timeline(phases: list[PhaseReport]) -> str:
    rows = []
    for p, left, width in timeline_bars(phases):
        took = duration(p.seconds) if p.started_at is not None else p.status
        rows.append(
            f'<div class="row"><span class="label">{_escape(p.name)}</span>'
            f'<div class="track"><div class="bar {_escape(p.status)}" '
            f'style="left:{left:.3f}%;width:{width:.3f}%" '
            f'title="{_escape(p.name)}: {_escape(took)}"></div></div>'
            f'<span class="took">{_escape(took)}</span></div>'
        )
    return f'<div class="timeline">{"".join(rows)}</div>'
