"""One scope for every stage: namespaces, resource types and cluster-scoped types."""
from __future__ import annotations

import pytest

from migrator.errors import ConfigError
from migrator.resources.scope import Scope, entry_names
from migrator.snapshot.layout import ResourceEntry


def entry(group: str, resource: str, kind: str, namespaced: bool) -> ResourceEntry:
    return ResourceEntry(group=group, version="v1", resource=resource, kind=kind,
                         namespaced=namespaced, objects=0, parts=[], aside_parts=[])


CM = entry("", "configmaps", "ConfigMap", True)
NS = entry("", "namespaces", "Namespace", False)
PV = entry("", "persistentvolumes", "PersistentVolume", False)
ROLE = entry("rbac.authorization.k8s.io", "clusterroles", "ClusterRole", False)


def obj(name: str, namespace: str | None = None, **fields) -> dict:
    meta = {"name": name} | ({"namespace": namespace} if namespace else {})
    return {"metadata": meta, **fields}


def test_everything_by_default() -> None:
    scope = Scope()
    assert all(scope.admits_entry(e) for e in (CM, NS, PV, ROLE))
    assert scope.admits(CM, obj("a", "kube-system")) and scope.admits(ROLE, obj("admin"))
    assert scope.field_selector() is None and scope.namespaces_to_list() is None


def test_included_namespaces_bring_their_namespace_objects_and_claimed_volumes() -> None:
    scope = Scope.build(include_namespaces=["shop"])
    assert not scope.takes_cluster_scoped
    assert [scope.admits_entry(e) for e in (CM, NS, PV, ROLE)] == [True, True, True, False]
    assert scope.admits(CM, obj("a", "shop")) and not scope.admits(CM, obj("a", "other"))
    assert scope.admits(NS, obj("shop")) and not scope.admits(NS, obj("other"))
    claimed = obj("pv-1", spec={"claimRef": {"namespace": "shop", "name": "data"}})
    elsewhere = obj("pv-2", spec={"claimRef": {"namespace": "other", "name": "data"}})
    assert scope.admits(PV, claimed) and not scope.admits(PV, elsewhere)
    assert not scope.admits(PV, obj("pv-3"))
    assert Scope.build(include_namespaces=["shop"], cluster_scoped=True).admits(ROLE, obj("x"))


def test_resource_filters_take_kubectl_names() -> None:
    scope = Scope.build(include_resources=["cm", "ConfigMap", "configmaps"])
    assert "cm" not in entry_names(CM)  # short names come from discovery, not the snapshot
    assert scope.wants_type(entry_names(CM) | {"cm"})
    assert not scope.admits_entry(ROLE)
    assert not Scope.build(exclude_resources=["clusterroles.rbac.authorization.k8s.io"]
                           ).admits_entry(ROLE)
    with pytest.raises(ConfigError, match="no resource the snapshot holds is called 'deploymnets'"):
        Scope.build(include_resources=["deploymnets"]).check_resources(
            [entry_names(e) for e in (CM, NS)], "the snapshot holds")


def test_equal_scopes_compare_equal_and_say_what_they_cover() -> None:
    assert Scope.build(["b", "a", "a"]) == Scope.build(["a", "b"])
    assert Scope.build(exclude_namespaces=["x"], include_system_namespaces=False).to_dict() == {
        "includeNamespaces": [], "includeSystemNamespaces": False, "includeResources": [],
        "excludeNamespaces": ["kube-node-lease", "kube-public", "kube-system", "x"],
        "excludeResources": [], "clusterScoped": True}
