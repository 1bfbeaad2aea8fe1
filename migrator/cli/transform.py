"""``migrator transform`` and ``migrator check-apis``: rewrite a snapshot for the target
cluster, or say beforehand what that rewrite will do to each object.

Both take the target as a live context or a release, and the same snapshot address, hence one
module. Loaded only when one of them runs (see :mod:`migrator.cli`): the transform package is
slow to import and the other commands do not need it.
"""
from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from migrator import crypto, kube
from migrator.cli.options import (
    DEFAULT_STORE,
    KUBECONFIG_OPTION,
    OUTPUT_OPTION,
    S3_ENDPOINT_OPTION,
    SNAPSHOT_HELP,
    open_snapshot,
    with_options,
)
from migrator.cli.render import make_console, render, render_table
from migrator.errors import ConfigError, NeedsAttention, SnapshotExists, ValidationRejected
from migrator.store import open_store
from migrator.transform.checkapis import check_apis, live_objects, snapshot_objects
from migrator.transform.differences import (
    DifferencesConfig,
    DifferencesInvalid,
    check_cluster_ip,
    parse_cidrs,
    parse_pairs,
)
from migrator.transform.report import describe_ref
from migrator.transform.rules import RuleSet, load_rules
from migrator.transform.stage import (
    Target,
    crd_group_versions,
    live_crds,
    parse_address,
    run_transform,
    snapshot_crds,
    target_from_cluster,
    target_from_version,
    with_custom_resources,
)

if TYPE_CHECKING:
    from rich.console import Console


_FROM_STORE_OPTION = click.option(
    "--from-store", "from_store", default=DEFAULT_STORE, show_default=True, metavar="URL",
    help="Store holding the source snapshot when SNAPSHOT is a bare id.")
_TARGET_OPTIONS = (
    click.option("--target", "target_context", metavar="CONTEXT", default=None,
                  help="Kubeconfig context of the new cluster: its discovery decides what is "
                  "served."),
    click.option("--target-version", metavar="V", default=None,
                  help="Release of the new cluster (e.g. 1.33) when it is not reachable: the "
                  "built-in table of API removals decides."),
)
_KEY_OPTION = click.option(
    "--encrypt-key-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help=f"Key of an encrypted snapshot (default: ${crypto.KEY_ENV}); the new snapshot is "
    "encrypted with it too.")


@click.command(epilog=SNAPSHOT_HELP)
@click.argument("snapshot")
@with_options(_FROM_STORE_OPTION, *_TARGET_OPTIONS)
@click.option("--rules", "rules_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="User rules file (YAML: rules and differences); validated "
              "before anything is read.")
@click.option("--out", "out_url", default=None, metavar="URL",
              help="Store for the new snapshot. Default: the source's store.")
@click.option("--id", "new_id", default=None, metavar="NEW_ID",
              help="Id of the new snapshot. Default: <source id>-<target>-<UTC time>.")
@KUBECONFIG_OPTION
@click.option("--validate", is_flag=True,
              help="Dry-run every transformed object on the target (server-side); exit "
              "non-zero if any is rejected.")
@click.option("--storage-class", multiple=True, metavar="OLD=NEW",
              help="Map a storage class (PVs, PVCs, StatefulSet claim templates, the "
              "StorageClass itself). Repeatable.")
@click.option("--registry", multiple=True, metavar="OLD=NEW",
              help="Rewrite an image registry prefix in every container. Repeatable.")
@click.option("--namespace-map", multiple=True, metavar="OLD=NEW",
              help="Rename a namespace; references (bindings, claimRefs, webhooks...) "
              "follow. Repeatable.")
@click.option("--cluster-ip", type=click.Choice(["drop", "keep", "remap"]), default=None,
              help="Service cluster IPs: drop (allocate anew), keep, or remap into the new "
              "service CIDR at the same offset (needs --service-cidr).")
@click.option("--service-cidr", multiple=True, metavar="OLD=NEW",
              help="Old and new service CIDR for --cluster-ip remap (repeat for dual stack).")
@click.option("--pod-cidr", multiple=True, metavar="OLD=NEW",
              help="Rewrite NetworkPolicy ipBlocks inside the old pod CIDR into the new one.")
@click.option("--ingress-class", multiple=True, metavar="OLD=NEW",
              help="Map an ingress class (ingressClassName, annotation, IngressClass).")
