"""What the real nodes share with the host, and how it is given back.

Several proving grounds may run on one machine (each with its own run directory). What is
host-wide lives in ``/run/migrator-proving-ground/``, guarded by a lock file:

- the original values of the sysctls a kubelet changes on start (they are not per network
  namespace): recorded by the first proving ground with real nodes, restored by the last one
  to stop;
- which proving grounds hold real nodes (their run directories), so a stale entry whose
  nodes are gone does not keep the originals from being restored.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

SHARED = Path("/run/migrator-proving-ground")
SYSCTL_ROOT = Path("/proc/sys")

# Written by the kubelet at start (container manager: kernel tunables) and by kube-proxy;
# ip_forward is per network namespace, but it is kept here too should anything touch the host's.
SYSCTLS = ("vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
           "kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes", "net/ipv4/ip_forward")


@contextlib.contextmanager
def locked() -> Iterator[None]:
    """One proving ground at a time changes host-wide state."""
    SHARED.mkdir(parents=True, exist_ok=True)
    with open(SHARED / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def read_sysctls() -> dict[str, str]:
    return {key: (SYSCTL_ROOT / key).read_text().strip() for key in SYSCTLS
            if (SYSCTL_ROOT / key).exists()}


def _registry() -> dict:
    path = SHARED / "holders.json"
    return json.loads(path.read_text()) if path.exists() else {"sysctls": {}, "holders": {}}


def _save(registry: dict) -> None:
    path = SHARED / "holders.json"
    if registry["holders"]:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(registry, indent=2))
        tmp.rename(path)
    else:
        path.unlink(missing_ok=True)


def hold(run_dir: Path, netns: list[str], is_alive) -> None:
    """Register a proving ground whose nodes are about to start (call under ``locked()``).

    ``is_alive(netns_names)`` tells whether another holder's nodes still exist."""
    registry = _registry()
    for other, names in list(registry["holders"].items()):
        if other != str(run_dir) and not is_alive(names):
            del registry["holders"][other]
    if not registry["holders"]:
        registry["sysctls"] = read_sysctls()
    registry["holders"][str(run_dir)] = netns
    _save(registry)


def release(run_dir: Path, is_alive) -> dict[str, str]:
    """Unregister a proving ground whose nodes are gone (call under ``locked()``); when no
    other holds real nodes, put the host's sysctls back. Returns what was restored."""
    registry = _registry()
    registry["holders"].pop(str(run_dir), None)
    for other, names in list(registry["holders"].items()):
        if not is_alive(names):
            del registry["holders"][other]
    restored = {}
    if not registry["holders"] and registry["sysctls"]:
        for key, value in registry["sysctls"].items():
            path = SYSCTL_ROOT / key
            if path.read_text().strip() != value:
                path.write_text(value + "\n")
                restored[key] = value
        registry["sysctls"] = {}
    _save(registry)
    return restored


# --- mounts --------------------------------------------------------------------------------


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path`` in this mount namespace, deepest last."""
    prefix = str(path.resolve())
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            found.append(point)
    return found


def umount_under(path: Path) -> None:
    """Unmount everything at or below ``path`` (a chroot's /proc, /sys, /dev binds)."""
    for point in reversed(mounts_under(path)):
        subprocess.run(["umount", "-l", point], capture_output=True)
    left = mounts_under(path)
    if left:
        raise SystemExit(f"cannot unmount {', '.join(left)}")


def safe_rmtree(path: Path) -> None:
    """Remove a tree that a chroot or a node may have mounted things into: never follow a
    mount (a bound /dev or /proc) into the host."""
    import shutil

    if not os.path.lexists(path):
        return
    umount_under(path)
    shutil.rmtree(path, ignore_errors=True)
