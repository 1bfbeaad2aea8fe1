"""The two shapes every built-in conversion takes: rewrite to a successor, or drop.

A module per API group builds its conversions from these, each declaring the
(apiVersion, kind) it applies to; the release that removed the source comes from
``migrator.kube.removals`` so the table lives in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from migrator.kube import removals
from migrator.transform.base import Change, Result, Severity
from migrator.transform.conversions.rewriter import Rewriter

Edit = Callable[[Rewriter], None]


def _removed_in(source: tuple[str, str]) -> tuple[int, int]:
    release = removals.kind_removed_in(*source)
    if release is None:
        raise ValueError(f"{source[0]} {source[1]} is not in migrator.kube.removals")
    return release


@dataclass(frozen=True)
class Rewrite:
    """Converts ``source`` to ``target``: sets apiVersion/kind, then runs each edit in turn."""

    source: tuple[str, str]
    target: tuple[str, str]
    edits: tuple[Edit, ...] = ()
    removed_in: tuple[int, int] = field(init=False)
    name: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "removed_in", _removed_in(self.source))
        object.__setattr__(
            self, "name", f"convert {self.source[0]} {self.source[1]} → {self.target[0]}"
        )

    def convert(self, obj: dict[str, Any]) -> Result:
        """The object at ``target``, with a change for the version and for every field edit."""
        rw = Rewriter(obj, self.name)
        api_version, kind = self.target
        rw.set(
            ("apiVersion",),
            api_version,
            f"{self.source[0]} is not served from {removals.format_release(self.removed_in)} on",
            action="convert",
        )
        if kind != self.source[1]:
            rw.set(
                ("kind",),
                kind,
                f"{self.source[1]} is called {kind} in {api_version}",
                action="convert",
            )
        for edit in self.edits:
            edit(rw)
        return rw.result()


@dataclass(frozen=True)
class Drop:
    """A kind with no successor: the object is dropped with a reason and a suggestion."""

    source: tuple[str, str]
    reason: str
    suggest: Callable[[dict[str, Any]], Any] = lambda obj: None
    target: None = None
    removed_in: tuple[int, int] = field(init=False)
    name: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "removed_in", _removed_in(self.source))
        object.__setattr__(self, "name", f"drop {self.source[0]} {self.source[1]}")

    def convert(self, obj: dict[str, Any]) -> Result:
        return Result(
            None,
            [Change("", "drop", self.reason, Severity.DROP, None, self.suggest(obj), self.name)],
        )


_RANK = {severity: rank for rank, severity in enumerate(Severity)}


def worst_severity(changes: list[Change]) -> Severity:
    """The most serious severity among ``changes`` (INFO when there are none)."""
    return max((c.severity for c in changes), key=_RANK.__getitem__, default=Severity.INFO)


def renamed(
    source_version: str, target_version: str, kinds: tuple[str, ...], *edits: Edit
) -> tuple[Rewrite, ...]:
    """Conversions for kinds whose fields are the same in both versions (only apiVersion moves)."""
    return tuple(
        Rewrite((source_version, kind), (target_version, kind), tuple(edits)) for kind in kinds
    )
