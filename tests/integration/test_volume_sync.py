"""Mover Jobs on the proving ground's real nodes: a backup Job beside the volume in the old
cluster, a restore Job into the claim in the new one, through MinIO; placement, mounts,
image, command and credentials as the pods really got them; retries, failures reported per
volume, and the run's Secrets gone afterwards."""
from __future__ import annotations

import threading
import time

import pytest

from migrator.errors import ApiError, MigratorError
from migrator.kube.retry import RetryPolicy
from migrator.store.s3 import S3Store
from migrator.volumes import jobs, sync
from migrator.volumes.claims import MOVER_LABEL, Claim, place
from migrator.volumes.jobs import CLAIM_LABEL, MOUNT_PATH, RUN_LABEL, RunSecrets
from tests.movers import (
    FAST_BACKOFF,
    Recording,
    claim_directory,
    credentials,
    deployment,
    make_claim,
    running_pods,
    settings,
    sleeper_spec,
)
from tests.namespaces import shared_namespace
from tests.waiting import wait_until


def _fill(directory, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _tree(directory) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def _store(s3):
    """The test's bucket as this process reaches it (the movers reach it at another address)."""
    import boto3

    session = boto3.session.Session(aws_access_key_id=s3.access_key,
                                    aws_secret_access_key=s3.secret_key, region_name=s3.region)
    return S3Store(s3.bucket, endpoint_url=s3.endpoint, session=session)


def _secret_gone(api, namespace: str, name: str) -> bool:
    try:
        api.request("GET", f"/api/v1/namespaces/{namespace}/secrets/{name}")
    except ApiError as exc:
        return exc.status == 404
    return False


def _run(old, new, plan, run_settings, creds, store, *, attempts=2, parallel=4, quiesce=None,
         start_timeout=300):
    move = sync.mover_jobs(old, new, run_settings, attempts=attempts, poll=0.5, backoff=FAST_BACKOFF,
                           start_timeout=start_timeout, store=store)
    secrets = [(RunSecrets(run_settings, creds), old), (RunSecrets(run_settings, creds), new)]
    return sync.apply(plan, move, run_id=run_settings.run_id, method="mover", secrets=secrets,
                      quiesce=quiesce, parallel=parallel)


def test_a_claim_in_use_is_backed_up_beside_its_pod_and_restored_into_the_new_claim(
        old_cluster, new_cluster, real_nodes, s3):
    old_node, new_node = real_nodes["old"], real_nodes["new"]
    with shared_namespace([old_cluster, new_cluster]) as ns:
        old_api, new_api = old_cluster.client, new_cluster.client
        make_claim(old_api, ns, "data", old_node.storage_class)
        make_claim(new_api, ns, "data", new_node.storage_class)
        source = claim_directory(old_api, ns, "data")
        target = claim_directory(new_api, ns, "data")
        files = {"a.txt": b"alpha\n", "dir/b.bin": bytes(range(256)) * 4000, "dir/empty": b""}
        _fill(source, files)
        (target / "stale").write_text("not in the source\n")  # a restore removes it
        # The claim is in use: a pod on the old real node mounts it.
        old_api.request("POST", f"/apis/apps/v1/namespaces/{ns}/deployments",
                        body=deployment("app", sleeper_spec(old_node, "data")))
        wait_until("the app running", lambda: running_pods(old_api, ns, "app=app"), timeout=90)

        old, new = Recording(old_api), Recording(new_api)
        run_settings = settings(real_nodes, s3)
        plan = sync.SyncPlan(place(old_api, [Claim(ns, "data")]), sync.STAGE)
        assert plan.claims[Claim(ns, "data")].node == old_node.name
        report = _run(old, new, plan, run_settings, credentials(real_nodes, s3), _store(s3))

        assert not report.partial, report.to_dict()
        assert _tree(target) == files
        (volume,) = report.volumes
        assert volume.ok and volume.node == old_node.name
        assert volume.backup.report["files"] == 3 and volume.backup.report["bytesTotal"] == 6 + 256 * 4000
        assert [len(volume.backup.attempts), len(volume.restore.attempts)] == [1, 1]
        assert volume.restore.report["deleted"] == 1

        # What the pods really were: placement, mounts, image, command, credentials.
        (backup_pod,) = old.pods.values()
        (restore_pod,) = new.pods.values()
        assert backup_pod["spec"]["nodeName"] == old_node.name
        assert restore_pod["spec"]["nodeName"] == new_node.name
        for pod, read_only in ((backup_pod, True), (restore_pod, False)):
            (container,) = pod["spec"]["containers"]
            assert container["image"] == real_nodes["old"].images["mover"]
            assert container["volumeMounts"][0]["mountPath"] == MOUNT_PATH
            assert bool(container["volumeMounts"][0].get("readOnly")) is read_only
            (claim_volume,) = [v for v in pod["spec"]["volumes"] if "persistentVolumeClaim" in v]
            assert claim_volume["persistentVolumeClaim"]["claimName"] == "data"
            assert container["envFrom"] == [{"secretRef": {"name": run_settings.secret_name}}]
            assert pod["spec"]["automountServiceAccountToken"] is False
            assert pod["metadata"]["labels"][RUN_LABEL] == run_settings.run_id
            assert pod["metadata"]["labels"][CLAIM_LABEL] == "data"
        assert backup_pod["spec"]["containers"][0]["command"][:4] == [
            "migrator", "volumes", "backup", MOUNT_PATH]
        assert restore_pod["spec"]["containers"][0]["command"][:5] == [
            "migrator", "volumes", "restore", f"{ns}/data", MOUNT_PATH]
        secrets = [b for b in old.created + new.created if b.get("kind") == "Secret"]
        assert len(secrets) == 2
        assert all(set(s["stringData"]) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                             "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL_S3"}
                   for s in secrets)
        # The run's Secrets are gone from both clusters, and the succeeded Jobs too.
        for api in (old_api, new_api):
            assert _secret_gone(api, ns, run_settings.secret_name)
            live = api.request("GET", f"/apis/batch/v1/namespaces/{ns}/jobs")["items"]
            assert [j["metadata"]["name"] for j in live
                    if not j["metadata"].get("deletionTimestamp")] == []
        # Nothing of the credentials in the report (checked without showing them).
        leaked = s3.secret_key in str(report.to_dict())
        assert not leaked


