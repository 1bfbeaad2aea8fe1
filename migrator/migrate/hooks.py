"""A plan's hooks: the user's own step at a point of the run, retried, bounded in time.

A hook is a command run on this machine (``run``: through ``/bin/sh -c``, in the plan
file's folder, with the run's ``MIGRATOR_*`` variables added to this process' environment)
or a Job (``job``: a manifest file holding one ``batch/v1`` Job, created in the old or the
new cluster under a name of its own for each attempt, waited for, its pod's last lines of
log kept, and deleted whatever happened). An attempt lasts at most ``hook.timeout``
seconds: a command still running then is killed with every process it started (its whole
process group), a Job still running is deleted. A failed attempt is tried again
``hook.retries`` times, after 2 s, 4 s, ... (at most 30 s); the last failure raises
:class:`~migrator.errors.HookFailed`. Setting ``stop`` (the run is stopping) kills what
runs and raises :class:`~migrator.errors.Interrupted`.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import re
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import yaml

from migrator.errors import ConfigError, HookFailed, Interrupted, MigratorError
from migrator.kube import Cluster
from migrator.kube.wait import stoppable_sleep
from migrator.migrate.plan import Hook
from migrator.resources.jobs import JOBS, delete_job, job_pod, pod_log, wait_job

log = logging.getLogger(__name__)

HOOK_LABEL = "migrator.io/hook"
TAIL_LINES = 20
TAIL_BYTES = 4096
BACKOFF_FIRST = 2.0
BACKOFF_MAX = 30.0
KILL_GRACE = 2.0  # seconds between SIGTERM and SIGKILL to a command's process group
_POLL = 0.1  # how often a running command is checked for its end, the timeout, ``stop``
_SUFFIX_CHARS = 6


@dataclass
class HookResult:
    """How a hook ended: its attempts, the seconds they took together, the last attempt's exit
    code (a command; None when it was killed) or status (a Job: ``Complete``, ``Failed:
    why``, ``timed out ...``) and its output's last lines."""

    where: str
    attempts: int
    seconds: float
    ok: bool
    exit_code: int | None = None
    job_status: str | None = None
    job: str | None = None  # the last attempt's Job, namespace/name
    output_tail: str = ""

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "where": self.where,
            "ok": self.ok,
            "attempts": self.attempts,
            "seconds": round(self.seconds, 3),
            "outputTail": self.output_tail,
        }
        if self.job is not None:
            doc["job"] = self.job
            doc["jobStatus"] = self.job_status
        else:
            doc["exitCode"] = self.exit_code
        return doc


@dataclass(frozen=True)
class _Attempt:
    ok: bool
    detail: str  # "exit code 3", "timed out after 5s", "Failed: BackoffLimitExceeded: ..."
    output: str
    exit_code: int | None = None
    job: str | None = None
    job_status: str | None = None


def output_tail(text: str, lines: int = TAIL_LINES, limit: int = TAIL_BYTES) -> str:
    """The last ``lines`` lines of ``text``, and of those at most the last ``limit`` bytes."""
    kept = "\n".join(text.rstrip("\n").splitlines()[-lines:])
    raw = kept.encode("utf-8")
    if len(raw) > limit:
        kept = raw[-limit:].decode("utf-8", "ignore")
    return kept


