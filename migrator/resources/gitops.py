"""Which GitOps tool manages an object, if any: Argo CD or Flux.

An object a GitOps tool applies is that tool's to recreate: importing it too makes two
writers of one object, and leaving it out makes the tool responsible for the new cluster.
The marks each tool leaves are read from the object's metadata alone (a metadata-only list
is enough). ``app.kubernetes.io/instance`` alone says nothing (Helm charts set it too): it
counts for Argo CD only beside Argo CD's tracking annotation or its controller's field
manager.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from migrator.resources.objects import annotations_of, labels_of, meta

ARGOCD, FLUX = "argocd", "flux"
GITOPS_TOOLS = (ARGOCD, FLUX)

ARGOCD_TRACKING = "argocd.argoproj.io/tracking-id"
ARGOCD_INSTANCE = "app.kubernetes.io/instance"
ARGOCD_MANAGERS = frozenset({"argocd-controller", "argocd-application-controller"})
FLUX_LABELS = ("kustomize.toolkit.fluxcd.io/name", "helm.toolkit.fluxcd.io/name")
FLUX_MANAGERS = frozenset({"kustomize-controller", "helm-controller"})

TOOL_NAMES = {ARGOCD: "Argo CD", FLUX: "Flux"}


def field_managers(obj: Mapping[str, Any]) -> set[str]:
    """The managers named in ``metadata.managedFields``."""
    return {
        str(entry.get("manager"))
        for entry in meta(obj).get("managedFields") or ()
        if isinstance(entry, Mapping) and entry.get("manager")
    }


def gitops_manager(obj: Mapping[str, Any]) -> str | None:
    """``"argocd"`` or ``"flux"`` when that tool manages ``obj``, else None."""
    labels = labels_of(obj)
    managers = field_managers(obj)
    if ARGOCD_TRACKING in annotations_of(obj) or managers & ARGOCD_MANAGERS:
        return ARGOCD
    if any(label in labels for label in FLUX_LABELS) or managers & FLUX_MANAGERS:
        return FLUX
    return None
