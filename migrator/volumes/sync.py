"""``volumes sync``: every claim of a snapshot, from the old cluster into the new, in passes.

A **stage** pass runs while the applications run: for each claim a backup Job in the old
cluster (beside the volume, read-only) sends what changed into the store, then a restore Job
in the new cluster writes it into the imported claim. The **final** pass quiesces first
(:mod:`.quiesce`: scale the writers to zero, or run a hook in their pods), then does the
same; it reads only what changed since the stage pass, so the applications are stopped only
that long. If any volume of a final pass fails, the quiesce is undone: the old workloads are
back at their replicas and nothing was lost. On success they stay stopped (the new cluster
takes over).

Volumes are independent: up to ``parallel`` move at once, and one that fails (after its
attempts, :class:`~.jobs.JobRunner`) is reported and never holds up the others. The run's
credential Secrets are deleted at the end, whatever happened.

The EBS method (:mod:`.ebs`) replaces the Jobs for volumes on AWS EBS: a stage pass takes a
snapshot (so the final one is incremental), a final pass snapshots again, makes a volume in
the target zone and the PV the imported claim binds to.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any, Protocol

from migrator.errors import MigratorError, SyncFailed
from migrator.kube import Cluster
from migrator.kube.retry import RetryPolicy
from migrator.run import Progress
from migrator.run.report import Problem, StageReport
from migrator.snapshot import SnapshotReader
from migrator.store import Store
from migrator.volumes.claims import Claim, Placement, claims_in_snapshot, place
from migrator.volumes.jobs import (
    BACKUP,
    RESTORE,
    JobRunner,
    MoverOutcome,
    MoverSettings,
    RunSecrets,
    mover_job,
)
from migrator.volumes.repository import Repository

STAGE, FINAL = "stage", "final"


class Quiesce(Protocol):
    """What the final pass needs of a quiesce (:class:`~.quiesce.ScaleDown`, ``Hooks``)."""

    name: str

    def apply(self, claims: dict[Claim, Placement]) -> None: ...

    def undo(self) -> list[str]: ...

    def to_dict(self) -> dict[str, Any]: ...


@dataclass
class VolumeResult:
    """One claim's pass: the backup and restore movers (or the EBS steps), or why skipped."""

    claim: Claim
    node: str | None = None
    backup: MoverOutcome | None = None
    restore: MoverOutcome | None = None
    ebs: dict[str, Any] | None = None
    error: str = ""
    skipped: str = ""

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def files(self) -> int:
        return int((self.backup.report if self.backup else {}).get("files") or 0)

    @property
    def bytes(self) -> int:
        return int((self.backup.report if self.backup else {}).get("bytesTotal") or 0)

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"volume": self.claim.volume, "node": self.node, "ok": self.ok}
        for key in ("error", "skipped"):
            if getattr(self, key):
                doc[key] = getattr(self, key)
        if self.backup:
            doc["backup"] = self.backup.to_dict()
        if self.restore:
            doc["restore"] = self.restore.to_dict()
        if self.ebs:
            doc["ebs"] = self.ebs
        return doc


@dataclass
class SyncReport(StageReport):
    """A pass over every claim: per volume, the quiesce, totals and times."""

    run_id: str
    pass_kind: str
    method: str
    volumes: list[VolumeResult] = field(default_factory=list)
    quiesce: dict[str, Any] | None = None
    quiesce_error: str = ""
    undone: bool = False
    undo_problems: list[str] = field(default_factory=list)
    secrets_left: list[str] = field(default_factory=list)
    seconds: float = 0.0
    stopped_seconds: float | None = None  # how long the writers were stopped (final pass)
    quiesce_seconds: float | None = None  # of which: until they had stopped (or hooked)

    def problems(self) -> list[Problem]:
        found = [Problem(v.claim.volume, v.error) for v in self.volumes if v.error]
        if self.quiesce_error:
            found.append(Problem("quiesce", self.quiesce_error))
        found += [Problem("undo quiesce", p) for p in self.undo_problems]
        found += [Problem(f"secret {s}", "could not be deleted") for s in self.secrets_left]
        return found

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run_id,
            "pass": self.pass_kind,
            "method": self.method,
            "volumes": [v.to_dict() for v in self.volumes],
            "ok": sum(v.ok for v in self.volumes),
            "failed": sum(not v.ok for v in self.volumes),
            "files": sum(v.files for v in self.volumes),
            "bytes": sum(v.bytes for v in self.volumes),
            "quiesce": self.quiesce,
            "quiesceError": self.quiesce_error,
            "undone": self.undone,
            "seconds": round(self.seconds, 3),
            "stoppedSeconds": _rounded(self.stopped_seconds),
            "quiesceSeconds": _rounded(self.quiesce_seconds),
            "problems": [p.to_dict() for p in self.problems()],
            "partial": self.partial,
        }


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)


@dataclass
class SyncPlan:
    """The claims to move and where each is in the old cluster (read, nothing changed)."""

    claims: dict[Claim, Placement]
    pass_kind: str = STAGE

    def to_dict(self) -> dict[str, Any]:
        return {
            "pass": self.pass_kind,
            "volumes": [
                {
                    "volume": claim.volume,
                    "node": placement.node,
                    "pods": placement.pods,
                    "bound": placement.pv is not None,
                }
                for claim, placement in self.claims.items()
            ],
        }


VolumeMover = Callable[[Claim, Placement], VolumeResult]


