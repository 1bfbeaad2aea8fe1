"""Event events.k8s.io/v1beta1 → v1: the same fields (v1 only tightened validation)."""

from __future__ import annotations

from migrator.transform.conversions.convert import renamed

CONVERSIONS = renamed("events.k8s.io/v1beta1", "events.k8s.io/v1", ("Event",))
