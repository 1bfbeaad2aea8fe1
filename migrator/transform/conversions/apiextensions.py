"""CustomResourceDefinition apiextensions.k8s.io/v1beta1 → v1.

v1 keeps schema, subresources and printer columns per version (v1beta1 allowed them at the
top), names ``jsonPath`` in lower camel case, nests the conversion webhook
(``webhook.clientConfig``, ``webhook.conversionReviewVersions``), requires ``scope`` and a
schema for every version, and no longer lets ``preserveUnknownFields: true`` (v1beta1's
default) switch pruning off for the whole object. Pruning cuts, at every object node of the
schema, the fields the node does not specify, unless the node says
``x-kubernetes-preserve-unknown-fields: true``; the conversion says so at every node pruning
would cut (:func:`keep_unknown_fields`), so custom resources keep every field they held, as
under v1beta1, and the report lists the nodes. v1 also requires structural schemas; the ones
that are not are flagged.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from migrator.transform.base import Result, Severity
from migrator.transform.conversions.convert import Rewrite
from migrator.transform.conversions.rewriter import Rewriter, lookup

V1 = "apiextensions.k8s.io/v1"
V1BETA1 = "apiextensions.k8s.io/v1beta1"
CRD = "CustomResourceDefinition"
PRESERVE = "x-kubernetes-preserve-unknown-fields"
# top-level v1beta1 field → its per-version name in v1
PER_VERSION = (
    ("validation", "schema"),
    ("subresources", "subresources"),
    ("additionalPrinterColumns", "additionalPrinterColumns"),
)
# fields a structural schema may not set inside allOf/anyOf/oneOf/not
_JUNCTOR_FORBIDDEN = ("type", "description", "default", "additionalProperties", "nullable")
_JUNCTORS = ("allOf", "anyOf", "oneOf")


def structural_problems(
    schema: Any, path: str = "openAPIV3Schema", root: bool = True
) -> Iterator[str]:
    """Why ``schema`` is not structural (the rules of the v1 API), one message each."""
    if not isinstance(schema, dict):
        return
    free = schema.get(PRESERVE) is True or schema.get("x-kubernetes-int-or-string") is True
    if "type" not in schema and not free and not root:
        yield f"{path}: type is required"
    if isinstance(schema.get("additionalProperties"), dict) and schema.get("properties"):
        yield f"{path}: properties and additionalProperties are mutually exclusive"
    if root and isinstance(schema.get("properties"), dict):
        metadata = schema["properties"].get("metadata")
        if isinstance(metadata, dict) and set(metadata.get("properties") or {}) - {
            "name",
            "generateName",
        }:
            yield f"{path}.properties.metadata: only name and generateName may be specified"
    for junctor in _JUNCTORS:
        for index, item in enumerate(schema.get(junctor) or ()):
            yield from _junctor_problems(item, f"{path}.{junctor}[{index}]")
    if isinstance(schema.get("not"), dict):
        yield from _junctor_problems(schema["not"], f"{path}.not")
    for name, child in (schema.get("properties") or {}).items():
        yield from structural_problems(child, f"{path}.properties[{name}]", root=False)
    if isinstance(schema.get("items"), dict):
        yield from structural_problems(schema["items"], f"{path}.items", root=False)
    elif isinstance(schema.get("items"), list):
        yield f"{path}.items: must be a schema, not a list"
    if isinstance(schema.get("additionalProperties"), dict):
        yield from structural_problems(
            schema["additionalProperties"], f"{path}.additionalProperties", root=False
        )


def _junctor_problems(schema: Any, path: str) -> Iterator[str]:
    if not isinstance(schema, dict):
        return
    for key in _JUNCTOR_FORBIDDEN:
        if key in schema:
            yield f"{path}.{key}: must not be set inside allOf/anyOf/oneOf/not"
    for child_key in ("properties",):
        for name, child in (schema.get(child_key) or {}).items():
            yield from _junctor_problems(child, f"{path}.properties[{name}]")
    if isinstance(schema.get("items"), dict):
        yield from _junctor_problems(schema["items"], f"{path}.items")


def _columns(columns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {("jsonPath" if k == "JSONPath" else k): v for k, v in column.items()} for column in columns
    ]


def _versions(rw: Rewriter) -> list[dict[str, Any]]:
    """The versions list, built from spec.version when only that was given (old default)."""
    versions = rw.get(("spec", "versions"))
    if versions:
        return [dict(v) for v in versions]
    name = rw.get(("spec", "version"))
    built = [{"name": name, "served": True, "storage": True}]
    rw.record(
        ("spec", "versions"),
        "set",
        "v1beta1 defaulted versions from spec.version",
        Severity.DEFAULT,
        None,
        built,
    )
    return built


def crd_edit(rw: Rewriter) -> None:
    """Everything the v1 layout moved, defaulted or restricted."""
    versions = _versions(rw)
    rw.remove(("spec", "version"), "v1 has no spec.version: spec.versions lists every version")
    for field, per_version in PER_VERSION:
        top = rw.pop(("spec", field))
        if top is None:
            continue
        for version in versions:
            version.setdefault(per_version, top)
        rw.record(
            ("spec", field),
            "move",
            f"v1 has no top-level {field}: copied into every version's {per_version}",
            before=top,
        )
    for version in versions:
        if version.get("additionalPrinterColumns"):
            version["additionalPrinterColumns"] = _columns(version["additionalPrinterColumns"])
    _preserve_unknown_fields(rw, versions)
    for index, version in enumerate(versions):
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        for problem in structural_problems(schema):
            rw.record(
                ("spec", "versions", index, "schema"),
                "flag",
                f"not a structural schema ({problem}): v1 rejects it; fix the schema by hand",
                Severity.REVIEW,
            )
    rw.put(("spec", "versions"), versions)
    rw.default(("spec", "scope"), "Namespaced", "v1 requires scope; v1beta1 defaulted Namespaced")
    _conversion(rw)


def _preserve_unknown_fields(rw: Rewriter, versions: list[dict[str, Any]]) -> None:
    preserve = rw.get(("spec", "preserveUnknownFields"))
    if preserve is False:
        rw.remove(("spec", "preserveUnknownFields"), "false is v1's only value (and it omits it)")
        return
    rw.pop(("spec", "preserveUnknownFields"))
    for index, version in enumerate(versions):
        where = ("spec", "versions", index, "schema")
        schema = version.get("schema")
        if not isinstance(schema, dict) or not isinstance(schema.get("openAPIV3Schema"), dict):
            version["schema"] = {"openAPIV3Schema": {"type": "object", PRESERVE: True}}
            rw.record(
                where,
                "set",
                "v1 requires a schema: an open one that keeps every field",
                Severity.REVIEW,
                None,
                version["schema"],
            )
            continue
        kept, nodes = keep_unknown_fields(schema["openAPIV3Schema"])
        if not nodes:
            continue
        version["schema"] = {**schema, "openAPIV3Schema": kept}
        rw.record(
            (*where, "openAPIV3Schema"),
            "set",
            f"{PRESERVE}: true set at {len(nodes)} object node(s) of the schema "
            f"({', '.join(nodes)}): pruning would cut the fields they do not specify, which "
            "v1beta1 kept",
            Severity.DEFAULT,
            None,
            nodes,
        )
    rw.record(
        ("spec", "preserveUnknownFields"),
        "convert",
        f"preserveUnknownFields: true{' (the v1beta1 default)' if preserve is None else ''} "
        f"kept every unknown field; v1 prunes them unless {PRESERVE} is set: set wherever "
        "pruning would cut (custom resources keep their fields as before; remove it where "
        "pruning is wanted)",
        Severity.DEFAULT,
        preserve,
        {PRESERVE: True},
    )


def keep_unknown_fields(schema: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``schema`` with ``x-kubernetes-preserve-unknown-fields: true`` at every object node
    that pruning would cut (one that specifies its fields by ``properties``, or none at all,
    rather than by ``additionalProperties``), and the JSON Pointers of those nodes.

    Nodes are copied only where they change. ``metadata`` of the root and of embedded
    resources is left alone: its fields are ObjectMeta's, and v1 forbids saying more of it.
    """
    nodes: list[str] = []
    return _keep(schema, "", True, nodes), nodes


