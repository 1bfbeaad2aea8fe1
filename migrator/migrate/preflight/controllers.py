"""``crd-controllers``: custom resources in scope whose controller will be missing in the
target.

A heuristic (Kubernetes records no link from a CRD to what reconciles it): a controller of a
CRD is a Deployment, StatefulSet or DaemonSet of the source whose ServiceAccount is bound
(ClusterRoleBinding or RoleBinding) to a role granting ``watch`` or ``list`` on the CRD's
group and plural. Rules that grant every resource of every group (Argo CD, backup tools,
cluster-admin) are not counted: they would make anything that reads everything the
controller of every CRD. A controller is present when the same workload exists in the
target or is inside the export's scope (it will be imported). Only a warn, never a fail.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from migrator.errors import ApiError
from migrator.migrate.preflight.context import SOURCE, Context
from migrator.migrate.preflight.result import PASS, WARN, CheckResult, bounded
from migrator.resources.crds import CrdInfo, crd_info, live_crds
from migrator.resources.objects import dig, name_of, namespace_of
from migrator.resources.paths import object_path

RBAC = "rbac.authorization.k8s.io/v1"
WORKLOADS = (
    ("Deployment", "deployments"),
    ("StatefulSet", "statefulsets"),
    ("DaemonSet", "daemonsets"),
)
READ_VERBS = frozenset({"watch", "list", "*"})


@dataclass(frozen=True)
class Workload:
    kind: str
    resource: str
    namespace: str
    name: str
    account: str

    def describe(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


def grants_read(rules: Iterable[Mapping[str, Any]], group: str, plural: str) -> bool:
    """True if ``rules`` grant watch or list on ``group``'s ``plural`` (see the module doc
    for the everything-everywhere rules left out)."""
    for rule in rules:
        groups = set(rule.get("apiGroups") or ())
        resources = set(rule.get("resources") or ())
        if "*" in groups and "*" in resources:
            continue
        if not (groups & {group, "*"} and resources & {plural, "*"}):
            continue
        if READ_VERBS & set(rule.get("verbs") or ()):
            return True
    return False


def workload_of(kind: str, resource: str, obj: Mapping[str, Any]) -> Workload:
    spec = dig(obj, "spec", "template", "spec") or {}
    account = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    return Workload(kind, resource, namespace_of(obj), name_of(obj), str(account))


def bound_accounts(
    bindings: Iterable[Mapping[str, Any]], roles: Mapping[tuple[str, str, str], list[Any]]
) -> dict[tuple[str, str], list[list[Any]]]:
    """(namespace, service account) → the rule lists bound to it. ``roles`` maps
    (kind, namespace, name) to rules: ("ClusterRole", "", name) or ("Role", ns, name)."""
    found: dict[tuple[str, str], list[list[Any]]] = {}
    for binding in bindings:
        role_ref = binding.get("roleRef") or {}
        kind, namespace = str(role_ref.get("kind")), namespace_of(binding)
        rules = roles.get((kind, namespace if kind == "Role" else "", str(role_ref.get("name"))))
        if not rules:
            continue
        for subject in binding.get("subjects") or ():
            if subject.get("kind") == "ServiceAccount":
                key = (str(subject.get("namespace") or namespace), str(subject.get("name")))
                found.setdefault(key, []).append(rules)
    return found


def controllers_of(
    info: CrdInfo,
    workloads: Iterable[Workload],
    accounts: Mapping[tuple[str, str], list[list[Any]]],
) -> list[Workload]:
    """The workloads that look like the controller of ``info``."""
    return [
        w
        for w in workloads
        if any(
            grants_read(rules, info.group, info.plural)
            for rules in accounts.get((w.namespace, w.account), ())
        )
    ]


def _has_resources(ctx: Context, crd: Mapping[str, Any], info: CrdInfo) -> bool:
    version = info.storage_version or (info.served_versions[0] if info.served_versions else "")
    api_version = f"{info.group}/{version}"
    if (dig(crd, "spec", "scope") or "Namespaced") == "Namespaced":
        found = ctx.in_scope(api_version, info.plural)
    elif ctx.scope.takes_cluster_scoped:
        found = ctx.list_all(SOURCE, api_version, info.plural)
    else:
        return False
    return next(iter(found), None) is not None


def _in_target(ctx: Context, workload: Workload) -> bool:
    path = object_path("apps/v1", workload.resource, workload.name, workload.namespace)
    try:
        ctx.target.request("GET", path)
    except ApiError as exc:
        if exc.status == 404:
            return False
        raise
    return True


def check_crd_controllers(ctx: Context) -> CheckResult:
    used: list[tuple[dict[str, Any], CrdInfo]] = []
    for crd in live_crds(ctx.source, ctx.discovery(SOURCE)):
        info = crd_info(crd)
        if info is not None and _has_resources(ctx, crd, info):
            used.append((crd, info))
    if not used:
        return CheckResult("crd-controllers", PASS, "no custom resource in scope")
    roles: dict[tuple[str, str, str], list[Any]] = {}
    for role in ctx.list_all(SOURCE, RBAC, "clusterroles"):
        roles[("ClusterRole", "", name_of(role))] = role.get("rules") or []
    for role in ctx.list_all(SOURCE, RBAC, "roles"):
        roles[("Role", namespace_of(role), name_of(role))] = role.get("rules") or []
    bindings = [
        *ctx.list_all(SOURCE, RBAC, "clusterrolebindings"),
        *ctx.list_all(SOURCE, RBAC, "rolebindings"),
    ]
    accounts = bound_accounts(bindings, roles)
    workloads = [
        workload_of(kind, resource, obj)
        for kind, resource in WORKLOADS
        for obj in ctx.list_all(SOURCE, "apps/v1", resource)
    ]
    lines, fine = [], []
    for _crd, info in used:
        controllers = controllers_of(info, workloads, accounts)
        if not controllers:
            lines.append(
                f"nothing found that reconciles {info.name}; install its operator in the "
                "target first"
            )
            continue
        present = [
            c for c in controllers if ctx.scope.admits_namespace(c.namespace) or _in_target(ctx, c)
        ]
        if present:
            fine.append(f"{info.name}: {', '.join(c.describe() for c in present)}")
        else:
            named = ", ".join(c.describe() for c in controllers)
            lines.append(
                f"{info.name} is reconciled by {named}, neither in the target nor in the "
                "export's scope"
            )
    if lines:
        return CheckResult(
            "crd-controllers",
            WARN,
            f"{len(lines)} of {len(used)} CRD(s) with resources in scope may have no "
            "controller in the target",
            "install their operators in the target first, or widen the export's scope to "
            "include them",
            bounded(lines),
        )
    return CheckResult(
        "crd-controllers",
        PASS,
        f"{len(used)} CRD(s) with resources in scope, each with a controller in the target "
        "or in scope",
        details=bounded(fine),
    )
