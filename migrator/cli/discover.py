"""``migrator discover``: each cluster's version, nodes and APIs, and what the target lacks.

Its own module so that the other commands never import it (see :mod:`migrator.cli`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from migrator import kube
from migrator.cli.options import KUBECONFIG_OPTION, OUTPUT_OPTION, from_option, to_option
from migrator.cli.render import Rows, make_console, render
from migrator.kube.summary import cluster_report, compare_reports


@click.command()
@from_option(
    "Kubeconfig context of the cluster to inspect (the old one). Default: the current-context.",
    required=False,
)
@to_option(
    "Kubeconfig context of a cluster to compare it with (the new one): what it lacks "
    "is what a migration converts. Repeatable.",
    required=False,
    multiple=True,
)
@KUBECONFIG_OPTION
@OUTPUT_OPTION
def discover(
    source: str | None, target: tuple[str, ...], kubeconfig: Path | None, output: str
) -> None:
    """Show each cluster's version, nodes and APIs, and what the new one lacks."""
    reports = []
    for context in (source, *target):
        with kube.connect(kubeconfig, context) as cluster:
            reports.append(cluster_report(cluster))
    comparison = compare_reports(reports) if len(reports) > 1 else None
    if output == "json":
        click.echo(json.dumps({"clusters": reports, "comparison": comparison}, indent=2))
        return
    console = make_console()
    for report in reports:
        render(console, f"Cluster {report['context']}", _report_rows(report))
    if comparison is not None:
        for other in comparison["targets"]:
            title = f"{comparison['source']} → {other['target']}"
            render(console, title, _comparison_rows(comparison["source"], other))


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