def test_failures_are_retried_and_reported_per_volume_and_never_block_the_others(
        old_cluster, new_cluster, real_nodes, s3):
    """Three claims: one moves at once; one's restore fails once (its claim in the new cluster
    comes late: the pod cannot be scheduled) and succeeds when retried; one's restore fails
    every time (no claim at all)."""
    old_node, new_node = real_nodes["old"], real_nodes["new"]
    with shared_namespace([old_cluster, new_cluster]) as ns:
        old_api, new_api = old_cluster.client, new_cluster.client
        for name in ("good", "late", "lost"):
            make_claim(old_api, ns, name, old_node.storage_class)
            _fill(claim_directory(old_api, ns, name), {f"{name}.txt": name.encode()})
        make_claim(new_api, ns, "good", new_node.storage_class)
        run_settings = settings(real_nodes, s3)
        plan = sync.SyncPlan(place(old_api, [Claim(ns, n) for n in ("good", "late", "lost")]))

        def create_late_claim_once_its_first_attempt_failed() -> None:
            def second_attempt():
                live = new_api.request("GET", f"/apis/batch/v1/namespaces/{ns}/jobs")["items"]
                return any(j["metadata"]["name"].startswith("migrator-restore-late-")
                           and j["metadata"]["name"].endswith("-2") for j in live)
            deadline = time.monotonic() + 240
            while not second_attempt() and time.monotonic() < deadline:
                time.sleep(0.5)
            make_claim(new_api, ns, "late", new_node.storage_class)

        helper = threading.Thread(target=create_late_claim_once_its_first_attempt_failed, daemon=True)
        helper.start()
        started = time.monotonic()
        report = _run(old_api, new_api, plan, run_settings, credentials(real_nodes, s3), _store(s3), attempts=2,
                      start_timeout=15)
        helper.join(timeout=5)

        by_name = {v.claim.name: v for v in report.volumes}
        assert by_name["good"].ok and len(by_name["good"].restore.attempts) == 1
        late = by_name["late"]
        assert late.ok, late.restore.attempts[-1].log_tail
        assert [a.ok for a in late.restore.attempts] == [False, True]
        assert late.restore.attempts[0].reason.startswith("not started after 15s: ")
        assert 'persistentvolumeclaim "late" not found' in late.restore.attempts[0].reason
        lost = by_name["lost"]
        assert not lost.ok and lost.backup.ok
        assert [a.ok for a in lost.restore.attempts] == [False, False]
        assert lost.error.startswith("restore failed: not started after 15s: ")
        assert report.partial and [p.what for p in report.problems()] == [f"{ns}/lost"]
        # "good" finished long before the failing ones gave up.
        assert by_name["good"].backup.seconds + by_name["good"].restore.seconds < time.monotonic() - started
        assert _tree(claim_directory(new_api, ns, "late")) == {"late.txt": b"late"}
        # A Job whose pod never ran is deleted (it would wait for ever); the Secrets go too.
        left = [j["metadata"]["name"] for j in
                new_api.request("GET", f"/apis/batch/v1/namespaces/{ns}/jobs")["items"]
                if not j["metadata"].get("deletionTimestamp")]
        assert not any(name.startswith("migrator-restore-lost-") for name in left), left
        for api in (old_api, new_api):
            assert _secret_gone(api, ns, run_settings.secret_name)


