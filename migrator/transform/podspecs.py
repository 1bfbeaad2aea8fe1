"""Where pod specs and containers live inside the objects that carry them.

Several difference rules (image registries, namespaces in affinity terms) touch every
container of every pod an object will create; this module is the one place that knows the
shapes: a Pod's own spec, a workload's ``spec.template``, a CronJob's job template, a
PodTemplate's ``template``. Paths are JSON Pointers so the changes can name them.
"""

from __future__ import annotations

from collections.abc import Iterator

from migrator.resources.identity import group_of
from migrator.resources.objects import Obj, lookup
from migrator.transform.jsonpatch import join_pointer

# (group, kind) → the tokens leading from the object to its pod spec.
POD_SPEC_PATHS: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "Pod"): ("spec",),
    ("", "PodTemplate"): ("template", "spec"),
    ("", "ReplicationController"): ("spec", "template", "spec"),
    ("apps", "Deployment"): ("spec", "template", "spec"),
    ("apps", "ReplicaSet"): ("spec", "template", "spec"),
    ("apps", "StatefulSet"): ("spec", "template", "spec"),
    ("apps", "DaemonSet"): ("spec", "template", "spec"),
    ("extensions", "Deployment"): ("spec", "template", "spec"),
    ("extensions", "ReplicaSet"): ("spec", "template", "spec"),
    ("extensions", "DaemonSet"): ("spec", "template", "spec"),
    ("batch", "Job"): ("spec", "template", "spec"),
    ("batch", "CronJob"): ("spec", "jobTemplate", "spec", "template", "spec"),
}

POD_KINDS = frozenset(POD_SPEC_PATHS)
CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")


def group_kind(obj: Obj) -> tuple[str, str]:
    """(group, kind) of an object; the core group is ""."""
    return group_of(str(obj.get("apiVersion") or "")), str(obj.get("kind") or "")


def pod_spec(obj: Obj) -> tuple[str, Obj] | None:
    """The pointer to and the pod spec of ``obj``, or None if it has none."""
    tokens = POD_SPEC_PATHS.get(group_kind(obj))
    if tokens is None:
        return None
    node = lookup(obj, tokens)
    return (join_pointer(*tokens), node) if isinstance(node, dict) else None


def containers(obj: Obj) -> Iterator[tuple[str, Obj]]:
    """Every container (init, regular, ephemeral) of the object's pod spec, with its pointer."""
    found = pod_spec(obj)
    if found is None:
        return
    base, spec = found
    for field in CONTAINER_LISTS:
        for index, container in enumerate(spec.get(field) or ()):
            if isinstance(container, dict):
                yield f"{base}/{field}/{index}", container
