"""What an API server serves: its version, API groups and versions, and resources.

Parsing is pure (functions of the decoded ``/version``, ``/api``, ``/apis`` and resource-list
documents) so it is tested on plain JSON; :func:`discover` only fetches. A group/version
whose resource list cannot be fetched (typically an aggregated API whose backend is down and
answers 503) does not fail discovery: it is recorded in :attr:`Discovery.failed`, and callers
decide whether that matters to them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from migrator.errors import ApiError, ClusterUnreachable

if TYPE_CHECKING:
    from migrator.kube.client import Cluster

log = logging.getLogger(__name__)

DEFAULT_WORKERS = 4


@dataclass(frozen=True)
class ServerVersion:
    """The API server's version; ``minor`` is numeric even when the server says "21+"."""

    git_version: str
    major: int
    minor: int

    @property
    def release(self) -> tuple[int, int]:
        """(major, minor), comparable with the release tuples of :mod:`migrator.kube.removals`."""
        return (self.major, self.minor)


@dataclass(frozen=True)
class APIGroup:
    """One API group: ``name`` is "" for the core group; versions are group/version strings."""

    name: str
    versions: tuple[str, ...]
    preferred: str


@dataclass(frozen=True)
class APIResource:
    """One entry of a resource list; ``name`` is the plural, or "plural/sub" for a subresource."""

    group_version: str
    name: str
    kind: str
    namespaced: bool
    verbs: tuple[str, ...] = ()
    short_names: tuple[str, ...] = ()

    @property
    def is_subresource(self) -> bool:
        """True for entries such as ``deployments/scale`` or ``pods/log``."""
        return "/" in self.name

    @property
    def group(self) -> str:
        """The API group ("" for core)."""
        return self.group_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        """The version part of the group/version."""
        return self.group_version.rpartition("/")[2]


