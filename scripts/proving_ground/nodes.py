"""Real nodes: one per cluster, next to kwok's, running real pods.

Each cluster gets the kubelet and kube-proxy of its own release, a containerd of its own
(socket, root, state, runc root, CNI config), runc and Debian's CNI plugins (bridge,
host-local, portmap). Two clusters' nodes share this machine, so each node has:

- a network namespace with a veth pair to the host: a /30 of 10.231.0.0/16 (a /24 per
  proving ground), the node at ``.2``, the host at ``.1``; the node's pods live on a
  bridge inside the namespace, their subnet exists nowhere else, and the CNI bridge
  masquerades what they send out. Its iptables rules (KUBE-*, CNI-*) live and die there;
- a mount namespace (made by containerd's wrapper; the kubelet and kube-proxy enter it) with
  a private ``/run`` and its own ``/var/lib`` and ``/var/log``: the paths a kubelet uses
  whatever its ``--root-dir`` (device plugins, pod logs) and the CRI's pinned pod network
  namespaces never meet another node's, and vanish with the node;
- a cgroup root (``/mpg-<id>-<cluster>`` in every hierarchy) that holds every pod.

The host's servers listen on loopback; a forwarder on the host side of each link carries
the node's API calls (and pods' S3 requests) to them. A StorageClass with a local-path
provisioner turns claims into directories under the run directory.

Everything is named after an id derived from the run directory, so a second proving ground
never collides, and ``cleanup`` can find (and remove) what a crashed one left behind.
"""
from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from . import config, host, images, pki

CGROUP_FS = Path("/sys/fs/cgroup")
CNI_BIN = Path("/usr/lib/cni")
NODE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _log(msg: str) -> None:
    print(f"[proving-ground] {msg}", file=sys.stderr, flush=True)


def ground_id(run: Path) -> str:
    """Four hex digits naming everything host-wide that belongs to this run directory."""
    return hashlib.sha256(str(run.resolve()).encode()).hexdigest()[:4]


@dataclass
class Node:
    cluster: str
    version: str
    name: str
    netns: str
    veth: str
    cgroup_root: str
    host_ip: str
    node_ip: str
    pod_subnet: str
    directory: str

    @property
    def dir(self) -> Path:
        return Path(self.directory)

    @property
    def minor(self) -> int:
        return int(self.version.split(".")[1])

    @property
    def socket(self) -> Path:
        # A socket's path is limited to 107 bytes, and a run directory can be anywhere: the
        # sockets live under /run, named like the node's namespace, removed by cleanup.
        return socket_dir(self.netns) / "containerd.sock"


def socket_dir(netns: str) -> Path:
    return host.SHARED / netns


def plan(run: Path, slot: int) -> dict[str, Node]:
    gid = ground_id(run)
    net = ipaddress.ip_network(config.NODE_NETWORK)
    base = int(net.network_address) + slot * 256
    nodes = {}
    for i, (cluster, version) in enumerate(config.KUBE_VERSIONS.items()):
        link = base + i * 4
        nodes[cluster] = Node(
            cluster=cluster, version=version, name=f"{cluster}-real-{gid}",
            netns=f"mpg-{gid}-{cluster}", veth=f"mpg{gid}{cluster[0]}",
            cgroup_root=f"/mpg-{gid}-{cluster}",
            host_ip=str(ipaddress.ip_address(link + 1)), node_ip=str(ipaddress.ip_address(link + 2)),
            pod_subnet=config.REAL_NODE_POD_SUBNET[cluster], directory=str(run / "nodes" / cluster))
    return nodes


def _sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(cmd), capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise SystemExit(f"command failed: {' '.join(cmd)}\n{proc.stderr.strip()}")
    return proc


# --- network ---------------------------------------------------------------------------------


def _netns_exists(name: str) -> bool:
    return Path("/run/netns", name).exists()


def _free_slot() -> int:
    """The first /24 of the node network with no address on this host (call under the lock)."""
    used = _sh("ip", "-o", "-4", "addr", "show").stdout
    net = ipaddress.ip_network(config.NODE_NETWORK)
    for slot in range(256):
        prefix = str(ipaddress.ip_address(int(net.network_address) + slot * 256)).rsplit(".", 1)[0] + "."
        if f" {prefix}" not in used:
            return slot
    raise SystemExit(f"every /24 of {config.NODE_NETWORK} is in use on this host")


