"""EndpointSlice discovery.k8s.io/v1beta1 → v1.

v1 replaced the free-form ``topology`` map by ``zone`` and ``nodeName``; what else the map
held survives as ``deprecatedTopology``. The mapping is the API server's
(``pkg/apis/discovery/v1beta1/conversion.go``): the zone label moves to ``zone``, the hostname
label is dropped only when it equals ``nodeName``.
"""

from __future__ import annotations

from typing import Any

from migrator.transform.conversions.convert import Rewrite
from migrator.transform.conversions.rewriter import Rewriter

V1 = "discovery.k8s.io/v1"
V1BETA1 = "discovery.k8s.io/v1beta1"
ZONE = "topology.kubernetes.io/zone"
HOSTNAME = "kubernetes.io/hostname"


def convert_endpoint(endpoint: dict[str, Any]) -> dict[str, Any]:
    """One v1beta1 endpoint in the v1 layout."""
    topology = endpoint.get("topology")
    new = {k: v for k, v in endpoint.items() if k != "topology"}
    if topology is None:
        return new
    rest = dict(topology)
    if ZONE in rest:
        new["zone"] = rest.pop(ZONE)
    if HOSTNAME in rest and rest[HOSTNAME] == endpoint.get("nodeName"):
        del rest[HOSTNAME]
    if rest:
        new["deprecatedTopology"] = rest
    return new


def endpointslice_edit(rw: Rewriter) -> None:
    for path, endpoint in rw.each(("endpoints",)):
        if isinstance(endpoint, dict) and "topology" in endpoint:
            rw.set(
                path,
                convert_endpoint(endpoint),
                "v1 has zone and nodeName instead of topology; the "
                "rest of the map is deprecatedTopology",
                action="convert",
            )


CONVERSIONS = (Rewrite((V1BETA1, "EndpointSlice"), (V1, "EndpointSlice"), (endpointslice_edit,)),)