@dataclass(frozen=True)
class Discovery:
    """Everything discovery learnt about one API server."""

    version: ServerVersion
    groups: tuple[APIGroup, ...]
    resource_lists: Mapping[str, tuple[APIResource, ...]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    def group_versions(self) -> list[str]:
        """Every served group/version, core first, in the server's order."""
        return [gv for group in self.groups for gv in group.versions]

    def serves(self, group_version: str) -> bool:
        """True if the server advertises ``group_version`` (even if its resource list failed)."""
        return any(group_version in group.versions for group in self.groups)

    def resources(self, group_version: str, *, subresources: bool = False) -> list[APIResource]:
        """The resources of one group/version; subresources only when asked for."""
        listed = self.resource_lists.get(group_version, ())
        return [r for r in listed if subresources or not r.is_subresource]

    def preferred_version(self, group: str) -> str | None:
        """The server's preferred group/version of ``group`` ("" for core), if it serves it."""
        return next((g.preferred for g in self.groups if g.name == group), None)

    def iter_resources(self) -> Iterator[APIResource]:
        """Every top-level resource of every group/version (the same kind may repeat)."""
        for group_version in self.group_versions():
            yield from self.resources(group_version)

    def resource_types(self) -> set[tuple[str, str]]:
        """Distinct (group, plural) pairs: a resource served in several versions counts once."""
        return {(r.group, r.name) for r in self.iter_resources()}

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (a snapshot manifest records what its source served)."""
        return {
            "serverVersion": self.version.git_version,
            "groups": [
                {"name": g.name, "versions": list(g.versions), "preferredVersion": g.preferred}
                for g in self.groups
            ],
            "resources": {
                gv: [
                    {
                        "name": r.name,
                        "kind": r.kind,
                        "namespaced": r.namespaced,
                        "verbs": list(r.verbs),
                        "shortNames": list(r.short_names),
                    }
                    for r in listed
                ]
                for gv, listed in self.resource_lists.items()
            },
            "failed": dict(self.failed),
        }


def listable(resources: Iterable[APIResource]) -> list[APIResource]:
    """Top-level resources that can be listed and read one by one."""
    return [r for r in resources if not r.is_subresource and "list" in r.verbs and "get" in r.verbs]


def group_version_path(group_version: str) -> str:
    """The URL path of a group/version: ``/api/v1`` for core, ``/apis/<group>/<version>`` else."""
    return f"/apis/{group_version}" if "/" in group_version else f"/api/{group_version}"


def parse_version(doc: Mapping[str, Any]) -> ServerVersion:
    """Parse ``/version``. Tolerates "21+" minors and falls back on ``gitVersion``."""
    git_version = str(doc.get("gitVersion") or "")
    major = _leading_int(doc.get("major"))
    minor = _leading_int(doc.get("minor"))
    if major is None or minor is None:
        match = re.match(r"v?(\d+)\.(\d+)", git_version)
        if match:
            major, minor = int(match.group(1)), int(match.group(2))
    return ServerVersion(git_version=git_version, major=major or 0, minor=minor or 0)


def _leading_int(value: Any) -> int | None:
    match = re.match(r"\d+", str(value or ""))
    return int(match.group(0)) if match else None


def parse_core_versions(doc: Mapping[str, Any]) -> APIGroup:
    """Parse ``/api`` (an ``APIVersions``) into the core group."""
    versions = tuple(str(v) for v in doc.get("versions") or ())
    return APIGroup(name="", versions=versions, preferred=versions[0] if versions else "")


def parse_groups(doc: Mapping[str, Any]) -> list[APIGroup]:
    """Parse ``/apis`` (an ``APIGroupList``)."""
    groups = []
    for entry in doc.get("groups") or ():
        listed = entry.get("versions") or ()
        versions = tuple(str(v["groupVersion"]) for v in listed if "groupVersion" in v)
        preferred = (entry.get("preferredVersion") or {}).get("groupVersion")
        groups.append(
            APIGroup(
                name=str(entry.get("name", "")),
                versions=versions,
                preferred=preferred or (versions[0] if versions else ""),
            )
        )
    return groups


def parse_resources(
    doc: Mapping[str, Any], group_version: str | None = None
) -> tuple[APIResource, ...]:
    """Parse one ``APIResourceList``; ``group_version`` defaults to the document's own."""
    gv = group_version or str(doc.get("groupVersion", ""))
    return tuple(
        APIResource(
            group_version=gv,
            name=str(entry["name"]),
            kind=str(entry.get("kind", "")),
            namespaced=bool(entry.get("namespaced", False)),
            verbs=tuple(entry.get("verbs") or ()),
            short_names=tuple(entry.get("shortNames") or ()),
        )
        for entry in doc.get("resources") or ()
        if "name" in entry
    )


def build_discovery(
    version: ServerVersion,
    groups: Sequence[APIGroup],
    resource_docs: Mapping[str, Mapping[str, Any]],
    failed: Mapping[str, str] | None = None,
) -> Discovery:
    """Assemble a :class:`Discovery` from parsed groups and the fetched resource lists."""
    return Discovery(
        version=version,
        groups=tuple(groups),
        resource_lists={gv: parse_resources(doc, gv) for gv, doc in resource_docs.items()},
        failed=dict(failed or {}),
    )


def discover(cluster: Cluster, *, workers: int = DEFAULT_WORKERS) -> Discovery:
    """Ask the cluster what it serves; resource lists are fetched ``workers`` at a time."""
    version = parse_version(cluster.request("GET", "/version"))
    groups = [parse_core_versions(cluster.request("GET", "/api"))]
    groups += parse_groups(cluster.request("GET", "/apis"))
    group_versions = [gv for group in groups for gv in group.versions]

    docs: dict[str, Mapping[str, Any]] = {}
    failed: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(group_versions)))) as pool:
        futures = {
            gv: pool.submit(cluster.request, "GET", group_version_path(gv)) for gv in group_versions
        }
        for gv, future in futures.items():
            try:
                docs[gv] = future.result()
            except (ApiError, ClusterUnreachable) as exc:
                log.warning("discovery of %s failed: %s", gv, exc)
                failed[gv] = str(exc)
    return build_discovery(version, groups, docs, failed)
