"""What a cluster makes itself, so a migration leaves it behind: each with its reason.

Two tables of data, read top to bottom:

- :data:`TYPE_SKIPS`: resource types never read at all (the new cluster makes its own);
- :data:`OBJECT_SKIPS`: single objects of other types that the new cluster regenerates
  (pods of controllers, token secrets, ``kube-root-ca.crt``, bootstrap RBAC, ...).

Export leaves them out of the snapshot; verify does not count them as extra in the target.
Rules match on the identity of a type (group and plural, see
:func:`migrator.resources.identity.identity_of`), so they hold whichever group/version the
objects were read through. :func:`classify` is a pure function; callers count its answers
into their reports, so nothing disappears silently.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from migrator.resources.identity import Identity, identity_of
from migrator.resources.objects import Obj, annotations_of, labels_of, meta


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


def ids(*pairs: Identity) -> frozenset[Identity]:
    """A set of identities, as the tables spell them."""
    return frozenset(pairs)


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


def _points_at_pods(obj: Obj) -> bool:
    """Whether Endpoints name a pod (with its uid) among their addresses."""
    for subset in obj.get("subsets") or ():
        for key in ("addresses", "notReadyAddresses"):
            for address in (subset or {}).get(key) or ():
                ref = (address or {}).get("targetRef") or {}
                if ref.get("kind") == "Pod" and ref.get("uid"):
                    return True
    return False


def _named(namespace: str | None, name: str) -> Callable[[Obj], bool]:
    def test(obj: Obj) -> bool:
        m = meta(obj)
        return m.get("name") == name and (namespace is None or m.get("namespace") == namespace)

    return test


def _has_controller(obj: Obj) -> bool:
    return any(ref.get("controller") for ref in meta(obj).get("ownerReferences") or ())


def token_secret_name(account: str, name: str) -> bool:
    """True for the names the token controller gives a ServiceAccount's token secrets."""
    return re.fullmatch(re.escape(account) + r"-token-[a-z0-9]{5}", name) is not None


def _untouched_default_account(obj: Obj) -> bool:
    """The ``default`` ServiceAccount as every namespace gets it, with nothing a user added.

    One with image pull secrets, a mount setting, labels, annotations or secrets of the
    user's own is kept: the target's controller would create it bare and lose them.
    """
    if meta(obj).get("name") != "default":
        return False
    secrets = [s.get("name", "") for s in obj.get("secrets") or ()]
    return (
        not obj.get("imagePullSecrets")
        and "automountServiceAccountToken" not in obj
        and not labels_of(obj)
        and not annotations_of(obj)
        and all(token_secret_name("default", name) for name in secrets)
    )


# The mandatory and suggested flow control objects of the API servers (1.20 to 1.33).
_BUILTIN_FLOW_CONTROL = frozenset(
    {
        # FlowSchemas
        "catch-all",
        "exempt",
        "global-default",
        "kube-controller-manager",
        "kube-scheduler",
        "kube-system-service-accounts",
        "probes",
        "service-accounts",
        "system-leader-election",
        "system-nodes",
        "workload-leader-election",
        "endpoint-controller",
        "system-node-high",
        # PriorityLevelConfigurations (catch-all, exempt, global-default are above)
        "leader-election",
        "system",
        "workload-high",
        "workload-low",
        "node-high",
    }
)


def _builtin_flow_control(obj: Obj) -> bool:
    """An API server's own flow control object, which it (re)creates in every cluster.

    From 1.22 they carry ``apf.kubernetes.io/autoupdate-spec``: "true" means the server owns
    it, "false" that a user customised it (exported). Older servers set no annotation, so the
    built-in names decide.
    """
    flag = annotations_of(obj).get("apf.kubernetes.io/autoupdate-spec")
    if flag is not None:
        return flag == "true"
    return meta(obj).get("name") in _BUILTIN_FLOW_CONTROL


_CONTROLLER_SLICES = frozenset(
    {"endpointslice-controller.k8s.io", "endpointslicemirroring-controller.k8s.io"}
)


