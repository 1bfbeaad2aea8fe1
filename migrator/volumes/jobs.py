"""Movers as Kubernetes Jobs: the mover runs beside each volume, in the cluster that has it.

A mover Job mounts one claim (read-only for a backup in the old cluster, read-write for a
restore in the new one) on the node where the claim is attached, and runs this project's
own mover there (``migrator volumes backup|restore``, the image the project's ``Dockerfile``
builds). The store's credentials travel in a Secret made for the run, in each namespace
that has a claim, and deleted when the run ends; the pods get them as environment
variables, the way the headless mover reads them, and nothing else (no service account
token: a mover never talks to the API server).

:func:`mover_job` and :func:`credentials_secret` only build manifests (``manifests/
mover-job.yaml`` is what they produce, a test keeps the two equal); :class:`JobRunner`
creates a Job, waits for it to finish (or fails it at once when its pod cannot start: an
image no node can have, a claim it cannot mount), reads the mover's JSON report from its
log, and creates the next attempt after a backoff when one fails.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from migrator import crypto
from migrator.errors import ApiError, ConfigError, Interrupted, MigratorError
from migrator.kube import Cluster
from migrator.kube.retry import RetryPolicy
from migrator.kube.wait import FAILED, READY, WAITING, Readiness, stoppable_sleep, wait_for
from migrator.resources.jobs import JOBS, delete_job, job_pod, pod_log, wait_job
from migrator.resources.jobs import started as started_pod
from migrator.volumes.claims import MOVER_LABEL

RUN_LABEL = "migrator.io/run"
CLAIM_LABEL = "migrator.io/claim"
VOLUME_ANNOTATION = "migrator.io/volume"
MOUNT_PATH = "/data"
SECRET_PREFIX = "migrator-mover-"
# The mover's last lines of log kept in a failed attempt's report (never the environment).
LOG_TAIL = 20

BACKUP, RESTORE, VERIFY = "backup", "restore", "verify"


@dataclass(frozen=True)
class MoverSettings:
    """What every mover Job of a run shares."""

    run_id: str
    image: str
    store_url: str
    secret_name: str
    pull_policy: str = "IfNotPresent"
    deadline: int = 3600  # activeDeadlineSeconds of one attempt
    workers: int = 4  # the mover's own --workers inside its pod
    extra_args: tuple[str, ...] = ()


def new_run_id(clock: Callable[[], float] = time.time) -> str:
    """A run id that is also a valid label value and name part: ``20260102-030405-ab12``."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(clock()))
    noise = hashlib.sha256(f"{clock()}{id(object())}".encode()).hexdigest()[:4]
    return f"{stamp}-{noise}"


def job_name(direction: str, namespace: str, claim: str, run_id: str, attempt: int) -> str:
    """``migrator-backup-<claim>-<digest>-<attempt>``: readable, unique per run and claim, and
    short enough for the ``job-name`` label (63 characters)."""
    digest = hashlib.sha256(f"{namespace}/{claim}/{run_id}".encode()).hexdigest()[:8]
    readable = re.sub(r"[^a-z0-9-]", "-", claim.lower())[:30].strip("-")
    return f"migrator-{direction}-{readable}-{digest}-{attempt}"


def _label_value(value: str) -> str:
    """A claim name as a label value: as it is when it fits, else cut and made unique."""
    if len(value) <= 63:
        return value
    return value[:54] + "-" + hashlib.sha256(value.encode()).hexdigest()[:8]


def mover_command(direction: str, volume: str, settings: MoverSettings) -> list[str]:
    """The mover's command line inside the pod (``volume`` is the store's name, NS/PVC)."""
    common = ["--store", settings.store_url, "--workers", str(settings.workers), "-o", "json"]
    if direction == BACKUP:
        return [
            "migrator",
            "volumes",
            "backup",
            MOUNT_PATH,
            "--name",
            volume,
            *common,
            *settings.extra_args,
        ]
    if direction == VERIFY:
        return ["migrator", "volumes", "verify", volume, MOUNT_PATH, *common]
    return [
        "migrator",
        "volumes",
        "restore",
        volume,
        MOUNT_PATH,
        "--delete",
        *common,
        *settings.extra_args,
    ]


def node_affinity(node: str) -> dict[str, Any]:
    """Pod affinity that puts a pod on ``node`` and nowhere else."""
    term = {
        "matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]
    }
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}
        }
    }


