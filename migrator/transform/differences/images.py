"""Image registry rewrite: every container of every pod an object creates.

Init and ephemeral containers, CronJob job templates and bare Pods included (see
:mod:`migrator.transform.podspecs`). A prefix matches on a path boundary: ``registry.old``
rewrites ``registry.old/app:1`` but not ``registry.older/app:1``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from migrator.transform.base import Change
from migrator.transform.differences.base import Obj, set_value
from migrator.transform.podspecs import POD_KINDS, containers


def rewrite_image(image: str, mapping: Mapping[str, str]) -> str:
    """``image`` with the longest matching registry prefix of ``mapping`` replaced."""
    for old in sorted(mapping, key=len, reverse=True):
        prefix = old.rstrip("/")
        if image == prefix or image.startswith(prefix + "/"):
            return mapping[old].rstrip("/") + image[len(prefix) :]
    return image


@dataclass(frozen=True)
class RegistryRewrite:
    """Point images at the new cluster's registry (or mirror)."""

    mapping: Mapping[str, str]
    name: str = "differences.registries"
    kinds: frozenset[tuple[str, str]] = POD_KINDS

    def apply(self, obj: Obj) -> list[Change]:
        changes = []
        for pointer, container in containers(obj):
            image = container.get("image")
            if not isinstance(image, str):
                continue
            changes += set_value(
                container,
                "image",
                rewrite_image(image, self.mapping),
                f"{pointer}/image",
                self.name,
                "image registry rewritten for the new cluster",
            )
        return changes
