"""Mover Jobs and a sync pass without servers: the manifests (and manifests/mover-job.yaml),
the mover's report read from a log, credentials that never show, attempts with backoff, and
a pass whose volumes fail alone, whose quiesce is undone on failure and whose Secrets go
whatever happens."""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from migrator.errors import ApiError, QuiesceFailed, VolumeError
from migrator.kube.retry import RetryPolicy
from migrator.resources.jobs import stuck_reason
from migrator.transform.podsecurity import BASELINE, evaluate
from migrator.volumes import jobs, sync
from migrator.volumes.claims import Claim, Placement, ebs_volume_id

REPO = Path(__file__).resolve().parents[2]
SETTINGS = jobs.MoverSettings(run_id="RUN", image="IMAGE", store_url="s3://BUCKET/PREFIX",
                              secret_name=jobs.SECRET_PREFIX + "RUN")


def test_the_manifest_file_is_what_the_code_makes() -> None:
    docs = [d for d in yaml.safe_load_all((REPO / "manifests/mover-job.yaml").read_text()) if d]
    secret, backup, restore = docs
    assert backup == jobs.mover_job(jobs.BACKUP, "NAMESPACE", "CLAIM", SETTINGS, node="NODE")
    assert restore == jobs.mover_job(jobs.RESTORE, "NAMESPACE", "CLAIM", SETTINGS)
    made = jobs.credentials_secret("NAMESPACE", SETTINGS, jobs.StoreCredentials(secret["stringData"]))
    assert secret == made


