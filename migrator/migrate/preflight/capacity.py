"""``capacity``: the workloads in scope fit in the target.

What the source's workloads in scope will request in the target (CPU and memory: each
Deployment, StatefulSet, ReplicaSet or ReplicationController of its own at its replicas times
its pod template's requests, each DaemonSet at the pods it runs now, and the Running or
Pending pods no controller owns) is compared with what the target can still give: the allocatable
of its Ready, schedulable nodes less what its own pods (not finished) already request. Above
80 % of that is a warn, above 100 % a fail. A pod requests the sum of its containers'
requests or its largest init container's, whichever is more, plus its overhead (how the
scheduler counts it). Taints, node selectors and affinity are not weighed: a fit here is
necessary, not sufficient.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from migrator.errors import ConfigError
from migrator.migrate.preflight.context import TARGET, Context
from migrator.migrate.preflight.result import FAIL, PASS, WARN, CheckResult
from migrator.resources.objects import dig, lookup
from migrator.resources.quantity import parse_quantity

RESOURCES = ("cpu", "memory")
WARN_ABOVE, FAIL_ABOVE = Decimal("0.8"), Decimal("1.0")
LIVE_PHASES = ("Running", "Pending")
ZERO = Decimal(0)


@dataclass(frozen=True)
class Amounts:
    """CPU in cores, memory in bytes."""

    cpu: Decimal = ZERO
    memory: Decimal = ZERO

    def __add__(self, other: Amounts) -> Amounts:
        return Amounts(self.cpu + other.cpu, self.memory + other.memory)

    def __sub__(self, other: Amounts) -> Amounts:
        return Amounts(self.cpu - other.cpu, self.memory - other.memory)

    def get(self, resource: str) -> Decimal:
        return self.cpu if resource == "cpu" else self.memory


def amounts(resources: Mapping[str, Any] | None) -> Amounts:
    """The cpu and memory of a ``requests``/``allocatable`` mapping (missing is zero)."""
    resources = resources or {}
    return Amounts(*(parse_quantity(resources[r]) if r in resources else ZERO for r in RESOURCES))


def total(values: Iterable[Amounts]) -> Amounts:
    result = Amounts()
    for value in values:
        result = result + value
    return result


def pod_requests(pod: Mapping[str, Any]) -> Amounts:
    """What the scheduler reserves for ``pod`` (see the module doc)."""
    spec = pod.get("spec") or {}
    containers = total(
        amounts(dig(c, "resources", "requests")) for c in spec.get("containers") or ()
    )
    inits = [amounts(dig(c, "resources", "requests")) for c in spec.get("initContainers") or ()]
    biggest = Amounts(
        max([i.cpu for i in inits], default=ZERO), max([i.memory for i in inits], default=ZERO)
    )
    reserved = Amounts(max(containers.cpu, biggest.cpu), max(containers.memory, biggest.memory))
    return reserved + amounts(spec.get("overhead"))


# The workloads whose pods the target will run, by (apiVersion, resource).
SCALED = (
    ("apps/v1", "deployments"),
    ("apps/v1", "statefulsets"),
    ("apps/v1", "replicasets"),
    ("v1", "replicationcontrollers"),
)


def workload_requests(obj: Mapping[str, Any]) -> Amounts:
    """What a workload's pods request in all: its pod template's requests times its replicas
    (a DaemonSet: times the pods it schedules now). A ReplicaSet a Deployment owns is
    counted through its Deployment, so it counts for nothing here."""
    if lookup(obj, ("metadata", "ownerReferences")):
        return Amounts()
    if obj.get("kind") == "DaemonSet":
        count = int(dig(obj, "status", "desiredNumberScheduled") or 0)
    else:
        replicas = dig(obj, "spec", "replicas")
        count = 1 if replicas is None else int(replicas)
    each = pod_requests({"spec": dig(obj, "spec", "template", "spec") or {}})
    return Amounts(each.cpu * count, each.memory * count)


def is_live(pod: Mapping[str, Any]) -> bool:
    return dig(pod, "status", "phase") in LIVE_PHASES


def node_usable(node: Mapping[str, Any]) -> bool:
    """Ready and not cordoned."""
    if dig(node, "spec", "unschedulable"):
        return False
    conditions = lookup(node, ("status", "conditions")) or ()
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def usage_status(needed: Decimal, free: Decimal) -> str:
    """fail above 100 % of ``free``, warn above 80 %, else pass."""
    if needed <= 0:
        return PASS
    if free <= 0 or needed > free * FAIL_ABOVE:
        return FAIL
    return WARN if needed > free * WARN_ABOVE else PASS


def describe(resource: str, value: Decimal) -> str:
    if resource == "cpu":
        return f"{value.normalize():f} cores" if value < 10 else f"{value:.1f} cores"
    return f"{value / 2**30:.2f} GiB"


def capacity_result(
    needed: Amounts, allocatable: Amounts, requested: Amounts, nodes: int
) -> CheckResult:
    """The verdict on ``needed`` in a target of ``nodes`` usable nodes with ``allocatable``,
    ``requested`` of it already taken."""
    free = allocatable - requested
    lines, short, statuses = [], [], []
    for resource in RESOURCES:
        want, have = needed.get(resource), free.get(resource)
        statuses.append(usage_status(want, have))
        share = f" ({want / have * 100:.0f} %)" if have > 0 else ""
        short.append(
            f"{resource} {describe(resource, want)} of {describe(resource, have)} free{share}"
        )
        lines.append(
            f"{resource}: {describe(resource, want)} needed; {describe(resource, have)} free of "
            f"{describe(resource, allocatable.get(resource))} allocatable on {nodes} node(s), "
            f"{describe(resource, requested.get(resource))} requested there already"
        )
    summary = "; ".join(short)
    if FAIL in statuses:
        return CheckResult(
            "capacity",
            FAIL,
            f"the workloads in scope do not fit in the target: {summary}",
            "add nodes (or bigger ones) to the target, or migrate fewer namespaces at a time",
            tuple(lines),
        )
    if WARN in statuses:
        return CheckResult(
            "capacity",
            WARN,
            f"the workloads in scope take over 80 % of what the target has free: {summary}",
            "add headroom to the target: rolling updates and rescheduling need it",
            tuple(lines),
        )
    return CheckResult(
        "capacity", PASS, f"the workloads in scope fit: {summary}", details=tuple(lines)
    )


def check_capacity(ctx: Context) -> CheckResult:
    try:
        needed = total(
            workload_requests(w)
            for api_version, resource in (*SCALED, ("apps/v1", "daemonsets"))
            for w in ctx.in_scope(api_version, resource)
        ) + total(
            pod_requests(p)
            for p in ctx.in_scope("v1", "pods")
            if is_live(p) and not lookup(p, ("metadata", "ownerReferences"))
        )
        nodes = [n for n in ctx.list_all(TARGET, "v1", "nodes") if node_usable(n)]
        names = {str(dig(n, "metadata", "name")) for n in nodes}
        allocatable = total(amounts(dig(n, "status", "allocatable")) for n in nodes)
        requested = total(
            pod_requests(p)
            for p in ctx.list_all(TARGET, "v1", "pods")
            if is_live(p) and dig(p, "spec", "nodeName") in names
        )
    except ConfigError as exc:  # a quantity the API server accepted but we cannot read
        return CheckResult("capacity", WARN, f"cannot add up the requests: {exc}", "check by hand")
    return capacity_result(needed, allocatable, requested, len(nodes))
