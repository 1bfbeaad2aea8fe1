"""PriorityClass scheduling.k8s.io/v1beta1 → v1: the same fields."""

from __future__ import annotations

from migrator.transform.conversions.convert import renamed

CONVERSIONS = renamed("scheduling.k8s.io/v1beta1", "scheduling.k8s.io/v1", ("PriorityClass",))
