"""The transform stage end to end, as ``migrator transform`` runs it.

Order matters for the user: the rules file is validated first (by the caller, before this
is reached), then the target is asked what it serves, then the source snapshot is opened
and streamed into a new one; ``--validate`` dry-runs the result against the target.
A snapshot is addressed as ``ID`` in a store, or ``STORE_URL/ID``
(see :func:`~migrator.snapshot.address.parse_address`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from migrator.errors import ConfigError
from migrator.kube import Cluster, Discovery, discover
from migrator.kube.removals import Release, format_release, is_removed_by
from migrator.resources.crds import snapshot_crds, webhook_notes
from migrator.run.progress import Progress
from migrator.snapshot import SnapshotReader, SnapshotWriter
from migrator.snapshot.address import default_snapshot_id
from migrator.store import Store
from migrator.transform import builtin, podsecurity, registry
from migrator.transform import differences as diffs
from migrator.transform.kinds import Resolver
from migrator.transform.report import TransformReport
from migrator.transform.rules import RuleSet
from migrator.transform.runner import TransformOptions, transform
from migrator.transform.validate import ValidationReport, validate_snapshot

Serves = Callable[[str], bool]
_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.\d+)?$")


@dataclass(frozen=True)
class Target:
    """What the new cluster serves, and how the manifest and reports describe it."""

    serves: Serves
    describe: dict[str, Any]
    resolver: Resolver
    kind_serves: builtin.KindServes | None = None  # finer: per (apiVersion, kind)
    cluster: Cluster | None = None

    def converter(self, last_applied: str = "rewrite") -> builtin.Converter:
        """The built-in conversions, bound to what this target serves kind by kind."""
        return builtin.converter(kind_serves=self.kind_serves, last_applied=last_applied)

    @property
    def label(self) -> str:
        return str(self.describe.get("context") or self.describe.get("version"))


def parse_release(text: str) -> Release:
    """``1.33``, ``v1.33`` or ``1.33.2`` → (1, 33)."""
    match = _VERSION.match(text.strip())
    if not match:
        raise ConfigError(f"target version {text!r} is not MAJOR.MINOR (e.g. 1.33)")
    return int(match.group(1)), int(match.group(2))


def target_from_version(text: str) -> Target:
    """A target known only by its release: the built-in removals table decides."""
    release = parse_release(text)

    def serves(group_version: str) -> bool:
        return not is_removed_by(group_version, release)

    return Target(
        serves,
        {"version": format_release(release)},
        Resolver(),
        kind_serves=registry.release_serves(release[1]),
    )


def target_from_cluster(cluster: Cluster, discovery: Discovery | None = None) -> Target:
    """A live target: its discovery (made here unless given) decides what is served and
    where kinds are stored."""
    discovery = discovery or discover(cluster)

    def kind_serves(api_version: str, kind: str) -> bool:
        if not discovery.serves(api_version):
            return False
        listed = discovery.resources(api_version)  # empty when its discovery failed
        return not listed or any(r.kind == kind for r in listed)

    return Target(
        discovery.serves,
        {"context": cluster.context, "serverVersion": discovery.version.git_version},
        Resolver(discovery),
        kind_serves,
        cluster,
    )


def crd_group_versions(crds: Iterable[dict[str, Any]]) -> set[str]:
    """The group/versions these CustomResourceDefinitions serve (v1 or v1beta1 layout)."""
    served: set[str] = set()
    for crd in crds:
        spec = crd.get("spec") or {}
        group = spec.get("group")
        if not group:
            continue
        versions = [v.get("name") for v in spec.get("versions") or [] if v.get("served", True)]
        if not versions and spec.get("version"):
            versions = [spec["version"]]
        served.update(f"{group}/{version}" for version in versions if version)
    return served


def with_custom_resources(target: Target, group_versions: set[str]) -> Target:
    """The target as it will be once the migrated CRDs exist on it: their custom resources
    are served there, though the target's discovery cannot say so yet."""
    if not group_versions:
        return target
    base_serves, base_kind_serves = target.serves, target.kind_serves

    def serves(group_version: str) -> bool:
        return group_version in group_versions or base_serves(group_version)

    def kind_serves(api_version: str, kind: str) -> bool:
        if api_version in group_versions:
            return True
        return base_kind_serves(api_version, kind) if base_kind_serves else base_serves(api_version)

    return dataclasses.replace(target, serves=serves, kind_serves=kind_serves)


def default_output_id(source_id: str, target: Target) -> str:
    """``<source id>-<target>-<UTC time>``."""
    return default_snapshot_id(f"{source_id}-{target.label}")


@dataclass
class TransformResult:
    """The report of the transform and, with ``--validate``, of the dry-run."""

    report: TransformReport
    validation: ValidationReport | None = None


def run_transform(
    *,
    source: Store,
    source_id: str,
    out: Store,
    out_id: str | None,
    target: Target,
    rules: RuleSet | None,
    differences: diffs.DifferencesConfig,
    key: bytes | None = None,
    validate: bool = False,
    last_applied: str = "rewrite",
    pod_security_labels: bool = False,
    on_progress: Progress | None = None,
) -> TransformResult:
    """Transform snapshot ``source_id`` of ``source`` into ``out``; the source is only read.

    The report gives every namespace's Pod Security level (:mod:`~migrator.transform.
    podsecurity`); ``pod_security_labels`` also sets it as a label on the Namespace objects.
    """
    if validate and target.cluster is None:
        raise ConfigError("--validate needs a target cluster (--to CONTEXT), not only a version")
    reader = SnapshotReader(source, source_id, key=key)
    target = with_custom_resources(target, crd_group_versions(snapshot_crds(reader)))
    new_id = out_id or default_output_id(source_id, target)
    if out.url == source.url and new_id == source_id:
        raise ConfigError(
            "the new snapshot would replace its source", hint="choose another --id or --out"
        )
    found = podsecurity.survey(reader).renamed(differences.namespaces)
    rules_for_differences = diffs.build(differences)
    if pod_security_labels:
        rules_for_differences.append(podsecurity.PodSecurityLabels(found))
    writer = SnapshotWriter(out, new_id, key=key, resume=False, made_by="transform")
    options = TransformOptions(
        target=target.describe,
        resolver=target.resolver,
        differences_settings=differences.to_dict(),
        target_wins=tuple(differences.target_wins()),
        pod_security=found,
        converter=target.converter(last_applied),
        on_progress=on_progress,
        conversion_webhooks=webhook_notes(snapshot_crds(reader)),
    )
    try:
        report = transform(
            reader,
            writer,
            serves=target.serves,
            rules=rules,
            differences=rules_for_differences,
            options=options,
        )
    except BaseException:
        writer.discard()  # a transform starts over anyway: leave no half-written snapshot
        raise
    validation = None
    if validate and target.cluster is not None:
        validation = validate_snapshot(
            target.cluster, SnapshotReader(out, new_id, key=key), target.serves
        )
    return TransformResult(report, validation)
