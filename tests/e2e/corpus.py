"""The fidelity corpus: objects of every group/version/kind Kubernetes removed, as an old
cluster holds them, and the field-by-field comparison of what the new cluster holds after a
migration.

Three sources of objects, all created on the old cluster at the removed version:

- :data:`MINIMAL`: only the fields validation requires, so the old API server's defaults fill
  in the rest (the defaults are what a migration most easily gets wrong: a value the old
  release wrote that the new one refuses or reads differently);
- the ``testdata/`` fixtures of ``k8s.io/api`` (every field filled), cut down to what the old
  server accepts by :func:`accepted_fixture`: each field its validation names is replaced by
  the minimal object's value, or removed, until a dry-run passes;
- :func:`crd_shapes`: v1beta1 CRDs of several shapes, with custom resources carrying fields
  outside their schemas.

:func:`lost_fields` is the comparison: every field the old cluster held must be in the new
cluster's object with the same value, or be covered by a change the transform reported.
"""
from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from migrator.errors import ApiError
from migrator.kube import Cluster
from migrator.kube.discovery import group_version_path
from migrator.resources.objects import join_pointer, lookup
from tests.integration.conversion_support import csr_request, flatten

LABEL = "corpus.migrator.test/run"

# Set by an API server on every object, never by a client: never compared.
SERVER_METADATA = ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields",
                   "selfLink")


@dataclass(frozen=True)
class Names:
    """What a body needs to name: the test's namespace and a suffix unique to the object."""

    namespace: str
    suffix: str

    def name(self, kind: str) -> str:
        return f"{kind.lower()}-{self.suffix}"


