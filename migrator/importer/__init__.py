"""The import stage: a snapshot recreated in the target cluster, in order, idempotently.

:func:`import_snapshot` runs it. :mod:`~migrator.importer.order` is the order (a table),
:mod:`~migrator.importer.apply` the server-side apply and conflict policy,
:mod:`~migrator.importer.owners` the owner-reference relinking,
:mod:`~migrator.importer.progress` and :mod:`~migrator.importer.lock` make it resumable and
exclusive, :mod:`~migrator.importer.runner` puts them together.
"""
from __future__ import annotations

from migrator.importer.apply import ConflictPolicy
from migrator.importer.report import ImportReport
from migrator.importer.runner import ImportOptions, ProgressCallback, import_snapshot
from migrator.importer.scope import ImportScope

__all__ = [
    "ConflictPolicy",
    "ImportOptions",
    "ImportReport",
    "ImportScope",
    "ProgressCallback",
    "import_snapshot",
]
