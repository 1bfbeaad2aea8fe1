"""Workloads from extensions/v1beta1, apps/v1beta1 and apps/v1beta2 → apps/v1.

The traps: apps/v1 requires ``spec.selector`` (the old groups defaulted it from the template
labels), and the old groups had other defaults than apps/v1 (extensions kept every revision
and never timed out a rollout; DaemonSets and apps/v1beta1 StatefulSets updated pods only on
delete). Those old defaults are written explicitly so behaviour does not change silently.
Values are the ``SetDefaults_*`` functions of ``pkg/apis/{extensions,apps}/v1beta{1,2}``.
"""

from __future__ import annotations

from typing import Any

from migrator.transform.base import Severity
from migrator.transform.conversions.convert import Edit, Rewrite, renamed
from migrator.transform.conversions.podtemplate import template_edit
from migrator.transform.conversions.rewriter import Rewriter

APPS_V1 = "apps/v1"
EXTENSIONS = "extensions/v1beta1"
V1BETA1 = "apps/v1beta1"
V1BETA2 = "apps/v1beta2"
MAX_INT32 = 2147483647
ROLLBACK_ANNOTATION = "deprecated.deployment.rollback.to"
TEMPLATE_GENERATION_ANNOTATION = "deprecated.daemonset.template.generation"

# Old defaults of the fields whose omission would otherwise take the apps/v1 default.
# ``strategy``/``updateStrategy`` holds the default type; ``rolling`` the rolling-update
# parameters defaulted when that type is RollingUpdate.
DEPLOYMENT_DEFAULTS: dict[str, dict[str, Any]] = {
    EXTENSIONS: {
        "revisionHistoryLimit": MAX_INT32,
        "progressDeadlineSeconds": MAX_INT32,
        "rolling": {"maxUnavailable": 1, "maxSurge": 1},
    },
    V1BETA1: {
        "revisionHistoryLimit": 2,
        "progressDeadlineSeconds": 600,
        "rolling": {"maxUnavailable": "25%", "maxSurge": "25%"},
    },
    V1BETA2: {
        "revisionHistoryLimit": 10,
        "progressDeadlineSeconds": 600,
        "rolling": {"maxUnavailable": "25%", "maxSurge": "25%"},
    },
}
DAEMONSET_DEFAULTS: dict[str, dict[str, Any]] = {
    EXTENSIONS: {
        "revisionHistoryLimit": 10,
        "updateStrategy": "OnDelete",
        "rolling": {"maxUnavailable": 1},
    },
    V1BETA2: {
        "revisionHistoryLimit": 10,
        "updateStrategy": "RollingUpdate",
        "rolling": {"maxUnavailable": 1},
    },
}
STATEFULSET_DEFAULTS: dict[str, dict[str, Any]] = {
    V1BETA1: {
        "revisionHistoryLimit": 10,
        "podManagementPolicy": "OrderedReady",
        "updateStrategy": "OnDelete",
        "rolling": {"partition": 0},
    },
    V1BETA2: {
        "revisionHistoryLimit": 10,
        "podManagementPolicy": "OrderedReady",
        "updateStrategy": "RollingUpdate",
        "rolling": {"partition": 0},
    },
}
# Groups whose defaulting filled spec.selector from the template labels.
SELECTOR_DEFAULTED = {EXTENSIONS, V1BETA1}


def _why(version: str) -> str:
    return f"{version} defaulted it; written so that apps/v1's own default does not apply"


def selector_edit(version: str) -> Edit:
    """spec.selector from the template labels, as the old group defaulted it."""

    def edit(rw: Rewriter) -> None:
        if rw.get(("spec", "selector")) is not None:
            return
        labels = rw.get(("spec", "template", "metadata", "labels"))
        if labels:
            rw.set(
                ("spec", "selector"),
                {"matchLabels": dict(labels)},
                f"apps/v1 requires a selector; {version} defaulted it from the template labels",
                Severity.DEFAULT,
            )
        else:
            rw.record(
                ("spec", "selector"),
                "missing",
                "apps/v1 requires a selector and the template has no labels to build one from",
                Severity.REVIEW,
            )

    return edit


def defaults_edit(version: str, table: dict[str, Any], strategy_field: str) -> Edit:
    """Write ``table``'s old defaults where the fields are missing."""
    rolling_key = "rollingUpdate"

    def edit(rw: Rewriter) -> None:
        why = _why(version)
        for name, value in table.items():
            if name not in ("rolling", "updateStrategy"):
                rw.default(("spec", name), value, why)
        strategy = ("spec", strategy_field)
        if "updateStrategy" in table:
            rw.default((*strategy, "type"), table["updateStrategy"], why)
        kind = rw.get((*strategy, "type"), "RollingUpdate")
        # extensions/v1beta1 also filled rollingUpdate when it was given with another type.
        if kind == "RollingUpdate" or (
            version == EXTENSIONS and rw.get((*strategy, rolling_key)) is not None
        ):
            for name, value in table["rolling"].items():
                rw.default((*strategy, rolling_key, name), value, why)

    return edit


def rollback_edit(rw: Rewriter) -> None:
    """spec.rollbackTo: a pending rollback request, which apps/v1 cannot express."""
    rw.remove(
        ("spec", "rollbackTo"),
        "apps/v1 has no rollbackTo (a pending rollback request is "
        "lost; use `kubectl rollout undo` on the new cluster)",
        Severity.LOSS,
    )


def template_generation_edit(rw: Rewriter) -> None:
    """spec.templateGeneration → the annotation apps/v1 keeps it in (as the API server does)."""
    rw.move(
        ("spec", "templateGeneration"),
        ("metadata", "annotations", TEMPLATE_GENERATION_ANNOTATION),
        "apps/v1 keeps the template generation in an annotation",
        transform=lambda value: str(value),
    )


def _workload(version: str, kind: str, *edits: Edit) -> Rewrite:
    selector = (selector_edit(version),) if version in SELECTOR_DEFAULTED else ()
    return Rewrite((version, kind), (APPS_V1, kind), (*selector, *edits, template_edit(kind)))


CONVERSIONS = (
    *(
        _workload(
            v,
            "Deployment",
            *((rollback_edit,) if v != V1BETA2 else ()),
            defaults_edit(v, DEPLOYMENT_DEFAULTS[v], "strategy"),
        )
        for v in (EXTENSIONS, V1BETA1, V1BETA2)
    ),
    _workload(
        EXTENSIONS,
        "DaemonSet",
        template_generation_edit,
        defaults_edit(EXTENSIONS, DAEMONSET_DEFAULTS[EXTENSIONS], "updateStrategy"),
    ),
    _workload(
        V1BETA2, "DaemonSet", defaults_edit(V1BETA2, DAEMONSET_DEFAULTS[V1BETA2], "updateStrategy")
    ),
    *(
        _workload(v, "StatefulSet", defaults_edit(v, STATEFULSET_DEFAULTS[v], "updateStrategy"))
        for v in (V1BETA1, V1BETA2)
    ),
    *(_workload(v, "ReplicaSet") for v in (EXTENSIONS, V1BETA2)),
    *renamed(V1BETA1, APPS_V1, ("ControllerRevision",)),
    *renamed(V1BETA2, APPS_V1, ("ControllerRevision",)),
)
