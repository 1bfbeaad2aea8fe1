"""FlowSchema and PriorityLevelConfiguration flowcontrol.apiserver.k8s.io v1beta1/2/3 → v1.

A chain (the registry follows it to the newest version the target serves): v1beta1 → v1beta2
is the same layout; v1beta3 renamed ``assuredConcurrencyShares`` to
``nominalConcurrencyShares``; v1 lets 0 mean 0, which v1beta3 expressed with an annotation
that v1 forbids.
"""

from __future__ import annotations

from migrator.transform.base import Severity
from migrator.transform.conversions.convert import Rewrite, renamed
from migrator.transform.conversions.rewriter import Rewriter

GROUP = "flowcontrol.apiserver.k8s.io"
V1BETA1, V1BETA2, V1BETA3, V1 = (f"{GROUP}/{v}" for v in ("v1beta1", "v1beta2", "v1beta3", "v1"))
PLC = "PriorityLevelConfiguration"
ZERO_ANNOTATION = "flowcontrol.k8s.io/v1beta3-preserve-zero-concurrency-shares"
DEFAULT_SHARES = 30


def v1beta3_edit(rw: Rewriter) -> None:
    """assuredConcurrencyShares → nominalConcurrencyShares (old default 30 when unset)."""
    limited = ("spec", "limited")
    if rw.get(limited) is None:
        return
    if not rw.move(
        (*limited, "assuredConcurrencyShares"),
        (*limited, "nominalConcurrencyShares"),
        "renamed in v1beta3",
    ):
        rw.default((*limited, "nominalConcurrencyShares"), DEFAULT_SHARES, "v1beta2 defaulted 30")


def v1_edit(rw: Rewriter) -> None:
    """v1beta3's 0 meant 30 unless the zero-preserving annotation said otherwise."""
    annotation = ("metadata", "annotations", ZERO_ANNOTATION)
    shares = ("spec", "limited", "nominalConcurrencyShares")
    preserve_zero = rw.has(annotation)
    if rw.get(("spec", "limited")) is not None and not rw.get(shares) and not preserve_zero:
        rw.set(
            shares,
            DEFAULT_SHARES,
            "v1beta3 read 0 or unset as the default 30; in v1 0 means 0",
            Severity.DEFAULT,
        )
    if preserve_zero:
        rw.remove(
            annotation, "v1 forbids the v1beta3 round-trip annotation; 0 already means 0 in v1"
        )
        if not rw.get(("metadata", "annotations")):
            rw.pop(("metadata", "annotations"))


CONVERSIONS = (
    *renamed(V1BETA1, V1BETA2, ("FlowSchema", PLC)),
    *renamed(V1BETA2, V1BETA3, ("FlowSchema",)),
    Rewrite((V1BETA2, PLC), (V1BETA3, PLC), (v1beta3_edit,)),
    *renamed(V1BETA3, V1, ("FlowSchema",)),
    Rewrite((V1BETA3, PLC), (V1, PLC), (v1_edit,)),
)
