"""RuntimeClass node.k8s.io/v1beta1 → v1.

Both keep ``handler``, ``overhead`` and ``scheduling`` at the top level (only v1alpha1 nested
them under ``spec``), so the fields carry over unchanged.
"""
from __future__ import annotations

from migrator.transform.conversions.convert import renamed

CONVERSIONS = renamed("node.k8s.io/v1beta1", "node.k8s.io/v1", ("RuntimeClass",))
