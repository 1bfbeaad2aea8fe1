"""PodDisruptionBudget policy/v1beta1 → policy/v1, and PodSecurityPolicy (dropped).

An empty selector matched no pods in v1beta1 and matches every pod in v1. The API server maps
it (``pkg/apis/policy/v1beta1/conversion.go``): ``{}`` becomes a selector that never matches
(``<label> Exists``), its own v1beta1 "match all" (``<label> DoesNotExist``) becomes ``{}``,
and the marker label is stripped from any other selector. We do exactly the same.
"""

from __future__ import annotations

from typing import Any

from migrator.transform.base import Severity
from migrator.transform.conversions.convert import Drop, Rewrite
from migrator.transform.conversions.rewriter import Rewriter
from migrator.transform.podsecurity import BASELINE_CAPABILITIES, RESTRICTED_VOLUMES

V1 = "policy/v1"
V1BETA1 = "policy/v1beta1"
PDB_LABEL = "pdb.kubernetes.io/deprecated-v1beta1-empty-selector-match"
MATCH_NONE = {"matchExpressions": [{"key": PDB_LABEL, "operator": "Exists"}]}
V1BETA1_MATCH_ALL = {"matchExpressions": [{"key": PDB_LABEL, "operator": "DoesNotExist"}]}


def _empty(selector: dict[str, Any]) -> bool:
    return not selector.get("matchLabels") and not selector.get("matchExpressions")


def pdb_edit(rw: Rewriter) -> None:
    """Keep what the selector selects."""
    path = ("spec", "selector")
    selector = rw.get(path)
    if not isinstance(selector, dict):
        return  # unset: selects nothing in both versions
    if _empty(selector):
        rw.set(
            path,
            {"matchExpressions": [dict(MATCH_NONE["matchExpressions"][0])]},
            "an empty selector matched no pods in v1beta1 but matches all in v1: replaced by "
            "the API server's never-matching selector",
            action="convert",
        )
    elif (
        not selector.get("matchLabels")
        and selector.get("matchExpressions") == V1BETA1_MATCH_ALL["matchExpressions"]
    ):
        rw.set(
            path, {}, "v1beta1's match-all selector is the empty selector in v1", action="convert"
        )
    elif any(e.get("key") == PDB_LABEL for e in selector.get("matchExpressions") or ()):
        kept = [e for e in selector["matchExpressions"] if e.get("key") != PDB_LABEL]
        new = {k: v for k, v in selector.items() if k != "matchExpressions"}
        if kept:
            new["matchExpressions"] = kept
        rw.set(
            path,
            new,
            f"the reserved {PDB_LABEL} requirement is stripped (as the API server does)",
            Severity.REVIEW,
            action="convert",
        )


def pod_security_level(spec: dict[str, Any]) -> str:
    """The Pod Security Standard level closest to what a PodSecurityPolicy spec allows."""
    capabilities = set(spec.get("allowedCapabilities") or ())
    volumes = set(spec.get("volumes") or ())
    if (
        spec.get("privileged")
        or spec.get("hostNetwork")
        or spec.get("hostPID")
        or spec.get("hostIPC")
        or spec.get("hostPorts")
        or capabilities - BASELINE_CAPABILITIES
        or "*" in volumes
        or "hostPath" in volumes
    ):
        return "privileged"
    run_as = (spec.get("runAsUser") or {}).get("rule")
    drops = set(spec.get("requiredDropCapabilities") or ())
    if (
        run_as == "MustRunAsNonRoot"
        and "ALL" in drops
        and spec.get("allowPrivilegeEscalation") is False
        and volumes
        and volumes <= RESTRICTED_VOLUMES
        and capabilities <= {"NET_BIND_SERVICE"}
    ):
        return "restricted"
    return "baseline"


def suggest_pod_security(obj: dict[str, Any]) -> dict[str, Any]:
    """The Pod Security Admission namespace labels that replace a PodSecurityPolicy."""
    level = pod_security_level(obj.get("spec") or {})
    return {
        "namespaceLabels": {"pod-security.kubernetes.io/enforce": level},
        "note": "label each namespace whose pods used this policy",
    }


CONVERSIONS = (
    Rewrite((V1BETA1, "PodDisruptionBudget"), (V1, "PodDisruptionBudget"), (pdb_edit,)),
    Drop(
        (V1BETA1, "PodSecurityPolicy"),
        "PodSecurityPolicy has no successor (removed in 1.25); "
        "use Pod Security Admission labels on namespaces",
        suggest_pod_security,
    ),
)
