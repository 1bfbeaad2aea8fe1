"""Pod template security annotations → ``securityContext`` fields.

The seccomp annotations stopped working in Kubernetes 1.27 (the field exists since 1.19) and
the AppArmor annotations are deprecated in favour of ``appArmorProfile`` (1.30). Workload
conversions call ``normalize_template``; the runner calls ``normalize_pod_template`` on
objects that are already at a served version, since those carry the same annotations.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from migrator.transform.base import Result, Severity
from migrator.transform.conversions.rewriter import Path, Rewriter, lookup, pointer

SECCOMP_POD = "seccomp.security.alpha.kubernetes.io/pod"
SECCOMP_CONTAINER = "container.seccomp.security.alpha.kubernetes.io/"
APPARMOR_CONTAINER = "container.apparmor.security.beta.kubernetes.io/"
_MARKERS = ("seccomp.security.alpha.kubernetes.io", "apparmor.security.beta.kubernetes.io")

# Where each kind keeps its pod template (metadata + spec of a Pod).
TEMPLATE_PATHS: dict[str, Path] = {
    "Pod": (),
    "PodTemplate": ("template",),
    "Deployment": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "ReplicationController": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}
_CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")
_SOURCE = "pod template security annotations"


def _profile(value: str) -> dict[str, str] | None:
    """The seccompProfile/appArmorProfile for an annotation value, None if malformed."""
    if value in ("runtime/default", "docker/default"):
        return {"type": "RuntimeDefault"}
    if value == "unconfined":
        return {"type": "Unconfined"}
    if value.startswith("localhost/") and len(value) > len("localhost/"):
        return {"type": "Localhost", "localhostProfile": value[len("localhost/") :]}
    return None


def _container_path(rw: Rewriter, spec: Path, name: str) -> Path | None:
    for key in _CONTAINER_LISTS:
        for path, container in rw.each((*spec, key)):
            if isinstance(container, dict) and container.get("name") == name:
                return path
    return None


def normalize_template(rw: Rewriter, template: Path, apparmor: bool = True) -> None:
    """Move the template's seccomp (and AppArmor) annotations into securityContext fields."""
    annotations = rw.get((*template, "metadata", "annotations"))
    if not annotations or not any(marker in key for key in annotations for marker in _MARKERS):
        return
    spec = (*template, "spec")
    for key, value in list(annotations.items()):
        if key == SECCOMP_POD:
            _move(rw, template, key, value, (*spec, "securityContext", "seccompProfile"))
        elif key.startswith(SECCOMP_CONTAINER) or (apparmor and key.startswith(APPARMOR_CONTAINER)):
            seccomp = key.startswith(SECCOMP_CONTAINER)
            name = key[len(SECCOMP_CONTAINER if seccomp else APPARMOR_CONTAINER) :]
            container = _container_path(rw, spec, name)
            annotation = (*template, "metadata", "annotations", key)
            if container is None:
                rw.remove(annotation, f"no container named {name!r}: the annotation had no effect")
                continue
            field = "seccompProfile" if seccomp else "appArmorProfile"
            _move(rw, template, key, value, (*container, "securityContext", field))


def _move(rw: Rewriter, template: Path, key: str, value: Any, target: Path) -> None:
    annotation = (*template, "metadata", "annotations", key)
    field = target[-1]
    if rw.get(target) is not None:
        rw.remove(annotation, f"{field} is already set; the annotation is ignored by new releases")
        return
    profile = _profile(value) if isinstance(value, str) else None
    if profile is None:
        rw.record(
            annotation,
            "keep",
            f"cannot map {value!r} to a {field}: check it by hand",
            Severity.REVIEW,
            value,
        )
        return
    rw.pop(annotation)
    rw.put(target, profile)
    rw.record(
        annotation,
        "convert",
        f"annotation replaced by {field} at "
        f"{pointer(target)} (annotations are ignored by new releases)",
        Severity.INFO,
        value,
        profile,
    )
    if not rw.get((*template, "metadata", "annotations")):
        rw.pop((*template, "metadata", "annotations"))


def normalize_pod_template(obj: dict[str, Any], apparmor: bool = True) -> Result:
    """``normalize_template`` for one whole object, whatever its kind (unchanged if none)."""
    template = TEMPLATE_PATHS.get(obj.get("kind", ""))
    if template is None:
        return Result(obj)
    annotations = lookup(obj, (*template, "metadata", "annotations"))
    if not annotations or not any(marker in key for key in annotations for marker in _MARKERS):
        return Result(obj)
    rw = Rewriter(obj, _SOURCE)
    normalize_template(rw, template, apparmor)
    return rw.result()


def template_edit(kind: str) -> Callable[[Rewriter], None]:
    """An edit (for ``Rewrite``) that normalizes the template of ``kind``."""
    template = TEMPLATE_PATHS[kind]

    def edit(rw: Rewriter) -> None:
        normalize_template(rw, template)

    return edit