OBJECT_SKIPS: tuple[ObjectSkip, ...] = (
    ObjectSkip(
        Rule("owned-by-controller", "created by its controller, which the new cluster runs"),
        ids(("", "pods"), ("apps", "replicasets"), ("batch", "jobs")),
        _has_controller,
    ),
    ObjectSkip(
        Rule("service-account-token", "token secrets are minted anew by the target's controller"),
        ids(("", "secrets")),
        lambda obj: obj.get("type") == "kubernetes.io/service-account-token",
    ),
    ObjectSkip(
        Rule(
            "root-ca-configmap",
            "kube-root-ca.crt holds the old cluster's CA; each cluster "
            "publishes its own in every namespace",
        ),
        ids(("", "configmaps")),
        _named(None, "kube-root-ca.crt"),
    ),
    ObjectSkip(
        Rule("default-service-account", "every namespace gets its own default ServiceAccount"),
        ids(("", "serviceaccounts")),
        _untouched_default_account,
    ),
    ObjectSkip(
        Rule("kubernetes-service", "default/kubernetes points at the old API server"),
        ids(("", "services"), ("", "endpoints")),
        _named("default", "kubernetes"),
    ),
    # Endpoints of a Service with a selector are kept up to date by the endpoints controller,
    # which marks them (a last-change-trigger-time annotation, when the pods' conditions carry
    # times; from 1.22 also the skip-mirror label; from 1.33 a managed-by label) and points
    # them at pods by uid (which no hand-made Endpoints can know ahead); those of a
    # selector-less Service are the user's own data (an external backend) and are exported.
    ObjectSkip(
        Rule("controller-endpoints", "maintained by the endpoints controller from the Service"),
        ids(("", "endpoints")),
        lambda obj: (
            labels_of(obj).get("endpointslice.kubernetes.io/skip-mirror") == "true"
            or labels_of(obj).get("endpoints.kubernetes.io/managed-by") == "endpoint-controller"
            or "endpoints.kubernetes.io/last-change-trigger-time" in annotations_of(obj)
            or _points_at_pods(obj)
        ),
    ),
    ObjectSkip(
        Rule("controller-endpointslice", "maintained by the endpoint slice controllers"),
        ids(("discovery.k8s.io", "endpointslices")),
        lambda obj: (
            labels_of(obj).get("endpointslice.kubernetes.io/managed-by") in _CONTROLLER_SLICES
            or labels_of(obj).get("kubernetes.io/service-name") == "kubernetes"
        ),
    ),
    ObjectSkip(
        Rule("automanaged-apiservice", "the new API server registers its built-in APIs itself"),
        ids(("apiregistration.k8s.io", "apiservices")),
        lambda obj: "kube-aggregator.kubernetes.io/automanaged" in labels_of(obj),
    ),
    ObjectSkip(
        Rule("bootstrap-rbac", "default RBAC that every API server creates (and reconciles)"),
        ids(
            ("rbac.authorization.k8s.io", "clusterroles"),
            ("rbac.authorization.k8s.io", "clusterrolebindings"),
            ("rbac.authorization.k8s.io", "roles"),
            ("rbac.authorization.k8s.io", "rolebindings"),
        ),
        lambda obj: labels_of(obj).get("kubernetes.io/bootstrapping") == "rbac-defaults",
    ),
    ObjectSkip(
        Rule("system-priority-class", "system-* priority classes are built into every cluster"),
        ids(("scheduling.k8s.io", "priorityclasses")),
        lambda obj: str(meta(obj).get("name", "")).startswith("system-"),
    ),
    ObjectSkip(
        Rule("builtin-flow-control", "API priority and fairness defaults of the API server"),
        ids(
            ("flowcontrol.apiserver.k8s.io", "flowschemas"),
            ("flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations"),
        ),
        _builtin_flow_control,
    ),
)


# Namespace objects outside a run's namespace scope (see migrator.resources.scope).
SYSTEM_NAMESPACE = Rule(
    "system-namespace",
    "kube-system, kube-public and kube-node-lease belong to the cluster itself "
    "(--include-system-namespaces exports them)",
)
OUT_OF_SCOPE = Rule("namespace-filtered", "outside the namespaces chosen for this export")


def skip_legend() -> dict[str, str]:
    """Every skip rule's name with its reason, for reports."""
    legend = {rule.name: rule.reason for rule in TYPE_SKIPS.values()}
    legend.update({skip.rule.name: skip.rule.reason for skip in OBJECT_SKIPS})
    legend.update({rule.name: rule.reason for rule in (SYSTEM_NAMESPACE, OUT_OF_SCOPE)})
    return legend


def type_skip(group: str, resource: str) -> Rule | None:
    """The rule that leaves the whole type out, or None if its objects are read."""
    return TYPE_SKIPS.get(identity_of(group, resource))


def classifier(group: str, resource: str) -> Callable[[Obj], Rule | None]:
    """:func:`classify` for the objects of one type, with the rules that apply to it looked
    up once instead of for every object (export calls it for each of many thousands)."""
    skip = type_skip(group, resource)
    if skip is not None:
        return lambda _obj: skip
    ident = identity_of(group, resource)
    tests = tuple((rule.test, rule.rule) for rule in OBJECT_SKIPS if ident in rule.applies_to)

    def classify_one(obj: Obj) -> Rule | None:
        for test, rule in tests:
            if test(obj):
                return rule
        return None

    return classify_one


def classify(obj: Obj, group: str, resource: str) -> Rule | None:
    """The rule that leaves ``obj`` (an object of ``group``'s ``resource``) behind, or None
    when it moves."""
    return classifier(group, resource)(obj)


def is_regenerated(obj: Obj, group: str, resource: str) -> bool:
    """True for an object the new cluster makes itself."""
    return classify(obj, group, resource) is not None
