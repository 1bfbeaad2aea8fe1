"""One volume pass from settings: what ``volumes sync`` and a plan's run both call.

:func:`run_pass` makes the pieces a pass needs (the run's id and credentials Secrets, the
mover Jobs or the EBS mover, the quiesce) from one :class:`PassSettings` and runs
:func:`~.sync.apply`. A pass may also stop after the backups (``restore=False``): the first
pass of a migration runs before the claims exist in the new cluster.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from migrator import MOVER_IMAGE
from migrator.errors import ConfigError
from migrator.kube import Cluster
from migrator.run import Progress
from migrator.snapshot import SnapshotReader
from migrator.volumes import jobs, quiesce, sync
from migrator.volumes.claims import Claim

METHODS = ("mover", "ebs")
QUIESCE = ("scale", "hook", "none")


@dataclass(frozen=True)
class PassSettings:
    """How the volumes move (the ``volumes sync`` flags, one to one). ``quiesce`` None is
    the default for the pass: scale for a final pass, none for a stage pass."""

    method: str = "mover"
    image: str = MOVER_IMAGE
    pull_policy: str = "IfNotPresent"
    s3_endpoint: str | None = None  # the store's endpoint as this process reaches it
    pods_s3_endpoint: str | None = None  # ... and as the mover pods reach it
    region: str | None = None
    zones: Mapping[str, str] = field(default_factory=dict)  # EBS: old zone -> new zone
    parallel: int = 4
    attempts: int = 3
    job_timeout: int = 3600
    start_timeout: float = 300.0
    quiesce: str | None = None
    hook: str | None = None
    unhook: str | None = None
    quiesce_timeout: float = 300.0

    def quiesce_for(self, pass_kind: str) -> str:
        return self.quiesce or ("scale" if pass_kind == sync.FINAL else "none")

    def check(self, pass_kind: str, store_url: str) -> None:
        """Refuse settings that cannot work, before anything is touched."""
        how = self.quiesce_for(pass_kind)
        if how == "hook" and not self.hook:
            raise ConfigError("--quiesce hook needs --hook CMD")
        if (self.hook or self.unhook) and how != "hook":
            raise ConfigError("--hook and --unhook are for --quiesce hook")
        if self.method == "mover" and not store_url.startswith("s3://"):
            raise ConfigError(
                f"the mover Jobs cannot reach the store {store_url!r} from inside the clusters",
                hint="keep the snapshot (and so the volume data) in an s3:// store",
            )


def run_pass(
    reader: SnapshotReader,
    old: Cluster,
    new: Cluster,
    pass_kind: str,
    settings: PassSettings,
    *,
    store_url: str,
    key: bytes | None,
    namespaces: Sequence[str] = (),
    restore: bool = True,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
) -> sync.SyncReport:
    """One pass over the claims of ``reader``'s snapshot (see :mod:`.sync`); ``store_url``
    is where the volume data goes (the snapshot's store)."""
    settings.check(pass_kind, store_url)
    plan = sync.plan(reader, old, pass_kind, namespaces)
    spaces = sorted({c.namespace for c in plan.claims})
    for cluster in (old, new) if restore else (old,):
        jobs.delete_leftovers(cluster, spaces, stop=stop)  # of a run killed part way
    return sync.apply(
        **pass_parts(
            plan,
            old,
            new,
            settings,
            store_url=store_url,
            reader=reader,
            key=key,
            restore=restore,
            stop=stop or threading.Event(),
        ),
        parallel=settings.parallel,
        progress=progress,
    )


def pass_parts(
    plan: sync.SyncPlan,
    old: Cluster,
    new: Cluster,
    settings: PassSettings,
    *,
    store_url: str,
    reader: SnapshotReader,
    key: bytes | None,
    restore: bool,
    stop: threading.Event,
) -> dict[str, Any]:
    """The arguments of :func:`~.sync.apply` for ``plan`` but its pool and progress."""
    run_id = jobs.new_run_id()
    secrets: list[tuple[jobs.RunSecrets, Cluster]] = []
    if settings.method == "ebs":
        mover: sync.VolumeMover = _ebs_mover(new, run_id, plan.pass_kind, settings)
    else:
        mover_settings, credentials = _movers(settings, run_id, store_url, key)
        sides = (old, new) if restore else (old,)
        secrets = [(jobs.RunSecrets(mover_settings, credentials), c) for c in sides]
        mover = sync.mover_jobs(
            old,
            new,
            mover_settings,
            attempts=settings.attempts,
            start_timeout=settings.start_timeout,
            store=reader.store,
            key=key,
            stop=stop,
            restore=restore,
        )
    return {
        "plan": plan,
        "move": mover,
        "run_id": run_id,
        "method": settings.method,
        "secrets": secrets,
        "quiesce": quiescer(settings, plan.pass_kind, old),
        "stop": stop,
    }


def _movers(
    settings: PassSettings, run_id: str, store_url: str, key: bytes | None
) -> tuple[jobs.MoverSettings, jobs.StoreCredentials]:
    """What every mover Job of run ``run_id`` shares, and the credentials its pods get."""
    mover_settings = jobs.MoverSettings(
        run_id=run_id,
        image=settings.image,
        store_url=store_url,
        secret_name=jobs.SECRET_PREFIX + run_id,
        pull_policy=settings.pull_policy,
        deadline=settings.job_timeout,
    )
    credentials = jobs.store_credentials(
        settings.pods_s3_endpoint or settings.s3_endpoint, settings.region, key
    )
    return mover_settings, credentials


def quiescer(settings: PassSettings, pass_kind: str, old: Cluster) -> sync.Quiesce | None:
    """The quiesce a pass of ``pass_kind`` runs first in ``old`` (None: none)."""
    how = settings.quiesce_for(pass_kind)
    if how == "scale":
        return quiesce.ScaleDown(old, timeout=settings.quiesce_timeout)
    if how == "hook":
        assert settings.hook is not None
        return quiesce.Hooks(old, settings.hook, settings.unhook, timeout=settings.quiesce_timeout)
    return None


def _ebs_mover(new: Cluster, run_id: str, pass_kind: str, settings: PassSettings) -> Any:
    import boto3

    from migrator.volumes.ebs import EbsMover

    ec2 = boto3.session.Session(region_name=settings.region).client("ec2")
    return EbsMover(ec2, new, run_id=run_id, pass_kind=pass_kind, zones=dict(settings.zones))


def verify_claims(
    claims: Sequence[Claim],
    new: Cluster,
    settings: PassSettings,
    *,
    store_url: str,
    key: bytes | None,
    stop: threading.Event | None = None,
) -> list[dict[str, Any]]:
    """Compare each claim in ``new`` with its newest pass, byte for byte, in a Job beside
    it (``migrator volumes verify``): one result per claim, ``ok`` when they are equal.
    Nothing is written to the volumes (they are mounted read-only)."""
    return claim_jobs(
        jobs.VERIFY,
        [(c, c.volume) for c in claims],
        new,
        settings,
        store_url=store_url,
        key=key,
        stop=stop,
    )


def claim_jobs(
    direction: str,
    targets: Sequence[tuple[Claim, str]],
    cluster: Cluster,
    settings: PassSettings,
    *,
    store_url: str,
    key: bytes | None,
    stop: threading.Event | None = None,
) -> list[dict[str, Any]]:
    """One mover Job per (claim, volume) in ``cluster``: restore the volume's newest pass
    into the claim, or verify the claim against it. One result per claim, ``ok`` when its
    Job succeeded and found no problem (no difference, for a verify)."""
    settings.check(sync.STAGE, store_url)
    mover_settings, credentials = _movers(settings, jobs.new_run_id(), store_url, key)
    secrets = jobs.RunSecrets(mover_settings, credentials)
    attempts = 1 if direction == jobs.VERIFY else settings.attempts
    runner = jobs.JobRunner(
        cluster, attempts=attempts, start_timeout=settings.start_timeout, stop=stop
    )

    def one(target: tuple[Claim, str]) -> dict[str, Any]:
        claim, volume = target
        outcome = runner.run(
            lambda n: jobs.mover_job(
                direction, claim.namespace, claim.name, mover_settings, attempt=n, volume=volume
            ),
            direction,
        )
        report = outcome.report
        return {
            "claim": claim.volume,
            "volume": volume,
            "ok": outcome.ok
            and not report.get("differenceCount")
            and not report.get("problemCount"),
            "files": report.get("files"),
            "bytes": report.get("bytesRead"),
            "seconds": round(outcome.seconds, 3),
            "differences": list(report.get("differences", []))[:20],
            "reason": "" if outcome.ok else outcome.attempts[-1].reason,
        }

    spaces = sorted({c.namespace for c, _v in targets})
    jobs.delete_leftovers(cluster, spaces, stop=stop)  # of a run killed part way
    try:
        secrets.ensure(cluster, spaces)
        with ThreadPoolExecutor(max(1, settings.parallel), thread_name_prefix=direction) as pool:
            return list(pool.map(one, targets))
    finally:
        secrets.delete_all()
