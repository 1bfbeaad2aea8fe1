"""Quiesce for the final pass: stop what writes to the volumes, and undo it on failure.

Two ways, chosen by the user:

- **scale** (:class:`ScaleDown`): the workloads whose pods mount a claim (Deployments through
  their ReplicaSets, StatefulSets, ReplicationControllers, ReplicaSets of their own) are
  scaled to zero through their ``scale`` subresource, and the wait lasts until no pod that
  mounts the claims runs any more (a pod being deleted whose containers have all ended
  counts as stopped). Each
  workload's replicas are recorded before, on the workload itself (annotation
  ``migrator.io/quiesced-replicas``, so a crashed run can still be undone:
  :func:`restore_scaled`) and in memory; ``undo`` scales each back and removes the record.
  A pod no scalable workload owns (a DaemonSet's, a Job's, a bare pod) cannot be stopped
  this way: the quiesce fails before anything is scaled, naming it.
- **hook** (:class:`Hooks`): a command of the user's (``fsfreeze -f /data``, ``psql -c
  "select pg_backup_start('migrator')"``) runs in every pod that mounts a claim, in the
  container that mounts it; the first one that fails stops the pass. ``undo`` runs the
  user's undo command (``fsfreeze -u /data``) in the pods already hooked.

Both raise :class:`~migrator.errors.QuiesceFailed` after undoing what they had done.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from migrator.errors import ApiError, MigratorError, QuiesceFailed
from migrator.kube import Cluster, iter_items
from migrator.kube.exec import exec_in_pod
from migrator.kube.wait import READY, WAITING, Readiness, wait_for
from migrator.resources.objects import dig, name_of
from migrator.resources.scaling import REPLICAS_ANNOTATION
from migrator.volumes.claims import Claim, Placement, claim_of_volume, pods_by_claim

MERGE_PATCH = "application/merge-patch+json"

# Kinds that own pods and scale, by (apiVersion, kind): their collection's path part.
SCALABLE: Mapping[tuple[str, str], str] = {
    ("apps/v1", "Deployment"): "/apis/apps/v1/namespaces/{ns}/deployments/{name}",
    ("apps/v1", "StatefulSet"): "/apis/apps/v1/namespaces/{ns}/statefulsets/{name}",
    ("v1", "ReplicationController"): "/api/v1/namespaces/{ns}/replicationcontrollers/{name}",
    # A ReplicaSet of its own (one a Deployment owns is scaled through the Deployment).
    ("apps/v1", "ReplicaSet"): "/apis/apps/v1/namespaces/{ns}/replicasets/{name}",
}
REPLICA_SET = ("apps/v1", "ReplicaSet")


@dataclass(frozen=True)
class Workload:
    """A scalable workload: kind, namespace, name, and its object path."""

    kind: str
    namespace: str
    name: str
    path: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


@dataclass
class Scaled:
    """A workload scaled to zero: its replicas before."""

    workload: Workload
    replicas: int

    def to_dict(self) -> dict[str, Any]:
        w = self.workload
        return {"kind": w.kind, "namespace": w.namespace, "name": w.name, "replicas": self.replicas}


def controller_ref(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """The owner reference of ``obj``'s controller, or None."""
    refs = dig(obj, "metadata", "ownerReferences") or ()
    return next((r for r in refs if r.get("controller")), None)


def scalable_workload(api_version: str, kind: str, namespace: str, name: str) -> Workload | None:
    """The workload of that kind and name, when the kind scales (:data:`SCALABLE`)."""
    template = SCALABLE.get((api_version, kind))
    if template is None:
        return None
    return Workload(kind, namespace, name, template.format(ns=namespace, name=name))


def owner_workload(cluster: Cluster, namespace: str, pod: Mapping[str, Any]) -> Workload | None:
    """The scalable workload that owns ``pod`` (through its ReplicaSet for a Deployment), or
    None when none does."""
    ref = controller_ref(pod)
    if ref is None:
        return None
    if (ref.get("apiVersion"), ref.get("kind")) == REPLICA_SET:
        try:
            rs = cluster.request(
                "GET", f"/apis/apps/v1/namespaces/{namespace}/replicasets/{ref['name']}"
            )
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        parent = controller_ref(rs)
        if parent is not None:
            ref = parent
    return scalable_workload(
        str(ref.get("apiVersion")), str(ref.get("kind")), namespace, ref["name"]
    )


def pod_stopped(pod: Mapping[str, Any]) -> bool:
    """A pod being deleted whose containers have all ended: nothing in it writes any more,
    though the kubelet has yet to unmount its volumes and remove it (seconds, on a busy
    node). Waiting for that too would only lengthen the writers' downtime."""
    if not dig(pod, "metadata", "deletionTimestamp"):
        return False
    statuses = [
        *(dig(pod, "status", "initContainerStatuses") or ()),
        *(dig(pod, "status", "containerStatuses") or ()),
    ]
    return bool(statuses) and all("terminated" in (s.get("state") or {}) for s in statuses)


