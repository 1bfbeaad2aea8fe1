"""Running one Job to its end: waiting until it is Complete or Failed (or its pod can never
start), reading its pod's log, deleting it. One way for every Job this tool creates: the
volume movers and the user's Job hooks.

A wait ends early, as failed, when waiting cannot help: the pod's image cannot be had, the
pod is still not running after ``start_timeout`` seconds (unschedulable: a claim missing or
attached elsewhere), or no pod was made at all (admission refuses it: the Job's
``FailedCreate`` event says why).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from migrator.errors import ApiError, MigratorError
from migrator.kube import Cluster
from migrator.kube.wait import FAILED, WAITING, Readiness, Waited, wait_for
from migrator.resources.readiness import job as job_readiness

JOBS = "/apis/batch/v1/namespaces/{ns}/jobs"

# Reasons a container waits that no waiting cures: the attempt fails at once.
HOPELESS = frozenset(
    {
        "ErrImageNeverPull",
        "InvalidImageName",
        "ErrImagePull",
        "ImagePullBackOff",
        "CreateContainerConfigError",
        "CreateContainerError",
    }
)

# A Job and its newest pod, as last read (the pod None when it has none, or is not read
# because the Job has finished).
JobState = tuple[dict[str, Any], dict[str, Any] | None]


def job_path(namespace: str, name: str) -> str:
    return JOBS.format(ns=namespace) + "/" + name


def started(pod: Mapping[str, Any]) -> bool:
    """Whether a container of ``pod`` has run (or runs): it has a log to read."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or ()
    return any(
        "running" in (s.get("state") or {})
        or "terminated" in (s.get("state") or {})
        or s.get("lastState", {}).get("terminated")
        for s in statuses
    )


def stuck_reason(pod: Mapping[str, Any], waited: float, start_timeout: float) -> str:
    """Why a Job's pod will not start ("" while it may): an image that cannot be had, or a
    pod still not running after ``start_timeout`` seconds (unschedulable: the claim is
    missing, or attached elsewhere), with what Kubernetes says about it."""
    status = pod.get("status") or {}
    for container in status.get("containerStatuses") or ():
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in HOPELESS:
            return f"{waiting['reason']}: {waiting.get('message', '')}".strip()
    if status.get("phase") == "Pending" and waited > start_timeout:
        scheduled: Mapping[str, Any] = next(
            (c for c in status.get("conditions") or () if c.get("type") == "PodScheduled"), {}
        )
        why = scheduled.get("message") or scheduled.get("reason") or "not started"
        return f"not started after {start_timeout:.0f}s: {why}"
    return ""


def _items(cluster: Cluster, namespace: str, kind: str, query: dict[str, str]) -> list[Any]:
    """A list of ``kind`` in ``namespace`` (empty when it cannot be read: it only adds detail
    to what the Job itself says)."""
    try:
        path = f"/api/v1/namespaces/{namespace}/{kind}"
        return list(cluster.request("GET", path, query=query)["items"])
    except MigratorError:
        return []


def job_pod(cluster: Cluster, namespace: str, job: str) -> dict[str, Any] | None:
    """The Job's newest pod, or None."""
    pods = _items(cluster, namespace, "pods", {"labelSelector": f"job-name={job}"})
    pods.sort(key=lambda p: p["metadata"].get("creationTimestamp") or "")
    return pods[-1] if pods else None


def job_refusal(cluster: Cluster, namespace: str, job: str) -> str:
    """The last FailedCreate event of the Job (why its pods are refused), or ""."""
    selector = f"involvedObject.kind=Job,involvedObject.name={job}"
    events = _items(cluster, namespace, "events", {"fieldSelector": selector})
    refused = sorted(
        (e for e in events if e.get("reason") == "FailedCreate"),
        key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""),
    )
    return str(refused[-1].get("message") or "") if refused else ""


def pod_log(
    cluster: Cluster, namespace: str, pod: Mapping[str, Any], *, tail_lines: int | None = None
) -> str:
    """The pod's log (only its last ``tail_lines`` lines when given); empty when there is
    none."""
    name = pod["metadata"]["name"]
    query = {"tailLines": str(tail_lines)} if tail_lines is not None else None
    try:
        raw = cluster.request_raw(
            "GET", f"/api/v1/namespaces/{namespace}/pods/{name}/log", query=query, accept="*/*"
        )
    except MigratorError:
        return ""
    return raw.decode("utf-8", "replace")


def delete_job(cluster: Cluster, namespace: str, name: str) -> None:
    """Delete the Job and, in the background, its pods (gone already is fine)."""
    try:
        cluster.request(
            "DELETE", job_path(namespace, name), query={"propagationPolicy": "Background"}
        )
    except ApiError as exc:
        if exc.status != 404:
            raise


def wait_job(
    cluster: Cluster,
    namespace: str,
    name: str,
    *,
    timeout: float,
    start_timeout: float = 300.0,
    poll: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Waited[JobState]:
    """Wait until the Job is Complete (ready) or Failed, or its pod can never start (failed,
    with the reason), or ``timeout`` seconds passed (``timed_out``). ``sleep`` may raise
    (:class:`~migrator.errors.Interrupted`) to end the wait at once."""
    path = job_path(namespace, name)
    began = clock()

    def fetch() -> JobState:
        live = cluster.request("GET", path)
        finished = job_readiness(live).state != WAITING
        return live, None if finished else job_pod(cluster, namespace, name)

    def check(state: JobState) -> Readiness:
        live, pod = state
        readiness = job_readiness(live)
        if readiness.state != WAITING:
            return readiness
        waited = clock() - began
        if pod is None:
            if waited <= start_timeout:
                return readiness
            why = job_refusal(cluster, namespace, name) or "no reason given"
            return Readiness(FAILED, f"no pod made after {start_timeout:.0f}s: {why}")
        stuck = stuck_reason(pod, waited, start_timeout)
        return Readiness(FAILED, stuck) if stuck else readiness

    return wait_for(fetch, check, timeout=timeout, interval=poll, clock=clock, sleep=sleep)
