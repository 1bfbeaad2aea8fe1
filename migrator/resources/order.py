"""The order in which an import creates objects: a table of tiers, a reason beside each.

Read top to bottom. Each tier names the resource types (``(group, plural)`` identities, so
``extensions/ingresses`` counts as ``networking.k8s.io/ingresses``) it holds and why it sits
where it does; tiers run one after the other, objects inside a tier run in parallel. Built-in
kinds the table does not name go to ``other``, after every named built-in; custom resources
(any group Kubernetes itself does not serve) come after their CRDs and after the built-ins.
Objects whose owner is imported too are not in their type's tier: the runner imports them in
"owned" phases after the owners exist (see :mod:`migrator.resources.owners`), just before the
last tier. Teardown reads the same table backwards (:func:`reverse_order`).

Like Velero's ``defaultRestorePriorities`` and lightkube's ``sort_objects``, this is data: a
new kind is placed by adding a line, never by editing control flow.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from migrator.resources.identity import Identity, identity_of, is_custom
from migrator.resources.regenerated import ids

OTHER = "other"
CUSTOM_RESOURCES = "custom-resources"
CRDS = "crds"
WEBHOOKS = "webhooks"
OWNED_PREFIX = "owned-"


@dataclass(frozen=True)
class Tier:
    """One step of the import: its name (in reports and progress keys), why, and its types."""

    name: str
    reason: str
    resources: frozenset[Identity] = frozenset()


_RBAC = "rbac.authorization.k8s.io"
_ADMISSION = "admissionregistration.k8s.io"

TIERS: tuple[Tier, ...] = (
    Tier(
        CRDS,
        "a custom resource cannot be created before its type exists; the import waits "
        "until every CRD is Established before going on",
        ids(("apiextensions.k8s.io", "customresourcedefinitions")),
    ),
    Tier(
        "namespaces",
        "every namespaced object is created inside its namespace",
        ids(("", "namespaces")),
    ),
    Tier(
        "cluster-classes",
        "referred to by name: a pod with an unknown priorityClassName or "
        "runtimeClassName is rejected, a claim with an unknown storageClassName never binds",
        ids(
            ("storage.k8s.io", "storageclasses"),
            ("scheduling.k8s.io", "priorityclasses"),
            ("node.k8s.io", "runtimeclasses"),
            ("networking.k8s.io", "ingressclasses"),
            ("storage.k8s.io", "csidrivers"),
            ("policy", "podsecuritypolicies"),
            ("flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations"),
            ("flowcontrol.apiserver.k8s.io", "flowschemas"),
        ),
    ),
    Tier(
        "persistent-volumes",
        "volumes before their claims: a PV keeps its claimRef "
        "(namespace and name, uid stripped) so it waits, pre-bound, for its own claim",
        ids(("", "persistentvolumes")),
    ),
    Tier(
        "persistent-volume-claims",
        "a claim keeps spec.volumeName and binds to its own PV "
        "instead of having a new volume provisioned; before the pods that mount it",
        ids(("", "persistentvolumeclaims")),
    ),
    Tier(
        "config",
        "mounted or referred to by pods (service accounts, secrets, config maps); "
        "limit ranges and quotas must be in force before pods are admitted, or they are "
        "bypassed",
        ids(
            ("", "serviceaccounts"),
            ("", "secrets"),
            ("", "configmaps"),
            ("", "limitranges"),
            ("", "resourcequotas"),
            ("", "podtemplates"),
        ),
    ),
    Tier(
        "rbac",
        "workloads start with the permissions they had; roles before bindings is not "
        "needed (a binding may name a role that comes later)",
        ids(
            (_RBAC, "clusterroles"),
            (_RBAC, "roles"),
            (_RBAC, "clusterrolebindings"),
            (_RBAC, "rolebindings"),
        ),
    ),
    Tier(
        "workloads",
        "everything above is in place, so pods start on the first try",
        ids(
            ("apps", "deployments"),
            ("apps", "statefulsets"),
            ("apps", "daemonsets"),
            ("apps", "replicasets"),
            ("", "replicationcontrollers"),
            ("batch", "jobs"),
            ("batch", "cronjobs"),
            ("", "pods"),
            ("autoscaling", "horizontalpodautoscalers"),
            ("policy", "poddisruptionbudgets"),
        ),
    ),
    Tier(
        "networking",
        "services, their hand-made endpoints, ingresses and policies route to "
        "and guard the workloads",
        ids(
            ("", "services"),
            ("", "endpoints"),
            ("discovery.k8s.io", "endpointslices"),
            ("networking.k8s.io", "ingresses"),
            ("networking.k8s.io", "networkpolicies"),
        ),
    ),
    Tier(OTHER, "built-in kinds not named above: after everything they might refer to"),
    Tier(
        CUSTOM_RESOURCES,
        "after their CRD (Established) and after the built-in objects their controllers refer to",
    ),
    Tier(
        WEBHOOKS,
        "admission webhooks, admission policies and aggregated APIs last, after "
        "their backing workloads and services: every object above was already admitted by "
        "the old cluster, and a webhook imported earlier whose service is missing or not yet "
        "serving would reject or stall the rest of the import (a mutating one would also "
        "change objects on their way in). failurePolicy is kept as in the snapshot",
        ids(
            (_ADMISSION, "validatingwebhookconfigurations"),
            (_ADMISSION, "mutatingwebhookconfigurations"),
            (_ADMISSION, "validatingadmissionpolicies"),
            (_ADMISSION, "validatingadmissionpolicybindings"),
            (_ADMISSION, "mutatingadmissionpolicies"),
            (_ADMISSION, "mutatingadmissionpolicybindings"),
            ("apiregistration.k8s.io", "apiservices"),
        ),
    ),
)

WEBHOOK_POLICY = (
    "webhooks are imported last (after workloads, services and custom resources) with their "
    "failurePolicy unchanged, so none can block or mutate the import"
)

_BY_IDENTITY: dict[Identity, Tier] = {ident: tier for tier in TIERS for ident in tier.resources}
_BY_NAME: dict[str, Tier] = {tier.name: tier for tier in TIERS}


def tier_of(group: str, resource: str) -> Tier:
    """The tier of a resource type (any group/version that serves it)."""
    ident = identity_of(group, resource)
    tier = _BY_IDENTITY.get(ident)
    if tier is not None:
        return tier
    return _BY_NAME[CUSTOM_RESOURCES] if is_custom(ident[0]) else _BY_NAME[OTHER]


def tier_named(name: str) -> Tier:
    """A tier of the table by name, or an "owned-N" phase (objects whose owner is imported)."""
    if name in _BY_NAME:
        return _BY_NAME[name]
    if name.startswith(OWNED_PREFIX):
        depth = name[len(OWNED_PREFIX) :]
        return Tier(
            name,
            f"objects whose owner is imported too, {depth} level(s) down: created "
            "after their owner so their ownerReferences can name its new uid",
        )
    raise KeyError(name)


def phases(owned_depth: int) -> list[str]:
    """Every phase an import runs, in order: the table, with owned phases before the last."""
    names = [tier.name for tier in TIERS]
    owned = [f"{OWNED_PREFIX}{depth}" for depth in range(1, owned_depth + 1)]
    return names[:-1] + owned + names[-1:]


def reverse_order() -> list[Tier]:
    """The tiers backwards: the order to delete in (webhooks first, CRDs last)."""
    return list(reversed(TIERS))


def teardown_order(types: Iterable[Identity]) -> list[Identity]:
    """``(group, resource)`` types in the order to take them down: the import's order
    backwards, tier by tier, and inside a tier the reverse of the order given (give them
    as the import would)."""
    index = {tier.name: position for position, tier in enumerate(TIERS)}
    given = list(types)
    ranked = sorted(given, key=lambda t: index[tier_of(*t).name])  # stable: given order kept
    return list(reversed(ranked))
