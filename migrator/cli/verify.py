"""``migrator verify``: check that the new cluster holds a snapshot's objects, and runs them.

Loaded only when it runs (see :mod:`migrator.cli`); it imports :mod:`migrator.verify` (and
with it deepdiff, slow to load) only then.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from migrator.cli.options import (
    SNAPSHOT_HELP,
    SNAPSHOT_ON_TARGET_OPTIONS,
    open_snapshot,
    scope_of,
    with_options,
)
from migrator.cli.render import MAX_LISTED, render, render_table, run_on_target, show_report
from migrator.errors import VerificationFailed

if TYPE_CHECKING:
    from rich.console import Console

    from migrator.verify import VerifyReport


@click.command("verify", epilog=SNAPSHOT_HELP)
@with_options(*SNAPSHOT_ON_TARGET_OPTIONS)
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=0,
    show_default=True,
    metavar="SECONDS",
    help="Wait up to this long for workloads, claims, jobs and "
    "CRDs to become ready (those reporting they cannot progress fail at once).",
)
def verify_command(
    snapshot: str,
    target: str,
    store_url: str,
    kubeconfig: Path | None,
    key_file: Path | None,
    include_namespaces: tuple[str, ...],
    exclude_namespaces: tuple[str, ...],
    include_resources: tuple[str, ...],
    exclude_resources: tuple[str, ...],
    cluster_scoped: bool | None,
    s3_endpoint: str | None,
    output: str,
    wait: float,
) -> None:
    """Check that the cluster --to holds every object of SNAPSHOT as it was, and that it runs.

    Compares only the fields the snapshot sets (server defaults and server-owned fields do
    not count); Secret values are never shown. Exit code 7 when objects are missing or
    differ, or workloads are not ready.
    """
    from migrator.verify import VerifyOptions, verify_snapshot

    reader = open_snapshot(snapshot, store_url, s3_endpoint, key_file)
    options = VerifyOptions(
        scope=scope_of(
            include_namespaces,
            exclude_namespaces,
            include_resources,
            exclude_resources,
            cluster_scoped,
        ),
        wait=wait,
    )
    report = run_on_target(verify_snapshot, reader, options, kubeconfig, target, output)
    show_report(report, output, _render_verify)
    if not report.ok:
        raise VerificationFailed(
            f"snapshot {report.snapshot_id} and cluster {target!r} differ: "
            f"{len(report.missing)} missing, {len(report.differing)} differing, "
            f"{len(report.not_ready)} not ready"
        )


def _render_verify(console: Console, report: VerifyReport) -> None:
    totals = report.to_dict()["totals"]
    render(
        console,
        f"Verify {report.snapshot_id} against {report.target['context']}",
        [
            (
                "objects",
                f"{totals['checked']} checked: {totals['missing']} missing, "
                f"{totals['differing']} differing, {totals['extra']} extra in target, "
                f"{totals['notCompared']} not compared (the target's own wins)",
            ),
            (
                "readiness",
                f"{totals['ready']} ready, {totals['notReady']} not ready, "
                f"{totals['notReadyAsOnSource']} not ready as on the source",
            ),
            ("result", "OK" if report.ok else "DIFFERENT"),
        ],
    )
    from migrator.verify.stage import object_name as name

    render_table(
        console, "Missing in target", ["object"], [[name(o)] for o in report.missing[:MAX_LISTED]]
    )
    render_table(
        console,
        "Differing",
        ["object", "field", "snapshot", "target"],
        [
            [name(o), d["path"], json.dumps(d["snapshot"]), json.dumps(d["target"])]
            for o in report.differing[:MAX_LISTED]
            for d in o["differences"]
        ],
    )
    render_table(
        console,
        "Not ready",
        ["object", "state", "reason"],
        [[name(o), o["state"], o["reason"]] for o in report.not_ready[:MAX_LISTED]],
    )
    render_table(
        console,
        "Not compared: the target's own object wins",
        ["object", "why"],
        [[name(o), o["why"]] for o in report.not_compared[:MAX_LISTED]],
    )
    render_table(
        console,
        "Not ready, as on the source (not counted as a failure)",
        ["object", "state", "reason", "on the source"],
        [
            [name(o), o["state"], o["reason"], o["onSource"]]
            for o in report.not_ready_as_on_source[:MAX_LISTED]
        ],
    )
    render_table(
        console,
        "Extra in target (not in the snapshot)",
        ["object"],
        [[name(o)] for o in report.extra[:MAX_LISTED]],
    )
