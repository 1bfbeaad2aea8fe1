"""Reading a settings mapping (a YAML section, flags laid over it) field by field.

:class:`Fields` wraps one mapping at its path in the document (``volumes``,
``traffic.gates.http``): each typed getter returns the value or its default and, when the
value is wrong, raises :class:`~migrator.errors.SettingsInvalid` (or the child the caller
names) with the field's full path and a problem a person can act on
(``traffic.steps[2]: must be between 0 and 100 (got 150)``). :meth:`Fields.done` then
refuses any key no getter asked for, so a misspelt setting is never silently ignored.

The plan file and the traffic stage's settings share it, so a setting reads the same way
wherever it is written. Durations are seconds: a number, or text such as ``90s``, ``10m``,
``1h30m`` or ``2d``.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from migrator.errors import SettingsInvalid

__all__ = [
    "Fields",
    "SettingsInvalid",
    "duration",
    "format_duration",
    "integer",
    "kind",
    "number",
]

ErrorClass = type[SettingsInvalid]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|d|h|m|s)")
_DURATION = re.compile(rf"(?:{_DURATION_PART.pattern})+")


def kind(value: Any) -> str:
    """What ``value`` is, as a person reading the YAML would say it (never the whole of a
    string, which may be long or private)."""
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "nothing"
    return "a list" if isinstance(value, list) else repr(value)


def _in_range(
    value: float, path: str, minimum: float, maximum: float | None, error: ErrorClass, show: Any
) -> None:
    if value >= minimum and (maximum is None or value <= maximum):
        return
    if maximum is None:
        raise error(path, f"must be at least {show(minimum)} (got {show(value)})")
    raise error(path, f"must be between {show(minimum)} and {show(maximum)} (got {show(value)})")


def number(
    value: Any,
    path: str,
    minimum: float = 0.0,
    maximum: float | None = None,
    *,
    error: ErrorClass = SettingsInvalid,
) -> float:
    """``value`` (a number, or its text) within ``minimum``..``maximum``."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise error(path, f"expected a number, got {kind(value)}")
    try:
        result = float(value)
    except ValueError:
        raise error(path, f"expected a number, got {value!r}") from None
    if not math.isfinite(result):
        raise error(path, f"expected a number, got {value!r}")
    _in_range(result, path, minimum, maximum, error, lambda n: f"{n:g}")
    return result


def integer(
    value: Any,
    path: str,
    minimum: int = 0,
    maximum: int | None = None,
    *,
    error: ErrorClass = SettingsInvalid,
) -> int:
    """``value`` (a whole number, or its text) within ``minimum``..``maximum``."""
    result = number(value, path, minimum, maximum, error=error)
    if result != int(result):
        raise error(path, f"expected a whole number, got {value!r}")
    return int(result)


def duration(
    value: Any,
    path: str,
    minimum: float = 0.0,
    maximum: float | None = None,
    *,
    error: ErrorClass = SettingsInvalid,
) -> float:
    """Seconds: ``value`` is a number of seconds, or text such as ``500ms``, ``90s``,
    ``10m``, ``1h30m``, ``2d`` (units may be combined, largest first or not)."""
    seconds = math.nan
    if isinstance(value, str) and _DURATION.fullmatch(value.strip()):
        seconds = sum(
            float(amount) * _UNITS[unit] for amount, unit in _DURATION_PART.findall(value)
        )
    elif isinstance(value, int | float | str) and not isinstance(value, bool):
        with contextlib.suppress(ValueError):
            seconds = float(value)
    if not math.isfinite(seconds):
        shown = repr(value) if isinstance(value, str) else kind(value)
        raise error(
            path, f"expected a duration such as 90s, 10m or 1h30m (or seconds), got {shown}"
        )
    _in_range(seconds, path, minimum, maximum, error, format_duration)
    return seconds


def format_duration(seconds: float) -> str:
    """``seconds`` the way :func:`duration` reads it back: ``1h30m``, ``45s``, ``0.5s``."""
    if seconds < 0:
        return "-" + format_duration(-seconds)
    if seconds != int(seconds) or seconds < 60:
        return f"{seconds:g}s"
    parts = []
    rest = int(seconds)
    for unit in ("d", "h", "m", "s"):
        amount, rest = divmod(rest, int(_UNITS[unit]))
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts)


