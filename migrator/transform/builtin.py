"""The built-in conversions, seen from the runner: one narrow seam to the registry.

The registry (``migrator.transform.registry``) and the per-group conversions are a separate
piece of work; the runner, ``check-apis`` and their tests reach them only through this module,
so the seam is one place and tests can hand the runner their own converter instead.
"""

from __future__ import annotations

from collections.abc import Callable

from migrator.resources.objects import Obj
from migrator.transform.base import Conversion, Result

Serves = Callable[[str], bool]
Converter = Callable[[Obj, Serves], Result]
Normalizer = Callable[[Obj], Result]
Finder = Callable[[str, str], Conversion | None]


KindServes = Callable[[str, str], bool]


def convert(
    obj: Obj,
    serves: Serves,
    *,
    kind_serves: KindServes | None = None,
    last_applied: str = "rewrite",
) -> Result:
    """The registry's conversion of ``obj`` for a target that serves what ``serves`` says.

    It also rewrites what embeds manifests (Helm release records, and the last-applied
    annotation as ``last_applied`` says: rewrite, drop or keep).
    """
    from migrator.transform import registry

    return registry.convert_for(obj, serves, kind_serves=kind_serves, last_applied=last_applied)


def converter(
    *,
    kind_serves: KindServes | None = None,
    last_applied: str = "rewrite",
) -> Converter:
    """:func:`convert` with its settings bound, as the runner and check-apis take it."""
    return lambda obj, serves: convert(
        obj, serves, kind_serves=kind_serves, last_applied=last_applied
    )


def find(api_version: str, kind: str) -> Conversion | None:
    """The registry's conversion for ``api_version``/``kind``, or None."""
    from migrator.transform import registry

    return registry.find(api_version, kind)


def normalize_pod_template(obj: Obj) -> Result:
    """Pod template clean-ups every target needs (seccomp annotations → securityContext)."""
    from migrator.transform.conversions.podtemplate import normalize_pod_template as normalize

    return normalize(obj)


def normalize_crd(obj: Obj) -> Result:
    """v1 CRDs created through v1beta1 still carry ``preserveUnknownFields: true``: rewrite it."""
    from migrator.transform.conversions.apiextensions import normalize_crd as normalize

    return normalize(obj)


def normalize_webhooks(obj: Obj) -> Result:
    """v1 webhooks the old server converted keep v1beta1's sideEffects and repeated names."""
    from migrator.transform.conversions.admissionregistration import normalize_webhooks as fix

    return fix(obj)


def normalize_object_meta(obj: Obj) -> Result:
    """ObjectMeta fields Kubernetes removed (clusterName), wherever an object embeds them."""
    from migrator.transform.conversions.objectmeta import normalize_object_meta as normalize

    return normalize(obj)


def normalize_ingress(obj: Obj) -> Result:
    """v1 Ingresses the old server converted keep the class annotation: → ingressClassName."""
    from migrator.transform.conversions.networking import normalize_ingress as normalize

    return normalize(obj)


LAST_APPLIED_MODES = ("rewrite", "drop", "keep")
# Run on every object after its conversion, or on objects that needed none: what the old API
# server's own conversion leaves for us when export read the object at the new version.
NORMALIZERS: tuple[tuple[str, Normalizer], ...] = (
    ("objectmeta", normalize_object_meta),
    ("podtemplate", normalize_pod_template),
    ("crd", normalize_crd),
    ("ingress", normalize_ingress),
    ("webhooks", normalize_webhooks),
)