def _make_network(node: Node) -> None:
    if _netns_exists(node.netns):
        raise SystemExit(f"network namespace {node.netns} exists: a stale node (stop cleans it)")
    _sh("ip", "netns", "add", node.netns)
    _sh("ip", "link", "add", node.veth, "type", "veth", "peer", "name", "eth0", "netns", node.netns)
    _sh("ip", "addr", "add", f"{node.host_ip}/30", "dev", node.veth)
    _sh("ip", "link", "set", node.veth, "up")
    ns = ["ip", "-n", node.netns]
    _sh(*ns, "link", "set", "lo", "up")
    _sh(*ns, "addr", "add", f"{node.node_ip}/30", "dev", "eth0")
    _sh(*ns, "link", "set", "eth0", "up")
    _sh(*ns, "route", "add", "default", "via", node.host_ip)


# --- cgroups ---------------------------------------------------------------------------------


def _hierarchies() -> list[Path]:
    """Every cgroup hierarchy mounted under /sys/fs/cgroup (v1 controllers, named, unified)."""
    return sorted(p for p in CGROUP_FS.iterdir() if p.is_dir() and not p.is_symlink() and os.path.ismount(p))


def _make_cgroups(node: Node) -> None:
    for hierarchy in _hierarchies():
        path = hierarchy / node.cgroup_root.lstrip("/")
        path.mkdir(exist_ok=True)
        if hierarchy.name == "cpuset" or (hierarchy / "cpuset.cpus").exists():
            for knob in ("cpuset.cpus", "cpuset.mems"):
                if (path / knob).exists() and not (path / knob).read_text().strip():
                    (path / knob).write_text((hierarchy / knob).read_text())


def _cgroup_pids(root: str) -> set[int]:
    pids = set()
    for hierarchy in _hierarchies():
        top = hierarchy / root.lstrip("/")
        if top.exists():
            for procs in top.rglob("cgroup.procs"):
                try:
                    pids.update(int(p) for p in procs.read_text().split())
                except OSError:
                    pass
    return pids


def _remove_cgroups(root: str) -> list[str]:
    left = []
    for hierarchy in _hierarchies():
        top = hierarchy / root.lstrip("/")
        if not top.exists():
            continue
        for directory in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            try:
                directory.rmdir()
            except OSError:
                pass
        try:
            top.rmdir()
        except OSError as exc:
            left.append(f"{top}: {exc}")
    return left


# --- configuration files -------------------------------------------------------------------


def _containerd_config(node: Node) -> str:
    d = node.dir / "containerd"
    return f"""version = 2
root = "{d / 'root'}"
state = "{d / 'state'}"
oom_score = 0
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
                    "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{node.socket}"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{d / 'opt'}"

# Garbage is collected after many deletions, not after each (nor once at start): a layer
# shared with the cache is recorded before an image refers to it (images._share_layer).
[plugins."io.containerd.gc.v1.scheduler"]
  deletion_threshold = 200
  mutation_threshold = 0
  startup_delay = "0s"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{config.IMAGES['pause']}"
  # The host lacks CAP_SYS_RESOURCE: a sandbox may not lower its oom_score_adj.
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "{shutil.which('runc') or '/usr/sbin/runc'}"
        Root = "{d / 'runc'}"
        SystemdCgroup = false

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN}"
    conf_dir = "{node.dir / 'cni' / 'net.d'}"
    max_conf_num = 1

  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = ""
"""


