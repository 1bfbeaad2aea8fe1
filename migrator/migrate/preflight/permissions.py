"""``permissions``: the identity of each kubeconfig context holds what migrator needs there.

What migrator needs is what the RBAC it ships grants (``migrator/manifests/``, package data
that the source tree's ``manifests/`` links to, read at run time so the check and the
manifests never disagree): on the old cluster the
``exporter`` role of ``rbac.yaml`` (read everything), on the new one the ``importer`` role
(every verb on everything: it recreates RBAC, and Kubernetes lets an identity grant only
what it holds); on both, when volumes move or writers are quiesced, the role of
``volume-sync.yaml`` (mover Jobs, their Secrets and logs, scaling, exec). Each rule is
asked of the API server as a SelfSubjectAccessReview (verb × group × resource, or
non-resource URL), several at a time; a review creates nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from migrator.kube import Cluster
from migrator.migrate.preflight.context import SOURCE, TARGET, Context
from migrator.migrate.preflight.result import FAIL, PASS, WARN, CheckResult, bounded

# The RBAC and Job manifests the package ships (package data; the source tree's manifests/
# links here, for `kubectl apply -f manifests/...`).
MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"
ROLE_LABEL = "migrator.io/role"
REVIEWS = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
REVIEW_WORKERS = 8


@dataclass(frozen=True)
class Access:
    """One thing to ask: a verb on a resource (group, resource, subresource) or on a
    non-resource URL."""

    verb: str
    group: str = ""
    resource: str = ""
    subresource: str = ""
    path: str = ""

    def review(self) -> dict[str, Any]:
        """The SelfSubjectAccessReview that asks it."""
        if self.path:
            spec: dict[str, Any] = {"nonResourceAttributes": {"path": self.path, "verb": self.verb}}
        else:
            attributes = {"verb": self.verb, "group": self.group, "resource": self.resource}
            if self.subresource:
                attributes["subresource"] = self.subresource
            spec = {"resourceAttributes": attributes}
        return {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": spec,
        }

    def describe(self) -> str:
        if self.path:
            return f"{self.verb} {self.path}"
        resource = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        group = self.group if self.group else "core"
        return f"{self.verb} {resource} ({group})"


@dataclass(frozen=True)
class Role:
    """A role of the shipped manifests: where it is, how to apply it, what it grants."""

    file: str
    role: str
    accesses: tuple[Access, ...]

    def apply_command(self, context: str) -> str:
        label = f"{ROLE_LABEL}={self.role}"
        return f"kubectl --context {context} apply -f manifests/{self.file} -l {label}"


def rule_accesses(rules: Iterable[Mapping[str, Any]]) -> list[Access]:
    """Every (verb, group, resource) and (verb, URL) that ClusterRole ``rules`` grant."""
    found: list[Access] = []
    for rule in rules:
        verbs = rule.get("verbs") or ()
        for url in rule.get("nonResourceURLs") or ():
            found += [Access(verb, path=str(url)) for verb in verbs]
        for group in rule.get("apiGroups") or ():
            for resource in rule.get("resources") or ():
                name, _, sub = str(resource).partition("/")
                found += [Access(verb, str(group), name, sub) for verb in verbs]
    return list(dict.fromkeys(found))


def load_role(file: str, role: str, folder: Path = MANIFESTS) -> Role:
    """The accesses the ClusterRoles labelled ``role`` in ``folder/file`` grant."""
    docs = [d for d in yaml.safe_load_all((folder / file).read_text(encoding="utf-8")) if d]
    rules = [
        rule
        for doc in docs
        if doc.get("kind") == "ClusterRole"
        and ((doc.get("metadata") or {}).get("labels") or {}).get(ROLE_LABEL) == role
        for rule in doc.get("rules") or ()
    ]
    return Role(file, role, tuple(rule_accesses(rules)))


def needed_roles(ctx: Context, side: str, folder: Path = MANIFESTS) -> list[Role]:
    """The shipped roles migrator needs on ``side`` for this plan."""
    roles = [load_role("rbac.yaml", "exporter" if side == SOURCE else "importer", folder)]
    plan = ctx.plan
    if plan.volumes.method != "none" or (side == SOURCE and plan.quiesce.method != "none"):
        roles.append(load_role("volume-sync.yaml", "volume-sync", folder))
    return roles


def missing(cluster: Cluster, accesses: Iterable[Access]) -> list[Access]:
    """The accesses the cluster denies the caller, asked ``REVIEW_WORKERS`` at a time."""
    wanted = list(accesses)

    def allowed(access: Access) -> bool:
        answer = cluster.request("POST", REVIEWS, body=access.review())
        return bool((answer.get("status") or {}).get("allowed"))

    with ThreadPoolExecutor(REVIEW_WORKERS, thread_name_prefix="preflight-rbac") as pool:
        verdicts = list(pool.map(allowed, wanted))
    return [access for access, ok in zip(wanted, verdicts, strict=True) if not ok]


def check_permissions(ctx: Context) -> CheckResult:
    try:
        needs = {side: needed_roles(ctx, side) for side in (SOURCE, TARGET)}
    except OSError as exc:
        return CheckResult(
            "permissions",
            WARN,
            f"the RBAC manifests cannot be read ({MANIFESTS}: {exc.strerror or exc}): "
            "permissions not checked",
            "reinstall migrator (the manifests are part of the package), or check by hand "
            "with `kubectl auth can-i --list`",
        )
    lines: list[str] = []
    commands: list[str] = []
    asked = 0
    for side, roles in needs.items():
        ref = ctx.plan.source if side == SOURCE else ctx.plan.target
        for role in roles:
            asked += len(role.accesses)
            denied = missing(ctx.clusters[side], role.accesses)
            if denied:
                lines += [f"{ctx.label(side)}: {a.describe()}" for a in denied]
                commands.append(role.apply_command(ref.context))
    if lines:
        return CheckResult(
            "permissions",
            FAIL,
            f"{len(lines)} of {asked} permission(s) migrator needs are denied",
            "run migrator as an identity bound to its roles: " + "; ".join(commands),
            bounded(lines),
        )
    return CheckResult(
        "permissions", PASS, f"all {asked} permission(s) migrator needs are granted on both sides"
    )
