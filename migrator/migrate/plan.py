"""A migration plan: what a plan file says, validated, as one frozen data structure.

The plan file (YAML) is read by :func:`migrator.migrate.planfile.load`; every section maps to
one class here, and the sections a stage already knows are that stage's own settings
(:class:`~migrator.export.ExportOptions`, the transform's
:class:`~migrator.transform.differences.DifferencesConfig`, the traffic stage's
:class:`~migrator.traffic.ShiftSettings`), so the plan and the single commands never
disagree on what a setting means. Durations are seconds. Secrets are never part of a plan:
the store's key, a TSIG key or a webhook's URL are named by the file or environment variable
that holds them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from migrator.export import ExportOptions
from migrator.importer import ConflictPolicy
from migrator.traffic import ShiftSettings
from migrator.transform.differences import DifferencesConfig

HOOK_POINTS = ("preExport", "postExport", "preImport", "postImport", "preShift", "postShift")
VOLUME_METHODS = ("mover", "ebs", "none")
QUIESCE_METHODS = ("scale", "hook", "none")
GITOPS_MODES = ("leave", "import")
NOTIFY_FORMATS = ("json", "slack")
HOOK_CLUSTERS = ("old", "new")
PULL_POLICIES = ("IfNotPresent", "Always", "Never")
PREFLIGHT_CHECKS = (
    "reachable",
    "permissions",
    "removed-apis",
    "crd-controllers",
    "storage-classes",
    "capacity",
    "admission-webhooks",
    "certificates",
    "version-skew",
    "dns",
    "store",
    "gitops",
)


@dataclass(frozen=True)
class ClusterRef:
    """One side of the migration: its kubeconfig context, and the name a person types back
    before teardown (default: the context)."""

    context: str
    name: str


@dataclass(frozen=True)
class StoreRef:
    """Where snapshots, volume data, the run journal and reports go; the encryption key is
    read from ``key_file`` (or ``$MIGRATOR_ENCRYPT_KEY`` when None)."""

    url: str
    s3_endpoint: str | None = None
    key_file: Path | None = None


@dataclass(frozen=True)
class TransformSettings:
    """The transform stage's settings: cluster differences, a rules file, and whether the
    target dry-runs every transformed object."""

    differences: DifferencesConfig = field(default_factory=DifferencesConfig)
    rules_file: Path | None = None
    validate: bool = True
    last_applied: str = "rewrite"  # rewrite | drop | keep
    pod_security_labels: bool = False


@dataclass(frozen=True)
class ImportSettings:
    conflict: ConflictPolicy = ConflictPolicy.SKIP
    workers: int = 8
    qps: float = 0.0
    restore_status: bool = False


@dataclass(frozen=True)
class VerifySettings:
    wait: float = 300.0  # how long verify waits for workloads to become ready


@dataclass(frozen=True)
class VolumeSettings:
    """How volume data moves: mover Jobs through the store, EBS snapshots, or not at all;
    ``stage_passes`` passes while the applications run, then the final one."""

    method: str = "mover"
    parallel: int = 2
    stage_passes: int = 1
    image: str | None = None  # None: the mover image built for this version of migrator
    pull_policy: str = "IfNotPresent"
    pods_s3_endpoint: str | None = None  # the store's endpoint as pods see it
    attempts: int = 3
    job_timeout: int = 3600
    start_timeout: float = 300.0
    zones: tuple[str, ...] = ()  # EBS: OLD=NEW availability zones
    region: str | None = None


@dataclass(frozen=True)
class QuiesceSettings:
    """How writers stop before the final volume pass: scale to zero, a command run in each
    pod mounting a claim (``hook``, undone by ``unhook``), or none."""

    method: str = "scale"
    hook: str | None = None
    unhook: str | None = None
    timeout: float = 300.0


@dataclass(frozen=True)
class Hook:
    """A user's step at a point of the run: a command on this machine (``run``, through the
    shell) or a Job (``job``: a manifest file, created in ``cluster`` and waited for);
    retried ``retries`` times, each attempt at most ``timeout`` seconds. ``where`` is its
    path in the plan file (``hooks.preExport[0]``), for messages."""

    where: str
    run: str | None = None
    job: Path | None = None
    cluster: str = "old"  # old | new: where a Job hook runs
    retries: int = 0
    timeout: float = 600.0


@dataclass(frozen=True)
class Hooks:
    """The hooks at each point (:data:`HOOK_POINTS`), in order."""

    points: dict[str, tuple[Hook, ...]] = field(default_factory=dict)

    def at(self, point: str) -> tuple[Hook, ...]:
        return self.points.get(point, ())


@dataclass(frozen=True)
class Notification:
    """A webhook told of phase changes, alerts and the end: JSON, or Slack-compatible
    (``{"text": ...}``); the URL is read from ``url_env`` when it holds a secret."""

    url: str | None = None
    url_env: str | None = None
    format: str = "json"


@dataclass(frozen=True)
class TeardownSettings:
    """What retires the old cluster after the soak: the user's command (kops, eksctl,
    terraform), run only with ``--yes`` and the old cluster's name typed back."""

    hook: Hook | None = None


@dataclass(frozen=True)
class PreflightSettings:
    """Preflight thresholds: certificates expiring within ``certificate_days`` fail;
    ``skip`` names checks not to run (each is still listed, as skipped)."""

    certificate_days: float = 14.0
    skip: tuple[str, ...] = ()


@dataclass(frozen=True)
class Plan:
    """A whole migration, validated (see the module doc). ``file`` is where it was read
    from: relative paths in it (rules, hook Jobs, key files) are relative to its folder."""

    name: str
    file: Path | None
    source: ClusterRef
    target: ClusterRef
    store: StoreRef
    kubeconfig: Path | None = None
    export: ExportOptions = field(default_factory=ExportOptions)
    transform: TransformSettings = field(default_factory=TransformSettings)
    gitops: str = "leave"  # leave: objects a GitOps tool manages are left to it
    imports: ImportSettings = field(default_factory=ImportSettings)
    verify: VerifySettings = field(default_factory=VerifySettings)
    volumes: VolumeSettings = field(default_factory=VolumeSettings)
    quiesce: QuiesceSettings = field(default_factory=QuiesceSettings)
    hooks: Hooks = field(default_factory=Hooks)
    traffic: ShiftSettings | None = None
    soak: float = 600.0
    stuck_after: float = 600.0
    teardown: TeardownSettings = field(default_factory=TeardownSettings)
    notifications: tuple[Notification, ...] = ()
    preflight: PreflightSettings = field(default_factory=PreflightSettings)
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def fingerprint(self) -> dict[str, Any]:
        """What a resumed run must share with the run it resumes: the plan as written
        (``raw``, the YAML document). Any change starts the journal afresh only where a
        person says so (``migrate --restart``)."""
        return {"name": self.name, "plan": self.raw}
