"""What export leaves out and what it removes from the objects it keeps, each with its reason.

Three tables of data, read top to bottom:

- :data:`TYPE_SKIPS`: resource types never read at all (the new cluster makes its own);
- :data:`OBJECT_SKIPS`: single objects of exported types that the new cluster regenerates;
- :data:`METADATA_STRIPS`, :data:`SPEC_STRIPS`, :data:`STATUS_ASIDE`: fields that only mean
  something in the old cluster, removed from every kept object (status is set aside, not
  lost, for the kinds where a later stage needs it).

Rules match on the identity of a type (group and plural, see
:func:`migrator.export.selection.identity_of`), so they hold whichever group/version the
objects were read through. :func:`classify` and :func:`strip` are pure functions; the runner
counts their answers into the export report, so nothing disappears silently.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from migrator.export.selection import ResourceType, identity_of

Obj = dict[str, Any]
Identity = tuple[str, str]


@dataclass(frozen=True)
class Rule:
    """A named reason: ``name`` is counted in reports, ``reason`` explains it to a person."""

    name: str
    reason: str


@dataclass(frozen=True)
class ObjectSkip:
    """Skip objects of ``applies_to`` (identities) for which ``test`` is true."""

    rule: Rule
    applies_to: frozenset[Identity]
    test: Callable[[Obj], bool]


@dataclass(frozen=True)
class StripOptions:
    """The strips a user may turn off (the export's ``--keep-...`` flags)."""

    keep_node_ports: bool = False
    keep_cluster_ips: bool = False  # for a transform that keeps or remaps them


@dataclass(frozen=True)
class SpecStrip:
    """``remove`` deletes cluster-bound data from an object of ``applies_to``; True if it did."""

    field: str
    reason: str
    applies_to: frozenset[Identity]
    remove: Callable[[Obj, StripOptions], bool]  # (object, options) -> removed anything


# -- whole types -----------------------------------------------------------------------------

TYPE_SKIPS: dict[Identity, Rule] = {
    # Registered by each kubelet (kwok here) of the new cluster; nodes are machines, not data.
    ("", "nodes"): Rule("node", "nodes register themselves with the new cluster"),
    ("", "events"): Rule("event", "events are a short-lived log the new cluster writes anew"),
    ("", "componentstatuses"): Rule(
        "component-status", "health of the old control plane's own components"
    ),
    # Node heartbeats and leader election: held by running processes, which renew their own.
    ("coordination.k8s.io", "leases"): Rule(
        "lease", "leases are held and renewed by running processes (node heartbeats, leaders)"
    ),
    ("certificates.k8s.io", "certificatesigningrequests"): Rule(
        "csr", "certificate requests are bound to the old cluster's CA and requesting nodes"
    ),
    ("apps", "controllerrevisions"): Rule(
        "controller-revision", "rollout history written by the old cluster's controllers"
    ),
    ("storage.k8s.io", "csinodes"): Rule("csi-node", "published by each node's kubelet"),
    ("storage.k8s.io", "volumeattachments"): Rule(
        "volume-attachment", "attachments of volumes to the old cluster's nodes"
    ),
    ("storage.k8s.io", "csistoragecapacities"): Rule(
        "csi-storage-capacity", "published by CSI drivers about the old cluster's topology"
    ),
    ("networking.k8s.io", "ipaddresses"): Rule(
        "ip-address", "Service IP allocations of the old cluster"
    ),
    ("networking.k8s.io", "servicecidrs"): Rule(
        "service-cidr", "the old cluster's Service IP ranges, set by its control plane"
    ),
    ("internal.apiserver.k8s.io", "storageversions"): Rule(
        "storage-version", "bookkeeping of the old API servers"
    ),
    ("metrics.k8s.io", "pods"): Rule("metrics", "live usage figures from metrics-server"),
    ("metrics.k8s.io", "nodes"): Rule("metrics", "live usage figures from metrics-server"),
}


# -- single objects --------------------------------------------------------------------------


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _labels(obj: Obj) -> Obj:
    return _meta(obj).get("labels") or {}


def _annotations(obj: Obj) -> Obj:
    return _meta(obj).get("annotations") or {}


def _named(namespace: str | None, name: str) -> Callable[[Obj], bool]:
    def test(obj: Obj) -> bool:
        meta = _meta(obj)
        return meta.get("name") == name and (namespace is None or meta.get("namespace") == namespace)

    return test


def _has_controller(obj: Obj) -> bool:
    return any(ref.get("controller") for ref in _meta(obj).get("ownerReferences") or ())


def _token_secret_name(account: str, name: str) -> bool:
    """True for the names the token controller gives a ServiceAccount's token secrets."""
    return re.fullmatch(re.escape(account) + r"-token-[a-z0-9]{5}", name) is not None


def _untouched_default_account(obj: Obj) -> bool:
    """The ``default`` ServiceAccount as every namespace gets it, with nothing a user added.

    One with image pull secrets, a mount setting, labels, annotations or secrets of the
    user's own is kept: the target's controller would create it bare and lose them.
    """
    if _meta(obj).get("name") != "default":
        return False
    secrets = [s.get("name", "") for s in obj.get("secrets") or ()]
    return (
        not obj.get("imagePullSecrets")
        and "automountServiceAccountToken" not in obj
        and not _labels(obj)
        and not _annotations(obj)
        and all(_token_secret_name("default", name) for name in secrets)
    )


# The mandatory and suggested flow control objects of the API servers (1.20 to 1.33).
_BUILTIN_FLOW_CONTROL = frozenset(
    {
        # FlowSchemas
        "catch-all", "exempt", "global-default", "kube-controller-manager", "kube-scheduler",
        "kube-system-service-accounts", "probes", "service-accounts", "system-leader-election",
        "system-nodes", "workload-leader-election", "endpoint-controller", "system-node-high",
        # PriorityLevelConfigurations (catch-all, exempt, global-default are above)
        "leader-election", "system", "workload-high", "workload-low", "node-high",
    }
)


def _builtin_flow_control(obj: Obj) -> bool:
    """An API server's own flow control object, which it (re)creates in every cluster.

    From 1.22 they carry ``apf.kubernetes.io/autoupdate-spec``: "true" means the server owns
    it, "false" that a user customised it (exported). Older servers set no annotation, so the
    built-in names decide.
    """
    flag = _annotations(obj).get("apf.kubernetes.io/autoupdate-spec")
    if flag is not None:
        return flag == "true"
    return _meta(obj).get("name") in _BUILTIN_FLOW_CONTROL


_CONTROLLER_SLICES = frozenset(
    {"endpointslice-controller.k8s.io", "endpointslicemirroring-controller.k8s.io"}
)


def _ids(*pairs: Identity) -> frozenset[Identity]:
    return frozenset(pairs)


OBJECT_SKIPS: tuple[ObjectSkip, ...] = (
    ObjectSkip(
        Rule("owned-by-controller", "created by its controller, which the new cluster runs"),
        _ids(("", "pods"), ("apps", "replicasets"), ("batch", "jobs")),
        _has_controller,
    ),
    ObjectSkip(
        Rule("service-account-token", "token secrets are minted anew by the target's controller"),
        _ids(("", "secrets")),
        lambda obj: obj.get("type") == "kubernetes.io/service-account-token",
    ),
    ObjectSkip(
        Rule("root-ca-configmap", "kube-root-ca.crt holds the old cluster's CA; each cluster "
             "publishes its own in every namespace"),
        _ids(("", "configmaps")),
        _named(None, "kube-root-ca.crt"),
    ),
    ObjectSkip(
        Rule("default-service-account", "every namespace gets its own default ServiceAccount"),
        _ids(("", "serviceaccounts")),
        _untouched_default_account,
    ),
    ObjectSkip(
        Rule("kubernetes-service", "default/kubernetes points at the old API server"),
        _ids(("", "services"), ("", "endpoints")),
        _named("default", "kubernetes"),
    ),
    # Endpoints of a Service with a selector are kept up to date by the endpoints controller,
    # which marks them (a last-change-trigger-time annotation; from 1.22 also the skip-mirror
    # label; from 1.33 a managed-by label); those of a selector-less Service are the user's own
    # data (an external backend) and are exported.
    ObjectSkip(
        Rule("controller-endpoints", "maintained by the endpoints controller from the Service"),
        _ids(("", "endpoints")),
        lambda obj: _labels(obj).get("endpointslice.kubernetes.io/skip-mirror") == "true"
        or _labels(obj).get("endpoints.kubernetes.io/managed-by") == "endpoint-controller"
        or "endpoints.kubernetes.io/last-change-trigger-time" in _annotations(obj),
    ),
    ObjectSkip(
        Rule("controller-endpointslice", "maintained by the endpoint slice controllers"),
        _ids(("discovery.k8s.io", "endpointslices")),
        lambda obj: _labels(obj).get("endpointslice.kubernetes.io/managed-by")
        in _CONTROLLER_SLICES
        or _labels(obj).get("kubernetes.io/service-name") == "kubernetes",
    ),
    ObjectSkip(
        Rule("automanaged-apiservice", "the new API server registers its built-in APIs itself"),
        _ids(("apiregistration.k8s.io", "apiservices")),
        lambda obj: "kube-aggregator.kubernetes.io/automanaged" in _labels(obj),
    ),
    ObjectSkip(
        Rule("bootstrap-rbac", "default RBAC that every API server creates (and reconciles)"),
        _ids(
            ("rbac.authorization.k8s.io", "clusterroles"),
            ("rbac.authorization.k8s.io", "clusterrolebindings"),
            ("rbac.authorization.k8s.io", "roles"),
            ("rbac.authorization.k8s.io", "rolebindings"),
        ),
        lambda obj: _labels(obj).get("kubernetes.io/bootstrapping") == "rbac-defaults",
    ),
    ObjectSkip(
        Rule("system-priority-class", "system-* priority classes are built into every cluster"),
        _ids(("scheduling.k8s.io", "priorityclasses")),
        lambda obj: str(_meta(obj).get("name", "")).startswith("system-"),
    ),
    ObjectSkip(
        Rule("builtin-flow-control", "API priority and fairness defaults of the API server"),
        _ids(
            ("flowcontrol.apiserver.k8s.io", "flowschemas"),
            ("flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations"),
        ),
        _builtin_flow_control,
    ),
)


# Namespace objects outside the export's namespace scope (see migrator.export.scope).
SYSTEM_NAMESPACE = Rule(
    "system-namespace",
    "kube-system, kube-public and kube-node-lease belong to the cluster itself "
    "(--include-system-namespaces exports them)",
)
OUT_OF_SCOPE = Rule("namespace-filtered", "outside the namespaces chosen for this export")


# -- fields ----------------------------------------------------------------------------------

# Removed from every object: they are assigned by the old API server and would be refused or
# misleading in the new one. Owner references stay: the importer relinks them by name.
METADATA_STRIPS: tuple[tuple[str, str], ...] = (
    ("uid", "assigned by the API server; the new cluster assigns its own"),
    ("resourceVersion", "the old etcd's revision; meaningless to the new cluster"),
    ("creationTimestamp", "set by the API server when the object is created"),
    ("generation", "counted by the API server from creation"),
    ("managedFields", "field ownership of the old cluster's clients"),
    ("selfLink", "an URL of the old API server"),
    ("deletionTimestamp", "the object was being deleted in the old cluster"),
    ("deletionGracePeriodSeconds", "the object was being deleted in the old cluster"),
)

_PVC_BINDING_ANNOTATIONS = (
    "pv.kubernetes.io/bind-completed",
    "pv.kubernetes.io/bound-by-controller",
    "volume.beta.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/selected-node",
)
_JOB_GENERATED_LABELS = ("controller-uid", "batch.kubernetes.io/controller-uid")


def _pop(obj: Obj, *path: str) -> bool:
    """Remove the value at ``path`` if present; True if something was removed."""
    for key in path[:-1]:
        obj = obj.get(key)  # type: ignore[assignment]
        if not isinstance(obj, dict):
            return False
    return obj.pop(path[-1], None) is not None if isinstance(obj, dict) else False


def _strip_cluster_ips(obj: Obj, options: StripOptions) -> bool:
    if options.keep_cluster_ips:
        return False
    spec = obj.get("spec") or {}
    if spec.get("clusterIP") == "None":  # headless: "None" is the user's choice, not an address
        return False
    removed = _pop(obj, "spec", "clusterIP")
    return _pop(obj, "spec", "clusterIPs") or removed


def _strip_node_ports(obj: Obj, options: StripOptions) -> bool:
    if options.keep_node_ports:
        return False
    removed = False
    for port in (obj.get("spec") or {}).get("ports") or ():
        removed = port.pop("nodePort", None) is not None or removed
    return removed


def _strip_pvc_annotations(obj: Obj, _options: StripOptions) -> bool:
    annotations = _meta(obj).get("annotations") or {}
    removed = [a for a in _PVC_BINDING_ANNOTATIONS if annotations.pop(a, None) is not None]
    return bool(removed)


def _strip_claim_ref(obj: Obj, _options: StripOptions) -> bool:
    removed = _pop(obj, "spec", "claimRef", "uid")
    return _pop(obj, "spec", "claimRef", "resourceVersion") or removed


def _strip_job_selector(obj: Obj, _options: StripOptions) -> bool:
    """A generated Job selector names the old Job's uid; the API server generates a new one."""
    spec = obj.get("spec") or {}
    if spec.get("manualSelector"):
        return False
    removed = _pop(obj, "spec", "selector")
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    return bool([k for k in _JOB_GENERATED_LABELS if labels.pop(k, None) is not None]) or removed


def _strip_token_references(obj: Obj, _options: StripOptions) -> bool:
    account = _meta(obj).get("name", "")
    secrets = obj.get("secrets")
    if not secrets:
        return False
    kept = [s for s in secrets if not _token_secret_name(account, s.get("name", ""))]
    if len(kept) == len(secrets):
        return False
    if kept:
        obj["secrets"] = kept
    else:
        del obj["secrets"]
    return True


SPEC_STRIPS: tuple[SpecStrip, ...] = (
    SpecStrip("spec.clusterIP(s)", "allocated from the old cluster's Service CIDR "
              "(--keep-cluster-ips keeps them, for the transform to keep or remap)",
              _ids(("", "services")), _strip_cluster_ips),
    SpecStrip("spec.healthCheckNodePort", "allocated from the old cluster's node port range",
              _ids(("", "services")), lambda obj, _o: _pop(obj, "spec", "healthCheckNodePort")),
    SpecStrip("spec.ports[].nodePort", "allocated by the old cluster (--keep-node-ports keeps "
              "them)", _ids(("", "services")), _strip_node_ports),
    SpecStrip("metadata.annotations[pv binding]", "the old PV controller's binding state",
              _ids(("", "persistentvolumeclaims")), _strip_pvc_annotations),
    SpecStrip("spec.claimRef.uid/resourceVersion", "point at the old cluster's PVC object",
              _ids(("", "persistentvolumes")), _strip_claim_ref),
    SpecStrip("spec.nodeName", "a node of the old cluster; the new scheduler places the pod",
              _ids(("", "pods")), lambda obj, _o: _pop(obj, "spec", "nodeName")),
    SpecStrip("spec.selector (generated)", "a generated Job selector names the old Job's uid",
              _ids(("batch", "jobs")), _strip_job_selector),
    SpecStrip("secrets[token]", "references to token secrets, which are not exported",
              _ids(("", "serviceaccounts")), _strip_token_references),
)

STATUS_REASON = "observed state of the old cluster; controllers of the new one rebuild it"

# Status that is worth keeping beside the object (aside parts), and why. Custom resources'
# status is always kept: their controllers may not be able to rebuild it.
STATUS_ASIDE: dict[Identity, str] = {
    ("", "persistentvolumes"): "phase and reclaim state, needed to rebind volumes",
    ("", "persistentvolumeclaims"): "phase and capacity, needed to rebind volumes",
    ("", "services"): "load balancer addresses, needed for the DNS cutover",
    ("networking.k8s.io", "ingresses"): "load balancer addresses, needed for the DNS cutover",
}

# API groups Kubernetes itself serves; every other group's objects are custom resources
# (CRDs) or aggregated APIs, whose status is kept aside.
BUILTIN_GROUPS = frozenset(
    {
        "", "apps", "batch", "autoscaling", "policy", "extensions", "events.k8s.io",
        "networking.k8s.io", "rbac.authorization.k8s.io", "storage.k8s.io", "node.k8s.io",
        "apiextensions.k8s.io", "apiregistration.k8s.io", "admissionregistration.k8s.io",
        "scheduling.k8s.io", "coordination.k8s.io", "discovery.k8s.io", "certificates.k8s.io",
        "flowcontrol.apiserver.k8s.io", "authentication.k8s.io", "authorization.k8s.io",
        "internal.apiserver.k8s.io", "resource.k8s.io", "storagemigration.k8s.io",
    }
)


def rule_legend() -> dict[str, str]:
    """Every rule and field name with its reason, for reports."""
    legend = {rule.name: rule.reason for rule in TYPE_SKIPS.values()}
    legend.update({skip.rule.name: skip.rule.reason for skip in OBJECT_SKIPS})
    legend.update({rule.name: rule.reason for rule in (SYSTEM_NAMESPACE, OUT_OF_SCOPE)})
    legend.update({f"metadata.{name}": reason for name, reason in METADATA_STRIPS})
    legend.update({s.field: s.reason for s in SPEC_STRIPS})
    legend["status"] = STATUS_REASON
    return legend


def type_skip(resource: ResourceType) -> Rule | None:
    """The rule that leaves the whole type out, or None if its objects are read."""
    return TYPE_SKIPS.get(identity_of(resource.group, resource.resource))


def classify(obj: Obj, resource: ResourceType) -> Rule | None:
    """The rule that skips ``obj`` (an object of ``resource``), or None to export it."""
    ident = identity_of(resource.group, resource.resource)
    skip = TYPE_SKIPS.get(ident)
    if skip is not None:
        return skip
    for rule in OBJECT_SKIPS:
        if ident in rule.applies_to and rule.test(obj):
            return rule.rule
    return None


def classifier(resource: ResourceType) -> Callable[[Obj], Rule | None]:
    """:func:`classify` for the objects of one type, with the rules that apply to it looked
    up once instead of for every object."""
    skip = type_skip(resource)
    if skip is not None:
        return lambda _obj: skip
    ident = identity_of(resource.group, resource.resource)
    tests = tuple((rule.test, rule.rule) for rule in OBJECT_SKIPS if ident in rule.applies_to)

    def classify_one(obj: Obj) -> Rule | None:
        for test, rule in tests:
            if test(obj):
                return rule
        return None

    return classify_one


def keeps_status(resource: ResourceType) -> bool:
    """True if the status of this type's objects is set aside rather than dropped."""
    ident = identity_of(resource.group, resource.resource)
    return ident in STATUS_ASIDE or ident[0] not in BUILTIN_GROUPS


def strip(
    obj: Obj,
    resource: ResourceType,
    *,
    keep_node_ports: bool = False,
    keep_cluster_ips: bool = False,
) -> tuple[Obj, list[str], Obj | None]:
    """Remove cluster-bound fields from ``obj`` (in place, for speed) and return it.

    Returns the object, the names of the fields removed (as in :func:`rule_legend`), and the
    data set aside (``{"status": ...}``) or None.
    """
    options = StripOptions(keep_node_ports=keep_node_ports, keep_cluster_ips=keep_cluster_ips)
    return stripper(resource, options)(obj)


def stripper(
    resource: ResourceType, options: StripOptions | None = None
) -> Callable[[Obj], tuple[Obj, list[str], Obj | None]]:
    """:func:`strip` for the objects of one type, with the rules that apply to it looked up
    once instead of for every object (the export calls it for each of many thousands)."""
    options = options or StripOptions()
    ident = identity_of(resource.group, resource.resource)
    spec_strips = tuple(rule for rule in SPEC_STRIPS if ident in rule.applies_to)
    keep_status = keeps_status(resource)
    metadata_fields = tuple((name, f"metadata.{name}") for name, _reason in METADATA_STRIPS)

    def strip_one(obj: Obj) -> tuple[Obj, list[str], Obj | None]:
        stripped: list[str] = []
        meta = obj.get("metadata")
        if isinstance(meta, dict):
            for name, label in metadata_fields:
                if meta.pop(name, None) is not None:
                    stripped.append(label)
        for rule in spec_strips:
            if rule.remove(obj, options):
                stripped.append(rule.field)
        aside = None
        status = obj.pop("status", None)
        if status:
            stripped.append("status")
            if keep_status and _has_content(status):
                aside = {"status": status}
        return obj, stripped, aside

    return strip_one


def _has_content(value: Any) -> bool:
    """False for a status with nothing in it, such as a Service's ``{"loadBalancer": {}}``."""
    if isinstance(value, dict):
        return any(_has_content(v) for v in value.values())
    if isinstance(value, list):
        return bool(value)
    return value is not None and value != ""