@pytest.mark.parametrize("parallel", [1])
def test_parallelism_is_bounded(old_cluster, new_cluster, real_nodes, s3, parallel):
    """With --parallel 1 the volumes move one after the other: never two mover Jobs at once."""
    old_node, new_node = real_nodes["old"], real_nodes["new"]
    with shared_namespace([old_cluster, new_cluster]) as ns:
        old_api, new_api = old_cluster.client, new_cluster.client
        names = ["one", "two"]
        for name in names:
            make_claim(old_api, ns, name, old_node.storage_class)
            make_claim(new_api, ns, name, new_node.storage_class)
            _fill(claim_directory(old_api, ns, name), {"f": name.encode()})
        seen: list[int] = []
        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set():
                count = 0
                for api in (old_api, new_api):
                    for job in api.request("GET", f"/apis/batch/v1/namespaces/{ns}/jobs")["items"]:
                        if not any(c["status"] == "True" for c in job["status"].get("conditions", [])):
                            count += 1
                seen.append(count)
                time.sleep(0.2)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        plan = sync.SyncPlan(place(old_api, [Claim(ns, n) for n in names]))
        report = _run(old_api, new_api, plan, settings(real_nodes, s3), credentials(real_nodes, s3), _store(s3),
                      parallel=parallel)
        stop.set()
        watcher.join(timeout=5)
        assert not report.partial, report.to_dict()
        assert max(seen) == 1, seen