def _mounting_pods(cluster: Cluster, claims: Iterable[Claim]) -> list[tuple[Claim, dict[str, Any]]]:
    by_namespace: dict[str, set[str]] = {}
    for claim in claims:
        by_namespace.setdefault(claim.namespace, set()).add(claim.name)
    found = []
    for namespace, names in sorted(by_namespace.items()):
        for name, pods in sorted(pods_by_claim(cluster, namespace).items()):
            if name in names:
                found += [(Claim(namespace, name), pod) for pod in pods]
    return found


class ScaleDown:
    """Scale the claims' workloads to zero, wait until no pod mounts them; undo on request."""

    name = "scale"

    def __init__(
        self,
        cluster: Cluster,
        *,
        timeout: float = 300.0,
        poll: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.cluster = cluster
        self.timeout = timeout
        self.poll = poll
        self.clock = clock
        self.sleep = sleep
        self.scaled: list[Scaled] = []
        self.restored: list[Scaled] = []
        self.stopped_at: float | None = None  # clock() when no pod mounted the claims any more

    def apply(self, claims: Mapping[Claim, Placement]) -> None:
        mounting = _mounting_pods(self.cluster, claims)
        workloads: dict[Workload, None] = {}
        unowned: list[str] = []
        for claim, pod in mounting:
            workload = owner_workload(self.cluster, claim.namespace, pod)
            if workload is None:
                ref = controller_ref(pod)
                owner = f"{ref.get('kind')} {ref.get('name')}" if ref else "no controller"
                unowned.append(f"pod {claim.namespace}/{name_of(pod)} ({owner})")
            else:
                workloads[workload] = None
        if unowned:
            raise QuiesceFailed(
                "cannot scale down what mounts the volumes: " + ", ".join(sorted(set(unowned))),
                hint="stop those pods yourself, or quiesce with a hook command instead "
                "(--quiesce hook --hook CMD)",
            )
        try:
            for workload in workloads:
                self._scale_to_zero(workload)
            self._wait_unmounted(claims)
        except MigratorError as exc:
            problems = self.undo()
            more = f" (and could not undo: {'; '.join(problems)})" if problems else ""
            raise QuiesceFailed(
                f"scaling down failed, scaled back up: {exc}{more}", hint=exc.hint
            ) from exc

    def _scale_to_zero(self, workload: Workload) -> None:
        replicas = record_replicas(self.cluster, workload)
        self.scaled.append(Scaled(workload, replicas))
        set_replicas(self.cluster, workload, 0)

    def _wait_unmounted(self, claims: Mapping[Claim, Placement]) -> None:
        def check(mounting: list[tuple[Claim, dict[str, Any]]]) -> Readiness:
            left = [(c, p) for c, p in mounting if not pod_stopped(p)]
            if not left:
                return Readiness(READY)
            names = sorted({f"{c.namespace}/{name_of(p)}" for c, p in left})
            return Readiness(WAITING, "pods still mount the volumes: " + ", ".join(names))

        waited = wait_for(
            lambda: _mounting_pods(self.cluster, claims),
            check,
            timeout=self.timeout,
            interval=self.poll,
            clock=self.clock,
            sleep=self.sleep,
        )
        if not waited.ready:
            raise QuiesceFailed(
                waited.readiness.reason,
                hint="raise --quiesce-timeout, or look at why the pods do not stop",
            )
        self.stopped_at = self.clock()

    def undo(self) -> list[str]:
        """Scale every workload back to its recorded replicas and drop the record; returns
        what could not be undone (named, with the reason)."""
        problems = []
        for scaled in reversed(self.scaled):
            try:
                undo_scale(self.cluster, scaled.workload, scaled.replicas)
                self.restored.append(scaled)
            except MigratorError as exc:
                problems.append(f"{scaled.workload}: {exc}")
        self.scaled.clear()
        return problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.name,
            "scaled": [s.to_dict() for s in self.scaled],
            "restored": [s.to_dict() for s in self.restored],
        }


def record_replicas(cluster: Cluster, workload: Workload) -> int:
    """Record ``workload``'s replicas on it (annotation :data:`REPLICAS_ANNOTATION`) before it
    is scaled down, so a run that dies after the scale can still be undone from it; returns
    them. A record already there (left by a run that stopped part way, the workload maybe
    scaled down since) is kept and returned: it holds the replicas from before."""
    obj = cluster.request("GET", workload.path)
    record = dig(obj, "metadata", "annotations", REPLICAS_ANNOTATION)
    if record is not None:
        return int(record)
    replicas = dig(obj, "spec", "replicas")
    replicas = 1 if replicas is None else int(replicas)
    cluster.request(
        "PATCH",
        workload.path,
        body={"metadata": {"annotations": {REPLICAS_ANNOTATION: str(replicas)}}},
        content_type=MERGE_PATCH,
    )
    return replicas