def _cni_config(node: Node) -> dict:
    return {
        "cniVersion": "0.4.0", "name": "migrator-pg",
        "plugins": [
            {"type": "bridge", "bridge": "cni0", "isGateway": True, "ipMasq": True, "hairpinMode": True,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": node.pod_subnet}]],
                      "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(node.dir / "cni" / "ipam")}},
            {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
        ],
    }


def _kubeconfig(node: Node, api_port: int, pki_dir: Path, stem: str) -> dict:
    # The node reaches its API server through the forwarder at its gateway; the serving
    # certificate names localhost, which is what the node checks.
    return {
        "apiVersion": "v1", "kind": "Config", "current-context": node.cluster,
        "clusters": [{"name": node.cluster, "cluster": {
            "server": f"https://{node.host_ip}:{api_port}", "tls-server-name": "localhost",
            "certificate-authority": str(pki_dir / "ca.crt")}}],
        "users": [{"name": stem, "user": {"client-certificate": str(pki_dir / f"{stem}.crt"),
                                          "client-key": str(pki_dir / f"{stem}.key")}}],
        "contexts": [{"name": node.cluster, "context": {"cluster": node.cluster, "user": stem}}],
    }


def _kubelet_config(node: Node, pki_dir: Path) -> dict:
    cfg = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
        "address": node.node_ip, "port": 10250, "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1", "healthzPort": 10248,
        # The API server calls with its kubelet client certificate (same CA).
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": False},
                           "x509": {"clientCAFile": str(pki_dir / "ca.crt")}},
        "authorization": {"mode": "AlwaysAllow"},
        "cgroupDriver": "cgroupfs", "cgroupRoot": node.cgroup_root, "cgroupsPerQOS": True,
        "enforceNodeAllocatable": [], "failSwapOn": False, "makeIPTablesUtilChains": False,
        "protectKernelDefaults": False, "oomScoreAdj": 0,
        "clusterDomain": "cluster.local", "resolvConf": "",
        "evictionHard": {"memory.available": "50Mi", "nodefs.available": "1%",
                         "nodefs.inodesFree": "1%", "imagefs.available": "1%"},
        # Locally loaded images can never be pulled again: never collect them.
        "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
        "serializeImagePulls": False, "maxPods": 40, "rotateCertificates": False,
        # Status is computed often (Ready soon after start) but posted only when it changes.
        "nodeStatusUpdateFrequency": "2s", "nodeStatusReportFrequency": "1m",
        "runtimeRequestTimeout": "2m",
    }
    if node.minor >= 24:
        cfg["registerWithTaints"] = [config.REAL_NODE_TAINT]
    if node.minor >= 27:
        cfg["containerRuntimeEndpoint"] = f"unix://{node.socket}"
    if node.minor >= 31:
        cfg["failCgroupV1"] = False  # this machine has cgroup v1
    return cfg


def _kube_proxy_config(node: Node, cluster_cidr: str) -> dict:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(node.dir / "kube-proxy.kubeconfig")},
        "hostnameOverride": node.name, "bindAddress": node.node_ip, "clusterCIDR": cluster_cidr,
        "mode": "iptables", "oomScoreAdj": 0,
        "nodePortAddresses": [f"{node.node_ip}/32"],
        "metricsBindAddress": "127.0.0.1:10249",
        # Healthy once its rules are in place; reachable from the host to say so.
        "healthzBindAddress": f"{node.node_ip}:10256",
        # 0 leaves the (host-wide) conntrack table settings as they are.
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s",
                      "tcpCloseWaitTimeout": "0s"},
    }


# --- start ----------------------------------------------------------------------------------


def _node_alive(names: list[str]) -> bool:
    """A proving ground holds real nodes while a process runs in one of its namespaces (a
    namespace left by a killed ground holds nothing)."""
    return any(_netns_pids(name) for name in names)


def _record(run: Path) -> Path:
    return run / "nodes" / "nodes.json"


def _wait(what: str, check, timeout: float, procs: list | None = None) -> None:
    deadline = time.time() + timeout
    last: Exception | None = None
    while time.time() < deadline:
        for proc, log in procs or []:
            if proc.poll() is not None:
                tail = Path(log).read_text(errors="replace").splitlines()[-25:]
                raise SystemExit(f"{what}: process exited with {proc.returncode}\n" + "\n".join(tail))
        try:
            if check():
                return
        except Exception as exc:  # noqa: BLE001 - not yet
            last = exc
        time.sleep(0.2)
    raise SystemExit(f"{what} not reached after {timeout:.0f}s (last error: {last})")


def _ctr_ready(node: Node) -> bool:
    return subprocess.run(["ctr", "-a", str(node.socket), "version"], capture_output=True,
                          timeout=5).returncode == 0


