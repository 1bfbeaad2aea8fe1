"""How many worker processes a stage starts: the cores it may use, within its cgroup's CPU
limit (a pod's), read from the files cgroups v1 and v2 keep."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from migrator.run.processes import cgroup_cpu_limit, usable_cores

CORES = len(os.sched_getaffinity(0))


def layout(root: Path, cgroup: str, files: dict[str, str]) -> Path:
    """A copy of /proc/self/cgroup and of cgroup files under ``root``."""
    (root / "proc/self").mkdir(parents=True)
    (root / "proc/self/cgroup").write_text(cgroup)
    for name, text in files.items():
        path = root / "sys/fs/cgroup" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_v2_a_limit_on_a_parent_binds_its_children(tmp_path: Path):
    root = layout(tmp_path, "0::/kubepods/pod1/ctr\n", {
        "kubepods/pod1/ctr/cpu.max": "max 100000\n",
        "kubepods/pod1/cpu.max": "250000 100000\n",
        "kubepods/cpu.max": "800000 100000\n",
    })
    assert cgroup_cpu_limit(root) == 2.5
    assert usable_cores(root) == min(CORES, 3)  # rounded up


def test_v2_no_limit_anywhere(tmp_path: Path):
    root = layout(tmp_path, "0::/\n", {"cpu.max": "max 100000\n"})
    assert cgroup_cpu_limit(root) is None
    assert usable_cores(root) == CORES


def test_v1_quota_and_period_under_either_mount_name(tmp_path: Path):
    root = layout(tmp_path, "4:memory:/x\n3:cpu,cpuacct:/x\n2:cpuset:/\n", {
        "cpu,cpuacct/x/cpu.cfs_quota_us": "50000\n",
        "cpu,cpuacct/x/cpu.cfs_period_us": "100000\n",
        "cpu,cpuacct/cpu.cfs_quota_us": "-1\n",
        "cpu,cpuacct/cpu.cfs_period_us": "100000\n",
    })
    assert cgroup_cpu_limit(root) == 0.5
    assert usable_cores(root) == 1  # half a core is still one


def test_files_it_cannot_read_or_understand_limit_nothing(tmp_path: Path):
    root = layout(tmp_path, "0::/a\n1:cpu:/a\n", {
        "a/cpu.max": "lots\n",
        "cpu/a/cpu.cfs_quota_us": "-1\n",
        "cpu/a/cpu.cfs_period_us": "100000\n",
    })
    assert cgroup_cpu_limit(root) is None
    assert cgroup_cpu_limit(tmp_path / "nowhere") is None
    assert usable_cores(tmp_path / "nowhere") == CORES


def real_cpu_cgroup() -> Path:
    """The mount point of the cpu controller (cgroup v1's, else v2's) where this test may
    make a cgroup: as root, as the proving ground's real nodes need too."""
    v2 = Path("/sys/fs/cgroup")
    for place in [v2 / "cpu", v2 / "cpu,cpuacct", v2]:
        controllers = place / "cgroup.controllers"
        has_cpu = (place / "cpu.cfs_quota_us").exists() or (
            controllers.exists() and "cpu" in controllers.read_text().split())
        if has_cpu and os.access(place, os.W_OK):
            return place
    pytest.fail("no writable cpu cgroup controller on this machine (run as root, as the "
                "proving ground does)")


def test_a_process_in_a_one_cpu_cgroup_starts_no_worker_processes():
    place = real_cpu_cgroup()
    group = place / f"migrator-test-{uuid.uuid4().hex[:8]}"
    group.mkdir()
    try:
        if (group / "cpu.max").exists():
            (group / "cpu.max").write_text("100000 100000\n")
        else:
            (group / "cpu.cfs_period_us").write_text("100000\n")
            (group / "cpu.cfs_quota_us").write_text("100000\n")
        probe = ("from migrator.run.processes import cgroup_cpu_limit, default_processes, "
                 "usable_cores; print(cgroup_cpu_limit(), usable_cores(), default_processes())")
        inside = subprocess.run(
            ["sh", "-c", f'echo $$ > {group}/cgroup.procs && exec "$0" -c "$1"',
             sys.executable, probe], capture_output=True, text=True, check=True)
        assert inside.stdout.split() == ["1.0", "1", "0"], inside
    finally:
        group.rmdir()


def test_forked_workers_inherit_a_frozen_heap_and_the_parent_collects_again():
    """A forked worker's garbage collector leaves the objects it inherited alone (so their
    pages stay shared with the parent), and the parent's goes on collecting its own."""
    code = (
        "import gc\n"
        "from migrator.run.processes import process_pool\n"
        "kept = [[i] for i in range(50_000)]  # a heap to share\n"
        "pool = process_pool(2, [])\n"
        "print(gc.get_freeze_count(), min(pool.submit(gc.get_freeze_count).result()\n"
        "                                  for _ in range(4)))\n"
        "pool.shutdown()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    parent, worker = map(int, done.stdout.split())
    assert parent == 0 and worker >= 50_000
