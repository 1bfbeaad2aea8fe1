"""A plan's command hooks on this machine: success, retries with backoff then HookFailed with
the output's tail, a timeout that kills the command's whole process group, the run's
variables, and a stopping run."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from migrator.errors import HookFailed, Interrupted
from migrator.migrate.hooks import (
    TAIL_BYTES,
    TAIL_LINES,
    backoff,
    hook_job,
    label_value,
    output_tail,
    run_hook,
)
from migrator.migrate.plan import Hook


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purpose (its parent, the killed shell, cannot reap it).
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_command_runs_in_the_plan_folder_with_the_run_variables(tmp_path: Path) -> None:
    hook = Hook(
        where="hooks.preExport[0]", run='pwd; echo "phase=$MIGRATOR_PHASE home=${HOME:+set}"'
    )
    result = run_hook(hook, clusters={}, env={"MIGRATOR_PHASE": "export"}, base_dir=tmp_path)
    assert result.ok and result.attempts == 1 and result.exit_code == 0
    assert result.output_tail.splitlines() == [str(tmp_path), "phase=export home=set"]
    assert result.to_dict()["where"] == "hooks.preExport[0]"
    assert result.to_dict()["exitCode"] == 0


def test_a_failing_command_is_retried_with_backoff_then_fails_with_its_last_lines(
    tmp_path: Path,
) -> None:
    waits: list[float] = []
    counter = tmp_path / "count"
    hook = Hook(
        where="hooks.postImport[1]",
        retries=2,
        run=f"echo try >> {counter}; for i in $(seq 1 30); do echo line $i; done; echo broken >&2; exit 3",
    )
    with pytest.raises(HookFailed) as failed:
        run_hook(hook, clusters={}, base_dir=tmp_path, sleep=waits.append)
    assert waits == [2.0, 4.0]
    assert counter.read_text().split() == ["try"] * 3
    message = str(failed.value)
    assert "hooks.postImport[1]" in message and "after 3 attempt(s)" in message
    assert "exit code 3" in message and message.endswith("line 30\nbroken")
    assert "line 1\n" not in message  # only the last lines
    assert failed.value.exit_code == 13 and failed.value.where == "hooks.postImport[1]"
    assert failed.value.result["attempts"] == 3 and failed.value.result["exitCode"] == 3


def test_a_command_that_succeeds_on_a_retry_reports_its_attempts(tmp_path: Path) -> None:
    hook = Hook(
        where="hooks.preShift[0]",
        retries=3,
        run="n=$(cat n 2>/dev/null || echo 0); echo $((n+1)) > n; [ $n -ge 1 ]",
    )
    result = run_hook(hook, clusters={}, base_dir=tmp_path, sleep=lambda s: None)
    assert result.ok and result.attempts == 2


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff(n) for n in range(1, 8)] == [2, 4, 8, 16, 30, 30, 30]


def test_a_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child"
    # The shell starts a child that ignores SIGTERM; both must be gone after the timeout.
    hook = Hook(
        where="hooks.preImport[0]",
        timeout=1.0,
        run=f"sh -c 'trap \"\" TERM; sleep 60' & echo $! > {pidfile}; wait",
    )
    began = time.monotonic()
    with pytest.raises(HookFailed, match=r"timed out after 1s"):
        run_hook(hook, clusters={}, base_dir=tmp_path)
    assert time.monotonic() - began < 10
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def test_a_stopping_run_kills_the_command_at_once(tmp_path: Path) -> None:
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    began = time.monotonic()
    with pytest.raises(Interrupted):
        run_hook(
            Hook(where="hooks.postShift[0]", run="sleep 60", retries=5),
            clusters={},
            base_dir=tmp_path,
            stop=stop,
        )
    assert time.monotonic() - began < 5


def test_output_is_bounded_in_lines_and_bytes() -> None:
    text = "\n".join(f"line {i}" for i in range(100))
    assert output_tail(text).splitlines() == [f"line {i}" for i in range(100 - TAIL_LINES, 100)]
    long = "x" * 10_000 + "\nend"
    assert len(output_tail(long).encode()) == TAIL_BYTES and output_tail(long).endswith("\nend")


def test_a_job_attempt_gets_a_unique_name_its_label_and_a_namespace() -> None:
    manifest = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "a" * 70, "labels": {"team": "x"}},
        "spec": {"template": {"spec": {"containers": []}}},
    }
    job = hook_job(manifest, "hooks.preExport[0]", "abc123")
    assert len(job["metadata"]["name"]) == 63 and job["metadata"]["name"].endswith("-abc123")
    assert job["metadata"]["namespace"] == "default"
    assert job["metadata"]["labels"] == {"team": "x", "migrator.io/hook": "hooks.preExport-0"}
    assert job["spec"]["template"]["metadata"]["labels"]["migrator.io/hook"] == "hooks.preExport-0"
    assert job["spec"]["backoffLimit"] == 0
    assert manifest["metadata"]["name"] == "a" * 70  # the manifest itself is left as it was
    assert label_value("[x]") == "x"


def test_a_job_hooks_containers_get_the_runs_variables_but_not_local_paths() -> None:
    manifest = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "backup"},
        "spec": {"template": {"spec": {"containers": [
            {"name": "a", "env": [{"name": "MIGRATOR_PHASE", "value": "mine"}]},
            {"name": "b"},
        ]}}},
    }
    env = {"MIGRATOR_PLAN": "shop", "MIGRATOR_PHASE": "export", "KUBECONFIG": "/home/me/.kube"}
    job = hook_job(manifest, "hooks.preExport[0]", "abc123", env)
    a, b = job["spec"]["template"]["spec"]["containers"]
    assert a["env"] == [{"name": "MIGRATOR_PHASE", "value": "mine"},
                        {"name": "MIGRATOR_PLAN", "value": "shop"}]
    assert b["env"] == [{"name": "MIGRATOR_PHASE", "value": "export"},
                        {"name": "MIGRATOR_PLAN", "value": "shop"}]
    assert "env" not in manifest["spec"]["template"]["spec"]["containers"][1]  # left as it was


def test_a_job_hook_needs_one_job_in_its_file_and_a_known_cluster(tmp_path: Path) -> None:
    from migrator.errors import ConfigError

    (tmp_path / "two.yaml").write_text(
        "apiVersion: batch/v1\nkind: Job\n---\napiVersion: v1\nkind: Pod\n"
    )
    (tmp_path / "one.yaml").write_text("apiVersion: batch/v1\nkind: Job\nmetadata: {name: x}\n")
    with pytest.raises(
        ConfigError, match=r"hooks.preExport\[0\]: .*two.yaml must hold exactly one Job"
    ):
        run_hook(
            Hook(where="hooks.preExport[0]", job=Path("two.yaml")), clusters={}, base_dir=tmp_path
        )
    with pytest.raises(ConfigError, match=r"no cluster 'old'"):
        run_hook(
            Hook(where="hooks.preExport[0]", job=Path("one.yaml")), clusters={}, base_dir=tmp_path
        )
    with pytest.raises(ConfigError, match="cannot read"):
        run_hook(
            Hook(where="hooks.preExport[0]", job=Path("none.yaml")), clusters={}, base_dir=tmp_path
        )
