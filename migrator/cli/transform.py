"""``migrator transform``: rewrite a snapshot for the target cluster into a new snapshot.

Loaded only when it runs (see :mod:`migrator.cli`): the transform package is slow to import
and the other commands do not need it. :func:`target_of`, the target as a live context or a
release, is shared with ``migrator check-apis``.
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
    KUBECONFIG_OPTION,
    OUT_OPTION,
    OUTPUT_OPTION,
    S3_ENDPOINT_OPTION,
    SNAPSHOT_HELP,
    STORE_OPTION,
    TARGET_OPTIONS,
    key_file_option,
    pairs_option,
    snapshot_address,
    with_options,
)
from migrator.cli.render import make_console, render, render_table
from migrator.errors import SnapshotExists, ValidationRejected
from migrator.resources.objects import describe_ref
from migrator.store import open_store
from migrator.transform.differences import (
    DifferencesConfig,
    check_cluster_ip,
    parse_cidrs,
    parse_pairs,
)
from migrator.transform.rules import RuleSet, load_rules
from migrator.transform.stage import (
    Target,
    run_transform,
    target_from_cluster,
    target_from_version,
)

if TYPE_CHECKING:
    from rich.console import Console


@click.command(epilog=SNAPSHOT_HELP)
@click.argument("snapshot")
@with_options(STORE_OPTION, *TARGET_OPTIONS)
@click.option(
    "--rules",
    "rules_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="User rules file (YAML: rules and differences); validated before anything is read.",
)
@OUT_OPTION
@click.option(
    "--id",
    "new_id",
    default=None,
    metavar="NEW_ID",
    help="Id of the new snapshot. Default: <source id>-<target>-<UTC time>.",
)
@KUBECONFIG_OPTION
@click.option(
    "--validate",
    is_flag=True,
    help="Dry-run every transformed object on the target (server-side); exit "
    "non-zero if any is rejected.",
)
@pairs_option(
    "--storage-class",
    "Map a storage class (PVs, PVCs, StatefulSet claim templates, the "
    "StorageClass itself). Repeatable.",
)
@pairs_option("--registry", "Rewrite an image registry prefix in every container. Repeatable.")
@pairs_option(
    "--namespace-map",
    "Rename a namespace; references (bindings, claimRefs, webhooks...) follow. Repeatable.",
)
@click.option(
    "--cluster-ip",
    type=click.Choice(["drop", "keep", "remap"]),
    default=None,
    help="Service cluster IPs: drop (allocate anew), keep, or remap into the new "
    "service CIDR at the same offset (needs --service-cidr).",
)
@pairs_option(
    "--service-cidr", "Old and new service CIDR for --cluster-ip remap (repeat for dual stack)."
)
@pairs_option(
    "--pod-cidr", "Rewrite NetworkPolicy ipBlocks inside the old pod CIDR into the new one."
)
@pairs_option(
    "--ingress-class", "Map an ingress class (ingressClassName, annotation, IngressClass)."
)
@click.option(
    "--last-applied",
    type=click.Choice(["rewrite", "drop", "keep"]),
    default="rewrite",
    show_default=True,
    help="kubectl's last-applied annotation at a removed apiVersion: rewrite it with "
    "the object's conversion (kubectl apply keeps working), drop it, or keep it.",
)
@click.option(
    "--pod-security-labels",
    is_flag=True,
    help="Label each Namespace with pod-security.kubernetes.io/enforce at the most "
    "restrictive Pod Security level its pods and pod templates pass (Pod Security Admission "
    "replaces PodSecurityPolicy), pinned by enforce-version; existing enforce labels are kept.",
)
@key_file_option("Key of an encrypted snapshot; the new snapshot is encrypted with it too")
@S3_ENDPOINT_OPTION
@OUTPUT_OPTION
@click.option(
    "--report",
    "report_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the full JSON report (every change) here.",
)
def transform(
    snapshot: str,
    store_url: str,
    target: str | None,
    target_version: str | None,
    rules_file: Path | None,
    out_url: str | None,
    new_id: str | None,
    kubeconfig: Path | None,
    validate: bool,
    storage_class: tuple[str, ...],
    registry: tuple[str, ...],
    namespace_map: tuple[str, ...],
    cluster_ip: str | None,
    service_cidr: tuple[str, ...],
    pod_cidr: tuple[str, ...],
    ingress_class: tuple[str, ...],
    last_applied: str,
    pod_security_labels: bool,
    key_file: Path | None,
    s3_endpoint: str | None,
    output: str,
    report_file: Path | None,
) -> None:
    """Rewrite snapshot SNAPSHOT for the target cluster into a new snapshot.

    Removed API versions are converted field by field, then the cluster differences asked
    for and the user rules are applied; every change is reported object by object. The
    source snapshot is only read.
    """
    rules = load_rules(rules_file) if rules_file is not None else None
    differences = _differences(
        rules,
        storage_class,
        registry,
        namespace_map,
        cluster_ip,
        service_cidr,
        pod_cidr,
        ingress_class,
    )
    key = crypto.load_key(key_file)
    source_url, source_id = snapshot_address(snapshot, store_url)
    with contextlib.ExitStack() as stack:
        new = target_of(kubeconfig, target, target_version, stack)
        source = open_store(source_url, s3_endpoint=s3_endpoint)
        out = open_store(out_url, s3_endpoint=s3_endpoint) if out_url else source
        try:
            result = run_transform(
                source=source,
                source_id=source_id,
                out=out,
                out_id=new_id,
                target=new,
                rules=rules,
                differences=differences,
                key=key,
                validate=validate,
                last_applied=last_applied,
                pod_security_labels=pod_security_labels,
            )
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
            "in a dry-run",
            hint="see the messages above; fix them with a rule and run again",
        )


def _render_transform(console: Console, summary: Mapping[str, Any], store: str) -> None:
    totals = summary["totals"]
    render(
        console,
        f"Snapshot {summary['snapshotId']}",
        [
            ("from", f"{summary['sourceSnapshot']} (unchanged)"),
            ("store", store),
            ("target", ", ".join(f"{k} {v}" for k, v in summary["target"].items())),
            (
                "objects",
                f"{totals['written']} written of {totals['read']} read: "
                f"{totals['changed']} changed, {totals['dropped']} dropped, "
                f"{totals['duplicates']} duplicates",
            ),
            ("changes", ", ".join(f"{n} {s}" for s, n in summary["bySeverity"].items()) or "none"),
        ],
    )
    render_table(
        console,
        "By kind (as read)",
        ["kind", "read", "written", "changed", "dropped", "duplicates"],
        [
            [k, *(str(v[f]) for f in ("read", "written", "changed", "dropped", "duplicates"))]
            for k, v in summary["byKind"].items()
        ],
    )
    render_table(
        console,
        "Needs a person",
        ["object", "why"],
        [[n["object"], "; ".join(n["why"])] for n in summary["needsPerson"]],
    )
    render_table(
        console,
        "CRDs that convert through a webhook",
        ["crd", "what migrator does"],
        [[name, note] for name, note in summary["conversionWebhooks"].items()],
    )
    security = summary.get("podSecurity") or {}
    render_table(
        console,
        f"Pod Security level per namespace ({security.get('version')} standards; "
        "PodSecurityPolicies are dropped: --pod-security-labels enforces these)",
        ["namespace", "level", "pods and templates", "label", "why not stricter"],
        [
            [
                namespace,
                level["level"],
                str(level["podsAndTemplates"]),
                level.get("label", "not set"),
                " | ".join(level["whyNotStricter"]),
            ]
            for namespace, level in (security.get("namespaces") or {}).items()
        ],
    )


def _render_validation(console: Console, validation: Mapping[str, Any]) -> None:
    outcomes = ", ".join(f"{n} {o}" for o, n in validation["outcomes"].items()) or "nothing"
    click.echo(f"Dry-run on {validation['target']}: {outcomes}")
    render_table(
        console,
        "Not accepted",
        ["object", "outcome", "message"],
        [[describe_ref(p["object"]), p["outcome"], p["message"]] for p in validation["problems"]],
    )


def target_of(
    kubeconfig: Path | None, context: str | None, version: str | None, stack: contextlib.ExitStack
) -> Target:
    """The target of transform/check-apis: a live context or a release (exactly one)."""
    if (context is None) == (version is None):
        raise click.UsageError("give exactly one of --to CONTEXT or --to-version V")
    if version is not None:
        return target_from_version(version)
    return target_from_cluster(stack.enter_context(kube.connect(kubeconfig, context)))


def _differences(
    rules: RuleSet | None,
    storage_class: tuple[str, ...],
    registry: tuple[str, ...],
    namespace_map: tuple[str, ...],
    cluster_ip: str | None,
    service_cidr: tuple[str, ...],
    pod_cidr: tuple[str, ...],
    ingress_class: tuple[str, ...],
) -> DifferencesConfig:
    """The rules file's differences with the CLI flags laid over them, key by key."""
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
    return merged