def test_backup_job_mounts_read_only_on_the_node_and_restore_read_write_anywhere() -> None:
    backup = jobs.mover_job(jobs.BACKUP, "shop", "data-db-0", SETTINGS, node="node-7", attempt=2)
    pod = backup["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["volumeMounts"] == [{"name": "data", "mountPath": "/data", "readOnly": True}]
    assert pod["volumes"][0]["persistentVolumeClaim"] == {"claimName": "data-db-0", "readOnly": True}
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"][0]["matchExpressions"][0]["values"] == ["node-7"]
    assert pod["tolerations"] == [{"operator": "Exists"}]
    assert pod["automountServiceAccountToken"] is False and pod["restartPolicy"] == "Never"
    assert container["command"] == ["migrator", "volumes", "backup", "/data", "--name", "shop/data-db-0",
                                    "--store", "s3://BUCKET/PREFIX", "--workers", "4", "-o", "json"]
    assert container["envFrom"] == [{"secretRef": {"name": "migrator-mover-RUN"}}]
    assert backup["metadata"]["name"].endswith("-2") and backup["spec"]["backoffLimit"] == 0

    restore = jobs.mover_job(jobs.RESTORE, "shop", "data-db-0", SETTINGS)
    pod = restore["spec"]["template"]["spec"]
    assert pod["containers"][0]["volumeMounts"][0]["readOnly"] is False
    assert "affinity" not in pod
    assert pod["containers"][0]["command"][:6] == ["migrator", "volumes", "restore", "shop/data-db-0",
                                                   "/data", "--delete"]


def test_a_mover_runs_as_root_with_only_the_capabilities_it_needs_and_baseline_admits_it() -> None:
    for direction in (jobs.BACKUP, jobs.RESTORE, jobs.VERIFY):
        template = jobs.mover_job(direction, "shop", "data-db-0", SETTINGS)["spec"]["template"]
        level, forbidden = evaluate(template["metadata"], template["spec"])
        assert level == BASELINE, forbidden
        # All that keeps it from restricted: root, and the capabilities root needs here.
        assert sorted(forbidden) == [
            "capabilities added: CHOWN, DAC_OVERRIDE, FOWNER, FSETID, MKNOD",
            "containers 'mover' set runAsUser=0",
            "pod or containers 'mover' must set runAsNonRoot=true"]
    one = jobs.mover_job(jobs.BACKUP, "a", "b", SETTINGS)["spec"]["template"]["spec"]
    one["containers"][0]["securityContext"]["capabilities"]["add"].append("SYS_ADMIN")
    other = jobs.mover_job(jobs.BACKUP, "a", "b", SETTINGS)["spec"]["template"]["spec"]
    assert "SYS_ADMIN" not in other["containers"][0]["securityContext"]["capabilities"]["add"]


def test_long_claim_names_still_make_valid_job_names_and_labels() -> None:
    claim = "x" * 250
    job = jobs.mover_job(jobs.RESTORE, "ns", claim, SETTINGS, attempt=10)
    assert len(job["metadata"]["name"]) <= 63
    assert len(job["metadata"]["labels"][jobs.CLAIM_LABEL]) <= 63
    other = jobs.mover_job(jobs.RESTORE, "ns", "x" * 249 + "y", SETTINGS, attempt=10)
    assert other["metadata"]["name"] != job["metadata"]["name"]
    assert other["metadata"]["labels"][jobs.CLAIM_LABEL] != job["metadata"]["labels"][jobs.CLAIM_LABEL]


def test_the_mover_report_is_the_last_json_object_of_the_log() -> None:
    log = 'starting\n{\n  "files": 1\n}\nwarning: x\n{\n  "files": 3,\n  "nested": {\n    "a": 1\n  }\n}\n'
    assert jobs.parse_mover_report(log) == {"files": 3, "nested": {"a": 1}}
    assert jobs.parse_mover_report("Error: cannot reach the store\n") is None
    assert jobs.parse_mover_report("{\n  truncated") is None


def test_store_credentials_carry_the_key_and_never_show() -> None:
    import boto3

    session = boto3.session.Session(aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="s3cr3t-value",
                                    region_name="eu-west-1")
    creds = jobs.store_credentials("http://10.0.0.1:9000", None, b"\x01" * 32, session=session)
    assert creds.env == {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "s3cr3t-value",
                         "AWS_DEFAULT_REGION": "eu-west-1", "AWS_ENDPOINT_URL_S3": "http://10.0.0.1:9000",
                         "MIGRATOR_ENCRYPT_KEY": "01" * 32}
    shown = repr(creds) + str(creds)
    assert "s3cr3t" not in shown and "AKIDEXAMPLE" not in shown and "0101" not in shown


def test_ebs_volume_ids_from_csi_and_in_tree_volumes() -> None:
    assert ebs_volume_id({"spec": {"csi": {"driver": "ebs.csi.aws.com", "volumeHandle": "vol-1"}}}) == "vol-1"
    assert ebs_volume_id({"spec": {"awsElasticBlockStore": {"volumeID": "aws://us-east-1a/vol-2"}}}) == "vol-2"
    assert ebs_volume_id({"spec": {"awsElasticBlockStore": {"volumeID": "vol-3"}}}) == "vol-3"
    assert ebs_volume_id({"spec": {"csi": {"driver": "pd.csi.storage.gke.io", "volumeHandle": "x"}}}) is None
    assert ebs_volume_id(None) is None


# --- the Job runner against a fake cluster ---------------------------------------------------


class FakeCluster:
    """Jobs end as the test says (by attempt number); logs carry a mover report."""

    context = "fake"
    server = "https://fake"

    def __init__(self, outcomes: list[str]) -> None:
        self.outcomes = outcomes  # "Complete" or "Failed", per Job created
        self.jobs: dict[str, str] = {}
        self.deleted: list[str] = []
        self.secrets: dict[str, dict] = {}

    def request(self, method: str, path: str, *, query=None, body=None, content_type=None) -> dict:
        if method == "POST" and path.endswith("/jobs"):
            self.jobs[body["metadata"]["name"]] = self.outcomes[len(self.jobs)]
            return body
        if method == "POST" and path.endswith("/secrets"):
            self.secrets[body["metadata"]["namespace"]] = body
            return body
        if method == "GET" and "/jobs/" in path:
            state = self.jobs[path.rsplit("/", 1)[1]]
            return {"status": {"conditions": [{"type": state, "status": "True", "reason": "BackoffLimitExceeded"
                                               if state == "Failed" else ""}]}}
        if method == "GET" and path.endswith("/pods"):
            job = query["labelSelector"].removeprefix("job-name=")
            return {"items": [{"metadata": {"name": f"{job}-pod", "creationTimestamp": "t"},
                               "status": {"containerStatuses": [{"state": {"terminated": {}}}]}}]}
        if method == "DELETE" and "/secrets/" in path:
            self.secrets.pop(path.split("/")[4], None)
            return {}
        if method == "DELETE":
            self.deleted.append(path.rsplit("/", 1)[1])
            return {}
        raise AssertionError((method, path))

    def request_raw(self, method: str, path: str, **kw: Any) -> bytes:
        job = path.split("/pods/")[1].removesuffix("-pod/log")
        if self.jobs[job] == "Failed":
            return b"Error: the store refused our credentials\n"
        return b'{\n  "files": 2,\n  "bytesTotal": 10\n}\n'


def test_a_failed_attempt_is_retried_as_a_new_job_after_a_growing_pause() -> None:
    cluster = FakeCluster(["Failed", "Failed", "Complete"])
    slept: list[float] = []
    runner = jobs.JobRunner(cluster, attempts=3, poll=0, sleep=slept.append,
                            backoff=RetryPolicy(base_delay=2, max_delay=60, jitter=lambda: 1.0))
    outcome = runner.run(lambda n: jobs.mover_job(jobs.BACKUP, "ns", "c", SETTINGS, attempt=n), jobs.BACKUP)
    assert outcome.ok and [a.ok for a in outcome.attempts] == [False, False, True]
    assert [a.job[-2:] for a in outcome.attempts] == ["-1", "-2", "-3"]
    assert slept == [2.0, 4.0]
    assert outcome.report == {"files": 2, "bytesTotal": 10}
    assert outcome.attempts[0].reason.startswith("BackoffLimitExceeded")
    assert outcome.attempts[0].log_tail == ["Error: the store refused our credentials"]
    assert cluster.deleted == [outcome.attempts[2].job]  # failed Jobs stay for a person


def test_a_pod_that_cannot_start_fails_its_attempt_at_once_and_its_job_goes() -> None:
    class NeverPulls(FakeCluster):
        def request(self, method, path, *, query=None, **kw):
            if method == "GET" and "/jobs/" in path:
                return {"status": {"active": 1}}
            if method == "GET" and path.endswith("/pods"):
                job = query["labelSelector"].removeprefix("job-name=")
                if job in self.deleted:
                    return {"items": []}  # its pod went with it
                waiting = {"reason": "ErrImageNeverPull", "message": "image not present"}
                return {"items": [{"metadata": {"name": f"{job}-pod"}, "status": {
                    "phase": "Pending", "containerStatuses": [{"state": {"waiting": waiting}}]}}]}
            return super().request(method, path, query=query, **kw)

    cluster = NeverPulls(["Complete"])
    runner = jobs.JobRunner(cluster, attempts=1, poll=0, sleep=lambda s: None)
    outcome = runner.run(lambda n: jobs.mover_job(jobs.BACKUP, "ns", "c", SETTINGS, attempt=n), jobs.BACKUP)
    assert not outcome.ok
    assert outcome.attempts[0].reason == "ErrImageNeverPull: image not present"
    assert cluster.deleted == [outcome.attempts[0].job]


def test_a_job_that_makes_no_pod_fails_after_the_start_timeout_with_its_refusal() -> None:
    class Refused(FakeCluster):
        def request(self, method, path, *, query=None, **kw):
            if method == "GET" and "/jobs/" in path:
                return {"status": {}}
            if method == "GET" and path.endswith("/pods"):
                return {"items": []}
            if method == "GET" and path.endswith("/events"):
                assert query["fieldSelector"].startswith("involvedObject.kind=Job,")
                return {"items": [
                    {"reason": "FailedCreate", "lastTimestamp": "2026-01-01T00:00:02Z", "message": "new"},
                    {"reason": "FailedCreate", "lastTimestamp": "2026-01-01T00:00:01Z", "message": "old"},
                    {"reason": "SuccessfulCreate", "lastTimestamp": "2026-01-01T00:00:03Z"}]}
            return super().request(method, path, query=query, **kw)

    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    cluster = Refused(["Complete"])
    runner = jobs.JobRunner(cluster, attempts=1, poll=1, start_timeout=10, sleep=sleep,
                            clock=lambda: now[0])
    outcome = runner.run(lambda n: jobs.mover_job(jobs.BACKUP, "ns", "c", SETTINGS, attempt=n), jobs.BACKUP)
    assert outcome.attempts[0].reason == "no pod made after 10s: new"
    assert 10 < now[0] <= 12
    assert cluster.deleted == [outcome.attempts[0].job]


def test_a_pod_not_running_after_the_start_timeout_fails_with_what_the_scheduler_says() -> None:
    pending = {"status": {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
         "message": '0/4 nodes are available: persistentvolumeclaim "x" not found.'}]}}
    assert stuck_reason(pending, 10, 300) == ""
    assert stuck_reason(pending, 301, 300) == (
        'not started after 300s: 0/4 nodes are available: persistentvolumeclaim "x" not found.')
    running = {"status": {"phase": "Running", "containerStatuses": [{"state": {"running": {}}}]}}
    assert stuck_reason(running, 10_000, 300) == ""


