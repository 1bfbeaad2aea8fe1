"""Putting one object into the target: server-side apply under a conflict policy.

Every write is a server-side apply (``PATCH`` with ``application/apply-patch+yaml``) by the
field manager ``migrator``, so the target records which fields the import set, a re-run is a
no-op for an object already there, and a later ``--conflict update`` takes those fields back
without touching fields other managers own. What happens to an object that already exists
is the conflict policy:

- ``skip`` (default): left untouched;
- ``update``: applied with ``force=true``, taking ownership of the fields the snapshot sets;
- ``fail``: left untouched and reported as a failure.

Which objects exist is learnt once per type and namespace scope from a metadata-only list
(:func:`list_existing`), not with a GET per object. With ``dry_run`` every request carries
``dryRun=All``: the API server validates and admits each object and changes nothing.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from migrator.errors import ApiError, NotServed
from migrator.importer.progress import FAILED, ObjectOutcome
from migrator.importer.ratelimit import RateLimiter
from migrator.kube import Cluster
from migrator.kube.client import FIELD_MANAGER
from migrator.kube.pager import METADATA_LIST, iter_items
from migrator.resources.objects import meta, name_of, namespace_of
from migrator.resources.paths import entry_collection_path, entry_object_path
from migrator.snapshot import ResourceEntry

CREATED, UPDATED, UNCHANGED, SKIPPED, UNCHECKED, LEFT_TO_GITOPS = (
    "created",
    "updated",
    "unchanged",
    "skipped",
    "unchecked",
    "leftToGitops",
)
OUTCOMES = (CREATED, UPDATED, UNCHANGED, SKIPPED, FAILED, UNCHECKED, LEFT_TO_GITOPS)


class ConflictPolicy(enum.StrEnum):
    """What to do with an object that already exists in the target."""

    SKIP = "skip"
    UPDATE = "update"
    FAIL = "fail"


@dataclass(frozen=True)
class Existing:
    """What the target holds under an object's name: enough to decide and to relink owners."""

    uid: str
    resource_version: str
    applied_by_us: bool  # managedFields show an apply by our field manager


def list_existing(
    cluster: Cluster, entry: ResourceEntry, namespaces: Sequence[str] | None = None
) -> dict[tuple[str, str], Existing]:
    """(namespace, name) → :class:`Existing` for every object of the type in the target.

    ``namespaces`` limits a namespaced type to those namespaces (None: cluster-wide). Only
    metadata travels. Raises :class:`NotServed` if the target does not serve the type.
    """
    paths = (
        [entry_collection_path(entry, ns) for ns in namespaces]
        if namespaces is not None and entry["namespaced"]
        else [entry_collection_path(entry)]
    )
    found: dict[tuple[str, str], Existing] = {}
    for path in paths:
        try:
            for item in iter_items(cluster, path, accept=METADATA_LIST):
                m = meta(item)
                found[(str(m.get("namespace") or ""), str(m.get("name")))] = Existing(
                    uid=str(m.get("uid")),
                    resource_version=str(m.get("resourceVersion")),
                    applied_by_us=_applied_by_us(m),
                )
        except ApiError as exc:
            if exc.status == 404 and not (exc.details or {}).get("name"):
                raise NotServed(str(exc)) from exc
            raise
    return found


def _applied_by_us(metadata: Mapping[str, Any]) -> bool:
    return any(
        m.get("manager") == FIELD_MANAGER and m.get("operation") == "Apply"
        for m in metadata.get("managedFields") or ()
    )


class Applier:
    """Applies prepared objects to one cluster; shared by the import's worker threads."""

    def __init__(
        self,
        cluster: Cluster,
        policy: ConflictPolicy,
        *,
        dry_run: bool = False,
        resumed: bool = False,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.cluster = cluster
        self.policy = policy
        self.dry_run = dry_run
        self.resumed = resumed
        self.limiter = limiter or RateLimiter(0)

    def apply(
        self,
        entry: ResourceEntry,
        body: dict[str, Any],
        existing: Existing | None,
        *,
        status: Mapping[str, Any] | None = None,
        status_subresource: bool = False,
    ) -> ObjectOutcome:
        """Put one object (``body`` from :func:`~migrator.resources.objects.apply_body`) into
        the target; never raises :class:`ApiError`: a refusal is a ``failed`` outcome
        carrying the server's message."""
        namespace, name = namespace_of(body), name_of(body)
        if existing is not None and self.policy is not ConflictPolicy.UPDATE:
            if self.resumed and existing.applied_by_us:
                # Created by the interrupted run of this import, before it could record it.
                return ObjectOutcome(namespace, name, CREATED, existing.uid)
            if self.policy is ConflictPolicy.SKIP:
                return ObjectOutcome(namespace, name, SKIPPED, existing.uid)
            return ObjectOutcome(
                namespace,
                name,
                FAILED,
                existing.uid,
                "already exists in the target (--conflict fail leaves it as it is)",
            )
        path = entry_object_path(entry, namespace, name)
        if status is not None and not status_subresource:
            body = {**body, "status": status}
        try:
            applied = self._patch(path, body)
            if status is not None and status_subresource:
                self._patch(
                    f"{path}/status",
                    {
                        "apiVersion": body["apiVersion"],
                        "kind": body["kind"],
                        "metadata": {
                            "name": name,
                            **({"namespace": namespace} if namespace else {}),
                        },
                        "status": status,
                    },
                    force=True,
                )
        except ApiError as exc:
            if self.dry_run and exc.status == 404:
                return ObjectOutcome(
                    namespace,
                    name,
                    UNCHECKED,
                    None,
                    f"not checked: it needs something this import creates first ({exc})",
                )
            return ObjectOutcome(namespace, name, FAILED, None, str(exc))
        uid = str((applied.get("metadata") or {}).get("uid") or "") or None
        if existing is None:
            return ObjectOutcome(namespace, name, CREATED, uid)
        version = (applied.get("metadata") or {}).get("resourceVersion")
        same = version == existing.resource_version and status is None
        return ObjectOutcome(namespace, name, UNCHANGED if same else UPDATED, uid)

    def _patch(self, path: str, body: Mapping[str, Any], *, force: bool = False) -> dict[str, Any]:
        self.limiter.acquire()
        return self.cluster.apply(
            path, body, force=force or self.policy is ConflictPolicy.UPDATE, dry_run=self.dry_run
        )
