"""``migrator check-apis``: what the transform will do to each object whose API the target
lacks, before anything is transformed.

Loaded only when it runs (see :mod:`migrator.cli`).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import click

from migrator import kube
from migrator.cli.options import (
    KUBECONFIG_OPTION,
    OUTPUT_OPTION,
    S3_ENDPOINT_OPTION,
    SNAPSHOT_HELP,
    STORE_OPTION,
    TARGET_OPTIONS,
    from_option,
    key_file_option,
    open_snapshot,
    with_options,
)
from migrator.cli.render import make_console, render_table
from migrator.cli.transform import target_of
from migrator.errors import NeedsAttention
from migrator.resources.crds import live_crds, snapshot_crds
from migrator.resources.objects import describe_ref
from migrator.transform.checkapis import check_apis, live_objects, snapshot_objects
from migrator.transform.stage import (
    crd_group_versions,
    with_custom_resources,
)


@click.command("check-apis", epilog=SNAPSHOT_HELP.replace("SNAPSHOT is", "--snapshot takes"))
@click.option(
    "--snapshot", default=None, metavar="SNAPSHOT", help="Check the objects of this snapshot."
)
@from_option("Check the objects of this live cluster instead.", required=False)
@with_options(STORE_OPTION, *TARGET_OPTIONS)
@KUBECONFIG_OPTION
@key_file_option("Key of an encrypted snapshot")
@S3_ENDPOINT_OPTION
@OUTPUT_OPTION
def check_apis_command(
    snapshot: str | None,
    source: str | None,
    store_url: str,
    target: str | None,
    target_version: str | None,
    kubeconfig: Path | None,
    key_file: Path | None,
    s3_endpoint: str | None,
    output: str,
) -> None:
    """Say what the transform will do to each object whose API the target lacks.

    convert, convert with a change a person must review or a loss, or drop with a suggested
    replacement. Exit code 1 when something needs a person.
    """
    if (snapshot is None) == (source is None):
        raise click.UsageError("give exactly one of --snapshot SNAPSHOT or --from CONTEXT")
    with contextlib.ExitStack() as stack:
        new = target_of(kubeconfig, target, target_version, stack)
        if snapshot is not None:
            reader = open_snapshot(snapshot, store_url, s3_endpoint, key_file)
            crds = list(snapshot_crds(reader))
            objects: Any = snapshot_objects(reader)
        else:
            cluster = stack.enter_context(kube.connect(kubeconfig, source))
            discovery = kube.discover(cluster)
            crds = list(live_crds(cluster, discovery))
        new = with_custom_resources(new, crd_group_versions(crds))
        if snapshot is None:
            objects = live_objects(cluster, discovery, new.serves)
        report = check_apis(
            objects, new.serves, target=new.describe, converter=new.converter(), crds=crds
        )
    data = report.to_dict()
    if output == "json":
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(
            f"Target {new.label}: "
            + (", ".join(f"{n} {v}" for v, n in data["verdicts"].items()) or "no objects")
        )
        rows = [
            [
                describe_ref(c["object"]),
                c["verdict"],
                c.get("becomes", ""),
                (c.get("writtenVia") or {}).get("groupVersion", ""),
                "; ".join(c["details"]),
            ]
            for c in data["objects"]
        ]
        console = make_console()
        render_table(
            console, "Objects", ["object", "verdict", "becomes", "written via", "details"], rows
        )
        render_table(
            console,
            "CRDs that convert through a webhook",
            ["crd", "what migrator does"],
            [[name, note] for name, note in data["conversionWebhooks"].items()],
        )
    if report.needs_person:
        raise NeedsAttention(
            f"{len(report.needs_person)} object(s) need a person",
            hint="see the verdicts and details above",
        )