def test_attempts_run_out() -> None:
    runner = jobs.JobRunner(FakeCluster(["Failed", "Failed"]), attempts=2, poll=0, sleep=lambda s: None)
    outcome = runner.run(lambda n: jobs.mover_job(jobs.RESTORE, "ns", "c", SETTINGS, attempt=n), jobs.RESTORE)
    assert not outcome.ok and len(outcome.attempts) == 2 and outcome.report == {}


# --- a pass --------------------------------------------------------------------------------------


class FakeQuiesce:
    name = "scale"

    def __init__(self, fail: bool = False) -> None:
        self.fail, self.applied, self.undone = fail, False, False

    def apply(self, claims) -> None:
        if self.fail:
            raise QuiesceFailed("pods still mount the volumes")
        self.applied = True

    def undo(self) -> list[str]:
        self.undone = True
        return []

    def to_dict(self) -> dict:
        return {"method": self.name}


BOUND = {"spec": {}}


def _plan(*names: str, kind: str = sync.FINAL) -> sync.SyncPlan:
    return sync.SyncPlan({Claim("ns", n): Placement(node="n1", pv=BOUND) for n in names}, kind)


def test_one_volume_failing_neither_stops_the_others_nor_hides_and_the_writers_come_back() -> None:
    def move(claim: Claim, placement: Placement) -> sync.VolumeResult:
        if claim.name == "bad":
            raise VolumeError("the store is full")
        return sync.VolumeResult(claim, node=placement.node)

    quiesce = FakeQuiesce()
    plan = _plan("a", "bad", "c")
    plan.claims[Claim("ns", "unbound")] = Placement(pv=None)
    report = sync.apply(plan, move, run_id="r", method="mover", quiesce=quiesce, parallel=2)
    assert [(v.claim.name, v.ok, v.skipped != "") for v in report.volumes] == [
        ("a", True, False), ("bad", False, False), ("c", True, False), ("unbound", True, True)]
    assert [p.to_dict() for p in report.problems()] == [{"what": "ns/bad", "error": "the store is full"}]
    assert quiesce.applied and quiesce.undone and report.undone
    assert report.stopped_seconds is not None