@click.option("--last-applied", type=click.Choice(["rewrite", "drop", "keep"]),
              default="rewrite", show_default=True,
              help="kubectl's last-applied annotation at a removed apiVersion: rewrite it with "
              "the object's conversion (kubectl apply keeps working), drop it, or keep it.")
@_KEY_OPTION
@S3_ENDPOINT_OPTION
@OUTPUT_OPTION
@click.option("--report", "report_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Also write the full JSON report (every change) here.")
def transform(
    snapshot: str, from_store: str, target_context: str | None, target_version: str | None,
    rules_file: Path | None, out_url: str | None, new_id: str | None,
    kubeconfig: Path | None, validate: bool, storage_class: tuple[str, ...],
    registry: tuple[str, ...], namespace_map: tuple[str, ...], cluster_ip: str | None,
    service_cidr: tuple[str, ...], pod_cidr: tuple[str, ...], ingress_class: tuple[str, ...],
    last_applied: str, encrypt_key_file: Path | None, s3_endpoint: str | None, output: str,
    report_file: Path | None,
) -> None:
    """Rewrite snapshot SNAPSHOT for the target cluster into a new snapshot.

    Removed API versions are converted field by field, then the cluster differences asked
    for and the user rules are applied; every change is reported object by object. The
    source snapshot is only read.
    """
    rules = load_rules(rules_file) if rules_file is not None else None
    differences = _differences(rules, storage_class, registry, namespace_map, cluster_ip,
                               service_cidr, pod_cidr, ingress_class)
    key = crypto.load_key(encrypt_key_file)
    store_url, source_id = parse_address(snapshot, from_store)
    with contextlib.ExitStack() as stack:
        target = _target(kubeconfig, target_context, target_version, stack)
        source = open_store(store_url, s3_endpoint=s3_endpoint)
        out = open_store(out_url, s3_endpoint=s3_endpoint) if out_url else source
        try:
            result = run_transform(source=source, source_id=source_id, out=out, out_id=new_id,
                                   target=target, rules=rules, differences=differences,
                                   key=key, validate=validate, last_applied=last_applied)
        except SnapshotExists as exc:
            exc.hint = "choose another --id"
            raise
    data = result.report.to_dict()
    if result.validation is not None:
        data["validation"] = result.validation.to_dict()
    if report_file is not None:
        report_file.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    if output == "json":
        click.echo(json.dumps(data, indent=2))
    else:
        console = make_console()
        _render_transform(console, result.report.summary(), out.url)
        if result.validation is not None:
            _render_validation(console, result.validation.to_dict())
    if result.validation is not None and result.validation.rejected:
        raise ValidationRejected(
            f"the target rejected {len(result.validation.rejected)} transformed object(s) "
            "in a dry-run", hint="see the messages above; fix them with a rule and run again")


def _render_transform(console: Console, summary: Mapping[str, Any], store: str) -> None:
    totals = summary["totals"]
    render(console, f"Snapshot {summary['snapshotId']}", [
        ("from", f"{summary['sourceSnapshot']} (unchanged)"),
        ("store", store),
        ("target", ", ".join(f"{k} {v}" for k, v in summary["target"].items())),
        ("objects", f"{totals['written']} written of {totals['read']} read: "
                    f"{totals['changed']} changed, {totals['dropped']} dropped, "
                    f"{totals['duplicates']} duplicates"),
        ("changes", ", ".join(f"{n} {s}" for s, n in summary["bySeverity"].items()) or "none"),
    ])
    render_table(console, "By kind (as read)",
                 ["kind", "read", "written", "changed", "dropped", "duplicates"],
                 [[k, *(str(v[f]) for f in ("read", "written", "changed", "dropped",
                                            "duplicates"))]
                  for k, v in summary["byKind"].items()])
    render_table(console, "Needs a person", ["object", "why"],
                 [[n["object"], "; ".join(n["why"])] for n in summary["needsPerson"]])


def _render_validation(console: Console, validation: Mapping[str, Any]) -> None:
    outcomes = ", ".join(f"{n} {o}" for o, n in validation["outcomes"].items()) or "nothing"
    click.echo(f"Dry-run on {validation['target']}: {outcomes}")
    render_table(console, "Not accepted", ["object", "outcome", "message"],
                 [[describe_ref(p["object"]), p["outcome"], p["message"]]
                  for p in validation["problems"]])