# A mover reads and writes every file of the volume, whoever owns it, and gives files their
# owners, modes and times: root, with only the capabilities that takes (file access
# whatever the mode, chown, times and modes of others' files, set-id bits kept, device
# files) and nothing it could gain. The Pod Security Standards' baseline level admits it;
# restricted refuses any pod that runs as root.
MOVER_SECURITY: dict[str, Any] = {
    "runAsUser": 0,
    "runAsGroup": 0,
    "allowPrivilegeEscalation": False,
    "capabilities": {
        "drop": ["ALL"],
        "add": ["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "MKNOD"],
    },
    "seccompProfile": {"type": "RuntimeDefault"},
}


def mover_job(
    direction: str,
    namespace: str,
    claim: str,
    settings: MoverSettings,
    *,
    node: str | None = None,
    attempt: int = 1,
    volume: str | None = None,
) -> dict[str, Any]:
    """The Job that backs up (``direction`` backup), restores or verifies one claim;
    ``volume`` names its data in the store when that is not the claim's own NS/NAME (a
    restore into a renamed namespace).

    ``node`` is where the claim is attached (a ReadWriteOnce volume in use can be mounted
    only there); without it the scheduler follows the volume's own node affinity. The pod
    tolerates every taint: a mover must reach the node its volume is on, whatever runs there.
    """
    labels = {RUN_LABEL: settings.run_id, MOVER_LABEL: direction, CLAIM_LABEL: _label_value(claim)}
    read_only = direction != RESTORE
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 5,
        "tolerations": [{"operator": "Exists"}],
        "containers": [
            {
                "name": "mover",
                "image": settings.image,
                "imagePullPolicy": settings.pull_policy,
                "command": mover_command(direction, volume or f"{namespace}/{claim}", settings),
                "envFrom": [{"secretRef": {"name": settings.secret_name}}],
                "volumeMounts": [{"name": "data", "mountPath": MOUNT_PATH, "readOnly": read_only}],
                "securityContext": copy.deepcopy(MOVER_SECURITY),
            }
        ],
        "volumes": [
            {"name": "data", "persistentVolumeClaim": {"claimName": claim, "readOnly": read_only}}
        ],
    }
    if node:
        pod["affinity"] = node_affinity(node)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(direction, namespace, claim, settings.run_id, attempt),
            "namespace": namespace,
            "labels": labels,
            "annotations": {VOLUME_ANNOTATION: f"{namespace}/{claim}"},
        },
        "spec": {
            "backoffLimit": 0,  # attempts are the runner's: each one is a Job, reported
            "activeDeadlineSeconds": settings.deadline,
            "template": {"metadata": {"labels": dict(labels)}, "spec": pod},
        },
    }


# --- credentials ---------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class StoreCredentials:
    """What a mover pod needs to reach the store, as environment variables. Never printed:
    ``repr`` names only the variables."""

    env: Mapping[str, str]

    def __repr__(self) -> str:
        return f"StoreCredentials({', '.join(sorted(self.env))})"


def store_credentials(
    endpoint: str | None, region: str | None, key: bytes | None, session: Any = None
) -> StoreCredentials:
    """The AWS credentials this process uses (environment, profile, ...), the store's endpoint
    as the pods reach it, and the volume key: the environment of every mover pod."""
    import boto3

    session = session or boto3.session.Session()
    found = session.get_credentials()
    if found is None:
        raise ConfigError(
            "no AWS credentials for the store: the mover Jobs need them",
            hint="set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)",
        )
    frozen = found.get_frozen_credentials()
    env = {"AWS_ACCESS_KEY_ID": frozen.access_key, "AWS_SECRET_ACCESS_KEY": frozen.secret_key}
    if frozen.token:
        env["AWS_SESSION_TOKEN"] = frozen.token
    env["AWS_DEFAULT_REGION"] = region or session.region_name or "us-east-1"
    if endpoint:
        env["AWS_ENDPOINT_URL_S3"] = endpoint
    if key is not None:
        env[crypto.KEY_ENV] = key.hex()
    return StoreCredentials(env)


