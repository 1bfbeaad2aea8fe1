"""Teardown's first step: every workload of the old cluster's namespaces scaled to zero,
gently, and undoable.

Deployments, StatefulSets, ReplicationControllers and ReplicaSets no Deployment owns go
down in the import's order backwards (:func:`~migrator.resources.order.teardown_order`).
A workload whose pods a PodDisruptionBudget selects goes down in steps of
``max(1, disruptionsAllowed)`` replicas (the budget's status, read afresh before each
step), each step waiting until the pods above the new count are gone, so a service the
budget protects is never dropped all at once; the others go to zero at once. At the end
the scale-down waits until no pod of any of them is left. Each workload's replicas are
recorded on it first, as the volume quiesce records them
(:func:`~migrator.volumes.quiesce.record_replicas`), so :func:`scale_up` undoes it, also
from a new process after a crash. DaemonSets cannot scale: they are reported, left running.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from migrator.errors import ApiError, ScaleDownFailed
from migrator.kube import Cluster, iter_items
from migrator.kube.wait import READY, WAITING, Readiness, wait_for
from migrator.resources.identity import Identity
from migrator.resources.objects import dig, labels_of, name_of
from migrator.resources.order import teardown_order
from migrator.resources.scaling import REPLICAS_ANNOTATION
from migrator.resources.selectors import selects
from migrator.volumes.quiesce import (
    SCALABLE,
    Workload,
    controller_ref,
    pod_stopped,
    record_replicas,
    restore_scaled,
    scalable_workload,
    set_replicas,
)

PDB_PATHS = (
    "/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets",
    "/apis/policy/v1beta1/namespaces/{ns}/poddisruptionbudgets",  # before Kubernetes 1.21
)


def _identity(api_version: str, template: str) -> Identity:
    """``(group, plural)`` of a :data:`SCALABLE` entry (its path names the plural)."""
    return api_version.rpartition("/")[0], template.split("/")[-2]


# The kinds that scale, in the order to take them down.
_BY_IDENTITY = {_identity(av, path): (av, kind) for (av, kind), path in SCALABLE.items()}
KINDS: tuple[tuple[str, str], ...] = tuple(
    _BY_IDENTITY[t] for t in teardown_order(list(_BY_IDENTITY))
)


@dataclass
class ScaleDownReport:
    """Every workload scaled down (``kind``, ``namespace``, ``name``, ``replicas_before``,
    ``steps``: the replicas set, one step after the other), the DaemonSets left running
    (``namespace/name``) and how long it took."""

    workloads: list[dict[str, Any]] = field(default_factory=list)
    daemonsets_left: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "workloads": [
                {
                    "kind": w["kind"],
                    "namespace": w["namespace"],
                    "name": w["name"],
                    "replicasBefore": w["replicas_before"],
                    "steps": list(w["steps"]),
                }
                for w in self.workloads
            ],
            "daemonsetsLeft": list(self.daemonsets_left),
            "seconds": round(self.seconds, 3),
        }


def pod_selector(kind: str, obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """The label selector of a workload's pods (a ReplicationController's is a plain map)."""
    selector = dig(obj, "spec", "selector")
    if kind == "ReplicationController":
        plain = selector or dig(obj, "spec", "template", "metadata", "labels")
        return {"matchLabels": plain} if plain else None
    return selector if isinstance(selector, dict) else None


class _Run:
    """One scale-down: its cluster, its deadline, its waits."""

    def __init__(
        self,
        cluster: Cluster,
        *,
        timeout: float,
        poll: float,
        on_progress: Callable[[str, int], None] | None,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
    ) -> None:
        self.cluster = cluster
        self.timeout = timeout
        self.poll = poll
        self.on_progress = on_progress
        self.clock = clock
        self.sleep = sleep
        self.deadline = clock() + timeout

    def workloads(self, namespace: str) -> Iterator[tuple[Workload, dict[str, Any]]]:
        for api_version, kind in KINDS:
            collection = SCALABLE[(api_version, kind)].format(ns=namespace, name="").rstrip("/")
            for obj in iter_items(self.cluster, collection):
                if kind == "ReplicaSet" and controller_ref(obj) is not None:
                    continue  # a Deployment's: scaled through it
                workload = scalable_workload(api_version, kind, namespace, name_of(obj))
                assert workload is not None
                yield workload, obj

    def budgets(self, namespace: str) -> list[dict[str, Any]]:
        for template in PDB_PATHS:
            try:
                return list(iter_items(self.cluster, template.format(ns=namespace)))
            except ApiError as exc:
                if exc.status != 404:
                    raise
        return []

    def allowed(self, namespace: str, template_labels: Mapping[str, str]) -> int | None:
        """The fewest disruptions the budgets selecting these pods allow now (None: no
        budget selects them)."""
        found = [
            int(dig(pdb, "status", "disruptionsAllowed") or 0)
            for pdb in self.budgets(namespace)
            if selects(dig(pdb, "spec", "selector"), template_labels)
        ]
        return min(found) if found else None

    def wait_pods(self, namespace: str, selectors: Mapping[str, dict[str, Any]], most: int) -> None:
        """Wait until at most ``most`` pods of each workload (by its selector) are left."""

        def fetch() -> list[dict[str, Any]]:
            return list(iter_items(self.cluster, f"/api/v1/namespaces/{namespace}/pods"))

        def check(pods: list[dict[str, Any]]) -> Readiness:
            over = []
            for name, selector in selectors.items():
                left = [
                    p
                    for p in pods
                    if selects(selector, labels_of(p))
                    and not pod_stopped(p)
                    and dig(p, "status", "phase") not in ("Succeeded", "Failed")
                ]
                if len(left) > most:
                    over.append(f"{name} ({len(left)} pods left, waiting for {most})")
            return Readiness(WAITING, ", ".join(over)) if over else Readiness(READY)

        waited = wait_for(
            fetch,
            check,
            timeout=max(0.0, self.deadline - self.clock()),
            interval=self.poll,
            clock=self.clock,
            sleep=self.sleep,
        )
        if waited.readiness.state != READY:
            raise ScaleDownFailed(
                f"the old cluster's pods did not stop within {self.timeout:g}s in {namespace}: "
                f"{waited.readiness.reason}",
                hint="look at why they do not stop (a PodDisruptionBudget no step can meet, "
                "a finalizer), then run the teardown again: it goes on where it stopped",
            )

    def scale(self, workload: Workload, replicas: int) -> None:
        set_replicas(self.cluster, workload, replicas)
        if self.on_progress is not None:
            self.on_progress(str(workload), replicas)

    def down(self, workload: Workload, obj: dict[str, Any]) -> dict[str, Any]:
        """Scale one workload to zero (module doc); its line of the report."""
        current = int(dig(obj, "spec", "replicas") or 0)
        line: dict[str, Any] = {
            "kind": workload.kind,
            "namespace": workload.namespace,
            "name": workload.name,
            "replicas_before": 0,
            "steps": [],
        }
        if current == 0 and dig(obj, "metadata", "annotations", REPLICAS_ANNOTATION) is None:
            return line  # nothing runs, nothing to undo
        line["replicas_before"] = record_replicas(self.cluster, workload)
        selector = pod_selector(workload.kind, obj)
        template_labels = dig(obj, "spec", "template", "metadata", "labels") or {}
        while current > 0:
            allowed = self.allowed(workload.namespace, template_labels)
            target = 0 if allowed is None else max(0, current - max(1, allowed))
            self.scale(workload, target)
            line["steps"].append(target)
            if allowed is not None and selector is not None:
                self.wait_pods(workload.namespace, {str(workload): selector}, target)
            current = target
        return line


def scale_down(
    cluster: Cluster,
    namespaces: Sequence[str],
    *,
    timeout: float = 600,
    poll: float = 2,
    on_progress: Callable[[str, int], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> ScaleDownReport:
    """Scale every workload of ``namespaces`` to zero (module doc) and wait, at most
    ``timeout`` seconds in all, until their pods are gone; ``on_progress(workload,
    replicas)`` is called after each scale. Raises :class:`ScaleDownFailed` when pods are
    still there at the deadline (what was scaled stays so: :func:`scale_up` undoes it)."""
    run = _Run(
        cluster, timeout=timeout, poll=poll, on_progress=on_progress, clock=clock, sleep=sleep
    )
    began = clock()
    report = ScaleDownReport()
    for namespace in dict.fromkeys(namespaces):
        selectors: dict[str, dict[str, Any]] = {}
        for workload, obj in list(run.workloads(namespace)):
            line = run.down(workload, obj)
            report.workloads.append(line)
            selector = pod_selector(workload.kind, obj)
            if line["replicas_before"] and selector is not None:
                selectors[str(workload)] = selector
        if selectors:
            run.wait_pods(namespace, selectors, 0)
        path = f"/apis/apps/v1/namespaces/{namespace}/daemonsets"
        report.daemonsets_left += [f"{namespace}/{name_of(ds)}" for ds in iter_items(cluster, path)]
    report.seconds = clock() - began
    return report


def scale_up(cluster: Cluster, namespaces: Sequence[str]) -> list[str]:
    """Undo :func:`scale_down`: every workload of ``namespaces`` that carries a recorded
    replica count is scaled back to it (the record removed); returns them, named."""
    return [str(scaled.workload) for scaled in restore_scaled(cluster, namespaces)]
