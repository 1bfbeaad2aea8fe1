"""Workloads held at zero replicas, and how their replicas are remembered.

A workload migrator stops (the quiesce before a final volume pass, a teardown) or holds
(a workload imported into the new cluster before its volumes' data is there) carries its
replicas in one annotation, so whoever starts it again (an undo, the run's start step,
``volumes unquiesce``) scales it back to what it was, even from another process.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from migrator.resources.objects import dig

REPLICAS_ANNOTATION = "migrator.io/quiesced-replicas"
# The kinds that own pods and scale, as (group, kind).
SCALABLE_KINDS = frozenset(
    {
        ("apps", "Deployment"),
        ("apps", "StatefulSet"),
        ("apps", "ReplicaSet"),
        ("", "ReplicationController"),
    }
)


def mounts_claims(obj: Mapping[str, Any]) -> bool:
    """Whether a workload's pods mount a PersistentVolumeClaim (a volume of the pod
    template, or a StatefulSet's claim templates)."""
    if dig(obj, "spec", "volumeClaimTemplates"):
        return True
    volumes = dig(obj, "spec", "template", "spec", "volumes") or ()
    return any(isinstance(v, Mapping) and v.get("persistentVolumeClaim") for v in volumes)