def credentials_secret(
    namespace: str, settings: MoverSettings, credentials: StoreCredentials
) -> dict[str, Any]:
    """The run's Secret in ``namespace``: the store's credentials for its mover pods."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": settings.secret_name,
            "namespace": namespace,
            "labels": {RUN_LABEL: settings.run_id},
        },
        "stringData": dict(credentials.env),
    }


class RunSecrets:
    """The run's credential Secrets, one per namespace with a claim; :meth:`delete_all` removes
    every one made (also after a failure: use it in a ``finally``)."""

    def __init__(self, settings: MoverSettings, credentials: StoreCredentials) -> None:
        self.settings = settings
        self.credentials = credentials
        self.made: list[tuple[Cluster, str]] = []

    def ensure(self, cluster: Cluster, namespaces: Sequence[str]) -> None:
        for namespace in sorted(set(namespaces)):
            body = credentials_secret(namespace, self.settings, self.credentials)
            path = f"/api/v1/namespaces/{namespace}/secrets"
            try:
                cluster.request("POST", path, body=body)
            except ApiError as exc:
                if exc.status != 409:
                    raise
                cluster.request("PUT", f"{path}/{self.settings.secret_name}", body=body)
            self.made.append((cluster, namespace))

    def delete_all(self) -> list[str]:
        """Delete every Secret made; returns the ones that could not be deleted (named)."""
        left: list[str] = []
        for cluster, namespace in self.made:
            path = f"/api/v1/namespaces/{namespace}/secrets/{self.settings.secret_name}"
            try:
                cluster.request("DELETE", path)
            except ApiError as exc:
                if exc.status != 404:
                    left.append(f"{cluster.context}: {namespace}/{self.settings.secret_name}")
            except MigratorError:
                left.append(f"{cluster.context}: {namespace}/{self.settings.secret_name}")
        self.made.clear()
        return left


# How long the movers an earlier run left may take to stop once their Jobs are deleted: the
# garbage collector's turn, then the kubelet's, then the pod's grace period (5 s).
LEFTOVERS_TIMEOUT = 120.0


def delete_leftovers(
    cluster: Cluster,
    namespaces: Sequence[str],
    *,
    timeout: float = LEFTOVERS_TIMEOUT,
    stop: threading.Event | None = None,
) -> list[str]:
    """Delete the mover Jobs and credential Secrets an earlier run left behind (it was killed
    before it could), and wait until those Jobs' pods have stopped: a new pass starts clean,
    and two movers never write one volume (deleting a Job only starts its pods' end).
    Returns what was deleted (names only); raises :class:`MigratorError` naming the pods
    still running after ``timeout`` seconds (:class:`Interrupted` once ``stop`` is set)."""
    deleted: list[str] = []
    spaces = sorted(set(namespaces))
    for namespace in spaces:
        for kind, path, selector in (
            ("job", f"/apis/batch/v1/namespaces/{namespace}/jobs", MOVER_LABEL),
            ("secret", f"/api/v1/namespaces/{namespace}/secrets", RUN_LABEL),
        ):
            found = cluster.request("GET", path, query={"labelSelector": selector})
            for item in found.get("items", []):
                name = item["metadata"]["name"]
                if kind == "secret" and not name.startswith(SECRET_PREFIX):
                    continue
                try:
                    cluster.request(
                        "DELETE", f"{path}/{name}", query={"propagationPolicy": "Background"}
                    )
                except ApiError as exc:
                    if exc.status != 404:
                        raise
                deleted.append(f"{kind} {namespace}/{name}")
    await_stopped(
        cluster, spaces, MOVER_LABEL, "mover pods of an earlier run", timeout=timeout, stop=stop
    )
    return deleted


def await_stopped(
    cluster: Cluster,
    namespaces: Sequence[str],
    selector: str,
    what: str,
    *,
    timeout: float = LEFTOVERS_TIMEOUT,
    stop: threading.Event | None = None,
    sleep: Callable[[float], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Wait until no pod in ``namespaces`` that ``selector`` selects runs or may still
    start (their Jobs deleted: two movers never write one volume). Raises
    :class:`MigratorError` naming ``what`` is still running after ``timeout`` seconds
    (:class:`Interrupted` once ``stop`` is set)."""
    if sleep is None:
        sleep = stoppable_sleep(stop) if stop is not None else time.sleep
    waited = wait_for(
        lambda: _running_movers(cluster, namespaces, selector),
        lambda running: Readiness(WAITING, ", ".join(running)) if running else Readiness(READY),
        timeout=timeout,
        sleep=sleep,
        clock=clock,
    )
    if waited.readiness.state == FAILED:  # the pods could not be listed
        raise MigratorError(
            f"cannot tell whether {what} have stopped: {waited.readiness.reason}",
            hint="the run needs to list pods in the namespaces of its claims",
        )
    if not waited.ready:
        raise MigratorError(
            f"{what} are still running: {waited.readiness.reason}",
            hint="a pod whose node is gone stays until it is deleted by force "
            "(kubectl delete pod --force); run the same command again once they are gone",
        )


def _running_movers(cluster: Cluster, namespaces: Sequence[str], selector: str) -> list[str]:
    """The pods ``selector`` selects in ``namespaces`` that run or may still start
    (namespace/name)."""
    running = []
    for namespace in namespaces:
        found = cluster.request(
            "GET", f"/api/v1/namespaces/{namespace}/pods", query={"labelSelector": selector}
        )
        for pod in found.get("items", []):
            if (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                running.append(f"{namespace}/{pod['metadata']['name']}")
    return running


# --- running Jobs ------------------------------------------------------------------------------


@dataclass
class Attempt:
    """One Job of a mover: its name, how it ended, the mover's report (from its log)."""

    job: str
    ok: bool
    reason: str = ""
    seconds: float = 0.0
    report: dict[str, Any] | None = None
    log_tail: list[str] = field(default_factory=list)
    final: bool = False  # no attempt may follow (an earlier one's pod did not stop)

    def to_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "ok": self.ok,
            "reason": self.reason,
            "seconds": round(self.seconds, 3),
            "logTail": self.log_tail,
        }


@dataclass
class MoverOutcome:
    """Every attempt at one direction of one volume; ``ok`` when the last one succeeded."""

    direction: str
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.attempts) and self.attempts[-1].ok

    @property
    def report(self) -> dict[str, Any]:
        return (self.attempts[-1].report or {}) if self.attempts else {}

    @property
    def seconds(self) -> float:
        return sum(a.seconds for a in self.attempts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "attempts": [a.to_dict() for a in self.attempts],
            "seconds": round(self.seconds, 3),
            "report": self.report,
        }