_POD = {"restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "busybox"}]}
_TARGET = {"kind": "Deployment", "name": "web"}
_WEBHOOK = {"clientConfig": {"url": "https://hooks.corpus.migrator.test/check"}}


def _webhooks(n: Names) -> dict[str, Any]:
    # no rules: it matches no request, on either cluster
    return {"webhooks": [{"name": f"hook-{n.suffix}.corpus.migrator.test", **_WEBHOOK}]}


# (apiVersion, kind) → the body of a minimal object (without metadata.name/namespace).
MINIMAL: dict[tuple[str, str], Callable[[Names], dict[str, Any]]] = {
    ("extensions/v1beta1", "Ingress"): lambda n: {
        "spec": {"backend": {"serviceName": "web", "servicePort": 80}}},
    ("networking.k8s.io/v1beta1", "Ingress"): lambda n: {
        "spec": {"backend": {"serviceName": "web", "servicePort": 80}}},
    ("networking.k8s.io/v1beta1", "IngressClass"): lambda n: {
        "spec": {"controller": "corpus.migrator.test/ingress"}},
    ("apiregistration.k8s.io/v1beta1", "APIService"): lambda n: {
        "metadata": {"name": f"v1.{n.suffix}.corpus.migrator.test"},
        "spec": {"group": f"{n.suffix}.corpus.migrator.test", "version": "v1",
                 "groupPriorityMinimum": 100, "versionPriority": 10}},
    ("admissionregistration.k8s.io/v1beta1", "ValidatingWebhookConfiguration"): _webhooks,
    ("admissionregistration.k8s.io/v1beta1", "MutatingWebhookConfiguration"): _webhooks,
    ("certificates.k8s.io/v1beta1", "CertificateSigningRequest"): lambda n: {
        "spec": {"request": csr_request()}},
    ("coordination.k8s.io/v1beta1", "Lease"): lambda n: {},
    ("rbac.authorization.k8s.io/v1beta1", "Role"): lambda n: {},
    ("rbac.authorization.k8s.io/v1beta1", "ClusterRole"): lambda n: {},
    ("rbac.authorization.k8s.io/v1beta1", "RoleBinding"): lambda n: {
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"}},
    ("rbac.authorization.k8s.io/v1beta1", "ClusterRoleBinding"): lambda n: {
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"}},
    ("scheduling.k8s.io/v1beta1", "PriorityClass"): lambda n: {"value": 10},
    ("batch/v1beta1", "CronJob"): lambda n: {"spec": {
        "schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": {"spec": _POD}}}}},
    ("policy/v1beta1", "PodDisruptionBudget"): lambda n: {"spec": {}},
    ("policy/v1beta1", "PodSecurityPolicy"): lambda n: {"spec": {
        "seLinux": {"rule": "RunAsAny"}, "runAsUser": {"rule": "RunAsAny"},
        "supplementalGroups": {"rule": "RunAsAny"}, "fsGroup": {"rule": "RunAsAny"}}},
    ("autoscaling/v2beta1", "HorizontalPodAutoscaler"): lambda n: {
        "spec": {"scaleTargetRef": _TARGET, "maxReplicas": 3}},
    ("autoscaling/v2beta2", "HorizontalPodAutoscaler"): lambda n: {
        "spec": {"scaleTargetRef": _TARGET, "maxReplicas": 3}},
    ("discovery.k8s.io/v1beta1", "EndpointSlice"): lambda n: {
        "addressType": "IPv4", "endpoints": []},
    ("events.k8s.io/v1beta1", "Event"): lambda n: {
        "eventTime": "2021-06-01T00:00:00.000000Z", "reportingController": "corpus.migrator.test/c",
        "reportingInstance": "i", "action": "Act", "reason": "Because", "type": "Normal",
        "regarding": {"kind": "Pod", "name": "p", "namespace": n.namespace}},
    ("node.k8s.io/v1beta1", "RuntimeClass"): lambda n: {"handler": "runc"},
    ("flowcontrol.apiserver.k8s.io/v1beta1", "FlowSchema"): lambda n: {
        "spec": {"priorityLevelConfiguration": {"name": "global-default"}}},
    ("flowcontrol.apiserver.k8s.io/v1beta1", "PriorityLevelConfiguration"): lambda n: {
        "spec": {"type": "Limited", "limited": {"limitResponse": {"type": "Reject"}}}},
    ("storage.k8s.io/v1beta1", "StorageClass"): lambda n: {
        "provisioner": "corpus.migrator.test/none"},
    ("storage.k8s.io/v1beta1", "VolumeAttachment"): lambda n: {"spec": {
        "attacher": "corpus.migrator.test", "nodeName": "nowhere",
        "source": {"persistentVolumeName": f"pv-{n.suffix}"}}},
    ("storage.k8s.io/v1beta1", "CSIDriver"): lambda n: {
        "metadata": {"name": f"{n.suffix}.corpus.migrator.test"}, "spec": {}},
    ("storage.k8s.io/v1beta1", "CSINode"): lambda n: {"spec": {"drivers": []}},
    ("storage.k8s.io/v1beta1", "CSIStorageCapacity"): lambda n: {
        "storageClassName": "standard"},
    ("apiextensions.k8s.io/v1beta1", "CustomResourceDefinition"): lambda n: _crd(
        n, "Minimal", {}),
}


# -- CRDs ------------------------------------------------------------------------------------

_NESTED = {"type": "object", "properties": {
    "spec": {"type": "object", "properties": {
        "size": {"type": "integer"},
        "nested": {"type": "object", "properties": {"inner": {"type": "string"}}},
        "items": {"type": "array", "items": {"type": "object", "properties": {
            "a": {"type": "string"}}}},
        "byName": {"type": "object", "additionalProperties": {
            "type": "object", "properties": {"b": {"type": "string"}}}},
        "template": {"type": "object", "x-kubernetes-embedded-resource": True,
                     "properties": {"metadata": {"type": "object"}}},
        "bare": {"type": "object"}}},
    "status": {"type": "object", "properties": {"phase": {"type": "string"}}}}}


def _crd(n: Names, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    group = f"{kind.lower()}-{n.suffix}.corpus.migrator.test"
    plural = f"{kind.lower()}s"
    return {"metadata": {"name": f"{plural}.{group}"}, "spec": {
        "group": group, "scope": "Namespaced",
        "names": {"plural": plural, "kind": kind}, "version": "v1", **spec}}


def crd_shapes(n: Names) -> list[dict[str, Any]]:
    """v1beta1 CRDs (bodies without apiVersion/kind), one per shape."""
    v2 = {"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "replicas": {"type": "integer"}}}}}
    return [
        _crd(n, "Open", {}),  # no schema: preserveUnknownFields defaults to true
        _crd(n, "Nested", {"validation": {"openAPIV3Schema": _NESTED}}),  # ditto, with a schema
        _crd(n, "Pruned", {"preserveUnknownFields": False,
                           "validation": {"openAPIV3Schema": _NESTED}}),
        _crd(n, "Kept", {"preserveUnknownFields": True,
                         "validation": {"openAPIV3Schema": _NESTED},
                         "subresources": {"status": {}},
                         "additionalPrinterColumns": [
                             {"name": "Size", "type": "integer", "JSONPath": ".spec.size"}]}),
        _crd(n, "Versioned", {"versions": [
            {"name": "v1", "served": True, "storage": True,
             "schema": {"openAPIV3Schema": _NESTED}},
            {"name": "v2", "served": True, "storage": False,
             "schema": {"openAPIV3Schema": v2}}]}),
    ]


def custom_resources(crd: dict[str, Any], namespace: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(collection path, body) of custom resources with fields outside the CRD's schema, one
    at each served version."""
    spec = crd["spec"]
    versions = [v["name"] for v in spec.get("versions") or [] if v.get("served", True)]
    for version in versions or [spec["version"]]:
        api_version = f"{spec['group']}/{version}"
        yield (f"{group_version_path(api_version)}/namespaces/{namespace}/{spec['names']['plural']}",
               {"apiVersion": api_version, "kind": spec["names"]["kind"],
                "metadata": {"name": f"cr-{version}", "labels": {"app": "corpus"}},
                "spec": {"size": 3, "replicas": 2, "extra": "outside the schema",
                         "nested": {"inner": "x", "extra": {"deep": [1, 2]}},
                         "items": [{"a": "1", "extra": True}],
                         "byName": {"one": {"b": "2", "extra": "kept?"}},
                         "template": {"apiVersion": "v1", "kind": "ConfigMap",
                                      "metadata": {"name": "t"}, "data": {"k": "v"}},
                         "bare": {"anything": {"at": "all"}}},
                "status": {"phase": "Running", "extra": 1}})


# -- fixtures --------------------------------------------------------------------------------

def fixture_path(fixtures: Path, api_version: str, kind: str) -> Path:
    return fixtures / f"{api_version.replace('/', '.')}.{kind}.json"


_STEP = re.compile(r"([^.\[\]]+)|\[([^\]]*)\]")


def parse_field(text: str) -> tuple[Any, ...]:
    """A field path of a validation error (``spec.rules[0].host``, ``metadata.labels[a.b]``)
    as keys and indexes."""
    return tuple(name or (int(key) if key.isdigit() else key) for name, key in _STEP.findall(text))


_ABSENT = object()


def _delete(obj: Any, path: tuple[Any, ...]) -> bool:
    parent = lookup(obj, path[:-1], _ABSENT)
    try:
        del parent[path[-1]]
    except (KeyError, IndexError, TypeError):
        return False
    return True


def _repair(obj: dict[str, Any], minimal: dict[str, Any], path: tuple[Any, ...]) -> bool:
    """Make the field at ``path`` acceptable: the minimal object's value when it has the
    field, or when the fixture lacks it (required) and the minimal object has an enclosing
    field the fixture lacks too; else no field at all. True if anything changed."""
    value = lookup(minimal, path, _ABSENT)
    if value is not _ABSENT:
        return lookup(obj, path, _ABSENT) != value and _set_parents(obj, path, value)
    if lookup(obj, path, _ABSENT) is _ABSENT:
        for cut in range(len(path) - 1, 0, -1):
            value = lookup(minimal, path[:cut], _ABSENT)
            if value is not _ABSENT and lookup(obj, path[:cut], _ABSENT) is _ABSENT:
                return _set_parents(obj, path[:cut], value)
    while path and lookup(obj, path, _ABSENT) is _ABSENT:
        path = path[:-1]
    return bool(path) and path != ("metadata",) and _delete(obj, path)


def _set_parents(obj: dict[str, Any], path: tuple[Any, ...], value: Any) -> bool:
    """Write ``value`` at ``path``, creating missing mappings on the way; False if a list
    index is out of range or a parent is not a container."""
    node: Any = obj
    for key in path[:-1]:
        if isinstance(node, dict):
            node = node.setdefault(key, {})
        elif isinstance(node, list) and isinstance(key, int) and key < len(node):
            node = node[key]
        else:
            return False
    last = path[-1]
    if isinstance(node, dict) or (isinstance(node, list) and isinstance(last, int)
                                  and last < len(node)):
        node[last] = copy.deepcopy(value)
        return True
    return False


def accepted_fixture(cluster: Cluster, path: str, fixture: dict[str, Any],
                     minimal: dict[str, Any], metadata: dict[str, Any],
                     rounds: int = 40) -> tuple[dict[str, Any], list[str]]:
    """The fixture as the old server accepts it at ``path`` (a collection), and the fields
    repaired on the way: each field a dry-run refuses takes the minimal object's value, or
    goes. Its metadata is ``metadata`` plus the fixture's labels and annotations."""
    obj = copy.deepcopy(fixture)
    obj.pop("status", None)
    own = fixture.get("metadata") or {}
    obj["metadata"] = {**metadata, "labels": {**(own.get("labels") or {}), **metadata["labels"]},
                       "annotations": dict(own.get("annotations") or {})}
    repaired: list[str] = []
    for _round in range(rounds):
        try:
            cluster.request("POST", path, body=obj, query={"dryRun": "All"})
            return obj, repaired
        except ApiError as exc:
            fields = [c["field"] for c in (exc.details.get("causes") or ()) if c.get("field")]
            changed = [f for f in dict.fromkeys(fields) if _repair(obj, minimal, parse_field(f))]
            if not changed:
                raise AssertionError(f"{path}: the fixture cannot be made acceptable: {exc}") from exc
            repaired += changed
    raise AssertionError(f"{path}: still refused after {rounds} rounds of repairs")


# -- comparison ------------------------------------------------------------------------------

def comparable(obj: dict[str, Any], *, status: bool = False) -> dict[str, Any]:
    """``obj`` without what only an API server sets, and without status unless asked."""
    out = {k: v for k, v in obj.items() if status or k != "status"}
    out["metadata"] = {k: v for k, v in (obj.get("metadata") or {}).items()
                       if k not in SERVER_METADATA}
    return out


def lost_fields(old: dict[str, Any], new: dict[str, Any],
                explained: tuple[str, ...] = ()) -> dict[str, tuple[Any, Any]]:
    """Fields of ``old`` the ``new`` object lacks or holds otherwise (JSON Pointer → (old value,
    new value or "<missing>")), leaving out those under a path in ``explained`` (changes the
    transform reported). Give both through :func:`comparable` first."""
    found = {}
    for path, value in flatten(old):
        where = join_pointer(*path)
        if any(where == e or where.startswith(e + "/") for e in explained):
            continue
        if value is None:
            continue  # null is unset: the new release may default it
        other = lookup(new, path, "<missing>")
        if other != value and not (value in ({}, []) and other == "<missing>"):
            found[where] = (value, other)
    return found


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)
