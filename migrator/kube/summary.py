"""A summary of one cluster, and what separates two clusters' APIs.

Used by ``migrator discover`` and, later, by preflight: before moving anything, know each
cluster's version, nodes, what it serves, which of those group/versions are on their way out,
and which the target does not serve (what the transform stage will have to convert).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from migrator.kube.client import Cluster
from migrator.kube.discovery import Discovery, discover
from migrator.kube.pager import iter_items
from migrator.kube.removals import format_release, removed_in


def cluster_id(cluster: Cluster) -> str:
    """A stable identity of a cluster, whatever context or address reaches it: the uid of its
    ``kube-system`` namespace (a cluster rebuilt at the same address is another cluster)."""
    meta = cluster.request("GET", "/api/v1/namespaces/kube-system").get("metadata") or {}
    return str(meta.get("uid") or "unknown")


def cluster_report(cluster: Cluster, discovery: Discovery | None = None) -> dict[str, Any]:
    """Discover ``cluster`` (unless ``discovery`` is given), count its nodes, and summarise."""
    found = discovery or discover(cluster)
    nodes = summarize_nodes(iter_items(cluster, "/api/v1/nodes"))
    return build_report(cluster.context, cluster.server, found, nodes)


def summarize_nodes(nodes: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Node count, names and how many report the Ready condition as True."""
    names: list[str] = []
    ready = 0
    for node in nodes:
        names.append(str((node.get("metadata") or {}).get("name", "")))
        conditions = (node.get("status") or {}).get("conditions") or ()
        if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
            ready += 1
    return {"count": len(names), "ready": ready, "names": sorted(names)}


def build_report(
    context: str, server: str, discovery: Discovery, nodes: Mapping[str, Any]
) -> dict[str, Any]:
    """The report as plain data (JSON-ready), from what was discovered and counted."""
    served = discovery.group_versions()
    deprecated = []
    for group_version in served:
        release = removed_in(group_version)
        if release is not None:
            deprecated.append({"groupVersion": group_version, "removedIn": format_release(release)})
    version = discovery.version
    return {
        "context": context,
        "server": server,
        "version": {
            "gitVersion": version.git_version,
            "major": version.major,
            "minor": version.minor,
        },
        "nodes": dict(nodes),
        "groupVersions": served,
        "deprecatedGroupVersions": deprecated,
        "resourceTypes": len(discovery.resource_types()),
        "failedDiscovery": dict(discovery.failed),
    }


def compare_reports(reports: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Compare the first report (the source) with each of the others (targets).

    For each target: the group/versions the source serves and the target does not (the
    objects stored at those versions must be converted), and the reverse, for information.
    """
    if len(reports) < 2:
        raise ValueError("compare_reports needs at least two reports")
    source, *targets = reports
    source_gvs = list(source["groupVersions"])
    comparisons = []
    for target in targets:
        target_gvs = set(target["groupVersions"])
        missing = [gv for gv in source_gvs if gv not in target_gvs]
        comparisons.append(
            {
                "target": target["context"],
                "missingInTarget": [
                    {"groupVersion": gv, "removedIn": _removal_text(gv)} for gv in missing
                ],
                "onlyInTarget": sorted(target_gvs.difference(source_gvs)),
            }
        )
    return {"source": source["context"], "targets": comparisons}


def _removal_text(group_version: str) -> str | None:
    release = removed_in(group_version)
    return format_release(release) if release else None
