"""The snapshot: a cluster's objects in a store, as gzip'd JSON lines with a manifest.

See :mod:`migrator.snapshot.layout` for the folder layout. Write with
:class:`SnapshotWriter`, read with :class:`SnapshotReader`, list with :func:`list_snapshots`.
"""

from __future__ import annotations

from migrator.snapshot.layout import FORMAT_VERSION, PartInfo, ResourceEntry
from migrator.snapshot.reader import PartProblem, SnapshotReader, VerifyReport, list_snapshots
from migrator.snapshot.writer import ResourceWriter, SnapshotWriter

__all__ = [
    "FORMAT_VERSION",
    "PartInfo",
    "PartProblem",
    "ResourceEntry",
    "ResourceWriter",
    "SnapshotReader",
    "SnapshotWriter",
    "VerifyReport",
    "list_snapshots",
]
