"""Mutating/ValidatingWebhookConfiguration admissionregistration.k8s.io/v1beta1 → v1.

v1 changed the defaults (failurePolicy Fail, matchPolicy Equivalent, timeoutSeconds 10) and
requires ``sideEffects`` (only None or NoneOnDryRun) and ``admissionReviewVersions``. The
v1beta1 defaults are written explicitly so a webhook keeps failing open, matching exactly
and waiting 30 seconds, and keeps receiving v1beta1 AdmissionReviews.

Two things v1beta1 accepted are refused by a v1 create: ``sideEffects`` Unknown (v1beta1's
default) or Some, and two webhooks of one configuration with the same name. An old API server
that reads a v1beta1 webhook back at v1 keeps both as they are (a v1 *update* tolerates what
the object already held), so :func:`normalize_webhooks` fixes them in objects the old server
converted, as the v1beta1 conversion does in objects it converts itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from migrator.transform.base import Result, Severity
from migrator.transform.conversions.convert import Rewrite
from migrator.transform.conversions.rewriter import Rewriter

V1 = "admissionregistration.k8s.io/v1"
V1BETA1 = "admissionregistration.k8s.io/v1beta1"
KINDS = ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration")
WHY = "v1beta1 defaulted it and v1's default differs (or v1 requires it)"
# v1beta1 defaults (pkg/apis/admissionregistration/v1beta1/defaults.go) written explicitly
WEBHOOK_DEFAULTS = {
    "failurePolicy": "Ignore",
    "matchPolicy": "Exact",
    "timeoutSeconds": 30,
    "admissionReviewVersions": ["v1beta1"],
}
MUTATING_DEFAULTS = {"reinvocationPolicy": "Never"}
V1_SIDE_EFFECTS = ("None", "NoneOnDryRun")
_SOURCE = "webhooks v1 create rules"


def _webhooks_edit(extra: Mapping[str, object]) -> Callable[[Rewriter], None]:
    defaults = {**WEBHOOK_DEFAULTS, **extra}

    def edit(rw: Rewriter) -> None:
        for webhook, _item in rw.each(("webhooks",)):
            for name, value in defaults.items():
                rw.default((*webhook, name), value, WHY)
            for rule, _ in rw.each((*webhook, "rules")):
                rw.default((*rule, "scope"), "*", WHY)
        v1_create_rules(rw)

    return edit


def v1_create_rules(rw: Rewriter) -> None:
    """What a v1 create refuses and v1beta1 accepted: sideEffects other than None and
    NoneOnDryRun, and webhook names repeated within the configuration."""
    taken = {item.get("name") for _, item in rw.each(("webhooks",)) if isinstance(item, dict)}
    seen: set[str] = set()
    for webhook, item in rw.each(("webhooks",)):
        if not isinstance(item, dict):
            continue
        _side_effects(rw, (*webhook, "sideEffects"), item.get("sideEffects"))
        name = item.get("name")
        if isinstance(name, str) and name in seen:
            name = _rename(rw, (*webhook, "name"), name, taken)
            taken.add(name)
        seen.add(str(name))


def _side_effects(rw: Rewriter, path: tuple[Any, ...], value: object) -> None:
    if value in V1_SIDE_EFFECTS:
        return
    rw.set(
        path,
        "NoneOnDryRun",
        f"v1 accepts only None or NoneOnDryRun (was {value or 'unset: Unknown'}); "
        "dry-run requests, which v1beta1 held back from this webhook, now reach it: check that it "
        "skips its side effects on dryRun",
        Severity.REVIEW,
    )


def _rename(rw: Rewriter, path: tuple[Any, ...], name: str, taken: set[Any]) -> str:
    """Give a repeated webhook name a numbered first label (``a.example.com`` →
    ``a-2.example.com``), the first number no webhook of the configuration has; the name."""
    first, dot, rest = name.partition(".")
    number = 2
    while f"{first}-{number}{dot}{rest}" in taken:
        number += 1
    new = f"{first}-{number}{dot}{rest}"
    rw.set(
        path,
        new,
        "v1 requires the webhooks of a configuration to have distinct names (v1beta1 "
        "allowed repeats): renamed; the name shows in metrics, audit annotations and the "
        "messages of requests it rejects",
        Severity.REVIEW,
    )
    return new


def normalize_webhooks(obj: dict[str, Any]) -> Result:
    """A v1 webhook configuration as a v1 create accepts it (see the module doc); objects of
    other kinds, and those already acceptable, are returned as they are."""
    if obj.get("apiVersion") != V1 or obj.get("kind") not in KINDS:
        return Result(obj)
    webhooks = obj.get("webhooks") or ()
    names = [w.get("name") for w in webhooks if isinstance(w, dict)]
    if len(set(names)) == len(names) and all(
        w.get("sideEffects") in V1_SIDE_EFFECTS for w in webhooks if isinstance(w, dict)
    ):
        return Result(obj)
    rw = Rewriter(obj, _SOURCE)
    v1_create_rules(rw)
    return rw.result()


CONVERSIONS = (
    Rewrite(
        (V1BETA1, "ValidatingWebhookConfiguration"),
        (V1, "ValidatingWebhookConfiguration"),
        (_webhooks_edit({}),),
    ),
    Rewrite(
        (V1BETA1, "MutatingWebhookConfiguration"),
        (V1, "MutatingWebhookConfiguration"),
        (_webhooks_edit(MUTATING_DEFAULTS),),
    ),
)
