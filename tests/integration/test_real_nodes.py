"""The real nodes run real pods: HTTP through a NodePort, bytes in a volume, exit codes, the
mover image; and a proving ground's real nodes leave nothing on the host when it stops."""
from __future__ import annotations

import json
import os
import re
import subprocess
import urllib.request
import uuid
from pathlib import Path

import pytest

import migrator
from migrator.errors import ApiError
from tests.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
CLUSTERS = ["old", "new"]


def _cluster_and_node(request, which: str):
    return request.getfixturevalue(f"{which}_cluster"), request.getfixturevalue("real_nodes")[which]


def _pod(name: str, node, image: str, script: str, *, restart: str = "Never",
         volumes: list | None = None, mounts: list | None = None, labels: dict | None = None) -> dict:
    container = {"name": "main", "image": image, "imagePullPolicy": "Never",
                 "command": ["sh", "-c", script], "volumeMounts": mounts or []}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {}},
            "spec": {"restartPolicy": restart, "containers": [container], "volumes": volumes or [],
                     "terminationGracePeriodSeconds": 1, **node.placement()}}


def _pod_phase(api, ns: str, name: str, phases=("Succeeded", "Failed")):
    pod = api.request("GET", f"/api/v1/namespaces/{ns}/pods/{name}")
    return pod if pod["status"].get("phase") in phases else None


def _logs(api, ns: str, name: str) -> str:
    return api.request_raw("GET", f"/api/v1/namespaces/{ns}/pods/{name}/log", accept="*/*").decode()


@pytest.mark.parametrize("which", CLUSTERS)
def test_real_node_is_ready_tainted_and_labelled(which, request):
    cluster, node = _cluster_and_node(request, which)
    api = cluster.client
    live = api.request("GET", f"/api/v1/nodes/{node.name}")
    info = live["status"]["nodeInfo"]

    assert info["kubeletVersion"] == f"v{cluster.version}" == node.kubelet_version
    assert info["containerRuntimeVersion"].startswith("containerd://")
    assert {"type": "InternalIP", "address": node.address} in live["status"]["addresses"]
    assert any(c["type"] == "Ready" and c["status"] == "True" for c in live["status"]["conditions"])
    assert all(live["metadata"]["labels"].get(k) == v for k, v in node.label.items())
    assert {k: node.taint[k] for k in ("key", "value", "effect")} in [
        {k: t.get(k) for k in ("key", "value", "effect")} for t in live["spec"].get("taints", [])]
    assert "kwok.x-k8s.io/node" not in live["metadata"].get("annotations", {})
    # The kwok nodes are all still there and Ready.
    kwok = [n for n in api.request("GET", "/api/v1/nodes")["items"]
            if n["metadata"].get("annotations", {}).get("kwok.x-k8s.io/node") == "fake"]
    assert len(kwok) >= 3
    assert all(any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])
               for n in kwok)


