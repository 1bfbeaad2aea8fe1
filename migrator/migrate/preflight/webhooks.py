"""``admission-webhooks``: the target's admission webhooks that the import will call.

A webhook is called for an imported object when one of its rules matches: the operation
(CREATE or UPDATE: what an apply is), the object's group and resource (at the group the
target serves it in), and its scope. Namespace and object selectors are not evaluated: a
webhook that could match is counted. A webhook that fails closed (``failurePolicy: Fail``,
the default) and whose Service has no ready endpoint would reject every such object: fail.
One that fails closed and may wait long (``timeoutSeconds`` over 10) or matches many kinds
would slow the import: warn.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from migrator.errors import ApiError
from migrator.kube.wait import READY
from migrator.migrate.preflight.context import TARGET, Context
from migrator.migrate.preflight.result import FAIL, PASS, WARN, CheckResult, bounded
from migrator.resources.identity import type_key
from migrator.resources.objects import dig, name_of
from migrator.resources.readiness import endpoints_ready

ADMISSION = "admissionregistration.k8s.io/v1"
CONFIGURATIONS = (
    ("ValidatingWebhookConfiguration", "validatingwebhookconfigurations"),
    ("MutatingWebhookConfiguration", "mutatingwebhookconfigurations"),
)
WRITES = frozenset({"CREATE", "UPDATE", "*"})
SLOW_TIMEOUT = 10
MANY_KINDS = 10

Kind = tuple[str, str, bool]  # group, plural, namespaced


def rule_matches(rule: Mapping[str, Any], kind: Kind) -> bool:
    """True if an admission rule covers writes of ``kind``."""
    group, resource, namespaced = kind
    if not WRITES & set(rule.get("operations") or ()):
        return False
    groups = rule.get("apiGroups") or ()
    if "*" not in groups and group not in groups:
        return False
    resources = rule.get("resources") or ()
    if not any(r in ("*", "*/*", resource) for r in resources):
        return False
    scope = rule.get("scope") or "*"
    return scope == "*" or (scope == "Namespaced") == namespaced


def matched_kinds(webhook: Mapping[str, Any], kinds: Iterable[Kind]) -> list[Kind]:
    """The kinds of ``kinds`` that some rule of ``webhook`` covers."""
    rules = webhook.get("rules") or ()
    return [kind for kind in kinds if any(rule_matches(rule, kind) for rule in rules)]


@dataclass(frozen=True)
class Verdict:
    status: str
    line: str


def webhook_verdict(
    configuration: str, webhook: Mapping[str, Any], matched: list[Kind], service_ready: bool | None
) -> Verdict:
    """The verdict on one webhook that matches ``matched`` kinds; ``service_ready`` is None
    for a webhook called by URL (nothing to look at in the cluster)."""
    closed = (webhook.get("failurePolicy") or "Fail") == "Fail"
    timeout = int(webhook.get("timeoutSeconds") or 10)
    service = dig(webhook, "clientConfig", "service") or {}
    names = ", ".join(type_key(group, resource) for group, resource, _ in matched[:5])
    more = f" and {len(matched) - 5} more" if len(matched) > 5 else ""
    head = f"{configuration} webhook {webhook.get('name')}"
    what = f"matches {len(matched)} kind(s) in scope ({names}{more})"
    if closed and service_ready is False:
        where = f"{service.get('namespace')}/{service.get('name')}"
        return Verdict(
            FAIL,
            f"{head}: failurePolicy Fail and its Service {where} has no ready endpoint; {what}",
        )
    slow = []
    if closed and timeout > SLOW_TIMEOUT:
        slow.append(f"waits up to {timeout}s")
    if closed and len(matched) > MANY_KINDS:
        slow.append("is called for many kinds")
    if slow:
        return Verdict(WARN, f"{head}: failurePolicy Fail, {' and '.join(slow)}; {what}")
    return Verdict(PASS, f"{head}: {what}")


def _service_ready(ctx: Context, webhook: Mapping[str, Any]) -> bool | None:
    service = dig(webhook, "clientConfig", "service")
    if not service:
        return None
    path = f"/api/v1/namespaces/{service.get('namespace')}/endpoints/{service.get('name')}"
    try:
        endpoints = ctx.target.request("GET", path)
    except ApiError as exc:
        if exc.status == 404:
            return False
        raise
    return endpoints_ready(endpoints).state == READY


def check_admission_webhooks(ctx: Context) -> CheckResult:
    kinds = sorted({(*t.identity, t.namespaced) for t in ctx.export_types()})
    verdicts: list[Verdict] = []
    for kind, resource in CONFIGURATIONS:
        for configuration in ctx.list_all(TARGET, ADMISSION, resource):
            for webhook in configuration.get("webhooks") or ():
                matched = matched_kinds(webhook, kinds)
                if matched:
                    label = f"{kind} {name_of(configuration)}"
                    ready = _service_ready(ctx, webhook)
                    verdicts.append(webhook_verdict(label, webhook, matched, ready))
    failing = [v.line for v in verdicts if v.status == FAIL]
    warning = [v.line for v in verdicts if v.status == WARN]
    if failing:
        return CheckResult(
            "admission-webhooks",
            FAIL,
            f"{len(failing)} webhook(s) in the target would reject the objects imported",
            "make their Services ready, set failurePolicy: Ignore, or delete them until the "
            "import is done",
            bounded(failing + warning),
        )
    if warning:
        return CheckResult(
            "admission-webhooks",
            WARN,
            f"{len(warning)} webhook(s) in the target fail closed and would slow the import",
            "check they answer quickly, or narrow their rules",
            bounded(warning),
        )
    return CheckResult(
        "admission-webhooks",
        PASS,
        f"{len(verdicts)} webhook(s) of the target match kinds in scope; none would block",
        details=bounded(v.line for v in verdicts),
    )
