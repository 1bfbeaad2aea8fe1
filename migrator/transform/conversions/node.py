"""RuntimeClass node.k8s.io/v1alpha1 and v1beta1 → v1.

v1beta1 and v1 keep ``handler``, ``overhead`` and ``scheduling`` at the top level, so those
carry over unchanged. v1alpha1 nested them under ``spec`` (and called the handler
``runtimeHandler``): they move up, the now empty ``spec`` goes.
"""

from __future__ import annotations

from migrator.transform.conversions.convert import Rewrite, renamed
from migrator.transform.conversions.rewriter import Rewriter

V1 = "node.k8s.io/v1"
KIND = "RuntimeClass"


def lift_spec(rw: Rewriter) -> None:
    """v1alpha1's ``spec.runtimeHandler``/``overhead``/``scheduling`` → top-level fields."""
    rw.move(("spec", "runtimeHandler"), ("handler",), "v1 has the handler at the top level")
    for field in ("overhead", "scheduling"):
        rw.move(("spec", field), (field,), f"v1 has {field} at the top level")
    if rw.has(("spec",)) and not rw.get(("spec",)):
        rw.remove(("spec",), "v1 has no spec: every v1alpha1 spec field moved to the top level")


CONVERSIONS = (
    Rewrite(("node.k8s.io/v1alpha1", KIND), (V1, KIND), (lift_spec,)),
    *renamed("node.k8s.io/v1beta1", V1, (KIND,)),
)
