"""What every transformation shares: the record of a change and the conversion contract.

A conversion rewrites one object from a group/version the target no longer serves to its
replacement, field by field. It declares what it applies to (``source``) and what it
produces (``target``), and returns the new object together with every change it made, so
the transform report falls out of the records and nothing is dropped silently.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Protocol


class Severity(enum.StrEnum):
    """How much a person should care about a change."""

    INFO = "info"  # mechanical rewrite, same meaning (field renamed, value restructured)
    DEFAULT = "default"  # an old default written out explicitly so behaviour does not change
    REVIEW = "review"  # meaning may differ: a person should look (e.g. pruning now applies)
    LOSS = "loss"  # information the new version cannot carry was dropped
    DROP = "drop"  # the whole object cannot exist on the target (no successor)


@dataclass(frozen=True)
class Change:
    """One change to one object, as the report shows it.

    ``path`` is a JSON Pointer into the object (``/spec/backend``), or ``""`` for the object
    as a whole. ``before``/``after`` are omitted for Secret data by the report (never printed).
    """

    path: str
    action: str  # "set", "remove", "move", "convert", "drop"
    reason: str
    severity: Severity = Severity.INFO
    before: Any = None
    after: Any = None
    source: str = ""  # which conversion or rule made it (filled by the runner if empty)

    def to_dict(self) -> dict[str, Any]:
        data = {
            "path": self.path,
            "action": self.action,
            "reason": self.reason,
            "severity": self.severity.value,
            "source": self.source,
        }
        if self.before is not None:
            data["before"] = self.before
        if self.after is not None:
            data["after"] = self.after
        return data


@dataclass
class Result:
    """What a conversion returns: the new object (None when dropped) and its changes."""

    obj: dict[str, Any] | None
    changes: list[Change] = field(default_factory=list)

    @property
    def dropped(self) -> bool:
        return self.obj is None


class Conversion(Protocol):
    """Rewrites objects of ``source`` (apiVersion, kind) into ``target`` (apiVersion, kind).

    ``target`` is None for kinds with no successor (the object is dropped, with a reason and
    a suggested replacement in the change). ``removed_in`` is the Kubernetes minor release
    that stopped serving ``source`` (``(1, 22)``). ``convert`` must not modify its input.
    """

    source: tuple[str, str]
    target: tuple[str, str] | None
    removed_in: tuple[int, int]

    def convert(self, obj: dict[str, Any]) -> Result: ...
