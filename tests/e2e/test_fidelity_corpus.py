"""The fidelity corpus: every group/version/kind Kubernetes removed from 1.16 to 1.32 that the
old cluster serves, migrated to the new cluster for real, field by field.

For each such kind the old cluster holds a minimal object (the old server's defaults fill in
the rest) and, where ``k8s.io/api`` has one, its fixture cut down to what the old server
accepts (:mod:`tests.e2e.corpus`); plus v1beta1 CRDs of several shapes with custom resources
carrying fields outside their schemas. Everything is made twice, for two ways a snapshot is
read:

- ``server``: ``migrator export --to new`` reads each object at the newest version both
  clusters serve, so the old API server converts and the transform's normalizers fix what
  its conversion leaves;
- ``ours``: each type is read at its oldest removed version, as from a cluster that serves
  nothing newer, so migrator's own conversions run.

Each variant is exported, transformed and imported (one run each for the whole module), then
every object is read back from both clusters and compared field by field: the new cluster
must have refused nothing and hold every field the old one held, with the same value, unless
the transform reported a change there (a value v1 refuses, a default written out). Objects
that do not arrive must be left out by a named export rule (what a cluster regenerates) or
dropped by the transform with a reason (PodSecurityPolicy). Every failure names the object
and the field.
"""
from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from migrator.errors import ApiError
from migrator.export import ExportOptions, export_cluster
from migrator.export import stage as export_stage
from migrator.export.selection import select
from migrator.importer import ImportOptions, import_snapshot
from migrator.kube import Cluster, discover, removals
from migrator.kube.discovery import APIResource, Discovery, group_version_path, listable
from migrator.resources.identity import identity_of
from migrator.resources.types import ResourceType
from migrator.snapshot import SnapshotReader
from migrator.store import open_store
from migrator.transform import registry
from migrator.transform.base import Severity
from migrator.transform.differences import DifferencesConfig
from migrator.transform.stage import run_transform, target_from_cluster
from tests.e2e import corpus
from tests.integration.import_snapshots import delete_quietly
from tests.waiting import wait_until

VARIANTS = ("server", "ours")
NEW_RELEASE = (1, 33)
# Kinds whose objects the export leaves behind by design (the new cluster makes its own).
REGENERATED_KINDS = {"Event", "Lease", "CertificateSigningRequest", "VolumeAttachment", "CSINode",
                     "CSIStorageCapacity"}
# Fixture values that would change either cluster for every other test: set to harmless ones.
FIXTURE_OVERRIDES: dict[str, dict[str, Any]] = {
    "PriorityClass": {"globalDefault": False},
    "HorizontalPodAutoscaler": {"spec": {"minReplicas": 1}},
}
KEPT = {Severity.INFO, Severity.DEFAULT, Severity.REVIEW}
# Fields no new release can hold (removed from the Kubernetes API): their loss, reported as
# such, is the only loss allowed.
UNREPRESENTABLE = ("/clusterName",)


