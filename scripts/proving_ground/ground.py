"""Start, stop and describe the proving ground: two clusters, MinIO and BIND on loopback.

Each component gets free loopback ports chosen at start; where everything listens, with
the credentials to reach it, goes into ``state.json`` in the run directory, which the
test fixtures and the demo read. A second start first stops whatever the state file
still records, so a stale proving ground never collides with a new one.
"""
from __future__ import annotations

import base64
import fcntl
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from . import build, config, images, nodes, pki

# Each cluster's service and pod ranges differ, as they would when a migration swaps CNIs.
NETWORKS = {
    "old": {"service_cidr": "10.96.0.0/16", "pod_cidr": "10.244.0.0/16"},
    "new": {"service_cidr": "10.112.0.0/16", "pod_cidr": "10.248.0.0/16"},
}
NODES_PER_CLUSTER = 3
DNS_ZONE = "migrator.test."
TSIG_NAME = "migrator-key."
S3_BUCKET = "migrator"


def _log(msg: str) -> None:
    print(f"[proving-ground] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(what: str, check, timeout: float, proc: subprocess.Popen | None = None,
          log: Path | None = None) -> None:
    deadline = time.time() + timeout
    last: Exception | None = None
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace").splitlines()[-30:] if log else []
            raise SystemExit(f"{what}: process exited with {proc.returncode}\n" + "\n".join(tail))
        try:
            if check():
                return
        except Exception as exc:  # noqa: BLE001 - any failure just means "not yet"
            last = exc
        time.sleep(0.3)
    raise SystemExit(f"{what} not ready after {timeout:.0f}s (last error: {last})")


class Launcher:
    """Starts processes in their own session and remembers them for ``stop``."""

    def __init__(self, run: Path) -> None:
        self.run = run
        self.processes: list[dict] = []

    def start(self, name: str, args: list[str], env: dict | None = None,
              cwd: Path | None = None) -> tuple[subprocess.Popen, Path]:
        log = self.run / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, env={**os.environ, **(env or {})},
                                    cwd=cwd or self.run)
        self.processes.append({"name": name, "pid": proc.pid, "log": str(log)})
        _save_partial(self.run, self.processes)
        return proc, log


def _save_partial(run: Path, processes: list[dict]) -> None:
    # Written as soon as anything runs, so a failed start can still be stopped.
    (run / "processes.json").write_text(json.dumps(processes, indent=2))


# --- clusters ---------------------------------------------------------------------------


