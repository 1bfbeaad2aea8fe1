"""Versions, locations and names shared by every part of the proving ground."""
from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# The old release still serves the deprecated group/versions removed in 1.22 to 1.25; the
# new one is a current release.
KUBE_VERSIONS = {"old": "1.21.14", "new": "1.33.13"}
ETCD_VERSION = "v3.5.35"
KWOK_VERSION = "v0.7.0"
MINIO_VERSION = "v0.0.0-20260212201848-7aac2a2c5b7c"


def cache_dir() -> Path:
    """Built binaries and fixtures, kept across runs (and across clones of the repo)."""
    root = os.environ.get("MIGRATOR_PG_CACHE") or Path.home() / ".cache" / "migrator-proving-ground"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def run_dir() -> Path:
    """State of the running proving ground: data, certificates, logs, kubeconfigs, ports."""
    return Path(os.environ.get("MIGRATOR_PG_DIR") or REPO / ".proving-ground")


def state_file() -> Path:
    return run_dir() / "state.json"


def bin_dir(name: str, version: str) -> Path:
    return cache_dir() / "bin" / f"{name}-{version.lstrip('v')}"


# --- real nodes ---------------------------------------------------------------------------

# Names of the locally built images in every real node's containerd (never pulled).
IMAGES = {
    "busybox": "migrator.local/busybox:pg",
    "pause": "migrator.local/pause:pg",
    "mover": "migrator.local/mover:pg",
}
# How tests and workloads choose a real node: the label selects it, the taint keeps
# everything that does not tolerate it (all that kwok's nodes run) away.
REAL_NODE_LABEL = "migrator.io/real-node"
REAL_NODE_TAINT = {"key": REAL_NODE_LABEL, "value": "true", "effect": "NoSchedule"}
# Host <-> node links: a /24 of this range per proving ground, a /30 per node. The range
# is the project's own (pod CIDRs are 10.244.0.0/16 and 10.248.0.0/16, services 10.96 and 10.112).
NODE_NETWORK = "10.231.0.0/16"
# Each real node's pods get this /24 of its cluster's pod CIDR (kwok hands out addresses
# from the bottom of the range); it exists only inside the node's network namespace.
REAL_NODE_POD_SUBNET = {"old": "10.244.254.0/24", "new": "10.248.254.0/24"}
STORAGE_CLASS = "migrator-local"
PROVISIONER = "migrator.io/local-path"