def test_a_final_pass_that_succeeds_leaves_the_writers_stopped() -> None:
    quiesce = FakeQuiesce()
    report = sync.apply(_plan("a"), lambda c, p: sync.VolumeResult(c), run_id="r", method="mover",
                        quiesce=quiesce)
    assert not report.partial and quiesce.applied and not quiesce.undone and not report.undone


def test_a_failed_quiesce_moves_nothing_and_is_reported() -> None:
    moved: list[Claim] = []
    report = sync.apply(_plan("a"), lambda c, p: moved.append(c) or sync.VolumeResult(c), run_id="r",
                        method="mover", quiesce=FakeQuiesce(fail=True))
    assert moved == [] and report.quiesce_error == "pods still mount the volumes" and report.partial


def test_parallelism_is_bounded() -> None:
    running, most = 0, 0
    lock = threading.Lock()

    def move(claim: Claim, placement: Placement) -> sync.VolumeResult:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.02)
        with lock:
            running -= 1
        return sync.VolumeResult(claim)

    sync.apply(_plan(*[f"v{i}" for i in range(12)], kind=sync.STAGE), move, run_id="r", method="mover",
               parallel=3)
    assert most == 3


def test_the_run_secrets_are_deleted_even_when_the_run_is_interrupted() -> None:
    old, new = FakeCluster([]), FakeCluster([])
    creds = jobs.StoreCredentials({"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"})
    secrets = [(jobs.RunSecrets(SETTINGS, creds), old), (jobs.RunSecrets(SETTINGS, creds), new)]
    seen: list[set[str]] = []
    quiesce = FakeQuiesce()

    def move(claim: Claim, placement: Placement) -> sync.VolumeResult:
        seen.append(set(old.secrets) | set(new.secrets))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sync.apply(_plan("a"), move, run_id="r", method="mover", secrets=secrets, quiesce=quiesce)
    assert seen == [{"ns"}]
    assert old.secrets == {} and new.secrets == {}
    assert quiesce.undone  # interrupted after the writers stopped: they come back


