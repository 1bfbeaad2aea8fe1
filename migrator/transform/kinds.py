"""Where a converted object is stored: its (group, version, resource) from its apiVersion/kind.

A conversion may move an object to another group (extensions Ingress → networking.k8s.io),
so the runner must find the plural resource name of the new kind. The target's discovery is
asked first (it knows every kind it serves, custom ones included); without a target cluster
(``--target-version``) the built-in table of Kubernetes' own kinds answers
(:mod:`migrator.resources.kinds`).
"""

from __future__ import annotations

from dataclasses import dataclass

from migrator.kube.discovery import Discovery
from migrator.resources.identity import split_api_version
from migrator.resources.kinds import builtin_placement


@dataclass(frozen=True)
class Placement:
    """Where an object goes in a snapshot."""

    group: str
    version: str
    resource: str
    kind: str
    namespaced: bool

    @property
    def ident(self) -> tuple[str, str, str]:
        return self.group, self.version, self.resource


class Resolver:
    """Finds the resource of an apiVersion/kind: target discovery, then the built-in table."""

    def __init__(self, discovery: Discovery | None = None) -> None:
        self._discovery = discovery
        self._cache: dict[tuple[str, str], Placement | None] = {}

    def placement(self, api_version: str, kind: str) -> Placement | None:
        """The placement of ``kind`` in ``api_version``, or None if nothing knows it."""
        key = (api_version, kind)
        if key not in self._cache:
            self._cache[key] = self._lookup(api_version, kind)
        return self._cache[key]

    def _lookup(self, api_version: str, kind: str) -> Placement | None:
        group, version = split_api_version(api_version)
        if self._discovery is not None:
            for resource in self._discovery.resources(api_version):
                if resource.kind == kind:
                    return Placement(group, version, resource.name, kind, resource.namespaced)
        known = builtin_placement(group, kind)
        if known is None:
            return None
        return Placement(group, version, known[0], kind, known[1])
