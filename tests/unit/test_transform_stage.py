"""Custom resources count as served once their CRDs are migrated (plain data)."""
from __future__ import annotations

from pathlib import Path

import pytest

from migrator.resources.crds import snapshot_crds
from migrator.snapshot import SnapshotReader, SnapshotWriter
from migrator.store import open_store
from migrator.transform.kinds import Resolver
from migrator.transform.stage import (
    Target,
    crd_group_versions,
    with_custom_resources,
)

pytestmark = pytest.mark.unit

V1_CRD = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
          "spec": {"group": "shop.example.com", "versions": [
              {"name": "v1", "served": True}, {"name": "v2", "served": True},
              {"name": "v0", "served": False}]}}
V1BETA1_CRD = {"apiVersion": "apiextensions.k8s.io/v1beta1", "kind": "CustomResourceDefinition",
               "spec": {"group": "legacy.example.com", "version": "v1alpha1"}}


def test_crd_group_versions_reads_both_layouts_and_only_served_versions():
    assert crd_group_versions([V1_CRD, V1BETA1_CRD, {"spec": {}}]) == {
        "shop.example.com/v1", "shop.example.com/v2", "legacy.example.com/v1alpha1"}


def test_target_serves_migrated_custom_resources_and_nothing_else_new():
    served = {"apps/v1", "v1"}
    base = Target(served.__contains__, {"context": "new"}, Resolver(),
                  kind_serves=lambda api_version, kind: api_version in served)
    target = with_custom_resources(base, crd_group_versions([V1_CRD]))
    assert not base.serves("shop.example.com/v1")
    assert target.serves("shop.example.com/v1") and target.kind_serves("shop.example.com/v2", "Cart")
    assert not target.serves("shop.example.com/v0")
    assert target.serves("apps/v1") and not target.serves("extensions/v1beta1")
    assert not target.kind_serves("extensions/v1beta1", "Ingress")
    assert with_custom_resources(base, set()) is base


def test_snapshot_crds_reads_only_the_crd_resource(tmp_path: Path) -> None:
    store = open_store(str(tmp_path))
    writer = SnapshotWriter(store, "src")
    with writer.resource("apiextensions.k8s.io", "v1", "customresourcedefinitions",
                         "CustomResourceDefinition", False) as res:
        res.write({"metadata": {"name": "carts.shop.example.com"}, "spec": V1_CRD["spec"]})
    with writer.resource("", "v1", "configmaps", "ConfigMap", True) as res:
        res.write({"metadata": {"name": "c", "namespace": "shop"}, "spec": {"group": "no"}})
    writer.commit(source={"context": "old"})
    crds = list(snapshot_crds(SnapshotReader(store, "src")))
    assert [c["metadata"]["name"] for c in crds] == ["carts.shop.example.com"]