@pytest.mark.parametrize("which", CLUSTERS)
def test_httpd_deployment_answers_from_the_host_through_a_node_port(which, request, make_namespace):
    cluster, node = _cluster_and_node(request, which)
    api, ns = cluster.client, make_namespace(cluster)
    labels = {"app": "web"}
    serve = ('mkdir -p /www && echo "cluster=$CLUSTER pod=$(hostname)" > /www/index.html && '
             'echo serving && exec httpd -f -p 8080 -h /www')
    template = _pod("unused", node, node.images["busybox"], serve, restart="Always", labels=labels)
    container = template["spec"]["containers"][0]
    container["env"] = [{"name": "CLUSTER", "value": which}]
    container["ports"] = [{"containerPort": 8080}]
    container["readinessProbe"] = {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1}
    api.request("POST", f"/apis/apps/v1/namespaces/{ns}/deployments", body={
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": template["spec"]}}})
    svc = api.request("POST", f"/api/v1/namespaces/{ns}/services", body={
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"type": "NodePort", "selector": labels, "ports": [{"port": 80, "targetPort": 8080}]}})
    port = svc["spec"]["ports"][0]["nodePort"]

    def available() -> int | None:
        dep = api.request("GET", f"/apis/apps/v1/namespaces/{ns}/deployments/web")
        return dep.get("status", {}).get("availableReplicas")

    wait_until("two available replicas (readiness probed by the kubelet)",
               lambda: available() == 2, timeout=60, interval=0.3)
    pods = api.request("GET", f"/api/v1/namespaces/{ns}/pods")["items"]
    assert {p["spec"]["nodeName"] for p in pods} == {node.name}
    names = {p["metadata"]["name"] for p in pods}

    def get() -> str | None:
        try:
            with urllib.request.urlopen(f"http://{node.address}:{port}/", timeout=3) as resp:
                return resp.read().decode().strip()
        except OSError:
            return None

    answers: list[str | None] = []

    def both_pods_answered() -> bool:
        # kube-proxy adds the second endpoint a moment after the first: ask until both answer.
        answers.append(get())
        seen = {m.group(1) for a in answers if a and (m := re.fullmatch(rf"cluster={which} pod=(\S+)", a))}
        return seen == names

    wait_until(f"both pods answering at {node.address}:{port}", both_pods_answered,
               timeout=30, interval=0.05)
    assert all(a is None or a.startswith(f"cluster={which} pod=") for a in answers), answers

    pod = sorted(names)[0]
    assert "serving" in _logs(api, ns, pod)
    kubectl = request.getfixturevalue("proving_ground")["clusters"][which]["kubectl"]
    out = subprocess.run([kubectl, "--kubeconfig", cluster.kubeconfig, "--context", cluster.context,
                          "-n", ns, "exec", pod, "--", "cat", "/www/index.html"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"cluster={which} pod={pod}"


@pytest.mark.parametrize("which", CLUSTERS)
def test_volume_holds_bytes_written_by_one_pod_and_read_by_another(which, request, make_namespace):
    cluster, node = _cluster_and_node(request, which)
    api, ns = cluster.client, make_namespace(cluster)
    api.request("POST", f"/api/v1/namespaces/{ns}/persistentvolumeclaims", body={
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
        "spec": {"storageClassName": node.storage_class, "accessModes": ["ReadWriteOnce"],
                 "resources": {"requests": {"storage": "64Mi"}}}})
    def bound() -> dict | None:
        claim = api.request("GET", f"/api/v1/namespaces/{ns}/persistentvolumeclaims/data")
        return claim if claim.get("status", {}).get("phase") == "Bound" else None

    claim = wait_until("the claim Bound", bound, timeout=30, interval=0.3)
    pv_name = claim["spec"]["volumeName"]
    pv = api.request("GET", f"/api/v1/persistentvolumes/{pv_name}")
    directory = Path(pv["spec"]["local"]["path"])
    assert directory.parent == node.volumes_dir and directory.is_dir()

    token = uuid.uuid4().hex
    (directory / "from-host.txt").write_text(f"host {token}\n")  # a test fills the volume directly
    volume = [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]
    mount = [{"name": "data", "mountPath": "/data"}]
    api.request("POST", f"/api/v1/namespaces/{ns}/pods", body=_pod(
        "writer", node, node.images["busybox"],
        f"echo 'pod {token}' > /data/from-pod.txt && head -c 1048576 /dev/urandom > /data/blob "
        "&& sha256sum /data/blob | cut -d' ' -f1 > /data/blob.sha256 && cat /data/from-host.txt",
        volumes=volume, mounts=mount))
    writer = wait_until("the writer done", lambda: _pod_phase(api, ns, "writer"), timeout=60, interval=0.3)
    assert writer["status"]["phase"] == "Succeeded"
    assert _logs(api, ns, "writer").strip() == f"host {token}"

    # The bytes are on this machine's disk, in the claim's directory.
    import hashlib

    assert (directory / "from-pod.txt").read_text() == f"pod {token}\n"
    blob = (directory / "blob").read_bytes()
    assert len(blob) == 1048576
    assert (directory / "blob.sha256").read_text().strip() == hashlib.sha256(blob).hexdigest()

    api.request("POST", f"/api/v1/namespaces/{ns}/pods", body=_pod(
        "reader", node, node.images["busybox"],
        "cat /data/from-pod.txt && sha256sum /data/blob | cut -d' ' -f1",
        volumes=volume, mounts=mount))
    reader = wait_until("the reader done", lambda: _pod_phase(api, ns, "reader"), timeout=60, interval=0.3)
    assert reader["status"]["phase"] == "Succeeded"
    assert _logs(api, ns, "reader").split() == ["pod", token, hashlib.sha256(blob).hexdigest()]

    # Deleting the claim releases the volume: its PV and its directory go.
    for pod in ("writer", "reader"):
        api.request("DELETE", f"/api/v1/namespaces/{ns}/pods/{pod}")
    api.request("DELETE", f"/api/v1/namespaces/{ns}/persistentvolumeclaims/data")

    def volume_gone() -> bool:
        try:
            api.request("GET", f"/api/v1/persistentvolumes/{pv_name}")
        except ApiError as exc:
            return exc.status == 404 and not directory.exists()
        return False

    wait_until("the released volume deleted with its directory", volume_gone, timeout=60, interval=0.3)


@pytest.mark.parametrize("which", CLUSTERS)
def test_job_success_and_failure_are_real_exit_codes(which, request, make_namespace):
    cluster, node = _cluster_and_node(request, which)
    api, ns = cluster.client, make_namespace(cluster)
    for name, code in (("passes", 0), ("fails", 3)):
        pod = _pod("unused", node, node.images["busybox"], f"echo job {name}; exit {code}")
        api.request("POST", f"/apis/batch/v1/namespaces/{ns}/jobs", body={
            "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"backoffLimit": 0, "template": {"spec": pod["spec"]}}})

    def finished(name: str):
        job = api.request("GET", f"/apis/batch/v1/namespaces/{ns}/jobs/{name}")
        done = [c["type"] for c in job.get("status", {}).get("conditions", [])
                if c["type"] in ("Complete", "Failed") and c["status"] == "True"]
        return (job, done[0]) if done else None

    passed, passed_as = wait_until("the passing Job finished", lambda: finished("passes"),
                                   timeout=60, interval=0.3)
    failed, failed_as = wait_until("the failing Job finished", lambda: finished("fails"),
                                   timeout=60, interval=0.3)
    assert (passed_as, passed["status"].get("succeeded")) == ("Complete", 1)
    assert (failed_as, failed["status"].get("failed")) == ("Failed", 1)

    pods = api.request("GET", f"/api/v1/namespaces/{ns}/pods")["items"]
    codes = {p["metadata"]["labels"]["job-name"]:
             p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] for p in pods}
    assert codes == {"passes": 0, "fails": 3}
    assert {p["spec"]["nodeName"] for p in pods} == {node.name}
    failing_pod = next(p["metadata"]["name"] for p in pods if p["metadata"]["labels"]["job-name"] == "fails")
    assert _logs(api, ns, failing_pod).strip() == "job fails"


@pytest.mark.parametrize("which", CLUSTERS)
def test_pods_reach_the_object_store_through_their_node(which, request, make_namespace):
    cluster, node = _cluster_and_node(request, which)
    api, ns = cluster.client, make_namespace(cluster)
    host, port = node.s3_endpoint.removeprefix("http://").rsplit(":", 1)
    api.request("POST", f"/api/v1/namespaces/{ns}/pods", body=_pod(
        "probe", node, node.images["busybox"],
        f"printf 'GET /minio/health/live HTTP/1.0\\r\\nHost: {host}\\r\\n\\r\\n' | nc -w 5 {host} {port}"))
    pod = wait_until("the probe done", lambda: _pod_phase(api, ns, "probe"), timeout=60, interval=0.3)
    assert pod["status"]["phase"] == "Succeeded"
    status_line = _logs(api, ns, "probe").splitlines()[0].strip()
    assert re.fullmatch(r"HTTP/1\.[01] 200 OK", status_line), status_line


@pytest.mark.parametrize("which", CLUSTERS)
def test_mover_image_runs_this_project(which, request, make_namespace):
    cluster, node = _cluster_and_node(request, which)
    api, ns = cluster.client, make_namespace(cluster)
    probe = ("import json, migrator, migrator.store, sys; "
             "print(json.dumps({'version': migrator.__version__, 'python': sys.version_info[:2], "
             "'file': migrator.__file__}))")
    api.request("POST", f"/api/v1/namespaces/{ns}/pods", body=_pod(
        "mover", node, node.images["mover"],
        f'python -c "{probe}" && migrator --version && python -m migrator --help >/dev/null '
        "&& echo module-ok"))
    pod = wait_until("the mover pod done (first use unpacks the image)",
                     lambda: _pod_phase(api, ns, "mover"), timeout=120, interval=0.5)
    logs = _logs(api, ns, "mover")
    assert pod["status"]["phase"] == "Succeeded", logs
    lines = logs.splitlines()
    facts = json.loads(lines[0])
    assert facts["version"] == migrator.__version__
    assert tuple(facts["python"]) >= (3, 11)
    assert facts["file"].startswith("/opt/venv/")
    assert migrator.__version__ in lines[1]
    assert lines[2] == "module-ok"


# --- lifecycle --------------------------------------------------------------------------------


def _host_snapshot(run_dir: Path, gid: str) -> dict:
    """What a proving ground (by run directory and id) may have left on this machine."""
    procs = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(run_dir) in cmdline:
                procs.add(f"{entry.name} {cmdline[:120]}")
    mounts = [line for line in Path("/proc/self/mountinfo").read_text().splitlines()
              if str(run_dir) in line or f"mpg-{gid}-" in line]
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    cgroups = [str(p) for p in Path("/sys/fs/cgroup").glob(f"*/mpg-{gid}-*")]
    sockets = [str(p) for p in Path("/run/migrator-proving-ground").glob(f"mpg-{gid}-*")]
    iptables = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    return {
        "processes": sorted(procs), "mounts": mounts,
        "netns": [line for line in netns.splitlines() if f"mpg-{gid}-" in line],
        "links": [line for line in links.splitlines() if f"mpg{gid}" in line],
        "cgroups": cgroups, "socket directories": sockets,
        "host iptables chains": sorted(set(re.findall(r"^:((?:KUBE|CNI)-\S+)", iptables, re.M))),
    }


def _sysctls() -> dict[str, str]:
    from proving_ground import host  # scripts/ is put on the path by the fixture below

    return host.read_sysctls()


@pytest.fixture
def second_ground(tmp_path_factory, proving_ground):
    """Run ``scripts/proving-ground`` for another run directory; stopped after the test."""
    run_dir = tmp_path_factory.mktemp("pg2") / "ground"
    env = {**os.environ, "MIGRATOR_PG_DIR": str(run_dir)}

    def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([str(REPO / "scripts/proving-ground"), *args], env=env, capture_output=True,
                              text=True, timeout=timeout)

    yield run_dir, cli
    cli("stop")


@pytest.fixture
def scripts_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "scripts"))


def test_second_ground_runs_beside_the_first_and_leaves_nothing_when_stopped(
        second_ground, scripts_on_path, real_nodes, proving_ground):
    from proving_ground import nodes as pg_nodes

    run_dir, cli = second_ground
    gid = pg_nodes.ground_id(run_dir)
    first_gid = pg_nodes.ground_id(Path(proving_ground["kubeconfig"]).parent)
    assert gid != first_gid
    before, sysctls_before = _host_snapshot(run_dir, gid), _sysctls()
    assert not any(before.values()), before
    host_chains_before = _host_snapshot(Path("/nonexistent"), "none")["host iptables chains"]

    started = cli("start")
    assert started.returncode == 0, started.stderr[-3000:]
    described = cli("describe", "--json")
    assert described.returncode == 0, described.stderr
    second = json.loads(described.stdout)
    for cluster, node in real_nodes.items():
        other = second["real_nodes"][cluster]
        # Its own node, address, namespace, cgroup root and socket: nothing shared.
        assert other["name"] != node.name and other["address"] != node.address
        assert other["host_address"] != node.host_address
        assert other["netns"] == f"mpg-{gid}-{cluster}"
        assert other["cgroup_root"] == f"/mpg-{gid}-{cluster}"
        assert other["containerd_socket"] != proving_ground["real_nodes"][cluster]["containerd_socket"]
        assert Path(other["containerd_socket"]).parent.name == other["netns"]
    running = _host_snapshot(run_dir, gid)
    assert running["processes"] and running["netns"] and running["links"] and running["cgroups"]
    assert running["socket directories"]
    # Each node's iptables rules (KUBE-*, CNI-*) live in its namespace, none on the host.
    assert running["host iptables chains"] == host_chains_before
    assert not running["mounts"][1:] or all("/run/netns/" in m for m in running["mounts"]), running["mounts"]
    assert "real node" in cli("describe").stdout

    stopped = cli("stop")
    assert stopped.returncode == 0, stopped.stderr[-3000:]
    after = _host_snapshot(run_dir, gid)
    assert after == before
    # The first ground's kubelets still run: the sysctls they set stay as they were.
    assert _sysctls() == sysctls_before
    host_chains_after = _host_snapshot(Path("/nonexistent"), "none")["host iptables chains"]
    assert host_chains_after == host_chains_before
    for cluster in real_nodes:
        assert Path("/run/netns", f"mpg-{first_gid}-{cluster}").exists()
    # A second stop finds nothing to do and still succeeds.
    assert cli("stop").returncode == 0


def test_sysctls_come_back_when_the_last_ground_stops(tmp_path, monkeypatch, scripts_on_path):
    """The kubelets change host-wide sysctls: the first ground to hold real nodes records the
    originals, the last to release them puts them back (a stale holder does not count)."""
    from proving_ground import host

    proc = tmp_path / "proc"
    for key, value in (("vm/overcommit_memory", "0"), ("kernel/panic", "0")):
        (proc / key).parent.mkdir(parents=True, exist_ok=True)
        (proc / key).write_text(value + "\n")
    monkeypatch.setattr(host, "SHARED", tmp_path / "shared")
    monkeypatch.setattr(host, "SYSCTL_ROOT", proc)
    alive = {"a": True, "b": True, "stale": False}

    def is_alive(names):
        return alive[names[0]]

    with host.locked():
        host.hold(Path("/runs/stale"), ["stale"], is_alive)
    (proc / "kernel/panic").write_text("7\n")  # changed while only a dead holder is registered
    with host.locked():
        host.hold(Path("/runs/a"), ["a"], is_alive)  # the stale holder is dropped: 7 is original
    (proc / "vm/overcommit_memory").write_text("1\n")  # what a kubelet does
    (proc / "kernel/panic").write_text("10\n")
    with host.locked():
        host.hold(Path("/runs/b"), ["b"], is_alive)
        assert host.release(Path("/runs/a"), is_alive) == {}  # b still holds real nodes
    assert (proc / "vm/overcommit_memory").read_text() == "1\n"
    with host.locked():
        restored = host.release(Path("/runs/b"), is_alive)
    assert restored == {"vm/overcommit_memory": "0", "kernel/panic": "7"}
    assert host.read_sysctls() == {"vm/overcommit_memory": "0", "kernel/panic": "7"}
    assert not (tmp_path / "shared" / "holders.json").exists()
