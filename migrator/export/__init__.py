"""The export stage: every object of a cluster, once each, into a snapshot.

:func:`plan` chooses the types and versions (:mod:`~migrator.export.selection`), :func:`apply`
lists them into a snapshot, stripping what is cluster-bound (:mod:`~migrator.export.strips`)
and leaving out what the new cluster regenerates (:mod:`migrator.resources.regenerated`);
:func:`export_cluster` discovers and does both. :mod:`~migrator.export.runner` lists and
writes concurrently.
"""

from __future__ import annotations

from migrator.export.report import ExportReport, ResourceReport
from migrator.export.runner import connections_needed
from migrator.export.stage import (
    ExportOptions,
    ExportPlan,
    ExportResult,
    apply,
    export_cluster,
    plan,
)

__all__ = [
    "ExportOptions",
    "ExportPlan",
    "ExportReport",
    "ExportResult",
    "ResourceReport",
    "apply",
    "connections_needed",
    "export_cluster",
    "plan",
]
