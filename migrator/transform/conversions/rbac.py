"""Roles and bindings rbac.authorization.k8s.io/v1beta1 → v1: the same fields."""

from __future__ import annotations

from migrator.transform.conversions.convert import renamed

CONVERSIONS = renamed(
    "rbac.authorization.k8s.io/v1beta1",
    "rbac.authorization.k8s.io/v1",
    ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"),
)