def start(launcher, clusters: dict[str, dict], pki_dir: Path, bins: dict[str, Path], s3: dict) -> dict:
    """Start a real node in each cluster; returns what goes under ``real_nodes`` in the state."""
    from .ground import kube_call  # ground imports this module

    run = launcher.run
    started = time.time()
    (run / "nodes").mkdir(parents=True, exist_ok=True)
    with host.locked():
        slot = _free_slot()
        nodes = plan(run, slot)
        # Recorded before anything is made, so a failed start is cleaned up like any other.
        _record(run).write_text(json.dumps({k: asdict(n) for k, n in nodes.items()}, indent=2))
        host.hold(run, [n.netns for n in nodes.values()], _node_alive)
        for node in nodes.values():
            _make_network(node)
    s3_port = int(s3["endpoint"].rsplit(":", 1)[1])
    routes = []
    for node in nodes.values():
        api_port = int(clusters[node.cluster]["server"].rsplit(":", 1)[1])
        routes += [f"{node.host_ip}:{api_port}=127.0.0.1:{api_port}",
                   f"{node.host_ip}:{s3_port}=127.0.0.1:{s3_port}"]
    launcher.start("real-nodes-forwarder", [sys.executable, "-m", "proving_ground.forward", *routes],
                   cwd=config.REPO / "scripts")

    pki.issue_client(pki_dir, "kube-proxy", "system:kube-proxy")
    containerds = {}
    for node in nodes.values():
        _make_cgroups(node)
        pki.issue_client(pki_dir, f"node-{node.cluster}", f"system:node:{node.name}", "system:nodes")
        for sub in ("containerd", "cni/net.d", "cni/ipam", "var-lib", "var-log", "volumes",
                    "volume-plugins"):
            (node.dir / sub).mkdir(parents=True, exist_ok=True)
        socket_dir(node.netns).mkdir(parents=True, exist_ok=True)
        (node.dir / "containerd.toml").write_text(_containerd_config(node))
        (node.dir / "cni/net.d/10-migrator-pg.conflist").write_text(json.dumps(_cni_config(node), indent=2))
        # A mount namespace of the node's own: private /run (but for the directory of its
        # socket, carried through so the host sees it), its own /var/lib and /var/log.
        sockets, through = socket_dir(node.netns), node.dir / "socket-dir"
        through.mkdir(exist_ok=True)
        setup = (f"set -e; mount --bind {sockets} {through}; "
                 "mount -t tmpfs -o mode=755 tmpfs /run; "
                 f"mkdir -p /run/netns /run/containerd {sockets}; "
                 f"mount --bind {through} {sockets}; umount {through}; "
                 f"mount --bind {node.dir / 'var-lib'} /var/lib; "
                 f"mount --bind {node.dir / 'var-log'} /var/log; "
                 'exec "$@"')
        proc, log = launcher.start(f"{node.cluster}-containerd", [
            "nsenter", f"--net=/run/netns/{node.netns}", "--",
            "unshare", "--mount", "--propagation", "slave", "--",
            "sh", "-c", setup, "node-mounts",
            "containerd", "--config", str(node.dir / "containerd.toml")], env={"PATH": NODE_PATH})
        containerds[node.cluster] = (proc, log)
    for cluster, node in nodes.items():
        _wait(f"{cluster} containerd", lambda node=node: _ctr_ready(node), 30, [containerds[cluster]])

    phases = {"network and containerd": time.time() - started}
    # Images: the small ones (the sandbox image among them) before the kubelets start; the
    # mover, large, loads while the kubelets register (each node's import in a thread).
    image_set = images.node_images(run / "images")
    small = {name: image for name, image in image_set.items() if name != config.IMAGES["mover"]}
    for node in nodes.values():
        images.import_images(str(node.socket), small, node.dir / "ctr-import.log")
    errors: list[BaseException] = []

    def load_mover(node: Node) -> None:
        try:
            mover = config.IMAGES["mover"]
            images.import_images(str(node.socket), {mover: image_set[mover]}, node.dir / "ctr-import.log",
                                 content_root=node.dir / "containerd" / "root")
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    loaders = [threading.Thread(target=load_mover, args=(n,), daemon=True) for n in nodes.values()]
    for thread in loaders:
        thread.start()
    phases["small images"] = time.time() - started - sum(phases.values())

    kube_procs = {}
    for node in nodes.values():
        info = clusters[node.cluster]
        server, api_port = info["server"], int(info["server"].rsplit(":", 1)[1])
        # The node's identity may do what any node does (no Node authorizer here).
        kube_call(server, pki_dir, "POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": f"migrator:real-node:{node.name}"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "system:node"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                          "name": f"system:node:{node.name}"}]}, ok_conflict=True)
        _storage_class(server, pki_dir, kube_call)
        for stem, file in ((f"node-{node.cluster}", "kubelet.kubeconfig"),
                           ("kube-proxy", "kube-proxy.kubeconfig")):
            (node.dir / file).write_text(json.dumps(_kubeconfig(node, api_port, pki_dir, stem), indent=2))
        (node.dir / "kubelet.json").write_text(json.dumps(_kubelet_config(node, pki_dir), indent=2))
        proxy_config = _kube_proxy_config(node, info["pod_cidr"])
        (node.dir / "kube-proxy.json").write_text(json.dumps(proxy_config, indent=2))
        kubenode = bins[f"kubenode-{node.cluster}"]
        enter = ["nsenter", f"--target={containerds[node.cluster][0].pid}", "--mount", "--net", "--"]
        args = [str(kubenode / "kubelet"), f"--config={node.dir / 'kubelet.json'}",
                f"--kubeconfig={node.dir / 'kubelet.kubeconfig'}", f"--hostname-override={node.name}",
                f"--node-ip={node.node_ip}", f"--node-labels={config.REAL_NODE_LABEL}=true",
                f"--volume-plugin-dir={node.dir / 'volume-plugins'}", "--v=1"]
        if node.minor < 24:
            taint = config.REAL_NODE_TAINT
            args += ["--container-runtime=remote", f"--container-runtime-endpoint=unix://{node.socket}",
                     f"--pod-infra-container-image={config.IMAGES['pause']}",
                     # This release reads taints from the flag only.
                     f"--register-with-taints={taint['key']}={taint['value']}:{taint['effect']}"]
        elif node.minor < 27:
            args += [f"--container-runtime-endpoint=unix://{node.socket}"]
        kube_procs[node.cluster] = [launcher.start(f"{node.cluster}-kubelet", enter + args,
                                                   env={"PATH": NODE_PATH})]
        kube_procs[node.cluster].append(launcher.start(f"{node.cluster}-kube-proxy", enter + [
            str(kubenode / "kube-proxy"), f"--config={node.dir / 'kube-proxy.json'}", "--v=1"],
            env={"PATH": NODE_PATH}))
        launcher.start(f"{node.cluster}-local-path-provisioner", [
            sys.executable, "-m", "proving_ground.provisioner", "--server", server,
            "--pki", str(pki_dir), "--node", node.name, "--volumes", str(node.dir / "volumes")],
            cwd=config.REPO / "scripts")

    # No node IPAM controller runs: the node's pod range is set here, once it has registered.
    # It tells the truth about the node, and a kubelet posts its status at once when it sees it.
    for cluster, node in nodes.items():
        server = clusters[cluster]["server"]
        _wait(f"{cluster} real node {node.name} registered", lambda node=node, server=server: kube_call(
            server, pki_dir, "GET", f"/api/v1/nodes/{node.name}"), 60,
            [*kube_procs[cluster], containerds[cluster]])
        kube_call(server, pki_dir, "PATCH", f"/api/v1/nodes/{node.name}",
                  {"spec": {"podCIDR": node.pod_subnet, "podCIDRs": [node.pod_subnet]}},
                  content_type="application/merge-patch+json")

    state = {}
    for cluster, node in nodes.items():
        server = clusters[cluster]["server"]

        def ready(node=node, server=server) -> bool:
            n = kube_call(server, pki_dir, "GET", f"/api/v1/nodes/{node.name}")
            conditions = n["status"].get("conditions", [])
            return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

        _wait(f"{cluster} real node {node.name} Ready", ready, 60,
              [*kube_procs[cluster], containerds[cluster]])
        _wait(f"{cluster} kube-proxy", lambda node=node: _proxy_healthy(node), 30, kube_procs[cluster][1:])
        state[cluster] = {
            "name": node.name, "address": node.node_ip, "host_address": node.host_ip,
            "kubelet_version": f"v{node.version}", "netns": node.netns, "veth": node.veth,
            "cgroup_root": node.cgroup_root, "pod_subnet": node.pod_subnet,
            "containerd_socket": str(node.socket), "volumes_dir": str(node.dir / "volumes"),
            "storage_class": config.STORAGE_CLASS,
            "label": {config.REAL_NODE_LABEL: "true"}, "taint": config.REAL_NODE_TAINT,
            "api_server_from_node": f"https://{node.host_ip}:{clusters[cluster]['server'].rsplit(':', 1)[1]}",
            "s3_endpoint_from_pods": f"http://{node.host_ip}:{s3_port}",
        }
    phases["kubelets Ready"] = time.time() - started - sum(phases.values())
    for thread in loaders:
        thread.join()
    if errors:
        raise errors[0]
    phases["mover image loaded"] = time.time() - started - sum(phases.values())
    _log("real nodes: " + ", ".join(f"{what} +{took:.1f}s" for what, took in phases.items()))
    _log(f"real nodes Ready in {time.time() - started:.1f}s: "
         + ", ".join(f"{n.name} ({n.node_ip})" for n in nodes.values()))
    return state


