"""Mutating/ValidatingWebhookConfiguration admissionregistration.k8s.io/v1beta1 → v1.

v1 changed the defaults (failurePolicy Fail, matchPolicy Equivalent, timeoutSeconds 10) and
requires ``sideEffects`` (only None or NoneOnDryRun) and ``admissionReviewVersions``. The
v1beta1 defaults are written explicitly so a webhook keeps failing open, matching exactly
and waiting 30 seconds, and keeps receiving v1beta1 AdmissionReviews.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from migrator.transform.base import Severity
from migrator.transform.conversions.convert import Rewrite
from migrator.transform.conversions.rewriter import Rewriter

V1 = "admissionregistration.k8s.io/v1"
V1BETA1 = "admissionregistration.k8s.io/v1beta1"
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


def _webhooks_edit(extra: Mapping[str, object]) -> Callable[[Rewriter], None]:
    defaults = {**WEBHOOK_DEFAULTS, **extra}

    def edit(rw: Rewriter) -> None:
        for webhook, item in rw.each(("webhooks",)):
            for name, value in defaults.items():
                rw.default((*webhook, name), value, WHY)
            _side_effects(rw, (*webhook, "sideEffects"), item.get("sideEffects"))
            for rule, _ in rw.each((*webhook, "rules")):
                rw.default((*rule, "scope"), "*", WHY)

    return edit


def _side_effects(rw: Rewriter, path: tuple, value: object) -> None:
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
