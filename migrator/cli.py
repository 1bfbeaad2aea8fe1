"""The ``migrator`` command line: parse options, call the core, render the result.

The only module that imports click or rich, and the only place that maps exceptions to exit
codes: a :class:`~migrator.errors.MigratorError` becomes ``error: <message>`` (and its hint) on
stderr and the error's ``exit_code``; a traceback only with ``-v``.
"""
from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from migrator import __version__, kube
from migrator.cluster_report import cluster_report, compare_reports
from migrator.errors import MigratorError

_VERBOSE_KEY = "migrator.verbose"

Rows = list[tuple[str, str]]


class _MigratorGroup(click.Group):
    """A click group that turns a MigratorError into a one-line message and its exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MigratorError as exc:
            if ctx.meta.get(_VERBOSE_KEY, 0) > 0:
                click.echo("".join(traceback.format_exception(exc)).rstrip(), err=True)
            click.echo(f"error: {exc}", err=True)
            if exc.hint:
                click.echo(f"hint: {exc.hint}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=_MigratorGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="migrator")
@click.option(
    "-v", "--verbose", count=True, help="More logging (-v: info and tracebacks, -vv: debug)."
)
@click.pass_context
def cli(ctx: click.Context, verbose: int) -> None:
    """Migrate everything from one Kubernetes cluster to a new one."""
    ctx.meta[_VERBOSE_KEY] = verbose
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose == 1 else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("migrator").setLevel(level)


@cli.command()
@click.option(
    "--context",
    "contexts",
    multiple=True,
    help="Kubeconfig context to inspect; repeat to compare (the first is the source). "
    "Default: the current-context.",
)
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Kubeconfig file. Default: $KUBECONFIG, else ~/.kube/config.",
)
@click.option(
    "-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True
)
def discover(contexts: tuple[str, ...], kubeconfig: Path | None, output: str) -> None:
    """Show each cluster's version, nodes and APIs, and what the target lacks."""
    reports = []
    for context in contexts or (None,):
        with kube.connect(kubeconfig, context) as cluster:
            reports.append(cluster_report(cluster))
    comparison = compare_reports(reports) if len(reports) > 1 else None
    if output == "json":
        click.echo(json.dumps({"clusters": reports, "comparison": comparison}, indent=2))
        return
    console = Console()
    for report in reports:
        _render(console, f"Cluster {report['context']}", _report_rows(report))
    if comparison is not None:
        for target in comparison["targets"]:
            title = f"{comparison['source']} → {target['target']}"
            _render(console, title, _comparison_rows(comparison["source"], target))


def _report_rows(report: Mapping[str, Any]) -> Rows:
    nodes = report["nodes"]
    rows = [
        ("server", report["server"]),
        ("version", report["version"]["gitVersion"]),
        ("nodes", f"{nodes['count']} ({nodes['ready']} ready)"),
        ("group/versions", str(len(report["groupVersions"]))),
        ("resource types", str(report["resourceTypes"])),
        ("deprecated served", _removal_list(report["deprecatedGroupVersions"]) or "none"),
    ]
    failed = report["failedDiscovery"]
    rows += [(f"discovery failed: {gv}", reason) for gv, reason in failed.items()]
    return rows


def _comparison_rows(source: str, target: Mapping[str, Any]) -> Rows:
    return [
        (f"served by {source} only", _removal_list(target["missingInTarget"]) or "none"),
        (f"served by {target['target']} only", "\n".join(target["onlyInTarget"]) or "none"),
    ]


def _removal_list(entries: Sequence[Mapping[str, Any]]) -> str:
    """One group/version a line, with the release that removed it."""
    return "\n".join(
        f"{entry['groupVersion']} (removed in {entry['removedIn']})"
        if entry["removedIn"]
        else entry["groupVersion"]
        for entry in entries
    )


def _render(console: Console, title: str, rows: Rows) -> None:
    """A key/value table on a terminal, plain aligned text otherwise (pipes, CI logs)."""
    if console.is_terminal:
        table = Table(title=title, show_header=False, title_justify="left")
        table.add_column(style="bold")
        table.add_column(overflow="fold")
        for key, value in rows:
            table.add_row(key, value)
        console.print(table)
        return
    width = max(len(key) for key, _value in rows)
    click.echo(title)
    for key, value in rows:
        first, *rest = value.split("\n")
        click.echo(f"  {key.ljust(width)}  {first}")
        for line in rest:
            click.echo(f"  {' ' * width}  {line}")
    click.echo()


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="migrator")