@dataclass
class Made:
    """One object the corpus created on the old cluster."""

    variant: str
    source: str  # "minimal", "fixture", "crd", "custom resource"
    api_version: str  # as created
    kind: str
    plural: str
    namespace: str | None
    name: str
    repaired: list[str] = field(default_factory=list)

    def describe(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"[{self.variant}] {self.source} {self.api_version} {self.kind} {where}"


@dataclass
class Run:
    """What the module's one migration per variant made and reported."""

    old: Cluster
    new: Cluster
    run_id: str
    namespaces: dict[str, str]
    made: list[Made] = field(default_factory=list)
    exports: dict[str, Any] = field(default_factory=dict)
    transforms: dict[str, Any] = field(default_factory=dict)
    imports: dict[str, Any] = field(default_factory=dict)
    old_discovery: Discovery | None = None
    new_discovery: Discovery | None = None


def removed_kinds(discovery: Discovery) -> list[APIResource]:
    """The listable kinds the server serves at a version removed by the new release."""
    found = []
    for resource in listable(discovery.iter_resources()):
        removed = removals.kind_removed_in(resource.group_version, resource.kind)
        if removed is not None and removed <= NEW_RELEASE:
            found.append(resource)
    return sorted(found, key=lambda r: (r.group_version, r.kind))


def _path(api_version: str, plural: str, namespace: str | None, name: str = "") -> str:
    base = group_version_path(api_version)
    path = f"{base}/namespaces/{namespace}/{plural}" if namespace else f"{base}/{plural}"
    return f"{path}/{name}" if name else path


def _overlay(base: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _overlay(base[key], value)
        else:
            base[key] = value


def _create_kind(run: Run, index: int, resource: APIResource, variant: str,
                 fixtures: Path) -> None:
    """The minimal object and the fixture of one kind (``index``: its place in the list of
    removed kinds, in the names, as two versions may serve the same objects)."""
    namespace = run.namespaces[variant] if resource.namespaced else None
    labels = {corpus.LABEL: f"{run.run_id}-{variant}"}
    collection = _path(resource.group_version, resource.name, namespace)
    for source in ("minimal", "fixture"):
        names = corpus.Names(run.namespaces[variant],
                             f"{variant[0]}{source[0]}{index}-{run.run_id}")
        minimal = corpus.MINIMAL[(resource.group_version, resource.kind)](names)
        meta = {"name": names.name(resource.kind), **(minimal.get("metadata") or {}),
                "labels": labels}
        body = {"apiVersion": resource.group_version, "kind": resource.kind, **minimal,
                "metadata": meta}
        repaired: list[str] = []
        if source == "fixture":
            path = corpus.fixture_path(fixtures, resource.group_version, resource.kind)
            if not path.exists():
                continue
            fixture = json.loads(path.read_text())
            _overlay(fixture, FIXTURE_OVERRIDES.get(resource.kind, {}))
            body, repaired = corpus.accepted_fixture(run.old, collection, fixture, body, meta)
        run.old.request("POST", collection, body=body)
        run.made.append(Made(variant, source, resource.group_version, resource.kind,
                             resource.name, namespace, meta["name"], repaired))


def _create_crds(run: Run, variant: str) -> None:
    namespace = run.namespaces[variant]
    labels = {corpus.LABEL: f"{run.run_id}-{variant}"}
    api_version = "apiextensions.k8s.io/v1beta1"
    for crd in corpus.crd_shapes(corpus.Names(namespace, f"{variant[0]}-{run.run_id}")):
        crd["metadata"]["labels"] = labels
        run.old.request("POST", _path(api_version, "customresourcedefinitions", None),
                        body={"apiVersion": api_version, "kind": "CustomResourceDefinition", **crd})
        run.made.append(Made(variant, "crd", api_version, "CustomResourceDefinition",
                             "customresourcedefinitions", None, crd["metadata"]["name"]))
        for collection, body in corpus.custom_resources(crd, namespace):
            body["metadata"]["labels"] = {**body["metadata"]["labels"], **labels}
            wait_until(f"{collection} served", lambda c=collection: _served(run.old, c),
                       timeout=60, interval=0.3)
            run.old.request("POST", collection, body=body)
            run.made.append(Made(variant, "custom resource", body["apiVersion"], body["kind"],
                                 collection.rsplit("/", 1)[1], namespace, body["metadata"]["name"]))


def _served(cluster: Cluster, collection: str) -> bool:
    try:
        cluster.request("GET", collection, query={"limit": 1})
    except ApiError as exc:
        if exc.status == 404:
            return False
        raise
    return True


def _oldest_removed(discovery: Discovery) -> dict[tuple[str, str], APIResource]:
    """Per identity, the removed version with the longest way to the new release (the most
    conversions to run: autoscaling/v2beta1, extensions/v1beta1)."""
    chosen: dict[tuple[str, str], APIResource] = {}
    for resource in removed_kinds(discovery):
        ident = identity_of(resource.group, resource.name)
        steps = len(registry.chain(resource.group_version, resource.kind))
        held = chosen.get(ident)
        if held is None or steps > len(registry.chain(held.group_version, held.kind)):
            chosen[ident] = resource
    return chosen


def _export(run: Run, store: Any, variant: str) -> Any:
    options = ExportOptions(include_namespaces=(run.namespaces[variant],), cluster_scoped=True,
                            label_selector=f"{corpus.LABEL}={run.run_id}-{variant}",
                            processes=0)
    if variant == "server":
        return export_cluster(run.old, store, snapshot_id=variant, options=options,
                              target=run.new).report
    assert run.old_discovery is not None
    removed = _oldest_removed(run.old_discovery)
    types = [
        ResourceType(r.group, r.version, r.name, r.kind, r.namespaced)
        if (r := removed.get(t.identity)) is not None else t
        for t in select(run.old_discovery, None, options.scope)
    ]
    planned = export_stage.ExportPlan(run.old_discovery, None, options, types)
    return export_stage.apply(planned, run.old, store, snapshot_id=variant).report


@pytest.fixture(scope="module")
def migrated(old_cluster, new_cluster, k8s_api_fixtures, tmp_path_factory) -> Iterator[Run]:
    """The corpus made on old, exported, transformed and imported into new, once per variant;
    everything it made is removed from both clusters afterwards."""
    run_id = uuid.uuid4().hex[:6]
    run = Run(old_cluster.client, new_cluster.client, run_id,
              {v: f"corpus-{run_id}-{v}" for v in VARIANTS})
    try:
        for variant, namespace in run.namespaces.items():
            run.old.request("POST", "/api/v1/namespaces", body={
                "apiVersion": "v1", "kind": "Namespace", "metadata": {
                    "name": namespace, "labels": {corpus.LABEL: f"{run_id}-{variant}"}}})
        run.old_discovery = discover(run.old)
        for variant in VARIANTS:
            for index, resource in enumerate(removed_kinds(run.old_discovery)):
                if resource.kind in REGENERATED_KINDS and variant == "ours":
                    continue  # left behind by type, whatever the version: once is enough
                _create_kind(run, index, resource, variant, k8s_api_fixtures)
            _create_crds(run, variant)
        run.old_discovery = discover(run.old)
        store = open_store(str(tmp_path_factory.mktemp("corpus") / "store"))
        target = target_from_cluster(run.new)
        for variant in VARIANTS:
            run.exports[variant] = _export(run, store, variant)
            run.transforms[variant] = run_transform(
                source=store, source_id=variant, out=store, out_id=f"{variant}-new", target=target,
                rules=None, differences=DifferencesConfig()).report
            run.imports[variant] = import_snapshot(
                SnapshotReader(store, f"{variant}-new"), run.new, ImportOptions())
        run.new_discovery = discover(run.new)
        yield run
    finally:
        _clean_up(run)


def _clean_up(run: Run) -> None:
    """Remove what the corpus made from both clusters: cluster-scoped objects first (APIServices
    before anything: an unavailable one slows every discovery), CRDs, then the namespaces."""
    cluster_scoped = [m for m in run.made if m.namespace is None]
    cluster_scoped.sort(key=lambda m: (m.kind != "APIService", m.kind == "CustomResourceDefinition"))
    for cluster in (run.old, run.new):
        for made in cluster_scoped:
            for api_version in {made.api_version, *_successors(made)}:
                try:
                    delete_quietly(cluster, _path(api_version, made.plural, None, made.name))
                except ApiError:
                    continue  # not served there
        for namespace in run.namespaces.values():
            delete_quietly(cluster, f"/api/v1/namespaces/{namespace}")


def _successors(made: Made) -> set[str]:
    return {c.target[0] for c in registry.chain(made.api_version, made.kind) if c.target}


# -- reading back ----------------------------------------------------------------------------

def _on_new(run: Run, made: Made) -> tuple[str, str] | None:
    """(apiVersion, plural) of the object's kind on the new cluster, or None if not served."""
    assert run.new_discovery is not None
    candidates = [made.api_version, *(c.target[0] for c in registry.chain(made.api_version,
                                                                          made.kind) if c.target)]
    for api_version in reversed(candidates):
        for resource in run.new_discovery.resources(api_version):
            if resource.kind == made.kind:
                return api_version, resource.name
    return None


def _on_old(run: Run, made: Made, new_version: str) -> tuple[str, str]:
    """(apiVersion, plural) to read the object on the old cluster for comparison: the new
    cluster's version when old serves it (its own conversion), else the newest old serves."""
    assert run.old_discovery is not None
    chain = [made.api_version, *(c.target[0] for c in registry.chain(made.api_version, made.kind)
                                 if c.target)]
    for api_version in [new_version, *reversed(chain)]:
        for resource in run.old_discovery.resources(api_version):
            if resource.kind == made.kind:
                return api_version, resource.name
    return made.api_version, made.plural


def _explained(run: Run, made: Made) -> tuple[str, ...]:
    """Paths the transform reported a change at (one a person can read about, not a loss)."""
    paths = []
    for record in run.transforms[made.variant].records:
        ref = record.source
        if (ref.get("kind"), ref.get("namespace"), ref.get("name")) == (
                made.kind, made.namespace, made.name):
            paths += [c.path for c in record.changes if c.path and (c.severity in KEPT or (
                c.severity is Severity.LOSS and c.path.endswith(UNREPRESENTABLE)))]
    return tuple(paths)


def _dropped(run: Run, made: Made) -> list[str]:
    """The reasons the transform gave for dropping the object (empty if it did not)."""
    for record in run.transforms[made.variant].records:
        ref = record.source
        if (ref.get("kind"), ref.get("namespace"), ref.get("name")) == (
                made.kind, made.namespace, made.name) and record.outcome == "dropped":
            return [c.reason for c in record.changes if c.severity is Severity.DROP]
    return []


def _arriving(run: Run) -> list[Made]:
    return [m for m in run.made if m.kind not in REGENERATED_KINDS and not _dropped(run, m)]


# -- the tests -------------------------------------------------------------------------------

def test_every_removed_kind_the_old_cluster_serves_is_in_the_corpus(migrated: Run,
                                                                    k8s_api_fixtures) -> None:
    assert migrated.old_discovery is not None
    served = {(r.group_version, r.kind) for r in removed_kinds(migrated.old_discovery)}
    assert served, "the old cluster serves no removed group/version: not an old cluster"
    missing = served - set(corpus.MINIMAL)
    assert not missing, f"no minimal object for {sorted(missing)}: add one to tests/e2e/corpus.py"
    made = {(m.api_version, m.kind) for m in migrated.made if m.source == "minimal"}
    assert made == served
    fixtures = {(m.api_version, m.kind) for m in migrated.made if m.source == "fixture"}
    assert fixtures == {k for k in served if corpus.fixture_path(k8s_api_fixtures, *k).exists()}
    assert len(fixtures) >= 20, sorted(fixtures)


def test_the_new_cluster_refuses_nothing(migrated: Run) -> None:
    refused = [f"[{v}] {f['resource']} {f['namespace']}/{f['name']}: {f['error']}"
               for v, report in migrated.imports.items() for f in report.failures]
    assert not refused, "\n".join(refused)
    failed_types = {v: report.errors for v, report in migrated.exports.items() if report.errors}
    assert not failed_types


def test_every_field_the_old_cluster_held_arrives(migrated: Run) -> None:
    problems = []
    for made in _arriving(migrated):
        found = _on_new(migrated, made)
        if found is None:
            problems.append(f"{made.describe()}: the new cluster serves no version of it")
            continue
        new_version, new_plural = found
        old_version, old_plural = _on_old(migrated, made, new_version)
        try:
            new = migrated.new.request("GET", _path(new_version, new_plural, made.namespace,
                                                    made.name))
        except ApiError as exc:
            problems.append(f"{made.describe()}: not in the new cluster ({exc})")
            continue
        old = migrated.old.request("GET", _path(old_version, old_plural, made.namespace,
                                                made.name))
        lost = corpus.lost_fields(corpus.comparable(old), corpus.comparable(new),
                                  _explained(migrated, made))
        problems += [f"{made.describe()}: {where}: old {corpus.dumps(before)} → new "
                     f"{corpus.dumps(after)}" for where, (before, after) in lost.items()]
    assert not problems, "\n".join(problems)


def test_custom_resources_are_identical(migrated: Run) -> None:
    """Fields outside the schema included, at every served version, whatever the CRD's shape."""
    problems = []
    resources = [m for m in migrated.made if m.source == "custom resource"]
    assert len(resources) == 2 * 6
    for made in resources:
        path = _path(made.api_version, made.plural, made.namespace, made.name)
        old = corpus.comparable(migrated.old.request("GET", path), status=True)
        try:
            new = corpus.comparable(migrated.new.request("GET", path), status=True)
        except ApiError as exc:
            problems.append(f"{made.describe()}: not in the new cluster ({exc})")
            continue
        problems += [f"{made.describe()}: {where}: old {corpus.dumps(before)} → new "
                     f"{corpus.dumps(after)}"
                     for where, (before, after) in corpus.lost_fields(old, new).items()]
        problems += [f"{made.describe()}: {where}: only in new: {corpus.dumps(after)}"
                     for where, (after, _none) in corpus.lost_fields(new, old).items()]
    assert not problems, "\n".join(problems)


def test_what_does_not_arrive_is_left_behind_with_a_reason(migrated: Run) -> None:
    report = migrated.exports["server"]
    rules = {r.kind: r.skip_rule for r in report.resources if r.skip_rule}
    for kind in REGENERATED_KINDS:
        assert rules.get(kind), f"{kind}: not left out by a named export rule ({rules})"
    dropped = {m.kind: _dropped(migrated, m) for m in migrated.made if _dropped(migrated, m)}
    assert set(dropped) == {"PodSecurityPolicy"}, dropped
    assert all("Pod Security Admission" in r for reasons in dropped.values() for r in reasons)
