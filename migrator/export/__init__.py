"""The export stage: every object of a cluster, once each, into a snapshot.

:func:`export_cluster` runs it; :mod:`~migrator.export.selection` chooses the types and
versions, :mod:`~migrator.export.rules` what is skipped and stripped, and
:mod:`~migrator.export.runner` lists and writes concurrently.
"""
from __future__ import annotations

from migrator.export.report import ExportReport, ResourceReport
from migrator.export.runner import connections_needed
from migrator.export.stage import ExportOptions, ExportResult, default_snapshot_id, export_cluster

__all__ = [
    "ExportOptions",
    "ExportReport",
    "ExportResult",
    "ResourceReport",
    "connections_needed",
    "default_snapshot_id",
    "export_cluster",
]
