"""Where a Service or Ingress is reachable, read from the cluster that runs it.

A LoadBalancer Service (or an Ingress) recreated in the new cluster gets a new address; it
shows in ``status.loadBalancer.ingress`` (an ``ip``, or a ``hostname`` for AWS load
balancers) once the cloud has made it. :func:`targets_from` waits for it (up to
``timeout``) and turns it into :class:`~migrator.traffic.records.Targets`, so nobody copies
addresses into CNAMEs by hand.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from migrator.errors import ConfigError
from migrator.kube import Cluster
from migrator.kube.wait import READY, WAITING, Readiness, wait_for
from migrator.resources.objects import dig
from migrator.resources.paths import object_path
from migrator.traffic.records import Targets
from migrator.traffic.settings import ObjectRef

# kind -> (apiVersion, resource, Kind)
API = {
    "service": ("v1", "services", "Service"),
    "ingress": ("networking.k8s.io/v1", "ingresses", "Ingress"),
}


def ref_path(ref: ObjectRef) -> str:
    """The URL path of the object ``ref`` names."""
    api_version, resource, _kind = API[ref.kind]
    return object_path(api_version, resource, ref.name, ref.namespace)


def load_balancer_targets(obj: dict[str, Any], source: str = "") -> Targets | None:
    """The targets in an object's ``status.loadBalancer.ingress``, or None while empty."""
    entries = dig(obj, "status", "loadBalancer", "ingress") or []
    addresses = tuple(e["ip"] for e in entries if e.get("ip"))
    hostnames = [e["hostname"] for e in entries if e.get("hostname") and not e.get("ip")]
    if addresses:
        return Targets(addresses, source=source)
    if hostnames:
        return Targets(hostname=hostnames[0], source=source)
    return None


def targets_from(
    cluster: Cluster,
    ref: ObjectRef,
    *,
    timeout: float,
    interval: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Targets:
    """The load balancer targets of ``ref`` in ``cluster``, waiting up to ``timeout`` seconds
    for the cloud to give it an address."""
    source = f"{ref} in {cluster.context}"

    def check(obj: dict[str, Any]) -> Readiness:
        if load_balancer_targets(obj) is not None:
            return Readiness(READY)
        return Readiness(WAITING, "status.loadBalancer.ingress is empty")

    waited = wait_for(
        lambda: cluster.request("GET", ref_path(ref)),
        check,
        timeout=timeout,
        interval=interval,
        clock=clock,
        sleep=sleep,
    )
    targets = load_balancer_targets(waited.value) if waited.value else None
    if targets is None:
        raise ConfigError(
            f"{source} has no load balancer address: {waited.readiness.reason}",
            hint="wait until the cloud has made the load balancer, or give the targets "
            "explicitly (addresses or hostname)",
        )
    return Targets(targets.addresses, targets.hostname, source=source)
