"""The runner on a local store, with a tiny conversion of its own (no registry needed)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from migrator.snapshot import SnapshotReader, SnapshotWriter
from migrator.store import open_store
from migrator.transform.base import Change, Result, Severity
from migrator.transform.checkapis import check_apis, snapshot_objects
from migrator.transform.differences import DifferencesConfig, build
from migrator.transform.rules import parse_rules
from migrator.transform.runner import TransformOptions, transform

pytestmark = pytest.mark.unit

REMOVED = {"extensions/v1beta1", "policy/v1beta1"}


def serves(group_version: str) -> bool:
    return group_version not in REMOVED


def convert(obj: dict, _serves: object) -> Result:
    """Ingress extensions → networking.k8s.io; PSP dropped; the rest untouched."""
    if obj["apiVersion"] == "extensions/v1beta1" and obj["kind"] == "Ingress":
        new = {**obj, "apiVersion": "networking.k8s.io/v1"}
        return Result(new, [Change("/apiVersion", "set", "group moved",
                                   before=obj["apiVersion"], after=new["apiVersion"])])
    if obj["kind"] == "PodSecurityPolicy":
        return Result(None, [Change("", "drop", "no successor: use Pod Security Admission "
                                    "labels on namespaces", Severity.DROP)])
    return Result(obj)


def ingress(name: str, api_version: str = "extensions/v1beta1") -> dict:
    return {"apiVersion": api_version, "kind": "Ingress",
            "metadata": {"name": name, "namespace": "shop"}}


@pytest.fixture
def source(tmp_path: Path) -> Path:
    writer = SnapshotWriter(open_store(str(tmp_path)), "src")
    with writer.resource("extensions", "v1beta1", "ingresses", "Ingress", True) as res:
        res.write(ingress("a"), aside={"status": {"loadBalancer": {}}})
        res.write(ingress("b"), aside={"status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}})
    with writer.resource("networking.k8s.io", "v1", "ingresses", "Ingress", True) as res:
        res.write(ingress("a", "networking.k8s.io/v1"))
    with writer.resource("policy", "v1beta1", "podsecuritypolicies", "PodSecurityPolicy",
                         False) as res:
        res.write({"apiVersion": "policy/v1beta1", "kind": "PodSecurityPolicy",
                   "metadata": {"name": "restricted"}})
    with writer.resource("", "v1", "secrets", "Secret", True) as res:
        res.write({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "shop"},
                   "data": {"k": "c2VjcmV0"}})
    writer.commit(source={"context": "old"})
    return tmp_path


def checksums(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((root / "src").rglob("*")) if p.is_file()}


def run(root: Path, rules_text: str | None = None, config: DifferencesConfig | None = None):
    store = open_store(str(root))
    rules = parse_rules(rules_text, "rules.yaml") if rules_text else None
    config = config or DifferencesConfig()
    report = transform(SnapshotReader(store, "src"), SnapshotWriter(store, "dst"), serves=serves,
                       rules=rules, differences=build(config),
                       options=TransformOptions(target={"version": "1.33"}, converter=convert,
                                                normalizers=(),
                                                differences_settings=config.to_dict()))
    return report, SnapshotReader(store, "dst")


def test_objects_move_to_their_new_resource_once(source: Path) -> None:
    before = checksums(source)
    report, out = run(source)
    assert checksums(source) == before  # the source is only read
    idents = {(e["group"], e["version"], e["resource"]): e for e in out.resources()}
    assert set(idents) == {("networking.k8s.io", "v1", "ingresses"), ("", "v1", "secrets")}
    ingresses = idents[("networking.k8s.io", "v1", "ingresses")]
    names = [o["metadata"]["name"] for o in out.iter_objects(ingresses)]
    assert sorted(names) == ["a", "b"]  # "a" came twice (two versions): written once
    assert [a["name"] for a in out.iter_aside(ingresses)] == ["b"]  # status follows its object
    totals = report.summary()["totals"]
    assert totals == {"read": 5, "written": 3, "changed": 1, "dropped": 1, "duplicates": 1}


def test_manifest_records_parent_rules_and_target(source: Path) -> None:
    text = "rules:\n  - match: {kind: Ingress}\n    set: {/metadata/labels/moved: 'yes'}\n"
    report, out = run(source, text, DifferencesConfig(namespaces={"shop": "shop-v2"}))
    manifest = out.manifest
    assert manifest["parent"] == "src"
    assert manifest["target"] == {"version": "1.33"}
    assert manifest["transform"]["rules"]["content"] == text
    assert manifest["transform"]["rules"]["sha256"] == hashlib.sha256(text.encode()).hexdigest()
    assert manifest["transform"]["differences"] == {"namespaces": {"shop": "shop-v2"}}
    records = {(r.source["kind"], r.source["name"], r.outcome): r for r in report.records}
    moved = records[("Ingress", "b", "changed")]
    assert moved.source["namespace"] == "shop" and moved.target["namespace"] == "shop-v2"
    assert [c.source for c in moved.changes] == [
        "conversion extensions/v1beta1 Ingress", "differences.namespaces", "rule 1"]
    dropped = records[("PodSecurityPolicy", "restricted", "dropped")]
    assert "Pod Security Admission" in dropped.changes[0].reason and dropped.needs_person
    secret = records[("Secret", "s", "changed")]
    assert secret.changes[0].before == "(hidden)"


def test_check_apis_verdicts() -> None:
    objects = [ingress("a"), ingress("b", "networking.k8s.io/v1"),
               {"apiVersion": "policy/v1beta1", "kind": "PodSecurityPolicy", "metadata": {"name": "p"}},
               {"apiVersion": "extensions/v1beta1", "kind": "Widget", "metadata": {"name": "w"}}]
    report = check_apis(objects, serves, target={"version": "1.33"}, converter=convert)
    verdicts = {c.object["name"]: c.verdict for c in report.checks}
    assert verdicts == {"a": "convert", "p": "drop", "w": "unsupported"}
    assert report.verdicts["ok"] == 1
    assert {c.object["name"] for c in report.needs_person} == {"p", "w"}


def test_objects_as_export_stores_them_take_their_type_from_the_entry(tmp_path: Path) -> None:
    """List items from the API server carry no apiVersion/kind; export stores them so.

    Before the fix the conversion never saw "extensions/v1beta1 Ingress" and the runner
    resolved ("", "") to the resource "s": ``resources/core//s`` (an invalid store key).
    """
    store = open_store(str(tmp_path))
    writer = SnapshotWriter(store, "src")
    with writer.resource("extensions", "v1beta1", "ingresses", "Ingress", True) as res:
        res.write({"metadata": {"name": "a", "namespace": "shop"}})
    with writer.resource("", "v1", "configmaps", "ConfigMap", True) as res:
        res.write({"metadata": {"name": "c", "namespace": "shop"}, "data": {"k": "v"}})
    with writer.resource("policy", "v1beta1", "podsecuritypolicies", "PodSecurityPolicy",
                         False) as res:
        res.write({"metadata": {"name": "restricted"}})
    writer.commit(source={"context": "old"})
    report, out = run(tmp_path)
    written = {(e["group"], e["version"], e["resource"]): list(out.iter_objects(e))
               for e in out.resources()}
    assert set(written) == {("networking.k8s.io", "v1", "ingresses"), ("", "v1", "configmaps")}
    [ingress_obj] = written[("networking.k8s.io", "v1", "ingresses")]
    assert (ingress_obj["apiVersion"], ingress_obj["kind"]) == ("networking.k8s.io/v1", "Ingress")
    [config] = written[("", "v1", "configmaps")]
    assert (config["apiVersion"], config["kind"], config["data"]) == ("v1", "ConfigMap", {"k": "v"})
    assert report.summary()["totals"]["dropped"] == 1  # the PSP was recognised as one
    checked = check_apis(snapshot_objects(SnapshotReader(store, "src")), serves,
                         target={"version": "1.33"}, converter=convert)
    assert {c.object["name"]: c.verdict for c in checked.checks} == {
        "a": "convert", "restricted": "drop"}
