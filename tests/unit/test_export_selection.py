"""Choosing one resource per object identity, at the right version (pure, on discovery data)."""
from __future__ import annotations

import pytest

from migrator.errors import ConfigError
from migrator.export.selection import select
from migrator.kube.discovery import APIGroup, APIResource, Discovery, ServerVersion
from migrator.resources.identity import version_key
from migrator.resources.scope import Scope

pytestmark = pytest.mark.unit

KINDS = {"deployments": "Deployment", "configmaps": "ConfigMap", "ingresses": "Ingress"}
RW = ("create", "delete", "get", "list", "patch", "update", "watch")


def discovery(served: dict[str, list[str]], preferred: dict[str, str] | None = None) -> Discovery:
    """A Discovery serving ``{group/version: [plural, ...]}``; namespaced unless listed below."""
    cluster_scoped = {"namespaces", "nodes", "podsecuritypolicies", "customresourcedefinitions"}
    groups: dict[str, list[str]] = {}
    for gv in served:
        groups.setdefault(gv.rpartition("/")[0], []).append(gv)
    preferred = preferred or {}
    return Discovery(
        version=ServerVersion("v1.21.14", 1, 21),
        groups=tuple(APIGroup(g, tuple(v), preferred.get(g, v[0])) for g, v in groups.items()),
        resource_lists={
            gv: tuple(
                APIResource(gv, name, KINDS.get(name, name.title()), name not in cluster_scoped, RW)
                for name in names
            )
            for gv, names in served.items()
        },
    )


OLD = discovery(
    {
        "v1": ["configmaps", "events", "namespaces", "pods", "pods/log"],
        "apps/v1": ["deployments", "replicasets"],
        "extensions/v1beta1": ["ingresses", "deployments", "podsecuritypolicies"],
        "networking.k8s.io/v1": ["ingresses", "networkpolicies"],
        "networking.k8s.io/v1beta1": ["ingresses"],
        "events.k8s.io/v1": ["events"],
        "events.k8s.io/v1beta1": ["events"],
        "autoscaling/v1": ["horizontalpodautoscalers"],
        "autoscaling/v2beta1": ["horizontalpodautoscalers"],
        "autoscaling/v2beta2": ["horizontalpodautoscalers"],
        "batch/v1": ["jobs", "cronjobs"],
        "batch/v1beta1": ["cronjobs"],
        "policy/v1": ["poddisruptionbudgets"],
        "policy/v1beta1": ["poddisruptionbudgets", "podsecuritypolicies"],
    },
    preferred={"autoscaling": "autoscaling/v1", "networking.k8s.io": "networking.k8s.io/v1"},
)
NEW = discovery(
    {
        "v1": ["configmaps", "events", "namespaces", "pods"],
        "apps/v1": ["deployments", "replicasets"],
        "networking.k8s.io/v1": ["ingresses", "networkpolicies"],
        "events.k8s.io/v1": ["events"],
        "autoscaling/v1": ["horizontalpodautoscalers"],
        "autoscaling/v2": ["horizontalpodautoscalers"],
        "batch/v1": ["jobs", "cronjobs"],
        "policy/v1": ["poddisruptionbudgets"],
    }
)


def chosen(types) -> dict[str, str]:
    return {t.key: t.group_version for t in types}


def test_one_resource_per_identity_with_aliases_recorded() -> None:
    types = select(OLD)
    keys = [t.key for t in types]
    assert len(keys) == len(set(keys))
    assert "deployments.extensions" not in keys and "ingresses.extensions" not in keys
    assert "events.events.k8s.io" not in keys and "events" in keys
    assert "pods/log" not in keys
    ingress = next(t for t in types if t.key == "ingresses.networking.k8s.io")
    assert ingress.aliases == ("extensions/v1beta1", "networking.k8s.io/v1beta1")
    psp = next(t for t in types if t.resource == "podsecuritypolicies")
    assert psp.group_version == "policy/v1beta1" and psp.aliases == ("extensions/v1beta1",)


def test_without_target_the_sources_preferred_version_but_never_hpa_v1() -> None:
    versions = chosen(select(OLD))
    assert versions["ingresses.networking.k8s.io"] == "networking.k8s.io/v1"
    assert versions["horizontalpodautoscalers.autoscaling"] == "autoscaling/v2beta2"
    assert versions["cronjobs.batch"] == "batch/v1"
    assert versions["events"] == "v1"