def _kubeconfig(name: str, server: str, pki_dir: Path, user: str) -> dict:
    def b64(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    return {
        "apiVersion": "v1", "kind": "Config", "current-context": name,
        "clusters": [{"name": name, "cluster": {
            "server": server, "certificate-authority-data": b64(pki_dir / "ca.crt")}}],
        "users": [{"name": f"{name}-{user}", "user": {
            "client-certificate-data": b64(pki_dir / f"{user}.crt"),
            "client-key-data": b64(pki_dir / f"{user}.key")}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": f"{name}-{user}"}}],
    }


def _write_json(path: Path, data: dict) -> Path:
    # JSON is valid YAML: every kubeconfig reader accepts it.
    path.write_text(json.dumps(data, indent=2))
    path.chmod(0o600)
    return path


def _ssl_context(pki_dir: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki_dir / "ca.crt"))
    ctx.load_cert_chain(str(pki_dir / "admin.crt"), str(pki_dir / "admin.key"))
    return ctx


def kube_call(server: str, pki_dir: Path, method: str, path: str, body: dict | None = None,
              ok_conflict: bool = False, content_type: str = "application/json") -> dict:
    """One admin request to a proving-ground API server (the proving ground's own use)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(server + path, data=data, method=method,
                                 headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, context=_ssl_context(pki_dir), timeout=30) as resp:
            return json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        if ok_conflict and exc.code == 409:
            return {}
        raise


def _node(name: str) -> dict:
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name,
                     "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                     "labels": {"type": "kwok", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                "kubernetes.io/arch": "amd64",
                                "topology.kubernetes.io/zone": "zone-" + name[-1]}},
        "spec": {},
        "status": {"allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                   "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                   "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux",
                                "kubeletVersion": "fake", "kubeProxyVersion": "fake"}},
    }


def _start_cluster(launcher: Launcher, name: str, version: str, pki_dir: Path,
                   bins: dict[str, Path]) -> dict:
    run = launcher.run
    minor = int(version.split(".")[1])
    kube = bins["kubernetes-" + name]
    etcd_port, etcd_peer, api_port = free_port(), free_port(), free_port()
    kcm_port, sched_port = free_port(), free_port()
    data = run / name / "etcd"
    data.mkdir(parents=True, exist_ok=True)
    etcd_url = f"http://127.0.0.1:{etcd_port}"
    proc, log = launcher.start(f"{name}-etcd", [
        str(bins["etcd"] / "etcd"), "--name", name, "--data-dir", str(data),
        "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
        "--listen-peer-urls", f"http://127.0.0.1:{etcd_peer}",
        "--initial-advertise-peer-urls", f"http://127.0.0.1:{etcd_peer}",
        "--initial-cluster", f"{name}=http://127.0.0.1:{etcd_peer}",
        "--unsafe-no-fsync", "--quota-backend-bytes", str(4 * 1024 ** 3),
        "--log-level", "warn"])
    _wait(f"{name} etcd", lambda: b'"health":"true"' in urllib.request.urlopen(
        etcd_url + "/health", timeout=2).read(), 60, proc, log)

    server = f"https://127.0.0.1:{api_port}"
    net = NETWORKS[name]
    args = [
        str(kube / "kube-apiserver"), f"--etcd-servers={etcd_url}",
        "--bind-address=127.0.0.1", f"--secure-port={api_port}", "--advertise-address=127.0.0.1",
        f"--tls-cert-file={pki_dir / 'apiserver.crt'}", f"--tls-private-key-file={pki_dir / 'apiserver.key'}",
        f"--client-ca-file={pki_dir / 'ca.crt'}",
        f"--service-account-key-file={pki_dir / 'sa.pub'}",
        f"--service-account-signing-key-file={pki_dir / 'sa.key'}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-cluster-ip-range={net['service_cidr']}",
        "--authorization-mode=RBAC", "--allow-privileged=true", "--endpoint-reconciler-type=none",
        f"--requestheader-client-ca-file={pki_dir / 'front-proxy-ca.crt'}",
        "--requestheader-allowed-names=front-proxy-client",
        "--requestheader-username-headers=X-Remote-User", "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={pki_dir / 'front-proxy-client.crt'}",
        f"--proxy-client-key-file={pki_dir / 'front-proxy-client.key'}",
        "--enable-aggregator-routing=true", "--v=1",
        # Real nodes: reach kubelets by address (their names resolve nowhere), as a client
        # the kubelets know.
        "--kubelet-preferred-address-types=InternalIP,Hostname",
        f"--kubelet-client-certificate={pki_dir / 'apiserver-kubelet-client.crt'}",
        f"--kubelet-client-key={pki_dir / 'apiserver-kubelet-client.key'}",
    ]
    if minor < 24:
        args.append("--insecure-port=0")
    proc, log = launcher.start(f"{name}-kube-apiserver", args)
    ctx = _ssl_context(pki_dir)
    _wait(f"{name} kube-apiserver", lambda: urllib.request.urlopen(
        server + "/readyz", context=ctx, timeout=5).status == 200, 180, proc, log)

    kubeconfigs = {}
    for user in ("admin", "controller-manager", "scheduler", "kwok"):
        kubeconfigs[user] = _write_json(run / name / f"{user}.kubeconfig",
                                        _kubeconfig(name, server, pki_dir, user))
    insecure_off = ["--port=0"] if minor < 24 else []

    def component_args(user: str, port: int) -> list[str]:
        kc = kubeconfigs[user]
        return [f"--kubeconfig={kc}", f"--authentication-kubeconfig={kc}",
                f"--authorization-kubeconfig={kc}", "--bind-address=127.0.0.1",
                f"--secure-port={port}", "--leader-elect=false", *insecure_off]

    launcher.start(f"{name}-kube-controller-manager", [
        str(kube / "kube-controller-manager"), *component_args("controller-manager", kcm_port),
        f"--service-account-private-key-file={pki_dir / 'sa.key'}",
        f"--root-ca-file={pki_dir / 'ca.crt'}", "--use-service-account-credentials=true",
        f"--cluster-signing-cert-file={pki_dir / 'ca.crt'}",
        f"--cluster-signing-key-file={pki_dir / 'ca.key'}",
        f"--cluster-cidr={net['pod_cidr']}", f"--service-cluster-ip-range={net['service_cidr']}",
        "--controllers=*,-nodeipam", "--v=1"])
    launcher.start(f"{name}-kube-scheduler", [
        str(kube / "kube-scheduler"), *component_args("scheduler", sched_port), "--v=1"])
    launcher.start(f"{name}-kwok", [
        str(bins["kwok"] / "kwok"), f"--kubeconfig={kubeconfigs['kwok']}",
        "--manage-all-nodes=false",
        "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
        "--disregard-status-with-annotation-selector=kwok.x-k8s.io/status=custom",
        f"--cidr={net['pod_cidr'].replace('.0.0/16', '.0.1/16')}", "--node-ip=10.0.0.1",
        "--node-lease-duration-seconds=40", f"--node-port={free_port()}"])

    for i in range(NODES_PER_CLUSTER):
        kube_call(server, pki_dir, "POST", "/api/v1/nodes", _node(f"{name}-node-{i}"), ok_conflict=True)

    def nodes_ready() -> bool:
        nodes = kube_call(server, pki_dir, "GET", "/api/v1/nodes")["items"]
        ready = [n for n in nodes for c in n.get("status", {}).get("conditions", [])
                 if c["type"] == "Ready" and c["status"] == "True"]
        return len(ready) >= NODES_PER_CLUSTER

    def default_sa() -> bool:
        kube_call(server, pki_dir, "GET", "/api/v1/namespaces/default/serviceaccounts/default")
        return True

    _wait(f"{name} nodes Ready (kwok)", nodes_ready, 120)
    _wait(f"{name} default service account (controller manager)", default_sa, 120)
    return {"version": version, "server": server, "context": name,
            "kubeconfig": str(kubeconfigs["admin"]), "kubectl": str(kube / "kubectl"),
            "etcd": etcd_url, **net}


# --- object store and DNS ---------------------------------------------------------------


def _start_minio(launcher: Launcher, minio: Path) -> dict:
    port, console = free_port(), free_port()
    data = launcher.run / "minio"
    data.mkdir(parents=True, exist_ok=True)
    access, secret = "migrator", secrets.token_hex(16)
    endpoint = f"http://127.0.0.1:{port}"
    proc, log = launcher.start("minio", [
        str(minio / "minio"), "server", str(data), "--address", f"127.0.0.1:{port}",
        "--console-address", f"127.0.0.1:{console}", "--quiet"],
        env={"MINIO_ROOT_USER": access, "MINIO_ROOT_PASSWORD": secret,
             "MINIO_BROWSER": "off", "MINIO_UPDATE": "off"})
    _wait("MinIO", lambda: urllib.request.urlopen(endpoint + "/minio/health/ready", timeout=2).status == 200,
          60, proc, log)
    import boto3  # the project's own dependency, installed in its environment

    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=access,
                      aws_secret_access_key=secret, region_name="us-east-1")
    s3.create_bucket(Bucket=S3_BUCKET)
    return {"endpoint": endpoint, "access_key": access, "secret_key": secret,
            "region": "us-east-1", "bucket": S3_BUCKET}


NAMED_CONF = """\
options {{
    directory "{dir}";
    pid-file "{dir}/named.pid";
    session-keyfile "{dir}/session.key";
    managed-keys-directory "{dir}";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    allow-query {{ 127.0.0.1; }};
    notify no;
}};
controls {{ }};
key "{key}" {{
    algorithm hmac-sha256;
    secret "{secret}";
}};
zone "{zone}" {{
    type primary;
    file "{dir}/zone.db";
    journal "{dir}/zone.db.jnl";
    allow-update {{ key "{key}"; }};
}};
"""

ZONE_DB = """\
$TTL 60
@   IN SOA ns1.{zone} hostmaster.{zone} ( 1 60 60 3600 30 )
    IN NS  ns1.{zone}
ns1 IN A   127.0.0.1
"""


def _named_binary() -> str:
    for candidate in (shutil.which("named"), "/usr/sbin/named"):
        if candidate and Path(candidate).exists():
            return candidate
    raise SystemExit("BIND's named is not installed (the bootstrap step installs Debian's bind9)")


def _start_bind(launcher: Launcher) -> dict:
    import dns.message
    import dns.query

    port = free_port()
    directory = launcher.run / "bind"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    tsig_secret = base64.b64encode(secrets.token_bytes(32)).decode()
    (directory / "named.conf").write_text(NAMED_CONF.format(
        dir=directory, port=port, key=TSIG_NAME.rstrip("."), secret=tsig_secret, zone=DNS_ZONE))
    (directory / "zone.db").write_text(ZONE_DB.format(zone=DNS_ZONE))
    proc, log = launcher.start("bind", [_named_binary(), "-g", "-c", str(directory / "named.conf")])

    def answers() -> bool:
        query = dns.message.make_query(DNS_ZONE, "SOA")
        return bool(dns.query.udp(query, "127.0.0.1", port=port, timeout=1).answer)

    _wait("BIND", answers, 30, proc, log)
    # The key as a BIND key clause, for what names its file (a plan's traffic.provider.tsig).
    key_file = directory / "tsig.key"
    key_file.write_text(f'key "{TSIG_NAME.rstrip(".")}" {{\n  algorithm hmac-sha256;\n'
                        f'  secret "{tsig_secret}";\n}};\n')
    key_file.chmod(0o600)
    return {"server": "127.0.0.1", "port": port, "zone": DNS_ZONE, "tsig_name": TSIG_NAME,
            "tsig_algorithm": "hmac-sha256", "tsig_secret": tsig_secret,
            "tsig_key_file": str(key_file)}


# --- the whole ground -------------------------------------------------------------------


def _merged_kubeconfig(run: Path, clusters: dict[str, dict]) -> Path:
    merged = {"apiVersion": "v1", "kind": "Config", "current-context": "old",
              "clusters": [], "users": [], "contexts": []}
    for info in clusters.values():
        one = json.loads(Path(info["kubeconfig"]).read_text())
        for key in ("clusters", "users", "contexts"):
            merged[key] += one[key]
    return _write_json(run / "kubeconfig", merged)


def fixtures_dir() -> Path:
    """The `testdata/` of the k8s.io/api module of the old release (one file per kind)."""
    return config.cache_dir() / "fixtures" / f"k8s-api-v0.{config.KUBE_VERSIONS['old'].split('.', 1)[1]}"


def fetch_fixtures() -> Path:
    dest = fixtures_dir()
    if (dest / ".done").exists():
        return dest
    version = "v0." + config.KUBE_VERSIONS["old"].split(".", 1)[1]
    out = subprocess.run(["go", "mod", "download", "-json", f"k8s.io/api@{version}"],
                         capture_output=True, text=True, check=True,
                         env={**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod"},
                         cwd=config.cache_dir())
    source = Path(json.loads(out.stdout)["Dir"]) / "testdata" / "HEAD"
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for path in sorted(source.iterdir()):
        if path.suffix in (".json", ".yaml"):  # the protobuf twins are not needed
            (dest / path.name).write_bytes(path.read_bytes())
    (dest / ".done").write_text(version + "\n")
    return dest


def build_all() -> dict[str, Path]:
    """Build (or find cached) every server and image. One build at a time per cache: two
    checkouts building at once would otherwise share the same half-made entries."""
    config.cache_dir().mkdir(parents=True, exist_ok=True)
    with open(config.cache_dir() / ".build.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _log("another build is using the cache; waiting for it to finish")
            fcntl.flock(lock, fcntl.LOCK_EX)
        return _build_all()


def _build_all() -> dict[str, Path]:
    started = time.time()
    bins = {f"kubernetes-{name}": build.build_kubernetes(version)
            for name, version in config.KUBE_VERSIONS.items()}
    bins["etcd"] = build.build_etcd()
    bins["kwok"] = build.build_kwok()
    bins["minio"] = build.build_minio()
    for name, version in config.KUBE_VERSIONS.items():
        bins[f"kubenode-{name}"] = build.build_kube_node(version)
    images.busybox_layer()
    images.build_mover_base()
    fetch_fixtures()
    _log(f"every server is built ({time.time() - started:.0f}s)")
    return bins


def start() -> dict:
    """Build what is missing, stop any previous proving ground, start a fresh one."""
    bins = build_all()
    stop(quiet=True)
    started = time.time()
    run = config.run_dir()
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    pki_dir = run / "pki"
    pki.create(pki_dir)
    launcher = Launcher(run)
    try:
        clusters = {name: _start_cluster(launcher, name, version, pki_dir, bins)
                    for name, version in config.KUBE_VERSIONS.items()}
        state = {
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "kubeconfig": str(_merged_kubeconfig(run, clusters)),
            "clusters": clusters,
            "s3": _start_minio(launcher, bins["minio"]),
            "dns": _start_bind(launcher),
            "fixtures": {"k8s_api_testdata": str(fixtures_dir())},
            "processes": launcher.processes,
        }
        state["real_nodes"] = nodes.start(launcher, clusters, pki_dir, bins, state["s3"])
        state["images"] = dict(config.IMAGES)
    except BaseException:
        _log("start failed; stopping what was started (logs are in " + str(run / "logs") + ")")
        stop(quiet=True)
        raise
    config.state_file().write_text(json.dumps(state, indent=2))
    _log(f"proving ground up in {time.time() - started:.0f}s; state in {config.state_file()}")
    return state


def _alive(pid: int) -> bool:
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False  # our own child, now reaped
    except ChildProcessError:
        pass  # not our child: ask the kernel instead
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def stop(quiet: bool = False) -> None:
    """Stop every process the run directory records (each in its own process group), then
    remove what the real nodes left on the host."""
    listing = config.run_dir() / "processes.json"
    if not listing.exists():
        left = nodes.cleanup(config.run_dir(), quiet=quiet)
        if left:
            raise SystemExit("could not remove: " + ", ".join(left))
        if not quiet:
            _log("nothing to stop")
        return
    processes = json.loads(listing.read_text())
    for proc in reversed(processes):
        try:
            os.killpg(proc["pid"], signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    deadline = time.time() + 15
    while time.time() < deadline and any(_alive(p["pid"]) for p in processes):
        time.sleep(0.2)
    for proc in processes:
        try:
            os.killpg(proc["pid"], signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    left = nodes.cleanup(config.run_dir(), quiet=quiet)
    listing.unlink()
    config.state_file().unlink(missing_ok=True)
    if not quiet:
        _log(f"stopped {len(processes)} processes")
    if left:
        raise SystemExit("could not remove: " + ", ".join(left))


def describe() -> dict:
    """The state file, with each process marked alive or dead."""
    path = config.state_file()
    if not path.exists():
        raise SystemExit("the proving ground is not running (start it with scripts/proving-ground start)")
    state = json.loads(path.read_text())
    for proc in state["processes"]:
        proc["alive"] = _alive(proc["pid"])
    return state
