"""The user rules file: matching, each operation, and every message of a bad file."""
from __future__ import annotations

from pathlib import Path

import pytest

from migrator.errors import RulesInvalid
from migrator.transform.rules import load_rules, parse_rules

pytestmark = pytest.mark.unit


def deployment(**labels: str) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web-1", "namespace": "shop", "labels": dict(labels)},
            "spec": {"replicas": 10, "template": {"spec": {"containers": [{"name": "c"}]}}}}


def apply(text: str, obj: dict) -> tuple[dict, list]:
    return parse_rules(text, "r.yaml").apply(obj)


@pytest.mark.parametrize("match, hit", [
    ("{apiVersion: apps/v1}", True), ("{group: apps, kind: Deploy*}", True),
    ("{group: batch}", False), ("{namespace: 'sh*', name: 'web-?'}", True),
    ("{namespace: other}", False), ("{labels: {tier: web}}", True),
    ("{labels: {tier: db}}", False), ("{kind: Deployment, name: api}", False),
])
def test_match(match: str, hit: bool) -> None:
    _obj, changes = apply(f"rules: [{{match: {match}, set: {{/x: 1}}}}]", deployment(tier="web"))
    assert bool(changes) is hit


def test_cluster_scoped_objects_never_match_a_namespace() -> None:
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}
    assert apply("rules: [{match: {namespace: '*'}, set: {/x: 1}}]", ns)[1] == []


def test_each_patch_operation() -> None:
    text = """
rules:
  - match: {kind: Deployment}
    patch:
      - {op: test, path: /spec/replicas, value: 10}
      - {op: replace, path: /spec/replicas, value: 2}
      - {op: add, path: /metadata/labels/app.kubernetes.io~1name, value: web}
      - {op: copy, from: /metadata/labels/app.kubernetes.io~1name, path: /metadata/labels/copy}
      - {op: move, from: /metadata/labels/copy, path: /metadata/annotations}
      - {op: remove, path: /spec/template/spec/containers/0/name}
"""
    original = deployment()
    out, changes = apply(text, original)
    assert out["spec"]["replicas"] == 2
    assert out["metadata"]["labels"] == {"app.kubernetes.io/name": "web"}
    assert out["metadata"]["annotations"] == "web"
    assert out["spec"]["template"]["spec"]["containers"] == [{}]
    assert [c.action for c in changes] == ["replace", "add", "copy", "move", "remove"]
    assert changes[0].before == 10 and changes[0].after == 2 and changes[0].source == "rule 1"
    assert original == deployment()  # never modified in place


def test_set_creates_and_delete_forgives() -> None:
    text = """
rules:
  - name: tidy
    match: {kind: Deployment}
    set: {/metadata/annotations/a~1b: "x", /spec/template/spec/containers/0/image: img}
    delete: [/metadata/labels/tier, /metadata/labels/absent]
"""
    out, changes = apply(text, deployment(tier="web"))
    assert out["metadata"]["annotations"] == {"a/b": "x"}
    assert out["spec"]["template"]["spec"]["containers"][0]["image"] == "img"
    assert out["metadata"]["labels"] == {}
    assert {c.source for c in changes} == {"rule 1 (tidy)"}


def test_failing_test_op_skips_the_rule_and_is_recorded() -> None:
    text = """
rules:
  - match: {kind: Deployment}
    patch:
      - {op: replace, path: /spec/replicas, value: 2}
      - {op: test, path: /spec/replicas, value: 5}
  - match: {kind: Deployment}
    set: {/metadata/labels/second: "yes"}
"""
    out, changes = apply(text, deployment())
    assert out["spec"]["replicas"] == 10  # all or nothing
    assert out["metadata"]["labels"] == {"second": "yes"}
    assert changes[0].action == "skip" and "rule 1 not applied: test failed" in changes[0].reason
    assert changes[0].severity.value == "info"


def test_operation_that_cannot_apply_is_recorded_for_review() -> None:
    out, changes = apply("rules: [{match: {kind: Deployment}, patch: [{op: remove, path: /nope}]}]",
                         deployment())
    assert out == deployment()
    assert changes[0].severity.value == "review" and "/nope does not exist" in changes[0].reason


