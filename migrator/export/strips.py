"""What export removes from the objects it keeps: fields that only mean something in the old
cluster, each with its reason.

Data read top to bottom: the metadata only an API server sets
(:data:`~migrator.resources.objects.SERVER_METADATA`), :data:`SPEC_STRIPS` (fields bound to
the old cluster: cluster IPs, allocated node ports, binding state, generated selectors),
and :data:`STATUS_ASIDE` (status set aside, not lost, for the kinds where a later stage needs
it). What is left out whole is :mod:`migrator.resources.regenerated`. :func:`stripper` is a
pure function of an object; the export counts its answers into the report, so nothing
disappears silently, and a strip that leaves a value on purpose (a node port a user chose)
says so too.

Spec strips run before the metadata strips: some ask ``managedFields`` who set a field.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from migrator.resources.identity import Identity, is_custom
from migrator.resources.managed import last_applied, managers_of
from migrator.resources.objects import SERVER_METADATA, Obj, lookup, meta, pop
from migrator.resources.regenerated import ids, skip_legend, token_secret_name
from migrator.resources.types import ResourceType


@dataclass(frozen=True)
class StripOptions:
    """The strips a user may turn off (the export's ``--keep-...`` flags)."""

    keep_node_ports: bool = False
    keep_cluster_ips: bool = False  # for a transform that keeps or remaps them


@dataclass(frozen=True)
class SpecStrip:
    """``remove`` deletes cluster-bound data from an object of ``applies_to``; True if it did.

    ``kept``, when given, names what ``remove`` leaves in place on purpose (asked before
    ``remove`` runs, on the object as read).
    """

    field: str
    reason: str
    applies_to: frozenset[Identity]
    remove: Callable[[Obj, StripOptions], bool]  # (object, options) -> removed anything
    kept: Callable[[Obj, StripOptions], list[str]] | None = None


class Stripped(NamedTuple):
    """One object after :func:`strip`: the object, the names of the fields removed (as in
    :func:`rule_legend`), the data set aside (``{"status": ...}``) or None, and what strips
    left in place on purpose (``"port 80/TCP nodePort 30080: set by kubectl"``)."""

    obj: Obj
    removed: list[str]
    aside: Obj | None
    kept: list[str]


# -- fields ----------------------------------------------------------------------------------

_PVC_BINDING_ANNOTATIONS = (
    "pv.kubernetes.io/bind-completed",
    "pv.kubernetes.io/bound-by-controller",
    "volume.beta.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/selected-node",
)
_JOB_GENERATED_LABELS = ("controller-uid", "batch.kubernetes.io/controller-uid")


def _strip_cluster_ips(obj: Obj, options: StripOptions) -> bool:
    if options.keep_cluster_ips:
        return False
    spec = obj.get("spec") or {}
    if spec.get("clusterIP") == "None":  # headless: "None" is the user's choice, not an address
        return False
    removed = pop(obj, "spec", "clusterIP")
    return pop(obj, "spec", "clusterIPs") or removed


def _port_key(port: Obj) -> dict[str, Any]:
    """The fields that name a Service port in ``managedFields`` (protocol defaults to TCP)."""
    return {"port": port.get("port"), "protocol": port.get("protocol") or "TCP"}


def _setter(obj: Obj, steps: tuple[Any, ...], value: Any, applied: Any) -> str:
    """Who set ``value``, the field at ``steps`` (as :func:`managers_of` takes it): its field
    managers, else kubectl apply when its last-applied annotation holds the same value
    (``applied``); "" when no client set it (the API server allocated it)."""
    managers = managers_of(obj, steps)
    if managers:
        return ", ".join(sorted(set(managers)))
    if applied is not None and applied == value:
        return "kubectl apply (last-applied annotation)"
    return ""


def _node_port_setters(obj: Obj) -> list[tuple[Obj, str]]:
    """Each port with a nodePort, and who set it ("" when the API server allocated it)."""
    ports = [p for p in (obj.get("spec") or {}).get("ports") or () if p.get("nodePort")]
    if not ports:
        return []
    applied = {
        tuple(_port_key(p).values()): p.get("nodePort")
        for p in lookup(last_applied(obj), ("spec", "ports")) or ()
        if isinstance(p, dict)
    }
    return [
        (
            port,
            _setter(
                obj,
                ("spec", "ports", _port_key(port), "nodePort"),
                port["nodePort"],
                applied.get(tuple(_port_key(port).values())),
            ),
        )
        for port in ports
    ]


def _strip_node_ports(obj: Obj, options: StripOptions) -> bool:
    """Remove the node ports the old cluster allocated; keep those a client set."""
    if options.keep_node_ports:
        return False
    removed = False
    for port, setter in _node_port_setters(obj):
        if not setter:
            del port["nodePort"]
            removed = True
    return removed


def _kept_node_ports(obj: Obj, options: StripOptions) -> list[str]:
    if options.keep_node_ports:
        return []
    return [
        f"port {port.get('port')}/{port.get('protocol') or 'TCP'} nodePort "
        f"{port['nodePort']}: set by {setter}"
        for port, setter in _node_port_setters(obj)
        if setter
    ]


def _health_check_setter(obj: Obj) -> str:
    path = ("spec", "healthCheckNodePort")
    value = lookup(obj, path)
    if not value:
        return ""
    return _setter(obj, path, value, lookup(last_applied(obj), path))


def _strip_health_check_port(obj: Obj, _options: StripOptions) -> bool:
    return not _health_check_setter(obj) and pop(obj, "spec", "healthCheckNodePort")


def _kept_health_check_port(obj: Obj, _options: StripOptions) -> list[str]:
    setter = _health_check_setter(obj)
    port = lookup(obj, ("spec", "healthCheckNodePort"))
    return [f"healthCheckNodePort {port}: set by {setter}"] if setter else []


def _strip_pvc_annotations(obj: Obj, _options: StripOptions) -> bool:
    annotations = meta(obj).get("annotations") or {}
    removed = [a for a in _PVC_BINDING_ANNOTATIONS if annotations.pop(a, None) is not None]
    return bool(removed)


def _strip_claim_ref(obj: Obj, _options: StripOptions) -> bool:
    removed = pop(obj, "spec", "claimRef", "uid")
    return pop(obj, "spec", "claimRef", "resourceVersion") or removed


def _strip_job_selector(obj: Obj, _options: StripOptions) -> bool:
    """A generated Job selector names the old Job's uid; the API server generates a new one."""
    spec = obj.get("spec") or {}
    if spec.get("manualSelector"):
        return False
    removed = pop(obj, "spec", "selector")
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    return bool([k for k in _JOB_GENERATED_LABELS if labels.pop(k, None) is not None]) or removed


def _strip_token_references(obj: Obj, _options: StripOptions) -> bool:
    account = meta(obj).get("name", "")
    secrets = obj.get("secrets")
    if not secrets:
        return False
    kept = [s for s in secrets if not token_secret_name(account, s.get("name", ""))]
    if len(kept) == len(secrets):
        return False
    if kept:
        obj["secrets"] = kept
    else:
        del obj["secrets"]
    return True


SPEC_STRIPS: tuple[SpecStrip, ...] = (
    SpecStrip(
        "spec.clusterIP(s)",
        "allocated from the old cluster's Service CIDR "
        "(--keep-cluster-ips keeps them, for the transform to keep or remap)",
        ids(("", "services")),
        _strip_cluster_ips,
    ),
    SpecStrip(
        "spec.healthCheckNodePort",
        "allocated from the old cluster's node port range (one a client set is kept)",
        ids(("", "services")),
        _strip_health_check_port,
        _kept_health_check_port,
    ),
    SpecStrip(
        "spec.ports[].nodePort",
        "allocated by the old cluster; the ones a client set (managedFields, else the "
        "last-applied annotation) are kept, as load balancers and firewalls point at them "
        "(--keep-node-ports keeps all)",
        ids(("", "services")),
        _strip_node_ports,
        _kept_node_ports,
    ),
    SpecStrip(
        "metadata.annotations[pv binding]",
        "the old PV controller's binding state",
        ids(("", "persistentvolumeclaims")),
        _strip_pvc_annotations,
    ),
    SpecStrip(
        "spec.claimRef.uid/resourceVersion",
        "point at the old cluster's PVC object",
        ids(("", "persistentvolumes")),
        _strip_claim_ref,
    ),
    SpecStrip(
        "spec.nodeName",
        "a node of the old cluster; the new scheduler places the pod",
        ids(("", "pods")),
        lambda obj, _o: pop(obj, "spec", "nodeName"),
    ),
    SpecStrip(
        "spec.selector (generated)",
        "a generated Job selector names the old Job's uid",
        ids(("batch", "jobs")),
        _strip_job_selector,
    ),
    SpecStrip(
        "secrets[token]",
        "references to token secrets, which are not exported",
        ids(("", "serviceaccounts")),
        _strip_token_references,
    ),
)

STATUS_REASON = "observed state of the old cluster; controllers of the new one rebuild it"

_READINESS_ON_SOURCE = (
    "readiness on the old cluster: verify tells what was not ready there from what the "
    "migration broke"
)
# Status that is worth keeping beside the object (aside parts), and why. Custom resources'
# status is always kept: their controllers may not be able to rebuild it.
STATUS_ASIDE: dict[Identity, str] = {
    ("", "persistentvolumes"): "phase and reclaim state, needed to rebind volumes",
    ("", "persistentvolumeclaims"): "phase and capacity, needed to rebind volumes; "
    + _READINESS_ON_SOURCE,
    ("", "services"): "load balancer addresses, needed for the DNS cutover",
    ("networking.k8s.io", "ingresses"): "load balancer addresses, needed for the DNS cutover",
    # The kinds migrator.resources.readiness checks.
    ("apps", "deployments"): _READINESS_ON_SOURCE,
    ("apps", "statefulsets"): _READINESS_ON_SOURCE,
    ("apps", "daemonsets"): _READINESS_ON_SOURCE,
    ("batch", "jobs"): _READINESS_ON_SOURCE,
    ("apiextensions.k8s.io", "customresourcedefinitions"): _READINESS_ON_SOURCE,
}


def strip_legend() -> dict[str, str]:
    """Every field strip with its reason, for reports."""
    legend = {f"metadata.{name}": reason for name, reason in SERVER_METADATA}
    legend.update({s.field: s.reason for s in SPEC_STRIPS})
    legend["status"] = STATUS_REASON
    return legend


def rule_legend() -> dict[str, str]:
    """Every skip rule and field strip with its reason: the export report's legend."""
    return {**skip_legend(), **strip_legend()}


def keeps_status(resource: ResourceType) -> bool:
    """True if the status of this type's objects is set aside rather than dropped."""
    return resource.identity in STATUS_ASIDE or is_custom(resource.identity[0])


def strip(
    obj: Obj,
    resource: ResourceType,
    *,
    keep_node_ports: bool = False,
    keep_cluster_ips: bool = False,
) -> Stripped:
    """Remove cluster-bound fields from ``obj`` (in place, for speed); see :class:`Stripped`."""
    options = StripOptions(keep_node_ports=keep_node_ports, keep_cluster_ips=keep_cluster_ips)
    return stripper(resource, options)(obj)


def stripper(
    resource: ResourceType, options: StripOptions | None = None
) -> Callable[[Obj], Stripped]:
    """:func:`strip` for the objects of one type, with the rules that apply to it looked up
    once instead of for every object (the export calls it for each of many thousands)."""
    options = options or StripOptions()
    spec_strips = tuple(rule for rule in SPEC_STRIPS if resource.identity in rule.applies_to)
    keep_status = keeps_status(resource)
    metadata_fields = tuple((name, f"metadata.{name}") for name, _reason in SERVER_METADATA)

    def strip_one(obj: Obj) -> Stripped:
        stripped: list[str] = []
        kept: list[str] = []
        for rule in spec_strips:  # first: they may ask managedFields who set a field
            if rule.kept is not None:
                kept += rule.kept(obj, options)
            if rule.remove(obj, options):
                stripped.append(rule.field)
        meta = obj.get("metadata")
        if isinstance(meta, dict):
            for name, label in metadata_fields:
                if meta.pop(name, None) is not None:
                    stripped.append(label)
        aside = None
        status = obj.pop("status", None)
        if status:
            stripped.append("status")
            if keep_status and _has_content(status):
                aside = {"status": status}
        return Stripped(obj, stripped, aside, kept)

    return strip_one


def _has_content(value: Any) -> bool:
    """False for a status with nothing in it, such as a Service's ``{"loadBalancer": {}}``."""
    if isinstance(value, dict):
        return any(_has_content(v) for v in value.values())
    if isinstance(value, list):
        return bool(value)
    return value is not None and value != ""