def mover_jobs(
    old: Cluster,
    new: Cluster,
    settings: MoverSettings,
    *,
    attempts: int,
    poll: float = 1.0,
    backoff: RetryPolicy | None = None,
    start_timeout: float = 300.0,
    store: Store | None = None,
    key: bytes | None = None,
    stop: threading.Event | None = None,
    restore: bool = True,
) -> VolumeMover:
    """Move one claim with Jobs: backup in ``old`` beside the volume, then restore in ``new``
    (unless ``restore`` is False: a first pass before the claims exist in ``new``).

    ``store`` (the store the movers write to, as this process reaches it) gets its volume
    repository made here, once, when it has none yet: movers that start side by side on a
    new store would each make one, and all but the last one's chunks would be lost."""
    if store is not None:
        Repository.open(store, key, create=True)
    runners = [
        JobRunner(
            c,
            attempts=attempts,
            poll=poll,
            backoff=backoff,
            start_timeout=start_timeout,
            stop=stop,
        )
        for c in (old, new)
    ]
    old_runner, new_runner = runners

    def move(claim: Claim, placement: Placement) -> VolumeResult:
        result = VolumeResult(claim, node=placement.node)
        result.backup = old_runner.run(
            lambda n: mover_job(
                BACKUP, claim.namespace, claim.name, settings, node=placement.node, attempt=n
            ),
            BACKUP,
        )
        if not result.backup.ok:
            result.error = f"backup failed: {result.backup.attempts[-1].reason}"
            return result
        if not restore:
            return result
        result.restore = new_runner.run(
            lambda n: mover_job(RESTORE, claim.namespace, claim.name, settings, attempt=n),
            RESTORE,
        )
        if not result.restore.ok:
            result.error = f"restore failed: {result.restore.attempts[-1].reason}"
        return result

    return move


def apply(
    plan: SyncPlan,
    move: VolumeMover,
    *,
    run_id: str,
    method: str,
    secrets: Sequence[tuple[RunSecrets, Cluster]] = (),
    quiesce: Quiesce | None = None,
    parallel: int = 4,
    progress: Progress | None = None,
    clock: Callable[[], float] = time.monotonic,
    stop: threading.Event | None = None,
) -> SyncReport:
    """Run one pass over ``plan``'s claims with ``move`` (see the module doc).

    Interrupted (Ctrl-C), it sets ``stop`` (the event the movers were made with), so every
    mover still waiting ends and deletes its Job, undoes the quiesce, deletes the Secrets,
    and raises."""
    report = SyncReport(run_id, plan.pass_kind, method)
    started = clock()
    namespaces = sorted({c.namespace for c in plan.claims})
    made: list[RunSecrets] = []
    stopped_at: float | None = None
    try:
        for run_secrets, cluster in secrets:
            made.append(run_secrets)
            try:
                run_secrets.ensure(cluster, namespaces)
            except MigratorError as exc:
                raise SyncFailed(
                    f"cannot create the run's credentials Secret in {cluster.context}: {exc}",
                    hint=exc.hint,
                ) from exc
        if quiesce is not None:
            stopped_at = clock()  # from the first scale-down (or hook) on, writers wait
            try:
                quiesce.apply(plan.claims)
            except MigratorError as exc:
                report.quiesce = quiesce.to_dict()
                report.quiesce_error = str(exc)
                report.undone = True
                report.seconds = clock() - started
                report.stopped_seconds = clock() - stopped_at
                return report
            report.quiesce = quiesce.to_dict()
            report.quiesce_seconds = clock() - stopped_at
        report.volumes = _move_all(plan, move, parallel, progress, stop)
        if quiesce is not None and any(not v.ok for v in report.volumes):
            report.undo_problems = quiesce.undo()
            report.undone = True
            report.quiesce = quiesce.to_dict()
    except BaseException:
        if quiesce is not None and stopped_at is not None and not report.undone:
            report.undo_problems = quiesce.undo()  # interrupted: the writers come back
        raise
    finally:
        for run_secrets in made:
            report.secrets_left += run_secrets.delete_all()
    report.seconds = clock() - started
    if stopped_at is not None:
        report.stopped_seconds = clock() - stopped_at
    return report


def _move_all(
    plan: SyncPlan,
    move: VolumeMover,
    parallel: int,
    progress: Progress | None,
    stop: threading.Event | None,
) -> list[VolumeResult]:
    claims = list(plan.claims.items())
    done = 0
    lock = threading.Lock()

    def one(item: tuple[Claim, Placement]) -> VolumeResult:
        nonlocal done
        claim, placement = item
        if placement.pv is None:
            result = VolumeResult(claim, skipped="not bound to a volume in the old cluster")
        else:
            try:
                result = move(claim, placement)
            except MigratorError as exc:  # one volume's trouble is its own
                result = VolumeResult(claim, node=placement.node, error=str(exc))
        with lock:
            done += 1
            if progress is not None:
                progress("volumes", done, len(claims))
        return result

    if progress is not None:
        progress("volumes", 0, len(claims))
    pool = ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="mover")
    futures = [pool.submit(one, item) for item in claims]
    try:
        for future in as_completed(futures):
            future.result()  # the first that raised (an interrupt, a bug) stops them all
    except BaseException:
        if stop is not None:
            stop.set()  # the movers still waiting end now
        pool.shutdown(wait=stop is not None, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return [future.result() for future in futures]


def plan(
    reader: SnapshotReader, old: Cluster, pass_kind: str, namespaces: Sequence[str] = ()
) -> SyncPlan:
    """The snapshot's claims (in ``namespaces``, when given) and where each is in ``old``."""
    claims = claims_in_snapshot(reader, namespaces)
    return SyncPlan(place(old, claims), pass_kind)