def test_with_target_the_newest_version_both_serve() -> None:
    versions = chosen(select(OLD, NEW))
    assert versions["ingresses.networking.k8s.io"] == "networking.k8s.io/v1"
    assert versions["poddisruptionbudgets.policy"] == "policy/v1"
    assert versions["cronjobs.batch"] == "batch/v1"
    # Only autoscaling/v1 is common, and it is never used: the newest v2* the source serves.
    assert versions["horizontalpodautoscalers.autoscaling"] == "autoscaling/v2beta2"
    # Not served by the target at all: the source's choice.
    assert versions["podsecuritypolicies.policy"] == "policy/v1beta1"


def test_hpa_v1_is_used_only_when_nothing_else_is_served() -> None:
    only_v1 = discovery({"autoscaling/v1": ["horizontalpodautoscalers"]})
    assert chosen(select(only_v1)) == {"horizontalpodautoscalers.autoscaling": "autoscaling/v1"}


def test_only_listable_resources() -> None:
    reviews = Discovery(
        version=ServerVersion("v1.21.14", 1, 21),
        groups=(APIGroup("authorization.k8s.io", ("authorization.k8s.io/v1",), ""),),
        resource_lists={"authorization.k8s.io/v1": (
            APIResource("authorization.k8s.io/v1", "subjectaccessreviews", "SAR", False,
                        ("create",)),)},
    )
    assert select(reviews) == []


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("deployments", "deployments.apps"),
        ("deployments.apps", "deployments.apps"),
        ("Deployments", "deployments.apps"),
        ("deployment", "deployments.apps"),  # the kind, lower-cased
        ("deployments.extensions", "deployments.apps"),  # an alias names the same objects
        ("ingresses.v1.networking.k8s.io", "ingresses.networking.k8s.io"),
        ("configmaps", "configmaps"),
    ],
)
def test_include_names_as_kubectl_does(name: str, key: str) -> None:
    assert [t.key for t in select(OLD, scope=Scope(include_resources=tuple([name])))] == [key]


def test_exclude_and_cluster_scoped() -> None:
    keys = [t.key for t in select(OLD, scope=Scope(exclude_resources=tuple(["pods", "ingresses"])))]
    assert "pods" not in keys and "ingresses.networking.k8s.io" not in keys
    namespaced = select(OLD, scope=Scope(cluster_scoped=False))
    assert namespaced and all(t.namespaced for t in namespaced)


def test_unknown_resource_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="deploymnets"):
        select(OLD, scope=Scope(include_resources=tuple(["deploymnets"])))


def test_version_order() -> None:
    ordered = sorted(["v1", "v2beta1", "v1beta1", "v2", "v1alpha1", "v2beta2"], key=version_key)
    assert ordered == ["v1alpha1", "v1beta1", "v1", "v2beta1", "v2beta2", "v2"]


def test_list_paths() -> None:
    [cm] = select(OLD, scope=Scope(include_resources=tuple(["configmaps"])))
    assert cm.list_path() == "/api/v1/configmaps"
    assert cm.list_path("shop") == "/api/v1/namespaces/shop/configmaps"
    [deploy] = select(OLD, scope=Scope(include_resources=tuple(["deployments"])))
    assert deploy.list_path("shop") == "/apis/apps/v1/namespaces/shop/deployments"


def test_custom_resources_converting_through_a_webhook_are_read_at_their_storage_version(
) -> None:
    source = discovery({"cert-manager.io/v1": ["certificates"],
                        "cert-manager.io/v1alpha2": ["certificates"]},
                       preferred={"cert-manager.io": "cert-manager.io/v1"})
    assert chosen(select(source)) == {"certificates.cert-manager.io": "cert-manager.io/v1"}
    stored = {("cert-manager.io", "certificates"): "v1alpha2"}
    assert chosen(select(source, NEW, storage_versions=stored)) == {
        "certificates.cert-manager.io": "cert-manager.io/v1alpha2"}
    # A storage version the source does not serve is no choice at all.
    assert chosen(select(source, storage_versions={("cert-manager.io", "certificates"): "v9"})
                  ) == {"certificates.cert-manager.io": "cert-manager.io/v1"}
