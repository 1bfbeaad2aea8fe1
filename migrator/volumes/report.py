"""The reports of the mover: a backup pass, a restore, a verify. Paths and counts, never
file content, so they are safe to print and to store.

Warnings are what a live volume does while it is read (a file that changes or vanishes
during a pass: the next pass reads it again) and do not make a report partial; problems do.
Both lists keep their first :data:`LISTED` items and count the rest.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from migrator.run.progress import Progress
from migrator.run.report import Problem, StageReport
from migrator.volumes.entries import display

LISTED = 1000


class Meter:
    """Progress of a pass or a restore, from any thread: bytes as they move, files every
    64th and the last."""

    def __init__(
        self, progress: Progress | None, total_bytes: int | None, total_files: int | None
    ) -> None:
        self.progress = progress
        self.total_bytes = total_bytes
        self.total_files = total_files
        self.bytes = 0
        self.files = 0
        self._lock = threading.Lock()

    def add_bytes(self, n: int) -> None:
        with self._lock:
            self.bytes += n
            done = self.bytes
        if self.progress is not None:
            self.progress("bytes", done, self.total_bytes)

    def add_files(self, count: int) -> None:
        with self._lock:
            before, self.files = self.files, self.files + count
            done = self.files
        if self.progress is not None and (
            before // 64 != done // 64 or self.total_files and done >= self.total_files
        ):
            self.progress("files", done, self.total_files)


@dataclass
class Findings:
    """A bounded, thread-safe list of (path, message) with a total count."""

    items: list[Problem] = field(default_factory=list)
    count: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, path: bytes, message: str) -> None:
        with self._lock:
            self.count += 1
            if len(self.items) < LISTED:
                self.items.append(Problem(display(path), message))

    def to_list(self) -> list[dict[str, str]]:
        return [p.to_dict() for p in self.items]


@dataclass
class _TreeCounts:
    """What a backup and a restore both count: the pass, and the tree's entries by kind."""

    name: str
    pass_id: str
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    hardlinks: int = 0
    specials: int = 0

    def _counts(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "pass": self.pass_id,
            "files": self.files,
            "dirs": self.dirs,
            "symlinks": self.symlinks,
            "hardlinks": self.hardlinks,
            "specials": self.specials,
        }


@dataclass
class BackupReport(_TreeCounts, StageReport):
    """One backup pass of one volume."""

    previous: str | None = None
    resumed_from: str | None = None
    bytes_total: int = 0
    files_read: int = 0
    files_reused: int = 0
    bytes_read: int = 0
    bytes_uploaded: int = 0
    chunks_new: int = 0
    packs: int = 0
    seconds: float = 0.0
    warnings: Findings = field(default_factory=Findings)
    failures: Findings = field(default_factory=Findings)

    def problems(self) -> list[Problem]:
        return list(self.failures.items)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self._counts(),
            "previous": self.previous,
            "resumedFrom": self.resumed_from,
            "bytesTotal": self.bytes_total,
            "filesRead": self.files_read,
            "filesReused": self.files_reused,
            "bytesRead": self.bytes_read,
            "bytesUploaded": self.bytes_uploaded,
            "chunksNew": self.chunks_new,
            "packs": self.packs,
            "seconds": round(self.seconds, 3),
            "warnings": self.warnings.to_list(),
            "warningCount": self.warnings.count,
            "problems": self.failures.to_list(),
            "problemCount": self.failures.count,
            "partial": self.partial,
        }


@dataclass
class RestoreReport(_TreeCounts, StageReport):
    """One restore of one pass into a directory."""

    target: str = ""
    base_pass: str | None = None  # the earlier restore the target held, built on
    files_unchanged: int = 0  # of ``files``: kept as the earlier restore left them
    bytes_unchanged: int = 0
    bytes_written: int = 0
    bytes_downloaded: int = 0
    packs: int = 0
    deleted: int = 0
    seconds: float = 0.0
    failures: Findings = field(default_factory=Findings)
    extra: Findings = field(default_factory=Findings)  # in the target, not in the manifest

    def problems(self) -> list[Problem]:
        return list(self.failures.items)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self._counts(),
            "target": self.target,
            "basePass": self.base_pass,
            "filesUnchanged": self.files_unchanged,
            "bytesUnchanged": self.bytes_unchanged,
            "bytesWritten": self.bytes_written,
            "bytesDownloaded": self.bytes_downloaded,
            "bytesRead": self.bytes_downloaded,
            "bytesUploaded": 0,
            "packs": self.packs,
            "deleted": self.deleted,
            "kept": self.extra.to_list(),
            "keptCount": self.extra.count,
            "seconds": round(self.seconds, 3),
            "problems": self.failures.to_list(),
            "problemCount": self.failures.count,
            "partial": self.partial,
        }


@dataclass
class VerifyReport(StageReport):
    """A directory compared with a pass's manifest: every difference is a problem."""

    name: str
    pass_id: str
    target: str
    files: int = 0
    bytes_read: int = 0
    seconds: float = 0.0
    differences: Findings = field(default_factory=Findings)

    def problems(self) -> list[Problem]:
        return list(self.differences.items)

    @property
    def partial(self) -> bool:
        return self.differences.count > 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "pass": self.pass_id,
            "target": self.target,
            "files": self.files,
            "bytesRead": self.bytes_read,
            "bytesUploaded": 0,
            "seconds": round(self.seconds, 3),
            "differences": self.differences.to_list(),
            "differenceCount": self.differences.count,
            "ok": not self.partial,
        }
