"""Lease coordination.k8s.io/v1beta1 → v1: the same fields."""

from __future__ import annotations

from migrator.transform.conversions.convert import renamed

CONVERSIONS = renamed("coordination.k8s.io/v1beta1", "coordination.k8s.io/v1", ("Lease",))
