"""Discovery parsing, on documents shaped like those an API server returns."""
from __future__ import annotations

import pytest

from migrator.kube.discovery import (
    APIGroup,
    ServerVersion,
    build_discovery,
    group_version_path,
    parse_core_versions,
    parse_groups,
    parse_resources,
    parse_version,
)

pytestmark = pytest.mark.unit

API = {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}

APIS = {
    "kind": "APIGroupList",
    "apiVersion": "v1",
    "groups": [
        {
            "name": "apps",
            "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
            "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"},
        },
        {
            "name": "extensions",
            "versions": [{"groupVersion": "extensions/v1beta1", "version": "v1beta1"}],
            "preferredVersion": {"groupVersion": "extensions/v1beta1", "version": "v1beta1"},
        },
        {
            "name": "networking.k8s.io",
            "versions": [
                {"groupVersion": "networking.k8s.io/v1", "version": "v1"},
                {"groupVersion": "networking.k8s.io/v1beta1", "version": "v1beta1"},
            ],
            "preferredVersion": {"groupVersion": "networking.k8s.io/v1", "version": "v1"},
        },
        {
            "name": "metrics.k8s.io",
            "versions": [{"groupVersion": "metrics.k8s.io/v1beta1", "version": "v1beta1"}],
            "preferredVersion": {"groupVersion": "metrics.k8s.io/v1beta1", "version": "v1beta1"},
        },
    ],
}

APPS_V1 = {
    "kind": "APIResourceList",
    "apiVersion": "v1",
    "groupVersion": "apps/v1",
    "resources": [
        {
            "name": "deployments",
            "singularName": "",
            "namespaced": True,
            "kind": "Deployment",
            "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
            "shortNames": ["deploy"],
            "categories": ["all"],
        },
        {
            "name": "deployments/scale",
            "singularName": "",
            "namespaced": True,
            "group": "autoscaling",
            "version": "v1",
            "kind": "Scale",
            "verbs": ["get", "patch", "update"],
        },
        {"name": "deployments/status", "namespaced": True, "kind": "Deployment", "verbs": ["get"]},
    ],
}

CORE_V1 = {
    "kind": "APIResourceList",
    "groupVersion": "v1",
    "resources": [
        {"name": "namespaces", "namespaced": False, "kind": "Namespace", "verbs": ["get", "list"],
         "shortNames": ["ns"]},
        {"name": "pods", "namespaced": True, "kind": "Pod", "verbs": ["get", "list"]},
        {"name": "pods/log", "namespaced": True, "kind": "Pod", "verbs": ["get"]},
    ],
}

INGRESS = {"name": "ingresses", "namespaced": True, "kind": "Ingress", "verbs": ["list"]}
EXT_V1BETA1 = {"groupVersion": "extensions/v1beta1", "resources": [INGRESS]}
NET_V1 = {"groupVersion": "networking.k8s.io/v1", "resources": [INGRESS]}
NET_V1BETA1 = {"groupVersion": "networking.k8s.io/v1beta1", "resources": [INGRESS]}


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"major": "1", "minor": "21", "gitVersion": "v1.21.14"}, ServerVersion("v1.21.14", 1, 21)),
        ({"major": "1", "minor": "21+", "gitVersion": "v1.21.14-eks-1"},
         ServerVersion("v1.21.14-eks-1", 1, 21)),
        ({"major": "", "minor": "", "gitVersion": "v1.33.2"}, ServerVersion("v1.33.2", 1, 33)),
        ({}, ServerVersion("", 0, 0)),
    ],
)
def test_parse_version(doc: dict[str, str], expected: ServerVersion) -> None:
    assert parse_version(doc) == expected


def test_parse_core_and_groups() -> None:
    core = parse_core_versions(API)
    assert core == APIGroup(name="", versions=("v1",), preferred="v1")
    groups = {group.name: group for group in parse_groups(APIS)}
    assert groups["networking.k8s.io"] == APIGroup(
        "networking.k8s.io",
        ("networking.k8s.io/v1", "networking.k8s.io/v1beta1"),
        "networking.k8s.io/v1",
    )
    assert groups["extensions"].preferred == "extensions/v1beta1"


def test_parse_resources_keeps_subresources_flagged() -> None:
    resources = {r.name: r for r in parse_resources(APPS_V1)}
    deployments = resources["deployments"]
    assert (deployments.kind, deployments.namespaced, deployments.short_names) == (
        "Deployment",
        True,
        ("deploy",),
    )
    assert (deployments.group, deployments.version) == ("apps", "v1")
    assert "watch" in deployments.verbs and not deployments.is_subresource
    assert resources["deployments/scale"].is_subresource


def test_core_resources_have_the_empty_group() -> None:
    namespaces = parse_resources(CORE_V1)[0]
    assert (namespaces.group, namespaces.version, namespaces.namespaced) == ("", "v1", False)


def test_build_discovery_records_failed_group_versions() -> None:
    groups = [parse_core_versions(API), *parse_groups(APIS)]
    reason = "GET /apis/metrics.k8s.io/v1beta1: 503 ServiceUnavailable: unable to handle"
    found = build_discovery(
        parse_version({"gitVersion": "v1.21.14", "major": "1", "minor": "21"}),
        groups,
        {"v1": CORE_V1, "apps/v1": APPS_V1, "extensions/v1beta1": EXT_V1BETA1,
         "networking.k8s.io/v1": NET_V1, "networking.k8s.io/v1beta1": NET_V1BETA1},
        {"metrics.k8s.io/v1beta1": reason},
    )
    assert found.group_versions() == [
        "v1",
        "apps/v1",
        "extensions/v1beta1",
        "networking.k8s.io/v1",
        "networking.k8s.io/v1beta1",
        "metrics.k8s.io/v1beta1",
    ]
    assert found.failed == {"metrics.k8s.io/v1beta1": reason}
    assert found.serves("metrics.k8s.io/v1beta1")  # advertised, only its resources are unknown
    assert found.resources("metrics.k8s.io/v1beta1") == []
    assert not found.serves("batch/v1beta1")
    assert [r.name for r in found.resources("apps/v1")] == ["deployments"]
    assert len(found.resources("apps/v1", subresources=True)) == 3
    assert found.preferred_version("networking.k8s.io") == "networking.k8s.io/v1"
    assert found.preferred_version("") == "v1"
    # Ingress in three group/versions but two groups; subresources never count.
    assert found.resource_types() == {
        ("", "namespaces"), ("", "pods"), ("apps", "deployments"),
        ("extensions", "ingresses"), ("networking.k8s.io", "ingresses"),
    }


@pytest.mark.parametrize(
    ("group_version", "path"),
    [("v1", "/api/v1"), ("apps/v1", "/apis/apps/v1"),
     ("metrics.k8s.io/v1beta1", "/apis/metrics.k8s.io/v1beta1")],
)
def test_group_version_path(group_version: str, path: str) -> None:
    assert group_version_path(group_version) == path