def test_a_secret_that_cannot_be_made_stops_the_run_before_anything_moves() -> None:
    class Refusing(FakeCluster):
        def request(self, method, path, **kw):
            if method == "POST" and path.endswith("/secrets"):
                raise ApiError("POST secrets: 403 Forbidden", status=403)
            return super().request(method, path, **kw)

    creds = jobs.StoreCredentials({"AWS_ACCESS_KEY_ID": "a"})
    with pytest.raises(VolumeError, match="cannot create the run's credentials Secret"):
        sync.apply(_plan("a"), lambda c, p: pytest.fail("moved"), run_id="r", method="mover",
                   secrets=[(jobs.RunSecrets(SETTINGS, creds), Refusing([]))])


def test_the_store_gets_its_volume_repository_once_before_movers_start_side_by_side(tmp_path) -> None:
    from migrator.store.local import LocalStore
    from migrator.volumes.repository import CONFIG

    store = LocalStore(str(tmp_path))
    sync.mover_jobs(FakeCluster([]), FakeCluster([]), SETTINGS, attempts=1, store=store)
    made = store.get_bytes(CONFIG)
    sync.mover_jobs(FakeCluster([]), FakeCluster([]), SETTINGS, attempts=1, store=store)
    assert store.get_bytes(CONFIG) == made  # the next run uses it, never makes another


def test_an_interrupted_pass_stops_every_waiting_mover_deletes_its_job_and_undoes() -> None:
    """Ctrl-C while movers wait: they stop at once (their Jobs deleted), the writers come
    back, the Secrets go, and the interrupt goes on up."""
    class Running(FakeCluster):
        def request(self, method, path, *, query=None, **kw):
            if method == "GET" and "/jobs/" in path:
                return {"status": {"active": 1}}
            if method == "GET" and path.endswith("/pods"):
                return {"items": [{"metadata": {"name": "p"}, "status": {
                    "phase": "Running", "containerStatuses": [{"state": {"running": {}}}]}}]}
            return super().request(method, path, query=query, **kw)

    old, new = Running(["Complete"] * 4), Running(["Complete"] * 4)
    stop = threading.Event()
    move = sync.mover_jobs(old, new, SETTINGS, attempts=3, poll=0.05, stop=stop)
    creds = jobs.StoreCredentials({"AWS_ACCESS_KEY_ID": "a"})
    secrets = [(jobs.RunSecrets(SETTINGS, creds), old)]
    quiesce = FakeQuiesce()

    def one_interrupts(claim: Claim, placement: Placement) -> sync.VolumeResult:
        if claim.name == "ctrl-c":
            time.sleep(0.3)  # the other movers are waiting on their Jobs by now
            raise KeyboardInterrupt
        return move(claim, placement)

    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        sync.apply(_plan("a", "b", "ctrl-c"), one_interrupts, run_id="r", method="mover",
                   secrets=secrets, quiesce=quiesce, parallel=3, stop=stop)
    assert time.monotonic() - started < 5
    assert sorted(old.deleted) == sorted(old.jobs)  # both waiting backups: deleted, not retried
    assert len(old.jobs) == 2 and new.jobs == {}
    assert quiesce.undone and old.secrets == {}
