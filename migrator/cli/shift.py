"""``migrator shift``: move DNS names from the old cluster to the new one in health-gated
steps, rolling back on its own.

Loaded only when it runs (see :mod:`migrator.cli`). The settings are one structure
(:mod:`migrator.traffic.settings`): a file (``--config``, its ``traffic:`` section or the
whole file) for the rest, the flags here for the common case, laid over it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import yaml

from migrator.cli.options import (
    KUBECONFIG_OPTION,
    OUTPUT_OPTION,
    S3_ENDPOINT_OPTION,
    STORE_OPTION,
    from_option,
    to_option,
)
from migrator.cli.render import make_console, render, render_table
from migrator.errors import ConfigError, Interrupted, ShiftPaused, ShiftRolledBack

if TYPE_CHECKING:
    from rich.console import Console

    from migrator.kube import Cluster
    from migrator.traffic import ShiftPlan, ShiftReport

EPILOG = (
    "The state of shift ID is kept at STORE/ID/traffic/state.json: --resume goes on after a "
    "crash or a pause (a pause ends the run with exit code 10), --abort rolls back from "
    "anywhere. Exit codes: 9 a gate failed and the shift rolled back, 10 paused for approval, "
    "11 the records changed under the shift, 12 the DNS provider failed."
)


@click.command("shift", epilog=EPILOG)
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option(
    "--id",
    "shift_id",
    required=True,
    metavar="ID",
    help="The migration this shift belongs to; its state is STORE/ID/traffic/.",
)
@STORE_OPTION
@S3_ENDPOINT_OPTION
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Settings file (YAML): the shift's settings, under traffic: or at the top.",
)
@click.option(
    "--provider",
    type=click.Choice(["rfc2136", "route53", "external-dns"]),
    help="Where the records are: an RFC2136 server, Route53, or external-dns.",
)
@click.option(
    "--zone",
    metavar="ZONE",
    help="rfc2136: the zone (example.com); route53 and external-dns: the hosted zone id.",
)
@click.option("--dns-server", metavar="HOST[:PORT]", help="rfc2136: the primary server.")
@click.option(
    "--tsig-key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="rfc2136: the TSIG key, as BIND's key clause or the base64 secret alone.",
)
@click.option(
    "--old-target",
    multiple=True,
    metavar="ADDRESS|HOST",
    help="Where the NAMEs point on the old cluster (repeatable). Default: what "
    "the records point at before the shift.",
)
@click.option(
    "--new-target",
    multiple=True,
    metavar="ADDRESS|HOST",
    help="Where the NAMEs point on the new cluster (repeatable).",
)
@click.option(
    "--new-from",
    metavar="service/NS/NAME",
    help="Read the new targets from this Service or Ingress of --to (status.loadBalancer.ingress).",
)
@click.option(
    "--steps",
    metavar="P,P,...",
    help="Percentages of traffic on the new cluster, increasing, ending at 100. "
    "Default: 0,10,25,50,100.",
)
@click.option(
    "--approve-before",
    multiple=True,
    type=int,
    metavar="PERCENT",
    help="Pause before this step until --resume (repeatable).",
)
@click.option(
    "--ttl", type=int, metavar="SECONDS", help="TTL of the records during the shift. Default: 60."
)
@click.option(
    "--step-wait",
    type=float,
    metavar="SECONDS",
    help="Least time between steps (never under the TTL). Default: 120.",
)
@click.option("--probe-path", metavar="PATH", help="HTTP path the gate probes. Default: /.")
@click.option(
    "--probe-port",
    type=int,
    metavar="PORT",
    help="Port the gate probes. Default: 80, or 443 for https.",
)
@click.option("--probe-scheme", type=click.Choice(["http", "https"]))
@click.option("--no-probe", is_flag=True, help="No HTTP probe gate.")
@click.option(
    "--gate-command",
    metavar="CMD",
    help="A shell command that must exit 0 at every check (75: cannot tell now).",
)
@click.option(
    "--gate-interval", type=float, metavar="SECONDS", help="Seconds between checks. Default: 10."
)
@click.option(
    "--gate-checks", type=int, metavar="N", help="Checks a step passes at least. Default: 6."
)
@click.option(
    "--gate-threshold",
    type=int,
    metavar="N",
    help="Failed checks in a step that roll the shift back. Default: 3.",
)
@from_option(
    "Kubeconfig context of the old cluster (for targets read from it, and external-dns).",
    required=False,
)
@to_option(
    "Kubeconfig context of the new cluster (for targets read from it, and external-dns).",
    required=False,
)
@KUBECONFIG_OPTION
@click.option(
    "--resume",
    is_flag=True,
    help="Go on with the shift ID after a crash or a pause (the approval).",
)
@click.option(
    "--abort", is_flag=True, help="Roll the shift ID back to the records saved before it."
)
@click.option(
    "--dry-run", is_flag=True, help="Print every change each step makes, and change nothing."
)
@click.option(
    "--take-over",
    is_flag=True,
    help="Adopt records someone else changed (or not on the old targets at the "
    "start) instead of refusing.",
)
@OUTPUT_OPTION
def shift(
    names: tuple[str, ...],
    shift_id: str,
    store_url: str,
    s3_endpoint: str | None,
    config_file: Path | None,
    kubeconfig: Path | None,
    source: str | None,
    target: str | None,
    resume: bool,
    abort: bool,
    dry_run: bool,
    take_over: bool,
    output: str,
    **flags: Any,
) -> None:
    """Move the DNS NAMEs from the old cluster to the new one, step by step.

    Before anything changes, the records are saved with the shift's state. The TTL is
    lowered and the old TTL waited out; each step then sends a larger share of the answers to
    the new targets (Route53 weights, the share of addresses in an RFC2136 round-robin set, or
    external-dns's weight annotations), waits at least the TTL, and passes only while the
    gates find the new cluster healthy. A failed gate puts every name back on the old
    records at once. The TTL is restored at the end.
    """
    from migrator import traffic
    from migrator.store import open_store

    if resume + abort + dry_run > 1:
        raise ConfigError("give at most one of --resume, --abort and --dry-run")
    settings = traffic.parse(_settings_doc(config_file, names, flags))
    store = open_store(store_url, s3_endpoint=s3_endpoint)
    if not dry_run:
        store.check(create=True)
    states = traffic.StateStore(store, shift_id)
    with _clusters(kubeconfig, source, target) as clusters:
        provider = traffic.open_provider(settings.provider, clusters)
        with provider:
            existing = states.load() if (resume or abort or dry_run) else None
            if existing is not None:
                plan = traffic.replan(settings, provider, existing)
            elif resume or abort:
                raise ConfigError(
                    f"there is no shift {shift_id} ({states.where} is missing)",
                    hint="start it without --resume/--abort",
                )
            else:
                if not dry_run:
                    traffic.check_startable(states)
                plan = traffic.survey(settings, provider, clusters, take_over=take_over)
            if dry_run:
                _show_plan(plan, output, existing.phase if existing else None)
                return
            mode = traffic.ABORT if abort else traffic.RESUME if resume else traffic.START
            try:
                with _events(plan, output) as on_event:
                    report = traffic.apply(
                        plan, provider, states, mode=mode, take_over=take_over, on_event=on_event
                    )
            except KeyboardInterrupt:
                raise Interrupted(
                    f"shift {shift_id} interrupted: the records stay as the last step left them",
                    hint="run the same command with --resume to go on, or --abort to roll back",
                ) from None
    _finish(report, output, aborted=abort)


def _settings_doc(
    config_file: Path | None, names: tuple[str, ...], flags: dict[str, Any]
) -> dict[str, Any]:
    """The settings mapping: the file's, with the flags laid over it."""
    doc: dict[str, Any] = {}
    if config_file is not None:
        try:
            loaded = yaml.safe_load(config_file.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read the settings file {config_file}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"{config_file}: expected a mapping at the top")
        doc = dict(loaded.get("traffic", loaded))
    provider = dict(doc.get("provider") or {})
    if flags["provider"]:
        provider["kind"] = flags["provider"]
    kind = provider.get("kind")
    section = {"rfc2136": "rfc2136", "route53": "route53"}.get(str(kind))
    if flags["zone"]:
        if kind == "external-dns":
            ext = provider.setdefault("externalDns", {})
            ext.setdefault("route53", {})["hostedZoneId"] = flags["zone"]
        elif section:
            key = "zone" if section == "rfc2136" else "hostedZoneId"
            provider.setdefault(section, {})[key] = flags["zone"]
    if flags["dns_server"]:
        provider.setdefault("rfc2136", {})["server"] = flags["dns_server"]
    if flags["tsig_key_file"]:
        provider.setdefault("rfc2136", {})["tsig"] = {"secretFile": str(flags["tsig_key_file"])}
    doc["provider"] = provider
    if names:
        new: Any = list(flags["new_target"]) or (
            {"from": flags["new_from"]} if flags["new_from"] else None
        )
        doc["names"] = [
            {"name": n, "old": list(flags["old_target"]) or None, "new": new} for n in names
        ]
    elif flags["old_target"] or flags["new_target"] or flags["new_from"]:
        raise ConfigError(
            "--old-target, --new-target and --new-from apply to the NAMEs given "
            "on the command line: give them too"
        )
    if flags["steps"]:
        doc["steps"] = flags["steps"]
    if flags["approve_before"]:
        steps = doc.get("steps", [0, 10, 25, 50, 100])
        if isinstance(steps, str):
            steps = [p.strip() for p in steps.split(",") if p.strip()]
        doc["steps"] = [
            {"weight": int(s), "approve": True}
            if not isinstance(s, dict) and int(s) in flags["approve_before"]
            else s
            for s in steps
        ]
    for flag, key in (("ttl", "ttl"), ("step_wait", "stepWait")):
        if flags[flag] is not None:
            doc[key] = flags[flag]
    gates = dict(doc.get("gates") or {})
    for flag, key in (
        ("gate_interval", "interval"),
        ("gate_checks", "checks"),
        ("gate_threshold", "threshold"),
    ):
        if flags[flag] is not None:
            gates[key] = flags[flag]
    if flags["gate_command"]:
        gates["command"] = {"run": flags["gate_command"]}
    if flags["no_probe"]:
        gates["http"] = False
    else:
        http = dict(gates.get("http") or {})
        for flag, key in (
            ("probe_path", "path"),
            ("probe_port", "port"),
            ("probe_scheme", "scheme"),
        ):
            if flags[flag] is not None:
                http[key] = flags[flag]
        if http:
            gates["http"] = http
    if gates:
        doc["gates"] = gates
    return doc


@contextlib.contextmanager
def _clusters(
    kubeconfig: Path | None, source: str | None, target: str | None
) -> Iterator[dict[str, Cluster]]:
    """Connections to the clusters named (``old``, ``new``), closed at the end."""
    from migrator import kube

    with contextlib.ExitStack() as stack:
        clusters = {
            side: stack.enter_context(kube.connect(kubeconfig, context))
            for side, context in (("old", source), ("new", target))
            if context
        }
        yield clusters


@contextlib.contextmanager
def _events(plan: ShiftPlan, output: str) -> Iterator[Any]:
    """Where the shift's events go: JSON lines (``-o json``), the live view on a terminal,
    or a line per event otherwise."""
    if output == "json":
        yield lambda event: click.echo(json.dumps(event), nl=True)
        return
    from migrator.cli.shift_view import ShiftView

    with ShiftView(make_console(), plan) as view:
        yield view.event


def _show_plan(plan: ShiftPlan, output: str, phase: str | None) -> None:
    if output == "json":
        click.echo(json.dumps({**plan.to_dict(), "phase": phase}, indent=2))
        return
    console = make_console()
    render(
        console,
        f"Shift plan ({plan.settings.provider.kind}, dry run)",
        [
            (
                "names",
                "\n".join(
                    f"{r.name}  old: {r.old.describe()}  new: {r.new.describe()}"
                    for r in plan.routes.values()
                ),
            ),
            ("state", phase or "not started"),
            ("took over", "yes: the records found were not all on the old targets")
            if plan.took_over
            else ("starting point", "the records below, saved before anything"),
            ("before", "\n".join(r.describe() for recs in plan.original.values() for r in recs)),
        ],
    )
    for move in plan.moves:
        shares = ", ".join(f"{n} {s:.0%}" for n, s in move.shares.items())
        click.echo(
            f"{move.index}. {move.label}: new gets {shares}; then wait "
            f"{move.wait:g}s{' with gates' if move.gated else ''}"
            f"{'; approval first' if move.approve else ''}"
        )
        if not move.operations:
            click.echo("   (no change)")
        for op in move.operations:
            text = op if isinstance(op, str) else json.dumps(op, indent=1)
            click.echo("\n".join("   " + line for line in text.splitlines()))
    click.echo()


def _finish(report: ShiftReport, output: str, *, aborted: bool) -> None:
    if output == "json":
        click.echo(json.dumps({"event": "report", "report": report.to_dict()}))
    else:
        _render_report(make_console(), report)
    if report.outcome == "paused":
        step = report.moves[report.move]["label"]
        raise ShiftPaused(
            f"shift {report.id} paused before {step}",
            hint="run the same command with --resume to go on, or --abort to roll back",
        )
    if report.outcome == "rolled-back" and not aborted:
        raise ShiftRolledBack(
            f"shift {report.id} rolled back: {report.reason}",
            hint="every name is back on the old targets; fix the new cluster "
            "and start the shift again",
        )


def _render_report(console: Console, report: ShiftReport) -> None:
    rows = [
        ("outcome", report.outcome + (f": {report.reason}" if report.reason else "")),
        ("names", ", ".join(report.names)),
        ("state", report.state_url),
    ]
    if report.rollback:
        rows.append(
            ("rollback", f"records restored {report.rollback['seconds']:.1f}s after the failure")
        )
    if report.unrestored:
        rows.append(
            ("not rolled back", ", ".join(report.unrestored) + " (changed by someone else)")
        )
    rows.append(
        (
            "records now",
            "\n".join(r.describe() for recs in report.final.values() for r in recs) or "(none)",
        )
    )
    render(console, f"Shift {report.id} ({report.provider})", rows)
    render_table(
        console,
        "Moves",
        ["move", "new share", "checks", "failed", "passed"],
        [
            [
                m["label"],
                ", ".join(f"{s:.0%}" for s in m["shares"].values()),
                str(m["checks"]),
                str(m["failedChecks"]),
                "yes" if m["passedAt"] else "-",
            ]
            for m in report.moves
        ],
    )
