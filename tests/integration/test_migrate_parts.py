"""Parts of a migration run on the proving ground's real nodes: Job hooks on the new cluster
(one that succeeds, one that fails on every attempt: HookFailed, with its log's last lines),
their Jobs deleted afterwards; and the teardown's scale-down of the old cluster, a
PodDisruptionBudget's Deployment going down in steps, undone by scale_up."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from migrator.errors import HookFailed
from migrator.migrate.hooks import HOOK_LABEL, run_hook
from migrator.migrate.plan import Hook
from migrator.migrate.scaledown import scale_down, scale_up
from migrator.volumes.quiesce import REPLICAS_ANNOTATION
from tests.movers import deployment, running_pods
from tests.waiting import wait_until


def _busybox(node, script: str) -> dict:
    """A pod spec on ``node`` running ``script`` in the proving ground's busybox image; it
    stops at once when asked to."""
    return {
        "containers": [
            {
                "name": "app",
                "image": node.images["busybox"],
                "imagePullPolicy": "Never",
                "command": ["sh", "-c", script],
            }
        ],
        "terminationGracePeriodSeconds": 1,
        **node.placement(),
    }


def _job_file(folder: Path, namespace: str, node, script: str) -> Path:
    spec = _busybox(node, script)
    spec["restartPolicy"] = "Never"
    path = folder / "hook-job.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"name": "smoke-check", "namespace": namespace},
                "spec": {"template": {"spec": spec}},
            }
        )
    )
    return path


def _hook_jobs(api, namespace: str) -> list[str]:
    jobs = api.request(
        "GET", f"/apis/batch/v1/namespaces/{namespace}/jobs", query={"labelSelector": HOOK_LABEL}
    )["items"]
    return [j["metadata"]["name"] for j in jobs]


def test_a_job_hook_runs_in_the_new_cluster_and_its_job_is_deleted(
    new_cluster, real_nodes, new_namespace, tmp_path
) -> None:
    api, ns = new_cluster.client, new_namespace
    _job_file(tmp_path, ns, real_nodes["new"], "echo checking; echo all good")
    hook = Hook(where="hooks.postImport[0]", job=Path("hook-job.yaml"), cluster="new", timeout=120)
    result = run_hook(hook, clusters={"new": api}, base_dir=tmp_path, poll=0.3)
    assert result.ok and result.attempts == 1 and result.job_status == "Complete"
    assert result.output_tail.splitlines() == ["checking", "all good"]
    namespace, name = result.job.split("/")
    assert (
        namespace == ns and name.startswith("smoke-check-") and len(name) == len("smoke-check-") + 6
    )
    assert result.to_dict()["jobStatus"] == "Complete"
    wait_until("the hook's Job deleted", lambda: _hook_jobs(api, ns) == [], timeout=30)


def test_a_failing_job_hook_is_tried_again_under_a_new_name_then_fails(
    new_cluster, real_nodes, new_namespace, tmp_path
) -> None:
    api, ns = new_cluster.client, new_namespace
    _job_file(tmp_path, ns, real_nodes["new"], "echo the database is not ready; exit 4")
    hook = Hook(
        where="hooks.preShift[1]", job=Path("hook-job.yaml"), cluster="new", retries=1, timeout=120
    )
    created: list[str] = []

    class Recording:
        """The cluster, noting the Jobs created."""

        def __getattr__(self, name):
            return getattr(api, name)

        def request(self, method, path, **kw):
            if method == "POST" and path.endswith("/jobs"):
                created.append(kw["body"]["metadata"]["name"])
            return api.request(method, path, **kw)

    waits: list[float] = []
    with pytest.raises(HookFailed) as failed:
        run_hook(
            hook, clusters={"new": Recording()}, base_dir=tmp_path, poll=0.3, sleep=waits.append
        )
    message = str(failed.value)
    assert "hooks.preShift[1]" in message and "after 2 attempt(s)" in message
    assert "BackoffLimitExceeded" in message and message.endswith("the database is not ready")
    assert len(created) == 2 and len(set(created)) == 2 and waits == [2.0]
    wait_until("the hook's Jobs deleted", lambda: _hook_jobs(api, ns) == [], timeout=30)


def _replicas(api, ns: str, name: str) -> tuple[int, str | None]:
    obj = api.request("GET", f"/apis/apps/v1/namespaces/{ns}/deployments/{name}")
    return obj["spec"]["replicas"], obj["metadata"].get("annotations", {}).get(REPLICAS_ANNOTATION)


@pytest.fixture
def services(old_cluster, real_nodes, old_namespace):
    """Two Deployments running on the old cluster's real node: ``web`` (3 replicas) behind a
    PodDisruptionBudget of minAvailable 2, ``worker`` (2) without one; and a DaemonSet."""
    api, node, ns = old_cluster.client, real_nodes["old"], old_namespace
    script = "trap 'exit 0' TERM; sleep 3600 & wait"
    api.request(
        "POST",
        f"/apis/apps/v1/namespaces/{ns}/deployments",
        body=deployment("web", _busybox(node, script), replicas=3),
    )
    api.request(
        "POST",
        f"/apis/apps/v1/namespaces/{ns}/deployments",
        body=deployment("worker", _busybox(node, script), replicas=2),
    )
    api.request(
        "POST",
        f"/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets",
        body={
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "web"},
            "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}},
        },
    )
    labels = {"app": "agent"}
    api.request(
        "POST",
        f"/apis/apps/v1/namespaces/{ns}/daemonsets",
        body={
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "agent"},
            "spec": {
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        **_busybox(node, script),
                        "nodeSelector": {"migrator.io/no-such-node": "x"},
                    },
                },
            },
        },
    )
    wait_until("3 web pods running", lambda: len(running_pods(api, ns, "app=web")) == 3, timeout=90)
    wait_until(
        "2 worker pods running", lambda: len(running_pods(api, ns, "app=worker")) == 2, timeout=90
    )
    return ns


def test_scale_down_steps_through_the_budget_and_scale_up_undoes_it(old_cluster, services) -> None:
    api, ns = old_cluster.client, services
    progress: list[tuple[str, int]] = []
    report = scale_down(
        api, [ns], timeout=120, poll=0.3, on_progress=lambda w, n: progress.append((w, n))
    )

    lines = {w["name"]: w for w in report.workloads}
    assert lines["web"] == {
        "kind": "Deployment",
        "namespace": ns,
        "name": "web",
        "replicas_before": 3,
        "steps": [2, 1, 0],
    }
    assert lines["worker"]["replicas_before"] == 2 and lines["worker"]["steps"] == [0]
    assert set(lines) == {"web", "worker"}  # their ReplicaSets are scaled through them
    assert report.daemonsets_left == [f"{ns}/agent"]
    assert [n for w, n in progress if w == f"Deployment {ns}/web"] == [2, 1, 0]
    assert _replicas(api, ns, "web") == (0, "3") and _replicas(api, ns, "worker") == (0, "2")
    assert running_pods(api, ns, "app in (web, worker)") == []
    assert report.to_dict()["workloads"][0]["replicasBefore"] in (2, 3)

    assert sorted(scale_up(api, [ns])) == [f"Deployment {ns}/web", f"Deployment {ns}/worker"]
    assert _replicas(api, ns, "web") == (3, None) and _replicas(api, ns, "worker") == (2, None)
    wait_until(
        "the services back",
        lambda: len(running_pods(api, ns, "app in (web, worker)")) == 5,
        timeout=90,
    )
    assert scale_up(api, [ns]) == []