def parse_mover_report(log: str) -> dict[str, Any] | None:
    """The mover's ``-o json`` report: the last JSON object its log holds (it is printed
    last, indented, from a line that is ``{`` alone), or None."""
    lines = log.splitlines()
    for start in range(len(lines) - 1, -1, -1):
        if lines[start] == "{":
            try:
                doc = json.loads("\n".join(lines[start:]))
            except ValueError:
                continue
            return doc if isinstance(doc, dict) else None
    return None


class JobRunner:
    """Runs one mover at a time to its end on one cluster: creates the Job, waits, reads the
    report, and tries again after a backoff (a new Job) while attempts remain.

    ``sleep`` and ``clock`` are injectable so tests of the retry path need not wait; with
    ``stop``, setting it ends the wait at once (the Job is deleted, :class:`Interrupted`
    raised)."""

    def __init__(
        self,
        cluster: Cluster,
        *,
        attempts: int = 3,
        backoff: RetryPolicy | None = None,
        poll: float = 1.0,
        start_timeout: float = 300.0,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        stop: threading.Event | None = None,
    ) -> None:
        self.cluster = cluster
        self.start_timeout = start_timeout
        self.attempts = max(1, attempts)
        self.backoff = backoff or RetryPolicy(base_delay=5.0, max_delay=60.0)
        self.poll = poll
        if sleep is None:
            sleep = stoppable_sleep(stop) if stop is not None else time.sleep
        self.sleep = sleep
        self.clock = clock

    def run(self, make_job: Callable[[int], dict[str, Any]], direction: str) -> MoverOutcome:
        outcome = MoverOutcome(direction)
        for number in range(1, self.attempts + 1):
            if number > 1:
                self.sleep(self.backoff.backoff(number - 1, None))
            attempt = self._once(make_job(number))
            outcome.attempts.append(attempt)
            if attempt.ok or attempt.final:
                break
        return outcome

    def _once(self, job: dict[str, Any]) -> Attempt:
        namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]
        started = self.clock()
        try:
            self.cluster.request("POST", JOBS.format(ns=namespace), body=job)
        except ApiError as exc:
            if exc.status != 409:  # a Job of this name from an earlier try of the same run
                return Attempt(name, False, f"cannot create the Job: {exc}")
        deadline = float(job["spec"].get("activeDeadlineSeconds") or 3600) + 120
        try:
            waited = wait_job(
                self.cluster,
                namespace,
                name,
                timeout=deadline,
                start_timeout=self.start_timeout,
                poll=self.poll,
                clock=self.clock,
                sleep=self.sleep,
            )
        except Interrupted:
            delete_job(self.cluster, namespace, name)  # the run stops: so does its mover
            raise
        seconds = self.clock() - started
        pod = job_pod(self.cluster, namespace, name)
        log = pod_log(self.cluster, namespace, pod) if pod else ""
        report = parse_mover_report(log)
        ok = waited.readiness.state == READY
        reason = "" if ok else waited.readiness.reason
        tail = [] if ok else log.splitlines()[-LOG_TAIL:]
        never_ran = pod is None or not started_pod(pod)
        if ok or never_ran:
            # A failed Job stays, for a person to read its log; one that never ran has
            # nothing to read, and its pod would wait for ever beside the volume.
            delete_job(self.cluster, namespace, name)
        if never_ran and not ok and pod is not None:
            # Its pod may yet start (an image pulled at last) while its end is under way:
            # the next attempt waits until it is gone.
            try:
                await_stopped(
                    self.cluster,
                    [namespace],
                    f"job-name={name}",
                    f"the pods of mover Job {namespace}/{name}, which did not start,",
                    sleep=self.sleep,
                    clock=self.clock,
                )
            except MigratorError as exc:
                return Attempt(name, False, f"{reason}; {exc}", seconds, report, tail, final=True)
        return Attempt(name, ok, reason, seconds, report, tail)
