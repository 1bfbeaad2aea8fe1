"""Ingress, IngressClass and NetworkPolicy → networking.k8s.io/v1.

Ingress v1 restructured backends (``serviceName``/``servicePort`` → ``service.name`` and
``service.port.number`` or ``.name``), renamed ``spec.backend`` to ``spec.defaultBackend``
and requires ``pathType`` (v1beta1 defaulted ``ImplementationSpecific``). The
``kubernetes.io/ingress.class`` annotation becomes ``spec.ingressClassName``: Kubernetes
rejects creating an Ingress with both, and the annotation is deprecated.
"""

from __future__ import annotations

from typing import Any

from migrator.transform.base import Result, Severity
from migrator.transform.conversions.convert import Drop, Rewrite, renamed
from migrator.transform.conversions.policy import suggest_pod_security
from migrator.transform.conversions.rewriter import Path, Rewriter, lookup

V1 = "networking.k8s.io/v1"
EXTENSIONS = "extensions/v1beta1"
V1BETA1 = "networking.k8s.io/v1beta1"
CLASS_ANNOTATION = "kubernetes.io/ingress.class"


def convert_backend(backend: dict[str, Any]) -> dict[str, Any]:
    """A v1beta1 IngressBackend in the v1 layout (resource backends are unchanged)."""
    if "serviceName" not in backend and "servicePort" not in backend:
        return backend
    new = {k: v for k, v in backend.items() if k not in ("serviceName", "servicePort")}
    service: dict[str, Any] = {"name": backend.get("serviceName", "")}
    port = backend.get("servicePort")
    if isinstance(port, int):
        service["port"] = {"number": port}
    elif port:
        service["port"] = {"name": port}
    new["service"] = service
    return new


def _backend(rw: Rewriter, path: Path) -> None:
    backend = rw.get(path)
    if isinstance(backend, dict):
        new = convert_backend(backend)
        if new is not backend:
            rw.set(
                path, new, "v1 backends name a service and a port number or name", action="convert"
            )


def ingress_edit(rw: Rewriter) -> None:
    """Backends, pathType and the class annotation."""
    if rw.move(
        ("spec", "backend"), ("spec", "defaultBackend"), "spec.backend is spec.defaultBackend in v1"
    ):
        _backend(rw, ("spec", "defaultBackend"))
    for rule, _ in rw.each(("spec", "rules")):
        for path, _ in rw.each((*rule, "http", "paths")):
            rw.default(
                (*path, "pathType"),
                "ImplementationSpecific",
                "v1 requires pathType; v1beta1 defaulted ImplementationSpecific",
            )
            _backend(rw, (*path, "backend"))
    _class_annotation(rw)


def _class_annotation(rw: Rewriter) -> None:
    annotation = ("metadata", "annotations", CLASS_ANNOTATION)
    value = rw.get(annotation)
    if value is None:
        return
    current = rw.get(("spec", "ingressClassName"))
    if current is None:
        rw.pop(annotation)
        rw.put(("spec", "ingressClassName"), value)
        rw.record(
            annotation,
            "move",
            "the deprecated class annotation is spec.ingressClassName "
            "(never both); an IngressClass of that name must exist on the target",
            Severity.REVIEW,
            value,
            value,
        )
    else:
        rw.remove(
            annotation,
            f"spec.ingressClassName ({current}) is set: the API server rejects both",
            Severity.INFO if current == value else Severity.REVIEW,
        )
    if not rw.get(("metadata", "annotations")):
        rw.pop(("metadata", "annotations"))


def normalize_ingress(obj: dict[str, Any]) -> Result:
    """A v1 Ingress still carrying the class annotation: the annotation → ingressClassName.

    Export reads an extensions/v1beta1 Ingress through networking.k8s.io/v1 when the old
    server serves both, and the server's conversion keeps the annotation: the object must end
    the same as one converted here (its last-applied copy is rewritten with ingressClassName).
    """
    if (obj.get("apiVersion"), obj.get("kind")) != (V1, "Ingress") or lookup(
        obj, ("metadata", "annotations", CLASS_ANNOTATION)
    ) is None:
        return Result(obj)
    rw = Rewriter(obj, "ingress class annotation")
    _class_annotation(rw)
    return rw.result()


CONVERSIONS = (
    Rewrite((EXTENSIONS, "Ingress"), (V1, "Ingress"), (ingress_edit,)),
    Rewrite((V1BETA1, "Ingress"), (V1, "Ingress"), (ingress_edit,)),
    *renamed(V1BETA1, V1, ("IngressClass",)),
    *renamed(EXTENSIONS, V1, ("NetworkPolicy",)),
    Drop(
        (EXTENSIONS, "PodSecurityPolicy"),
        "PodSecurityPolicy has no successor (removed in 1.25); "
        "use Pod Security Admission labels on namespaces",
        suggest_pod_security,
    ),
)