@click.command("check-apis", epilog=SNAPSHOT_HELP.replace("SNAPSHOT is", "--snapshot takes"))
@click.option("--snapshot", default=None, metavar="SNAPSHOT",
              help="Check the objects of this snapshot.")
@click.option("--from", "source_context", default=None, metavar="CONTEXT",
              help="Check the objects of this live cluster instead.")
@with_options(_FROM_STORE_OPTION, *_TARGET_OPTIONS)
@KUBECONFIG_OPTION
@_KEY_OPTION
@S3_ENDPOINT_OPTION
@OUTPUT_OPTION
def check_apis_command(
    snapshot: str | None, source_context: str | None, from_store: str,
    target_context: str | None, target_version: str | None, kubeconfig: Path | None,
    encrypt_key_file: Path | None, s3_endpoint: str | None, output: str,
) -> None:
    """Say what the transform will do to each object whose API the target lacks.

    convert, convert with a change a person must review or a loss, or drop with a suggested
    replacement. Exit code 1 when something needs a person.
    """
    if (snapshot is None) == (source_context is None):
        raise click.UsageError("give exactly one of --snapshot SNAPSHOT or --from CONTEXT")
    with contextlib.ExitStack() as stack:
        target = _target(kubeconfig, target_context, target_version, stack)
        if snapshot is not None:
            reader = open_snapshot(snapshot, from_store, s3_endpoint, encrypt_key_file)
            target = with_custom_resources(target, crd_group_versions(snapshot_crds(reader)))
            objects: Any = snapshot_objects(reader)
        else:
            cluster = stack.enter_context(kube.connect(kubeconfig, source_context))
            discovery = kube.discover(cluster)
            target = with_custom_resources(target,
                                           crd_group_versions(live_crds(cluster, discovery)))
            objects = live_objects(cluster, discovery, target.serves)
        report = check_apis(objects, target.serves, target=target.describe,
                            converter=target.converter())
    data = report.to_dict()
    if output == "json":
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(f"Target {target.label}: "
                   + (", ".join(f"{n} {v}" for v, n in data["verdicts"].items()) or "no objects"))
        rows = [[describe_ref(c["object"]), c["verdict"], c.get("becomes", ""),
                 (c.get("writtenVia") or {}).get("groupVersion", ""), "; ".join(c["details"])]
                for c in data["objects"]]
        render_table(make_console(), "Objects",
                     ["object", "verdict", "becomes", "written via", "details"], rows)
    if report.needs_person:
        raise NeedsAttention(f"{len(report.needs_person)} object(s) need a person",
                             hint="see the verdicts and details above")


def _target(kubeconfig: Path | None, context: str | None, version: str | None,
            stack: contextlib.ExitStack) -> Target:
    """The target of transform/check-apis: a live context or a release (exactly one)."""
    if (context is None) == (version is None):
        raise click.UsageError("give exactly one of --target CONTEXT or --target-version V")
    if version is not None:
        return target_from_version(version)
    return target_from_cluster(stack.enter_context(kube.connect(kubeconfig, context)))


def _differences(rules: RuleSet | None, storage_class: tuple[str, ...],
                 registry: tuple[str, ...], namespace_map: tuple[str, ...],
                 cluster_ip: str | None, service_cidr: tuple[str, ...],
                 pod_cidr: tuple[str, ...], ingress_class: tuple[str, ...]) -> DifferencesConfig:
    """The rules file's differences with the CLI flags laid over them, key by key."""
    try:
        flags = DifferencesConfig(
            storage_classes=parse_pairs(storage_class, "--storage-class"),
            registries=parse_pairs(registry, "--registry"),
            namespaces=parse_pairs(namespace_map, "--namespace-map"),
            ingress_classes=parse_pairs(ingress_class, "--ingress-class"),
            cluster_ip=cluster_ip,
            service_cidrs=parse_cidrs(service_cidr, "--service-cidr"),
            pod_cidrs=parse_cidrs(pod_cidr, "--pod-cidr"),
        )
        merged = (rules.differences if rules is not None else DifferencesConfig()).merged(flags)
        check_cluster_ip(merged.cluster_ip, merged.service_cidrs, "--cluster-ip")
    except DifferencesInvalid as exc:
        raise ConfigError(str(exc)) from exc
    return merged
