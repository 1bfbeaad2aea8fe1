"""Owner references: relinked to the new uid when the owner is imported, else dropped."""
from __future__ import annotations

from migrator.resources.owners import OwnerIndex, relink

KINDS = {("apps", "Deployment"): True, ("example.com", "Widget"): True,
         ("", "ConfigMap"): True, ("", "Namespace"): False,
         ("rbac.authorization.k8s.io", "ClusterRole"): False}


def ref(api_version: str, kind: str, name: str, uid: str = "old-uid") -> dict:
    return {"apiVersion": api_version, "kind": kind, "name": name, "uid": uid,
            "controller": True}


def obj(name: str, *refs: dict, namespace: str = "ns") -> dict:
    return {"metadata": {"name": name, "namespace": namespace, "ownerReferences": list(refs)}}


def index_with(present: list[tuple[str, str, str, str]]) -> OwnerIndex:
    index = OwnerIndex(dict(KINDS))
    index.add_dependent(("", "ConfigMap", "ns", "cm"),
                        [ref("example.com/v1", "Widget", "w"), ref("apps/v1", "Deployment", "gone")])
    for key in present:
        index.add_present(key)
    return index


def test_relinked_to_new_uid_and_missing_owner_dropped() -> None:
    index = index_with([("example.com", "Widget", "ns", "w")])
    body = obj("cm", ref("example.com/v1", "Widget", "w"), ref("apps/v1", "Deployment", "gone"))
    relinked, dropped = relink(body, ("", "ConfigMap", "ns", "cm"), index,
                               {("example.com", "Widget", "ns", "w"): "new-uid"}.get)
    assert relinked == 1
    assert body["metadata"]["ownerReferences"] == [
        {**ref("example.com/v1", "Widget", "w"), "uid": "new-uid"}]
    assert [(d.owner[1], d.owner[3], d.reason) for d in dropped] == [
        ("Deployment", "gone", "owner not in the import")]


def test_all_refs_dropped_removes_the_field() -> None:
    index = index_with([])
    body = obj("cm", ref("apps/v1", "Deployment", "gone"))
    relinked, dropped = relink(body, ("", "ConfigMap", "ns", "cm"), index, {}.get)
    assert relinked == 0 and len(dropped) == 1
    assert "ownerReferences" not in body["metadata"]


def test_owner_imported_but_not_created_is_dropped_with_its_reason() -> None:
    index = index_with([("example.com", "Widget", "ns", "w")])
    body = obj("cm", ref("example.com/v1", "Widget", "w"))
    _relinked, dropped = relink(body, ("", "ConfigMap", "ns", "cm"), index, {}.get)
    assert dropped[0].reason == "owner was not created in the target"


def test_legacy_api_version_and_cluster_scoped_owner() -> None:
    index = OwnerIndex(dict(KINDS))
    assert index.owner_key(ref("extensions/v1beta1", "Deployment", "d"), "ns") == (
        "apps", "Deployment", "ns", "d")
    assert index.owner_key(ref("v1", "Namespace", "ns"), "ns") == ("", "Namespace", "", "ns")
    assert index.owner_key(ref("v1", "Pod", "p"), "ns") is None  # kind not in the snapshot


def test_depth_follows_chains_and_survives_cycles() -> None:
    index = OwnerIndex(dict(KINDS))
    index.add_dependent(("example.com", "Widget", "ns", "child"),
                        [ref("example.com/v1", "Widget", "parent")])
    index.add_dependent(("", "ConfigMap", "ns", "cm"),
                        [ref("example.com/v1", "Widget", "child")])
    index.add_dependent(("example.com", "Widget", "ns", "a"), [ref("example.com/v1", "Widget", "b")])
    index.add_dependent(("example.com", "Widget", "ns", "b"), [ref("example.com/v1", "Widget", "a")])
    for name in ("parent", "child", "a", "b"):
        index.add_present(("example.com", "Widget", "ns", name))
    assert index.depth(("example.com", "Widget", "ns", "parent")) == 0
    assert index.depth(("example.com", "Widget", "ns", "child")) == 1
    assert index.depth(("", "ConfigMap", "ns", "cm")) == 2
    assert index.depth(("example.com", "Widget", "ns", "a")) > 0  # cycle: bounded, no recursion error
    assert index.max_depth() <= 16
