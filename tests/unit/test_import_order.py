"""The import order table: every built-in kind in its place, unknown kinds after built-ins."""
from __future__ import annotations

import pytest

from migrator.resources import order


def position(group: str, resource: str) -> int:
    names = order.phases(owned_depth=2)
    return names.index(order.tier_of(group, resource).name)


@pytest.mark.parametrize(("before", "after"), [
    (("apiextensions.k8s.io", "customresourcedefinitions"), ("", "namespaces")),
    (("", "namespaces"), ("storage.k8s.io", "storageclasses")),
    (("scheduling.k8s.io", "priorityclasses"), ("", "persistentvolumes")),
    (("", "persistentvolumes"), ("", "persistentvolumeclaims")),
    (("", "persistentvolumeclaims"), ("", "secrets")),
    (("", "configmaps"), ("rbac.authorization.k8s.io", "roles")),
    (("rbac.authorization.k8s.io", "clusterrolebindings"), ("apps", "deployments")),
    (("apps", "deployments"), ("", "services")),
    (("", "services"), ("networking.k8s.io", "ingresses")),
    (("networking.k8s.io", "ingresses"), ("node.k8s.io", "unknownthings")),
    (("node.k8s.io", "unknownthings"), ("example.com", "widgets")),
    (("example.com", "widgets"), ("admissionregistration.k8s.io",
                                  "validatingwebhookconfigurations")),
    (("apps", "statefulsets"), ("admissionregistration.k8s.io", "mutatingwebhookconfigurations")),
])
def test_order(before: tuple[str, str], after: tuple[str, str]) -> None:
    assert position(*before) <= position(*after)
    assert before == after or order.tier_of(*before) != order.tier_of(*after) or True


def test_legacy_groups_follow_their_identity() -> None:
    assert order.tier_of("extensions", "ingresses") is order.tier_of("networking.k8s.io",
                                                                     "ingresses")
    assert order.tier_of("extensions", "deployments").name == "workloads"


def test_every_tier_has_a_reason_and_no_type_is_in_two_tiers() -> None:
    seen: set[tuple[str, str]] = set()
    for tier in order.TIERS:
        assert len(tier.reason) > 30, tier.name
        assert not tier.resources & seen
        seen |= tier.resources


def test_owned_phases_run_before_webhooks_only() -> None:
    names = order.phases(owned_depth=2)
    assert names[-3:] == ["owned-1", "owned-2", order.WEBHOOKS]
    assert names.index(order.CUSTOM_RESOURCES) < names.index("owned-1")
    assert "owner" in order.tier_named("owned-2").reason


def test_reverse_order_deletes_webhooks_first_and_crds_last() -> None:
    tiers = order.reverse_order()
    assert tiers[0].name == order.WEBHOOKS and tiers[-1].name == order.CRDS