def backoff(attempt: int) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based): 2, 4, 8, ... 30."""
    return min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** min(attempt - 1, 16))


def run_hook(
    hook: Hook,
    *,
    clusters: Mapping[str, Cluster],
    env: Mapping[str, str] | None = None,
    base_dir: Path | None = None,
    stop: threading.Event | None = None,
    sleep: Callable[[float], None] | None = None,
    poll: float = 1.0,
) -> HookResult:
    """Run ``hook`` to success, retrying (module doc); raises :class:`HookFailed` after the
    last failed attempt. ``clusters`` are the run's (``old``, ``new``) for a Job hook;
    ``env`` is added to a command's environment (and its ``MIGRATOR_*`` variables to a
    Job's containers); ``base_dir`` is the plan file's folder
    (commands run there, a Job's manifest is read relative to it). ``sleep`` waits between
    attempts (tests pass their own); ``poll`` is how often a Job is looked at."""
    if (hook.run is None) == (hook.job is None):
        raise ConfigError(f"{hook.where}: a hook has either run or job (one of the two)")
    folder = base_dir or Path.cwd()
    if sleep is None:
        sleep = stoppable_sleep(stop) if stop is not None else time.sleep
    attempt_once: Callable[[], _Attempt]
    if hook.run is not None:
        command = hook.run
        what = f"command {command!r}"

        def attempt_once() -> _Attempt:
            return _run_command(command, hook.timeout, {**os.environ, **(env or {})}, folder, stop)
    else:
        assert hook.job is not None
        manifest_file = hook.job if hook.job.is_absolute() else folder / hook.job
        manifest = load_job(manifest_file, hook.where)
        cluster = clusters.get(hook.cluster)
        if cluster is None:
            raise ConfigError(
                f"{hook.where}: no cluster {hook.cluster!r} for its Job (old or new)",
                hint="set the hook's cluster to old or new",
            )
        what = f"Job {manifest_file} in cluster {hook.cluster!r} ({cluster.context})"

        def attempt_once() -> _Attempt:
            return _run_job(cluster, manifest, hook, env or {}, poll=poll, stop=stop)

    started = time.monotonic()
    attempts = 1 + max(0, hook.retries)
    for number in range(1, attempts + 1):
        if number > 1:
            sleep(backoff(number - 1))
        log.info("hook %s: attempt %d of %d: %s", hook.where, number, attempts, what)
        result = attempt_once()
        if result.ok:
            break
        log.warning(
            "hook %s: attempt %d of %d failed: %s", hook.where, number, attempts, result.detail
        )
    outcome = HookResult(
        where=hook.where,
        attempts=number,
        seconds=time.monotonic() - started,
        ok=result.ok,
        exit_code=result.exit_code,
        job_status=result.job_status,
        job=result.job,
        output_tail=output_tail(result.output),
    )
    if not outcome.ok:
        last = output_tail(result.output, lines=5, limit=1024)
        raise HookFailed(
            f"hook {hook.where} failed after {number} attempt(s): {what}: {result.detail}"
            + (f"; last output:\n{last}" if last else " (no output)"),
            where=hook.where,
            result=outcome.to_dict(),
            hint="fix the hook (or what it checks) and run the migration again: it resumes here",
        )
    return outcome


# --- a command on this machine ----------------------------------------------------------------


def _read_tail(stream: IO[bytes], into: collections.deque[bytes]) -> None:
    """Read a command's output to its end, keeping only its last lines (each bounded)."""
    for line in stream:
        into.append(line[-TAIL_BYTES:])


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """End the command and everything it started: SIGTERM to its process group, then, after a
    short grace, SIGKILL to whatever of it is left."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + KILL_GRACE
    while time.monotonic() < deadline:
        process.poll()  # reap the shell, or it stays in the group as a zombie
        if not _group_alive(process.pid):
            break
        time.sleep(_POLL)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _run_command(
    command: str,
    timeout: float,
    env: Mapping[str, str],
    cwd: Path,
    stop: threading.Event | None,
) -> _Attempt:
    try:
        process = subprocess.Popen(
            ["/bin/sh", "-c", command],
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: killed as one
        )
    except OSError as exc:
        return _Attempt(False, f"cannot start: {exc.strerror or exc}", "")
    lines: collections.deque[bytes] = collections.deque(maxlen=TAIL_LINES)
    assert process.stdout is not None
    reader = threading.Thread(target=_read_tail, args=(process.stdout, lines), daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    ended: str | None = None
    while process.poll() is None:
        if stop is not None and stop.is_set():
            ended = "stopped"
        elif time.monotonic() >= deadline:
            ended = f"timed out after {timeout:g}s (killed)"
        if ended:
            _kill_group(process)
            break
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=_POLL)
    # What it started in the background may hold the output open: do not wait for that.
    reader.join(timeout=1.0)
    output = b"".join(lines).decode("utf-8", "replace")
    if ended == "stopped":
        raise Interrupted("the run is stopping: the hook's command was killed")
    if ended:
        return _Attempt(False, ended, output)
    code = process.returncode
    detail = f"exit code {code}" if code >= 0 else f"killed by signal {-code}"
    return _Attempt(code == 0, detail, output, exit_code=code)


# --- a Job in a cluster ---------------------------------------------------------------------


def load_job(path: Path, where: str) -> dict[str, Any]:
    """The one ``batch/v1`` Job of a hook's manifest file."""
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read the Job manifest {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: {path} is not YAML: {exc}") from exc
    if (
        len(docs) != 1
        or not isinstance(docs[0], dict)
        or (docs[0].get("apiVersion"), docs[0].get("kind")) != ("batch/v1", "Job")
    ):
        raise ConfigError(
            f"{where}: {path} must hold exactly one Job (apiVersion batch/v1, kind Job)",
            hint="put one Job in the file; a hook with several steps can run them in one pod",
        )
    return docs[0]


def label_value(text: str) -> str:
    """``text`` as a label value: letters, digits, ``-_.``, at most 63, alphanumeric ends."""
    value = re.sub(r"[^A-Za-z0-9._-]+", "-", text)[:63]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", value)


def hook_job(
    manifest: Mapping[str, Any],
    where: str,
    suffix: str,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The Job of one attempt: the manifest's, under its name plus ``-suffix`` (63 characters
    at most), labelled with the hook's place in the plan, in its namespace (or ``default``).
    Attempts are the hook's: the Job's own pod retries are off unless the manifest sets them.
    Each container gets ``env`` (the run's ``MIGRATOR_*`` variables, as a command hook does)
    where the manifest does not set the same name; paths on this machine (``KUBECONFIG``)
    mean nothing in a pod and are left out."""
    meta = dict(manifest.get("metadata") or {})
    base = str(meta.get("name") or meta.get("generateName") or "hook").rstrip("-")
    base = base[: 63 - len(suffix) - 1].rstrip("-.")
    labels = {**(meta.get("labels") or {}), HOOK_LABEL: label_value(where)}
    metadata = {
        **{k: v for k, v in meta.items() if k not in ("generateName", "resourceVersion", "uid")},
        "name": f"{base}-{suffix}",
        "namespace": meta.get("namespace") or "default",
        "labels": labels,
    }
    spec = dict(manifest.get("spec") or {})
    spec.setdefault("backoffLimit", 0)
    template = dict(spec.get("template") or {})
    template_meta = dict(template.get("metadata") or {})
    template_meta["labels"] = {
        **(template_meta.get("labels") or {}),
        HOOK_LABEL: labels[HOOK_LABEL],
    }
    pod = dict(template.get("spec") or {})
    extra = {k: v for k, v in (env or {}).items() if k.startswith("MIGRATOR_")}
    if extra:
        containers = []
        for container in pod.get("containers") or ():
            container = dict(container)
            own = {e.get("name") for e in container.get("env") or ()}
            container["env"] = [
                *(container.get("env") or ()),
                *({"name": k, "value": v} for k, v in sorted(extra.items()) if k not in own),
            ]
            containers.append(container)
        pod["containers"] = containers
    spec["template"] = {**template, "metadata": template_meta, "spec": pod}
    return {**manifest, "metadata": metadata, "spec": spec}


def _run_job(
    cluster: Cluster,
    manifest: Mapping[str, Any],
    hook: Hook,
    env: Mapping[str, str],
    *,
    poll: float,
    stop: threading.Event | None,
) -> _Attempt:
    suffix = secrets.token_hex(_SUFFIX_CHARS // 2)
    job = hook_job(manifest, hook.where, suffix, env)
    namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]
    shown = f"{namespace}/{name}"
    try:
        cluster.request("POST", JOBS.format(ns=namespace), body=job)
    except MigratorError as exc:
        return _Attempt(False, f"cannot create Job {shown}: {exc}", "", job=shown)
    output = ""
    try:
        waited = wait_job(
            cluster,
            namespace,
            name,
            timeout=hook.timeout,
            start_timeout=min(hook.timeout, 300.0),
            poll=poll,
            sleep=stoppable_sleep(stop) if stop is not None else time.sleep,
        )
        pod = job_pod(cluster, namespace, name)
        output = pod_log(cluster, namespace, pod, tail_lines=TAIL_LINES) if pod else ""
    except Interrupted:
        raise
    except MigratorError as exc:  # the cluster stopped answering: this attempt failed
        return _Attempt(False, f"Job {shown}: {exc}", output, job=shown, job_status=str(exc))
    finally:
        try:
            delete_job(cluster, namespace, name)
        except MigratorError as exc:
            log.warning("hook %s: could not delete Job %s: %s", hook.where, shown, exc)
    if waited.ready:
        status = "Complete"
    elif waited.timed_out:
        status = f"timed out after {hook.timeout:g}s (deleted)"
    else:
        status = waited.readiness.reason or "Failed"
    return _Attempt(waited.ready, f"Job {shown}: {status}", output, job=shown, job_status=status)