class Fields:
    """A mapping being read at ``path`` (``""`` for a document's top): typed getters that
    fail naming the field with ``error`` (a :class:`SettingsInvalid` class), and a check
    that no unknown key is left (:meth:`done`). A key whose value is null reads as missing.
    """

    def __init__(self, doc: Any, path: str, *, error: ErrorClass = SettingsInvalid) -> None:
        if doc is None:
            doc = {}
        if not isinstance(doc, Mapping):
            raise error(path, f"expected a mapping, got {kind(doc)}")
        self.doc: Mapping[Any, Any] = doc
        self.path = path
        self.error = error
        self.read: set[str] = set()

    def at(self, key: str) -> str:
        """The path of ``key`` in the document."""
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        """True if ``key`` is given (and not null)."""
        return self.doc.get(key) is not None

    def raw(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        value = self.doc.get(key)
        return default if value is None else value

    def sub(self, key: str) -> Fields:
        """The mapping under ``key`` (empty when missing)."""
        return Fields(self.raw(key), self.at(key), error=self.error)

    def string(self, key: str, default: str | None = None) -> str | None:
        value = self.raw(key, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self.error(self.at(key), f"expected a string, got {kind(value)}")
        return str(value)

    def required(self, key: str, what: str) -> str:
        value = self.string(key)
        if not value:
            raise self.error(self.at(key), f"required: {what}")
        return value

    def choice(self, key: str, default: str, choices: Sequence[str]) -> str:
        """One of ``choices`` (``default`` when missing)."""
        value = self.string(key, default) or default
        if value not in choices:
            raise self.error(self.at(key), f"{value!r}: expected one of {', '.join(choices)}")
        return value

    def choice_list(self, key: str, choices: Sequence[str]) -> tuple[str, ...]:
        """A list of some of ``choices`` (empty when missing)."""
        values = self.string_list(key)
        for i, value in enumerate(values):
            if value not in choices:
                raise self.error(
                    f"{self.at(key)}[{i}]", f"{value!r}: expected one of {', '.join(choices)}"
                )
        return values

    def number(
        self, key: str, default: float, *, minimum: float = 0.0, maximum: float | None = None
    ) -> float:
        return number(self.raw(key, default), self.at(key), minimum, maximum, error=self.error)

    def integer(
        self, key: str, default: int, *, minimum: int = 0, maximum: int | None = None
    ) -> int:
        return integer(self.raw(key, default), self.at(key), minimum, maximum, error=self.error)

    def duration(
        self, key: str, default: float, *, minimum: float = 0.0, maximum: float | None = None
    ) -> float:
        """Seconds (see :func:`duration`)."""
        return duration(self.raw(key, default), self.at(key), minimum, maximum, error=self.error)

    def boolean(self, key: str, default: bool) -> bool:
        value = self.raw(key, default)
        if not isinstance(value, bool):
            raise self.error(self.at(key), f"expected true or false, got {kind(value)}")
        return value

    def optional_boolean(self, key: str) -> bool | None:
        """true, false, or None when missing (null)."""
        value = self.raw(key)
        if value is not None and not isinstance(value, bool):
            raise self.error(self.at(key), f"expected true, false or null, got {kind(value)}")
        return value

    def items(self, key: str) -> Iterator[tuple[str, Any]]:
        """(path, item) of a list field (empty when missing)."""
        value = self.raw(key, [])
        if isinstance(value, str | Mapping) or not isinstance(value, Sequence):
            raise self.error(self.at(key), f"expected a list, got {kind(value)}")
        for i, item in enumerate(value):
            yield f"{self.at(key)}[{i}]", item

    def string_list(self, key: str) -> tuple[str, ...]:
        """A list of non-empty strings (empty when missing)."""
        values = []
        for path, item in self.items(key):
            if isinstance(item, bool) or not isinstance(item, str | int | float) or item == "":
                raise self.error(path, f"expected a non-empty string, got {kind(item)}")
            values.append(str(item))
        return tuple(values)

    def string_map(self, key: str) -> dict[str, str]:
        """A mapping of non-empty strings to strings (empty when missing)."""
        value = self.raw(key, {})
        if not isinstance(value, Mapping):
            raise self.error(self.at(key), f"expected a mapping, got {kind(value)}")
        result = {}
        for name, item in value.items():
            path = f"{self.at(key)}.{name}"
            if isinstance(item, bool) or not isinstance(item, str | int | float) or item == "":
                raise self.error(path, f"expected a non-empty string, got {kind(item)}")
            result[str(name)] = str(item)
        return result

    def only(self, *keys: str) -> None:
        """Refuse now any key but ``keys`` (a misspelt key is then named before a required
        one it was meant to be is missed)."""
        self.read.update(keys)
        self.done()

    def done(self) -> None:
        """Refuse the first key (in the document's order) that no getter read."""
        unknown = [str(key) for key in self.doc if str(key) not in self.read]
        if unknown:
            raise self.error(
                self.at(unknown[0]),
                f"unknown setting (known here: {', '.join(sorted(self.read))})",
            )
