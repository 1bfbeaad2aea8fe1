"""Snapshot addresses: ID in the default store, STORE_URL/ID, and ids that are not names."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from migrator.errors import ConfigError
from migrator.snapshot.address import default_snapshot_id, parse_address


@pytest.mark.parametrize(("address", "expected"), [
    ("prod-1", ("./snapshots", "prod-1")),
    ("prod-1/", ("./snapshots", "prod-1")),
    ("./snaps/prod-1", ("./snaps", "prod-1")),
    ("/srv/snaps/prod-1", ("/srv/snaps", "prod-1")),
    ("/prod-1", ("/", "prod-1")),
    ("s3://bucket/prefix/prod-1", ("s3://bucket/prefix", "prod-1")),
    ("file:///srv/snaps/prod-1", ("file:///srv/snaps", "prod-1")),
])
def test_addresses(address: str, expected: tuple[str, str]) -> None:
    assert parse_address(address, "./snapshots") == expected


@pytest.mark.parametrize("address", ["..", "snaps/..", ".", "s3://bucket", "a b"])
def test_what_does_not_name_a_snapshot_is_refused(address: str) -> None:
    with pytest.raises(ConfigError):
        parse_address(address, "./snapshots")


def test_default_id_is_the_context_and_the_time() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert default_snapshot_id("arn:aws:eks:eu-west-1:1:cluster/prod", when) == (
        "arn-aws-eks-eu-west-1-1-cluster-prod-20260102T030405Z")
    assert default_snapshot_id("///", when) == "cluster-20260102T030405Z"
