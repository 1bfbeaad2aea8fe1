"""Label selectors matched as the API server matches them, and the teardown's order of kinds
(the import's backwards)."""

from __future__ import annotations

from migrator.resources import order
from migrator.resources.selectors import selects


def test_match_labels_and_every_operator() -> None:
    labels = {"app": "web", "tier": "front"}
    assert selects({"matchLabels": {"app": "web"}}, labels)
    assert not selects({"matchLabels": {"app": "db"}}, labels)
    assert selects(
        {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "x"]}]}, labels
    )
    assert not selects(
        {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["front"]}]}, labels
    )
    assert selects(
        {"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}, labels
    )
    assert selects({"matchExpressions": [{"key": "app", "operator": "Exists"}]}, labels)
    assert not selects({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}, labels)
    assert not selects(
        {"matchExpressions": [{"key": "app", "operator": "Gt", "values": ["1"]}]}, labels
    )


def test_an_empty_selector_selects_everything_and_a_missing_one_nothing() -> None:
    assert selects({}, {"a": "b"}) and selects({}, None)
    assert not selects(None, {"a": "b"})


def test_teardown_goes_through_the_import_order_backwards() -> None:
    types = [
        ("", "namespaces"),
        ("apps", "deployments"),
        ("", "services"),
        ("", "configmaps"),
        ("", "replicationcontrollers"),
    ]
    assert order.teardown_order(types) == [
        ("", "services"),
        ("", "replicationcontrollers"),
        ("apps", "deployments"),
        ("", "configmaps"),
        ("", "namespaces"),
    ]