def _keep(node: Any, where: str, resource: bool, nodes: list[str]) -> Any:
    if not isinstance(node, dict):
        return node
    new = node
    is_object = node.get("type") == "object" or isinstance(node.get("properties"), dict)
    open_map = node.get("additionalProperties") not in (None, False)
    if is_object and not open_map and node.get(PRESERVE) is not True:
        new = {**node, PRESERVE: True}
        nodes.append(where or "/")
    embedded = resource or node.get("x-kubernetes-embedded-resource") is True
    properties = node.get("properties")
    if isinstance(properties, dict):
        kept = {
            name: child
            if embedded and name == "metadata"
            else _keep(child, f"{where}/properties/{name}", False, nodes)
            for name, child in properties.items()
        }
        if any(kept[name] is not child for name, child in properties.items()):
            new = {**new, "properties": kept}
    for key in ("items", "additionalProperties"):
        child = node.get(key)
        changed = _keep(child, f"{where}/{key}", False, nodes)
        if changed is not child:
            new = {**new, key: changed}
    return new


def _conversion(rw: Rewriter) -> None:
    path = ("spec", "conversion")
    conversion = rw.get(path)
    if not isinstance(conversion, dict):
        return
    if conversion.get("strategy") != "Webhook":
        extra = [k for k in conversion if k != "strategy"]
        for key in extra:
            rw.remove((*path, key), f"v1 forbids {key} unless the strategy is Webhook")
        return
    webhook = _some_webhook(conversion)
    new = {
        k: v
        for k, v in conversion.items()
        if k not in ("webhookClientConfig", "conversionReviewVersions")
    }
    new["webhook"] = webhook
    rw.set(
        path,
        new,
        "v1 nests the conversion webhook: webhook.clientConfig, "
        "webhook.conversionReviewVersions (v1beta1 defaulted [v1beta1])",
        action="convert",
    )


def _some_webhook(conversion: dict[str, Any]) -> dict[str, Any]:
    webhook: dict[str, Any] = {}
    if conversion.get("webhookClientConfig") is not None:
        webhook["clientConfig"] = conversion["webhookClientConfig"]
    webhook["conversionReviewVersions"] = conversion.get("conversionReviewVersions") or ["v1beta1"]
    return webhook


def normalize_crd(obj: dict[str, Any]) -> Result:
    """A v1 CRD that still says ``preserveUnknownFields: true``, made valid for a v1 create.

    A CRD created through v1beta1 and read back through v1 (export asks the old server for v1
    when it serves it) keeps ``preserveUnknownFields: true``: a v1 server lets an existing CRD
    keep it but refuses it on create. The same rewrite as the v1beta1 conversion applies.
    """
    if (obj.get("apiVersion"), obj.get("kind")) != (V1, CRD) or lookup(
        obj, ("spec", "preserveUnknownFields")
    ) is not True:
        return Result(obj)
    rw = Rewriter(obj, "crd preserveUnknownFields")
    versions = [dict(v) for v in rw.get(("spec", "versions")) or ()]
    _preserve_unknown_fields(rw, versions)
    rw.put(("spec", "versions"), versions)
    return rw.result()


CONVERSIONS = (Rewrite((V1BETA1, CRD), (V1, CRD), (crd_edit,)),)
