"""Copy-on-write editing of one object that records every change as it makes it.

Conversions run on every object of a snapshot, so they must be cheap: a ``Rewriter`` copies
only the containers on the way to a field it writes (the rest of the new object shares the
untouched parts of the input, which is never modified). Paths are tuples of keys and list
indexes; the change records carry them as JSON Pointers for the report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any

from migrator.resources.objects import Path, has, join_pointer, lookup
from migrator.transform.base import Change, Result, Severity

__all__ = ["Path", "Rewriter", "lookup", "make_change", "pointer"]


@lru_cache(maxsize=8192)
def pointer(path: Path) -> str:
    """The JSON Pointer of ``path``: ``("metadata", "annotations", "a/b")`` is
    ``/metadata/annotations/a~1b``."""
    return join_pointer(*path)


def make_change(
    path: str, action: str, reason: str, severity: Severity, before: Any, after: Any, source: str
) -> Change:
    """``Change(...)`` without the frozen-dataclass ``__init__`` (2 µs → 0.5 µs here).

    Conversions make several changes per object on the transform's hot path; the result is an
    ordinary, equal ``Change`` (a unit test holds it to that).
    """
    change = _new(Change)
    change.__dict__.update(
        path=path,
        action=action,
        reason=reason,
        severity=severity,
        before=before,
        after=after,
        source=source,
    )
    return change


_new = object.__new__


class Rewriter:
    """Edits a shallow copy of ``obj``; ``result()`` returns the new object and its changes."""

    __slots__ = ("obj", "changes", "source", "_owned")

    def __init__(self, obj: dict[str, Any], source: str = "") -> None:
        self.obj: dict[str, Any] = dict(obj)
        self.changes: list[Change] = []
        self.source = source
        self._owned = {id(self.obj)}

    # reading -----------------------------------------------------------------------------

    def get(self, path: Path, default: Any = None) -> Any:
        """The current value at ``path`` (None/default when missing)."""
        return lookup(self.obj, path, default)

    def has(self, path: Path) -> bool:
        """True when ``path`` exists (even with a null value)."""
        return has(self.obj, path)

    def indexes(self, path: Path) -> range:
        """The indexes of the list at ``path`` (empty when it is missing or not a list)."""
        value = self.get(path)
        return range(len(value)) if isinstance(value, list) else range(0)

    # writing -----------------------------------------------------------------------------

    def writable(self, path: Path, create: bool = True) -> Any:
        """The container at ``path``, copied once so that it may be edited in place.

        Missing dictionaries are created when ``create``; None is returned otherwise.
        """
        node: Any = self.obj
        owned = self._owned
        for part in path:
            try:
                child = node[part]
            except (KeyError, IndexError, TypeError):
                child = None
            if child is None:
                if not create or not isinstance(node, dict):
                    return None
                child = {}
            elif id(child) in owned:
                node = child
                continue
            elif type(child) is dict:
                child = dict(child)
            elif type(child) is list:
                child = list(child)
            else:
                return None
            owned.add(id(child))
            node[part] = child
            node = child
        return node

    def put(self, path: Path, value: Any) -> None:
        """Write ``value`` at ``path`` without recording (the caller records the change)."""
        parent = self.writable(path[:-1])
        if parent is None:
            raise ValueError(f"cannot write {pointer(path)}: a parent is not an object")
        parent[path[-1]] = value

    def pop(self, path: Path) -> Any:
        """Remove ``path`` without recording; returns the old value (None if missing)."""
        if not self.has(path):
            return None
        parent = self.writable(path[:-1], create=False)
        return parent.pop(path[-1]) if isinstance(parent, dict) else None

    def record(
        self,
        path: Path,
        action: str,
        reason: str,
        severity: Severity = Severity.INFO,
        before: Any = None,
        after: Any = None,
    ) -> None:
        """Add one change to the report."""
        self.changes.append(
            make_change(pointer(path), action, reason, severity, before, after, self.source)
        )

    def set(
        self,
        path: Path,
        value: Any,
        reason: str,
        severity: Severity = Severity.INFO,
        action: str = "set",
    ) -> None:
        """Write ``value`` at ``path`` and record it (with the value it replaces)."""
        before = self.get(path)
        self.put(path, value)
        self.record(path, action, reason, severity, before, value)

    def default(self, path: Path, value: Any, reason: str) -> bool:
        """Write an old default at ``path`` when the field is missing; True if it wrote."""
        if self.get(path) is not None:
            return False
        self.put(path, value)
        self.record(path, "set", reason, Severity.DEFAULT, None, value)
        return True

    def remove(self, path: Path, reason: str, severity: Severity = Severity.INFO) -> Any:
        """Remove ``path`` if present and record it; returns the old value."""
        if not self.has(path):
            return None
        before = self.pop(path)
        self.record(path, "remove", reason, severity, before)
        return before

    def move(
        self,
        src: Path,
        dst: Path,
        reason: str,
        severity: Severity = Severity.INFO,
        transform: Callable[[Any], Any] | None = None,
    ) -> bool:
        """Move the value at ``src`` to ``dst`` (optionally transformed); True if it moved."""
        if not self.has(src):
            return False
        value = self.pop(src)
        new = transform(value) if transform else value
        self.put(dst, new)
        self.record(
            src,
            "move",
            f"{reason} (now {pointer(dst)})",
            severity,
            value if transform else None,
            new if transform else None,
        )
        return True

    def each(self, path: Path) -> Iterator[tuple[Path, Any]]:
        """Yield ``(item_path, item)`` for each element of the list at ``path``."""
        for index in self.indexes(path):
            item_path = (*path, index)
            yield item_path, self.get(item_path)

    def result(self) -> Result:
        """The new object and the changes, in the order they were made."""
        return Result(self.obj, self.changes)
