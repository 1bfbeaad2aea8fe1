"""Kubernetes resource quantities (``500m``, ``1Gi``, ``2``, ``1e3``) as numbers.

CPU is counted in cores (``500m`` is 0.5) and memory in bytes (``1Gi`` is 1073741824): the
units the API server itself uses when it compares requests with a node's allocatable.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from migrator.errors import ConfigError

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)([a-zA-Z]*)$")


def parse_quantity(text: str | int | float) -> Decimal:
    """The value of a quantity in its base unit; :class:`ConfigError` when it is not one."""
    if isinstance(text, int | float):
        return Decimal(str(text))
    match = _QUANTITY.match(str(text).strip())
    suffix = match.group(2) if match else ""
    if not match or (suffix not in _BINARY and suffix not in _DECIMAL):
        raise ConfigError(f"{text!r} is not a Kubernetes quantity (e.g. 500m, 2, 1Gi, 1.5G)")
    try:
        number = Decimal(match.group(1))
    except InvalidOperation as exc:  # pragma: no cover - the pattern admits only numbers
        raise ConfigError(f"{text!r} is not a Kubernetes quantity") from exc
    factor = _BINARY.get(suffix) or _DECIMAL[suffix]
    return number * factor
