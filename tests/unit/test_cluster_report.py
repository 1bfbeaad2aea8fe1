"""The cluster report and the comparison of two clusters, from plain data."""
from __future__ import annotations

from typing import Any

import pytest

from migrator.kube import removals
from migrator.kube.discovery import APIGroup, ServerVersion, build_discovery
from migrator.kube.summary import build_report, compare_reports, summarize_nodes

pytestmark = pytest.mark.unit


def node(name: str, ready: str | None) -> dict[str, Any]:
    conditions = [{"type": "MemoryPressure", "status": "False"}]
    if ready is not None:
        conditions.append({"type": "Ready", "status": ready})
    return {"metadata": {"name": name}, "status": {"conditions": conditions}}


def test_summarize_nodes_counts_ready_ones() -> None:
    nodes = [node("b", "True"), node("a", "False"), node("c", None), node("d", "Unknown")]
    assert summarize_nodes(nodes) == {"count": 4, "ready": 1, "names": ["a", "b", "c", "d"]}


def report_for(context: str, minor: int, group_versions: list[str]) -> dict[str, Any]:
    groups = [APIGroup(gv.rpartition("/")[0], (gv,), gv) for gv in group_versions]
    resources = {gv: {"resources": [{"name": "things", "kind": "Thing"}]} for gv in group_versions}
    version = ServerVersion(f"v1.{minor}.0", 1, minor)
    discovery = build_discovery(version, groups, resources, {"metrics.k8s.io/v1beta1": "503"})
    return build_report(context, "https://127.0.0.1:6443", discovery, summarize_nodes([]))


OLD = ["v1", "apps/v1", "extensions/v1beta1", "batch/v1", "batch/v1beta1", "policy/v1beta1"]
NEW = ["v1", "apps/v1", "batch/v1", "policy/v1", "resource.k8s.io/v1"]


def test_build_report() -> None:
    report = report_for("old", 21, OLD)
    assert report["version"] == {"gitVersion": "v1.21.0", "major": 1, "minor": 21}
    assert report["groupVersions"] == OLD
    assert report["deprecatedGroupVersions"] == [
        {"groupVersion": "extensions/v1beta1", "removedIn": "1.22"},
        {"groupVersion": "batch/v1beta1", "removedIn": "1.25"},
        {"groupVersion": "policy/v1beta1", "removedIn": "1.25"},
    ]
    # One "things" resource per group: core, apps, extensions, batch (twice), policy.
    assert report["resourceTypes"] == 5
    assert report["failedDiscovery"] == {"metrics.k8s.io/v1beta1": "503"}
    assert report["nodes"] == {"count": 0, "ready": 0, "names": []}


def test_compare_reports_lists_what_the_target_lacks() -> None:
    comparison = compare_reports([report_for("old", 21, OLD), report_for("new", 33, NEW)])
    assert comparison == {
        "source": "old",
        "targets": [
            {
                "target": "new",
                "missingInTarget": [
                    {"groupVersion": "extensions/v1beta1", "removedIn": "1.22"},
                    {"groupVersion": "batch/v1beta1", "removedIn": "1.25"},
                    {"groupVersion": "policy/v1beta1", "removedIn": "1.25"},
                ],
                "onlyInTarget": ["policy/v1", "resource.k8s.io/v1"],
            }
        ],
    }


def test_compare_reports_needs_two() -> None:
    with pytest.raises(ValueError):
        compare_reports([report_for("old", 21, OLD)])


@pytest.mark.parametrize(
    ("group_version", "release", "removed"),
    [
        ("extensions/v1beta1", (1, 21), False),
        ("extensions/v1beta1", (1, 22), True),
        ("flowcontrol.apiserver.k8s.io/v1beta3", (1, 31), False),
        ("flowcontrol.apiserver.k8s.io/v1beta3", (1, 33), True),
        ("apps/v1", (1, 33), False),
    ],
)
def test_is_removed_by(group_version: str, release: tuple[int, int], removed: bool) -> None:
    assert removals.is_removed_by(group_version, release) is removed


def test_removal_table_is_well_formed() -> None:
    for group_version, release in removals.REMOVED_IN.items():
        assert "/" in group_version and group_version.count("/") == 1
        assert release[0] == 1 and 16 <= release[1] <= 40
