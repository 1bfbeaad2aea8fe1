"""The volume mover: persistent-volume data through object storage, and back.

A directory tree (a mounted volume) goes into a content-addressed chunk store inside a
migrator store: files are cut by FastCDC, chunks named by a keyed BLAKE3 hash, compressed
with zstd, packed into objects of ~8 MiB and, with a key, encrypted pack by pack
(:mod:`.repository`, :mod:`.packs`); each pass writes a manifest of every path, part by
part, and its head last (:mod:`.manifest`, :mod:`.entries`). Passes repeat while the
application runs, reading only what changed, and resume where a kill stopped them
(:mod:`.backup`); a restore checks every entry and every chunk and writes files atomically
(:mod:`.restore`); verify compares a directory with a manifest (:mod:`.verify`).

The stage contract: ``plan_backup`` / ``plan_restore`` read and change nothing (nor does
``preview_restore``, which says what a restore would keep and remove in its target);
``apply_backup`` / ``apply_restore`` do the work and return
:class:`~migrator.run.StageReport` s; ``verify_volume`` compares.
Everything works headless (a Job beside a volume: ``python -m migrator volumes backup
/data --store s3://... --name NS/PVC``, credentials from the environment).
"""

from __future__ import annotations

from migrator.volumes.backup import BackupPlan
from migrator.volumes.backup import apply as apply_backup
from migrator.volumes.backup import plan as plan_backup
from migrator.volumes.manifest import PassInfo, list_passes, list_volumes
from migrator.volumes.report import BackupReport, RestoreReport, VerifyReport
from migrator.volumes.repository import Repository
from migrator.volumes.restore import RestorePlan
from migrator.volumes.restore import apply as apply_restore
from migrator.volumes.restore import plan as plan_restore
from migrator.volumes.restore import preview as preview_restore
from migrator.volumes.verify import verify as verify_volume

__all__ = [
    "apply_backup",
    "apply_restore",
    "BackupPlan",
    "BackupReport",
    "PassInfo",
    "Repository",
    "RestorePlan",
    "RestoreReport",
    "VerifyReport",
    "list_passes",
    "list_volumes",
    "plan_backup",
    "plan_restore",
    "preview_restore",
    "verify_volume",
]