def set_replicas(cluster: Cluster, workload: Workload, replicas: int) -> None:
    """Scale ``workload`` through its ``scale`` subresource."""
    cluster.request(
        "PATCH",
        workload.path + "/scale",
        body={"spec": {"replicas": replicas}},
        content_type=MERGE_PATCH,
    )


def undo_scale(cluster: Cluster, workload: Workload, replicas: int) -> None:
    """Scale ``workload`` to ``replicas`` and remove the quiesce record from it."""
    set_replicas(cluster, workload, replicas)
    cluster.request(
        "PATCH",
        workload.path,
        body={"metadata": {"annotations": {REPLICAS_ANNOTATION: None}}},
        content_type=MERGE_PATCH,
    )


def restore_scaled(cluster: Cluster, namespaces: Iterable[str]) -> list[Scaled]:
    """Scale back every workload in ``namespaces`` that carries a quiesce record (left by a
    run that could not undo it); returns what was scaled back."""
    restored = []
    for namespace in sorted(set(namespaces)):
        for (api_version, kind), template in SCALABLE.items():
            collection = template.format(ns=namespace, name="").rstrip("/")
            for obj in iter_items(cluster, collection):
                record = dig(obj, "metadata", "annotations", REPLICAS_ANNOTATION)
                if record is None or controller_ref(obj) is not None:
                    # A Deployment's ReplicaSets carry a copy of its annotations: the
                    # record is the Deployment's, and so is the scaling.
                    continue
                workload = scalable_workload(api_version, kind, namespace, name_of(obj))
                assert workload is not None
                undo_scale(cluster, workload, int(record))
                restored.append(Scaled(workload, int(record)))
    return restored


# --- hooks -------------------------------------------------------------------------------------


@dataclass
class Hooked:
    """A pod a hook ran in: where, and what the command said (its last lines)."""

    namespace: str
    pod: str
    container: str
    output: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "pod": self.pod, "container": self.container}


def mounting_container(pod: Mapping[str, Any], claim: str) -> str:
    """The first container of ``pod`` that mounts ``claim`` (else its first container)."""
    volumes = {
        v.get("name") for v in dig(pod, "spec", "volumes") or () if claim_of_volume(v) == claim
    }
    containers = dig(pod, "spec", "containers") or ()
    for container in containers:
        if any(m.get("name") in volumes for m in container.get("volumeMounts") or ()):
            return str(container["name"])
    return str(containers[0]["name"]) if containers else ""


@dataclass
class Hooks:
    """Run the user's hook command in every pod that mounts a claim; ``undo_command`` after."""

    cluster: Cluster
    command: str
    undo_command: str | None = None
    timeout: float = 60.0
    hooked: list[Hooked] = field(default_factory=list)
    undone: list[Hooked] = field(default_factory=list)
    name: str = "hook"

    def apply(self, claims: Mapping[Claim, Placement]) -> None:
        seen: set[tuple[str, str]] = set()
        for claim, pod in _mounting_pods(self.cluster, claims):
            key = (claim.namespace, name_of(pod))
            if key in seen:
                continue
            seen.add(key)
            container = mounting_container(pod, claim.name)
            try:
                result = exec_in_pod(
                    self.cluster,
                    claim.namespace,
                    name_of(pod),
                    ["sh", "-c", self.command],
                    container=container,
                    timeout=self.timeout,
                )
            except MigratorError as exc:
                self._fail(f"the hook could not run in pod {key[0]}/{key[1]}: {exc}", exc)
            if result.exit_code != 0:
                tail = " | ".join(result.output.strip().splitlines()[-3:])
                self._fail(
                    f"the hook failed in pod {key[0]}/{key[1]} (container {container}, "
                    f"exit code {result.exit_code}): {tail}",
                    None,
                )
            self.hooked.append(Hooked(key[0], key[1], container, result.output))

    def _fail(self, message: str, cause: BaseException | None) -> NoReturn:
        problems = self.undo()
        more = f" (and the undo command failed: {'; '.join(problems)})" if problems else ""
        raise QuiesceFailed(
            message + more, hint="fix the hook command (it runs with sh -c) or the pod"
        ) from cause

    def undo(self) -> list[str]:
        """Run the undo command in every pod hooked so far; returns the failures."""
        problems = []
        if self.undo_command:
            for hooked in reversed(self.hooked):
                try:
                    result = exec_in_pod(
                        self.cluster,
                        hooked.namespace,
                        hooked.pod,
                        ["sh", "-c", self.undo_command],
                        container=hooked.container,
                        timeout=self.timeout,
                    )
                    if result.exit_code != 0:
                        problems.append(f"{hooked.namespace}/{hooked.pod}: exit {result.exit_code}")
                except MigratorError as exc:
                    problems.append(f"{hooked.namespace}/{hooked.pod}: {exc}")
        self.undone += reversed(self.hooked)
        self.hooked.clear()
        return problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.name,
            "hooked": [h.to_dict() for h in self.hooked],
            "undone": [h.to_dict() for h in self.undone],
        }