def _proxy_healthy(node: Node) -> bool:
    with urllib.request.urlopen(f"http://{node.node_ip}:10256/healthz", timeout=2) as resp:
        return resp.status == 200


def _storage_class(server: str, pki_dir: Path, kube_call) -> None:
    kube_call(server, pki_dir, "POST", "/apis/storage.k8s.io/v1/storageclasses", {
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": config.STORAGE_CLASS,
                     "labels": {config.REAL_NODE_LABEL: "true"}},
        "provisioner": config.PROVISIONER, "reclaimPolicy": "Delete",
        # Claims bind at once: a test may fill the directory before any pod mounts it.
        "volumeBindingMode": "Immediate"}, ok_conflict=True)


# --- stop -----------------------------------------------------------------------------------


def _netns_pids(name: str) -> set[int]:
    if not _netns_exists(name):
        return set()
    out = _sh("ip", "netns", "pids", name, check=False).stdout
    return {int(p) for p in out.split()}


def _kill_all(pids: set[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def cleanup(run: Path, quiet: bool = False) -> list[str]:
    """Remove every trace of this run directory's real nodes from the host: their processes
    (shims and containers too), network namespaces and links, cgroups, and, when no other
    proving ground has real nodes, the sysctls the kubelets changed. Returns what could not
    be removed (an empty list when the host is clean)."""
    gid = ground_id(run)
    clusters = list(config.KUBE_VERSIONS)
    names = [f"mpg-{gid}-{c}" for c in clusters]
    veths = [f"mpg{gid}{c[0]}" for c in clusters]
    roots = [f"/mpg-{gid}-{c}" for c in clusters]
    had_any = any(_netns_exists(n) or socket_dir(n).exists() for n in names) or any(
        (h / r.lstrip("/")).exists() for h in _hierarchies() for r in roots) or _record(run).exists()
    if not had_any:
        with host.locked():
            host.release(run, _node_alive)
        return []
    deadline = time.time() + 20
    while time.time() < deadline:
        pids = set().union(*(_netns_pids(n) for n in names), *(_cgroup_pids(r) for r in roots))
        pids.discard(os.getpid())
        if not pids:
            break
        _kill_all(pids)
        time.sleep(0.2)
    left = []
    for root in roots:
        for _ in range(25):
            problems = _remove_cgroups(root)
            if not problems:
                break
            time.sleep(0.2)
        left += problems
    for name in names:
        if _netns_exists(name):
            _sh("ip", "netns", "del", name, check=False)
    for veth in veths:
        link = Path("/sys/class/net", veth)
        for _ in range(25):
            if not link.exists():
                break
            _sh("ip", "link", "del", veth, check=False)
            time.sleep(0.2)
        if link.exists():
            left.append(f"link {veth}")
    left += [f"netns {n}" for n in names if _netns_exists(n)]
    for name in names:
        shutil.rmtree(socket_dir(name), ignore_errors=True)
    with host.locked():
        restored = host.release(run, _node_alive)
    _record(run).unlink(missing_ok=True)
    if not quiet:
        _log("real nodes removed" + (f"; sysctls restored: {restored}" if restored else ""))
    return left


def describe_lines(state: dict) -> list[str]:
    lines = []
    for cluster, info in state.get("real_nodes", {}).items():
        lines.append(f"  {cluster:<5} real node {info['name']}  kubelet {info['kubelet_version']}  "
                     f"address {info['address']} (host side {info['host_address']}, netns {info['netns']})  "
                     f"pods {info['pod_subnet']}  storage class {info['storage_class']}")
    if state.get("images"):
        lines.append("  images " + "  ".join(f"{k}={v}" for k, v in state["images"].items())
                     + "  (loaded into each real node's containerd)")
    return lines