def test_a_job_whose_pods_admission_refuses_fails_with_the_refusal(new_cluster, real_nodes, s3, new_namespace):
    """The new cluster enforces Pod Security: a namespace at ``restricted`` refuses the mover
    pod (it runs as root). The attempt fails after the start timeout with the admission's
    words, and the Job is deleted, instead of waiting for the Job's deadline."""
    api, ns = new_cluster.client, new_namespace
    api.request("PATCH", f"/api/v1/namespaces/{ns}", content_type="application/merge-patch+json",
                body={"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}})
    make_claim(api, ns, "data", real_nodes["new"].storage_class)
    run_settings = settings(real_nodes, s3)
    runner = jobs.JobRunner(api, attempts=1, poll=0.5, start_timeout=5)
    started = time.monotonic()
    outcome = runner.run(lambda n: jobs.mover_job(jobs.RESTORE, ns, "data", run_settings, attempt=n),
                         jobs.RESTORE)
    assert time.monotonic() - started < 60
    (attempt,) = outcome.attempts
    assert not attempt.ok
    assert attempt.reason.startswith("no pod made after 5s: ")
    assert 'violates PodSecurity "restricted' in attempt.reason
    assert "runAsNonRoot" in attempt.reason
    remaining = [j for j in api.request("GET", f"/apis/batch/v1/namespaces/{ns}/jobs")["items"]
                 if not j["metadata"].get("deletionTimestamp")]
    assert remaining == []


def test_a_pass_waits_until_the_movers_an_earlier_run_left_have_stopped(new_cluster, real_nodes,
                                                                       new_namespace):
    """A run killed part way leaves its mover Jobs. The next pass deletes them, and starts
    its own movers only once their pods have stopped: deleting a Job only starts its pods'
    end (the garbage collector's turn, the kubelet's, the grace period), and two movers must
    never write one volume. A pod that outlasts the wait is named in the error."""
    api, ns, node = new_cluster.client, new_namespace, real_nodes["new"]
    labels = {MOVER_LABEL: jobs.RESTORE, RUN_LABEL: "killed-run"}
    spec = {"restartPolicy": "Never", "terminationGracePeriodSeconds": 8,
            # PID 1 takes no SIGTERM: the pod runs until the grace period ends.
            "containers": [{"name": "mover", "image": node.images["busybox"],
                            "imagePullPolicy": "Never", "command": ["sleep", "3600"]}],
            **node.placement()}
    api.request("POST", f"/apis/batch/v1/namespaces/{ns}/jobs", body={
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "left-behind", "labels": labels},
        "spec": {"backoffLimit": 0, "template": {"metadata": {"labels": labels}, "spec": spec}}})
    wait_until("the left-behind mover running", lambda: running_pods(api, ns, MOVER_LABEL),
               timeout=60, interval=0.3)

    def movers() -> list[str]:
        pods = api.request("GET", f"/api/v1/namespaces/{ns}/pods",
                           query={"labelSelector": MOVER_LABEL})["items"]
        return [p["metadata"]["name"] for p in pods
                if p["status"].get("phase") not in ("Succeeded", "Failed")]

    started = time.monotonic()
    with pytest.raises(MigratorError, match=f"still running: {ns}/left-behind-"):
        jobs.delete_leftovers(api, [ns], timeout=2)
    assert movers(), "stopped within 2 s: the wait below proves nothing"
    assert jobs.delete_leftovers(api, [ns]) == []  # the Job is gone: only the wait is left
    assert movers() == []
    assert time.monotonic() - started > 5  # it waited for the grace period


def test_a_mover_that_did_not_start_is_gone_before_the_next_attempt_starts(new_cluster, real_nodes,
                                                                          new_namespace):
    """A mover whose pod does not start in time (here an init container that hangs) fails
    its attempt and its Job is deleted; its pod may yet run while its end is under way, so
    the next attempt starts only once it is gone."""
    api, ns, node = new_cluster.client, new_namespace, real_nodes["new"]
    labels = {MOVER_LABEL: jobs.RESTORE}
    sleeper = {"image": node.images["busybox"], "imagePullPolicy": "Never"}
    spec = {"restartPolicy": "Never", "terminationGracePeriodSeconds": 6,
            # PID 1 takes no SIGTERM: the pod stays until its grace period ends.
            "initContainers": [{"name": "hangs", **sleeper, "command": ["sleep", "3600"]}],
            "containers": [{"name": "mover", **sleeper, "command": ["true"]}],
            **node.placement()}

    def make_job(attempt: int) -> dict:
        return {"apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": f"stuck-{attempt}", "namespace": ns, "labels": labels},
                "spec": {"backoffLimit": 0,
                         "template": {"metadata": {"labels": labels}, "spec": spec}}}

    def present() -> list[str]:
        """The movers' pods that run or may still run (a terminating one among them)."""
        pods = api.request("GET", f"/api/v1/namespaces/{ns}/pods",
                           query={"labelSelector": MOVER_LABEL})["items"]
        return [p["metadata"]["name"] for p in pods
                if p["status"].get("phase") not in ("Succeeded", "Failed")]

    running_at_create: list[list[str]] = []

    class Watched:
        """The cluster, noting the movers' pods present whenever a Job is created."""

        def __getattr__(self, name: str):
            return getattr(api, name)

        def request(self, method: str, path: str, **kw):
            if method == "POST" and path.endswith("/jobs"):
                running_at_create.append(present())
            return api.request(method, path, **kw)

    runner = jobs.JobRunner(Watched(), attempts=2, start_timeout=4, poll=0.5,
                            backoff=RetryPolicy(base_delay=0.1, max_delay=0.1))
    outcome = runner.run(make_job, jobs.RESTORE)
    assert [a.ok for a in outcome.attempts] == [False, False]
    assert all("not started after 4s" in a.reason for a in outcome.attempts)
    assert running_at_create == [[], []]
    assert present() == []  # the last one is waited for too
