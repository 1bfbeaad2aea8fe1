"""Helpers shared by the conversion tests: API paths, object diffs, field accounting."""
from __future__ import annotations

import base64
import uuid
from typing import Any, Iterator

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from migrator.transform.base import Result
from migrator.transform.conversions.rewriter import pointer

# kind → (plural, namespaced)
RESOURCES: dict[str, tuple[str, bool]] = {
    "Ingress": ("ingresses", True), "IngressClass": ("ingressclasses", False),
    "NetworkPolicy": ("networkpolicies", True), "Deployment": ("deployments", True),
    "DaemonSet": ("daemonsets", True), "StatefulSet": ("statefulsets", True),
    "ReplicaSet": ("replicasets", True), "ControllerRevision": ("controllerrevisions", True),
    "CronJob": ("cronjobs", True), "PodDisruptionBudget": ("poddisruptionbudgets", True),
    "HorizontalPodAutoscaler": ("horizontalpodautoscalers", True),
    "ValidatingWebhookConfiguration": ("validatingwebhookconfigurations", False),
    "MutatingWebhookConfiguration": ("mutatingwebhookconfigurations", False),
    "CustomResourceDefinition": ("customresourcedefinitions", False),
    "Role": ("roles", True), "ClusterRole": ("clusterroles", False), "RoleBinding": ("rolebindings", True),
    "ClusterRoleBinding": ("clusterrolebindings", False), "StorageClass": ("storageclasses", False),
    "VolumeAttachment": ("volumeattachments", False), "CSIDriver": ("csidrivers", False),
    "CSINode": ("csinodes", False), "CSIStorageCapacity": ("csistoragecapacities", True),
    "PriorityClass": ("priorityclasses", False), "Lease": ("leases", True),
    "EndpointSlice": ("endpointslices", True), "Event": ("events", True),
    "RuntimeClass": ("runtimeclasses", False), "CertificateSigningRequest": ("certificatesigningrequests", False),
    "APIService": ("apiservices", False), "FlowSchema": ("flowschemas", False),
    "PriorityLevelConfiguration": ("prioritylevelconfigurations", False),
}


def csr_request() -> str:
    """A fresh certificate signing request, PEM in base64, as spec.request of a CSR takes it."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "migrator-test")]))
           .sign(key, hashes.SHA256()))
    return base64.b64encode(csr.public_bytes(serialization.Encoding.PEM)).decode()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def collection(api_version: str, kind: str, namespace: str | None) -> str:
    """The REST path of the collection holding ``kind`` at ``api_version``."""
    plural, namespaced = RESOURCES[kind]
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    return f"{base}/namespaces/{namespace}/{plural}" if namespaced else f"{base}/{plural}"


def flatten(value: Any, path: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    """Every leaf of ``value`` with its path (empty dicts and lists count as leaves)."""
    if isinstance(value, dict) and value:
        for key, child in value.items():
            yield from flatten(child, (*path, key))
    elif isinstance(value, list) and value:
        for index, child in enumerate(value):
            yield from flatten(child, (*path, index))
    else:
        yield path, value


def differences(ours: Any, theirs: Any) -> set[str]:
    """JSON Pointers of every leaf where the two objects differ."""
    mine, other = dict(flatten(ours)), dict(flatten(theirs))
    return {pointer(p) for p in mine.keys() | other.keys() if mine.get(p, ...) != other.get(p, ...)}


def unexplained(paths: set[str], allowed: tuple[str, ...]) -> set[str]:
    """``paths`` not under any of the ``allowed`` prefixes."""
    return {p for p in paths if not any(p == a or p.startswith(a + "/") for a in allowed)}


def unaccounted_fields(before: dict[str, Any], result: Result) -> set[str]:
    """Input fields neither carried (same path, same value) nor covered by a recorded change."""
    if result.obj is None:
        return set() if any(c.action == "drop" and c.path == "" for c in result.changes) else {""}
    after = dict(flatten(result.obj))
    changed = tuple(c.path for c in result.changes)
    missing = set()
    for path, value in flatten(before):
        if after.get(path, ...) == value:
            continue
        where = pointer(path)
        if not any(where == c or where.startswith(c + "/") or c == "" for c in changed):
            missing.add(where)
    return missing
