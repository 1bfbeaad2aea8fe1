"""Is a live object ready, still on its way, or stuck for good? Pure functions of its status.

Each check knows the conditions of failure as well as of success (the
:class:`~migrator.kube.wait.Readiness` that :func:`~migrator.kube.wait.wait_for` waits on),
so a caller waits only while waiting can still help: a Deployment whose progress deadline
passed, a failed Job or a lost claim are reported at once instead of after a timeout. Kinds
without a check here are ready when they exist.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from migrator.kube.wait import FAILED, READY, WAITING, Readiness

__all__ = ["CHECKS", "FAILED", "READY", "WAITING", "Readiness", "has_check", "readiness"]


def _conditions(obj: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    status = obj.get("status") or {}
    return {str(c.get("type")): c for c in status.get("conditions") or ()}


def _is_true(conditions: Mapping[str, Mapping[str, Any]], kind: str) -> bool:
    return (conditions.get(kind) or {}).get("status") == "True"


def _observed(obj: Mapping[str, Any]) -> bool:
    """The controller has seen the current spec (observedGeneration caught up)."""
    meta, status = obj.get("metadata") or {}, obj.get("status") or {}
    generation = meta.get("generation")
    return generation is None or (status.get("observedGeneration") or 0) >= generation


def _waiting(what: str, have: Any, want: Any) -> Readiness:
    return Readiness(WAITING, f"{what} {have or 0}/{want}")


def deployment(obj: Mapping[str, Any]) -> Readiness:
    conditions = _conditions(obj)
    progressing = conditions.get("Progressing") or {}
    if (
        progressing.get("status") == "False"
        and progressing.get("reason") == "ProgressDeadlineExceeded"
    ):
        return Readiness(FAILED, f"ProgressDeadlineExceeded: {progressing.get('message', '')}")
    failure = conditions.get("ReplicaFailure") or {}
    if failure.get("status") == "True":
        return Readiness(FAILED, f"ReplicaFailure: {failure.get('message', '')}")
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    want = spec.get("replicas", 1)
    if not _observed(obj):
        return Readiness(WAITING, "controller has not observed the latest spec")
    if (status.get("updatedReplicas") or 0) < want:
        return _waiting("updated replicas", status.get("updatedReplicas"), want)
    if (status.get("availableReplicas") or 0) < want:
        return _waiting("available replicas", status.get("availableReplicas"), want)
    return Readiness(READY)


def statefulset(obj: Mapping[str, Any]) -> Readiness:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    want = spec.get("replicas", 1)
    if not _observed(obj):
        return Readiness(WAITING, "controller has not observed the latest spec")
    if (status.get("readyReplicas") or 0) < want:
        return _waiting("ready replicas", status.get("readyReplicas"), want)
    return Readiness(READY)


def daemonset(obj: Mapping[str, Any]) -> Readiness:
    status = obj.get("status") or {}
    want = status.get("desiredNumberScheduled") or 0
    if not _observed(obj):
        return Readiness(WAITING, "controller has not observed the latest spec")
    if (status.get("updatedNumberScheduled") or 0) < want:
        return _waiting("updated pods", status.get("updatedNumberScheduled"), want)
    if (status.get("numberAvailable") or 0) < want:
        return _waiting("available pods", status.get("numberAvailable"), want)
    return Readiness(READY)


def claim(obj: Mapping[str, Any]) -> Readiness:
    phase = (obj.get("status") or {}).get("phase")
    if phase == "Bound":
        return Readiness(READY)
    if phase == "Lost":
        return Readiness(FAILED, "claim Lost: its volume is gone")
    return Readiness(WAITING, f"phase {phase or 'unknown'}")


def job(obj: Mapping[str, Any]) -> Readiness:
    conditions = _conditions(obj)
    if _is_true(conditions, "Failed"):
        failed = conditions["Failed"]
        return Readiness(FAILED, f"{failed.get('reason', 'Failed')}: {failed.get('message', '')}")
    if _is_true(conditions, "Complete"):
        return Readiness(READY)
    if (obj.get("spec") or {}).get("suspend"):
        return Readiness(READY)  # suspended on purpose: nothing to wait for
    return Readiness(WAITING, "not complete")


def crd(obj: Mapping[str, Any]) -> Readiness:
    conditions = _conditions(obj)
    names = conditions.get("NamesAccepted") or {}
    if names.get("status") == "False":
        return Readiness(FAILED, f"NamesAccepted False: {names.get('message', '')}")
    if _is_true(conditions, "Established"):
        return Readiness(READY)
    return Readiness(WAITING, "not Established")


def endpoints_ready(obj: Mapping[str, Any]) -> Readiness:
    """A Service's Endpoints: ready once some address is (a webhook can then be called)."""
    ready = sum(len(s.get("addresses") or ()) for s in obj.get("subsets") or ())
    if ready:
        return Readiness(READY)
    waiting = sum(len(s.get("notReadyAddresses") or ()) for s in obj.get("subsets") or ())
    return Readiness(WAITING, f"has no ready endpoints ({waiting} not ready)")


# (group, kind) → its check. Kinds not listed are ready as soon as they exist.
CHECKS: dict[tuple[str, str], Callable[[Mapping[str, Any]], Readiness]] = {
    ("apps", "Deployment"): deployment,
    ("apps", "StatefulSet"): statefulset,
    ("apps", "DaemonSet"): daemonset,
    ("", "PersistentVolumeClaim"): claim,
    ("batch", "Job"): job,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): crd,
}


def has_check(group: str, kind: str) -> bool:
    return (group, kind) in CHECKS


def readiness(group: str, kind: str, obj: Mapping[str, Any]) -> Readiness:
    """The readiness of a live object of (group, kind)."""
    check = CHECKS.get((group, kind))
    return check(obj) if check is not None else Readiness(READY)
