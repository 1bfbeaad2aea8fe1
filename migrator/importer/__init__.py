"""The import stage: a snapshot recreated in the target cluster, in order, idempotently.

:func:`plan` says what will be created, phase by phase (the snapshot's inventory, see
:mod:`migrator.resources.inventory`); :func:`apply` does it; :func:`import_snapshot` is both.
:mod:`~migrator.importer.apply` is the server-side apply and conflict policy,
:mod:`~migrator.importer.progress` makes it resumable, :mod:`~migrator.importer.runner` puts
them together (the order, owners and readiness it follows live in :mod:`migrator.resources`).
"""

from __future__ import annotations

from migrator.importer.apply import ConflictPolicy
from migrator.importer.report import ImportReport
from migrator.importer.runner import ImportOptions, apply, import_snapshot, plan

__all__ = [
    "ConflictPolicy",
    "ImportOptions",
    "ImportReport",
    "apply",
    "import_snapshot",
    "plan",
]