BAD = [
    ("rules: [", "r.yaml: line 1 column 9: not valid YAML"),
    ("- a", "r.yaml: must be a mapping"),
    ("rulez: []", "r.yaml: rulez: unknown section"),
    ("rules: {a: 1}", "r.yaml: rules: must be a list"),
    ("rules: [3]", "r.yaml: rule 1: rule: must be a mapping"),
    ("rules: [{match: {kind: A}, set: {/a: 1}, frobnicate: 1}]", "rule 1: frobnicate: unknown field"),
    ("rules: [{set: {/a: 1}}]", "rule 1: match: missing"),
    ("rules: [{match: {}, set: {/a: 1}}]", "rule 1: match: must be a non-empty mapping"),
    ("rules: [{match: {kinds: A}, set: {/a: 1}}]", "rule 1: match.kinds: unknown field"),
    ("rules: [{match: {apiVersion: v1, group: x}, set: {/a: 1}}]",
     "rule 1: match.group: give apiVersion or group, not both"),
    ("rules: [{match: {kind: 3}, set: {/a: 1}}]", "rule 1: match.kind: must be a string"),
    ("rules: [{match: {labels: [a]}, set: {/a: 1}}]", "rule 1: match.labels: must map"),
    ("rules: [{name: n, match: {kind: A}}]", "rule 1 (n): patch: the rule has no operation"),
    ("rules: [{match: {kind: A}, patch: {op: add}}]", "rule 1: patch: must be a list"),
    ("rules: [{match: {kind: A}, patch: [{op: frob, path: /a}]}]",
     "rule 1: patch[0].op: 'frob' is not one of add, remove, replace, copy, move, test"),
    ("rules: [{match: {kind: A}, patch: [{op: add, path: /a}]}]",
     "rule 1: patch[0].value: missing (a add operation needs it)"),
    ("rules: [{match: {kind: A}, patch: [{op: move, path: /a}]}]", "rule 1: patch[0].from: missing"),
    ("rules: [{match: {kind: A}, patch: [{op: remove, path: a}]}]",
     "rule 1: patch[0].path: 'a' is not a JSON Pointer"),
    ("rules: [{match: {kind: A}, patch: [{op: copy, path: /a, from: 3}]}]",
     "rule 1: patch[0].from: must be a JSON Pointer"),
    ("rules: [{match: {kind: A}, patch: [{op: remove, path: /a, value: 1}]}]",
     "rule 1: patch[0].value: not a field of a remove operation"),
    ("rules: [{match: {kind: A}, set: [/a]}]", "rule 1: set: must map JSON Pointers"),
    ("rules: [{match: {kind: A}, set: {a.b: 1}}]", "rule 1: set['a.b']: 'a.b' is not a JSON Pointer"),
    ("rules: [{match: {kind: A}, delete: /a}]", "rule 1: delete: must be a list"),
    ("rules: [{match: {kind: A}, set: {/a: 1}}, {match: {kind: B}, delete: [x]}]",
     "rule 2: delete[0]: 'x' is not a JSON Pointer"),
    ("differences: {storageClass: {a: b}}", "r.yaml: differences.storageClass: unknown setting"),
    ("differences: {registries: [a]}", "differences.registries: must map old names"),
    ("differences: {clusterIP: remap}", "differences.clusterIP: remap needs the service CIDRs"),
    ("differences: {clusterIP: move}", "differences.clusterIP: 'move' is not one of"),
    ("differences: {podCIDR: 10.0.0.0/8}", "differences.podCIDR: '10.0.0.0/8' is not OLD=NEW"),
    ("differences: {serviceCIDR: 10.0.0.0/8=fd00::/64}", "maps between IPv4 and IPv6"),
]


@pytest.mark.parametrize("text, message", BAD)
def test_bad_rules_file_messages(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(text)
    with pytest.raises(RulesInvalid) as caught:
        load_rules(path)
    assert message.replace("r.yaml", str(path)) in str(caught.value)
    assert str(caught.value).startswith(str(path))
    assert caught.value.exit_code == 2


def test_missing_rules_file(tmp_path: Path) -> None:
    with pytest.raises(RulesInvalid, match="cannot read: No such file"):
        load_rules(tmp_path / "absent.yaml")


def test_digest_and_content_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("rules: []\ndifferences: {namespaces: {a: b}}\n")
    rules = load_rules(path)
    assert rules.to_manifest()["content"] == path.read_text()
    assert len(rules.sha256) == 64 and rules.differences.namespaces == {"a": "b"}
