"""What a CustomResourceDefinition says about reading and writing its custom resources.

A CRD with several versions stores its objects at one (``spec.versions[].storage``); reading or
writing them at another makes the API server convert, and with ``conversion.strategy:
Webhook`` that means calling the operator's webhook. In a migration that webhook is exactly
what may not be there: in the new cluster it is imported with the workloads, after the CRDs;
in the old one it may be what is broken. So custom resources of such a CRD are read, written
and compared at the storage version, where no conversion is needed. Pure functions of CRD
objects (``apiextensions.k8s.io`` v1 or v1beta1 layout).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from migrator.kube.client import Cluster
from migrator.kube.discovery import Discovery
from migrator.kube.pager import iter_items
from migrator.resources.objects import dig, lookup, name_of
from migrator.snapshot.reader import SnapshotReader

CRDS = ("apiextensions.k8s.io", "customresourcedefinitions")


@dataclass(frozen=True)
class ConversionWebhook:
    """Where a CRD's conversion webhook is: a Service in the cluster, or a URL."""

    service_namespace: str = ""
    service_name: str = ""
    service_port: int = 443
    url: str = ""

    def describe(self) -> str:
        if self.url:
            return self.url
        return f"service {self.service_namespace}/{self.service_name}:{self.service_port}"


@dataclass(frozen=True)
class CrdInfo:
    """One CRD, as the stages need it."""

    name: str
    group: str
    plural: str
    kind: str
    storage_version: str
    served_versions: tuple[str, ...]
    webhook: ConversionWebhook | None = None

    @property
    def identity(self) -> tuple[str, str]:
        return self.group, self.plural

    def needs_conversion(self, version: str) -> bool:
        """True if reading or writing at ``version`` calls the conversion webhook."""
        return self.webhook is not None and version != self.storage_version


def crd_info(crd: Mapping[str, Any]) -> CrdInfo | None:
    """What ``crd`` says (None for an object that is not a usable CRD)."""
    spec = crd.get("spec") or {}
    group, plural = spec.get("group"), dig(spec, "names", "plural")
    if not group or not plural:
        return None
    versions = [v for v in spec.get("versions") or () if isinstance(v, dict) and v.get("name")]
    if not versions and spec.get("version"):  # v1beta1 with one version
        versions = [{"name": spec["version"], "served": True, "storage": True}]
    storage = next((v["name"] for v in versions if v.get("storage")), "")
    served = tuple(v["name"] for v in versions if v.get("served", True))
    conversion = spec.get("conversion") or {}
    webhook = None
    if conversion.get("strategy") == "Webhook":
        # v1 nests the client config under webhook; v1beta1 had webhookClientConfig.
        config = (
            lookup(conversion, ("webhook", "clientConfig"))
            or conversion.get("webhookClientConfig")
            or {}
        )
        service = config.get("service") or {}
        webhook = ConversionWebhook(
            service_namespace=str(service.get("namespace") or ""),
            service_name=str(service.get("name") or ""),
            service_port=int(service.get("port") or 443),
            url=str(config.get("url") or ""),
        )
    return CrdInfo(
        name_of(crd),
        str(group),
        str(plural),
        str(dig(spec, "names", "kind") or ""),
        storage,
        served,
        webhook,
    )


def by_identity(crds: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], CrdInfo]:
    """(group, plural) → what each usable CRD of ``crds`` says."""
    found = (crd_info(crd) for crd in crds)
    return {info.identity: info for info in found if info is not None}


def webhook_note(info: CrdInfo) -> str:
    """What migrator does about a CRD that converts through a webhook (for reports)."""
    if info.webhook is None:
        return ""
    return (
        f"converts between versions through a webhook ({info.webhook.describe()}): its custom "
        f"resources are exported, imported and verified at the storage version "
        f"{info.storage_version}, so the webhook is not needed; its caBundle and CA-injection "
        "annotations move as they are: the webhook's serving certificate (its Secret) must "
        "move with it, or be issued anew for the same CA"
    )


def webhook_notes(crds: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """CRD name → what migrator does about it, for each of ``crds`` that converts through a
    webhook."""
    return {info.name: webhook_note(info) for info in by_identity(crds).values() if info.webhook}


def snapshot_crds(reader: SnapshotReader) -> Iterator[dict[str, Any]]:
    """The CustomResourceDefinitions a snapshot holds (only their resource is read)."""
    for entry in reader.resources():
        if (entry["group"], entry["resource"]) == CRDS:
            yield from reader.iter_objects(entry)


def live_crds(cluster: Cluster, discovery: Discovery) -> Iterator[dict[str, Any]]:
    """The CustomResourceDefinitions of a live cluster, at the newest version it serves."""
    for version in ("v1", "v1beta1"):
        if discovery.serves(f"apiextensions.k8s.io/{version}"):
            return iter_items(
                cluster, f"/apis/apiextensions.k8s.io/{version}/customresourcedefinitions"
            )
    return iter(())
