"""Worker processes for CPU-bound work a stage spreads over cores (export's pages, the
volume mover's small files): one way to start them safely and to size the pool.

The pool's processes are forked at once, before the caller starts threads of its own, from
a process with a single thread; a process that already runs other threads starts them from
a fresh server process instead (forking a multi-threaded process can copy a lock some other
thread holds). The workers ignore Ctrl-C (the stage handles it) and exit when their parent
is gone, however it ended: a killed command leaves no process behind.
"""

from __future__ import annotations

import gc
import math
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from migrator.run.libc import call

# Past a few processes something else is the bound: the API server, the store, the disk.
MAX_DEFAULT_PROCESSES = 4
_ORPHAN_CHECK_SECONDS = 0.5


def default_processes() -> int:
    """Worker processes a stage uses unless told: one per usable core (at most
    :data:`MAX_DEFAULT_PROCESSES`), none on a single core or where processes cannot fork."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return 0
    cores = usable_cores()
    return min(cores, MAX_DEFAULT_PROCESSES) if cores > 1 else 0


def usable_cores(root: Path = Path("/")) -> int:
    """The cores this process may use: those it may run on, and no more than its cgroup's
    CPU limit allows (a container's limit, rounded up). A pod limited to one CPU on a
    32-core node gets one, not 32 processes that share one core's time and each hold
    memory against the pod's limit."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    limit = cgroup_cpu_limit(root)
    return max(1, min(cores, math.ceil(limit))) if limit is not None else cores


def cgroup_cpu_limit(root: Path = Path("/")) -> float | None:
    """The CPUs (quota / period) the cgroups of this process allow, the smallest along
    each hierarchy (a limit set on a parent binds its children); None: no limit, or no
    cgroup file system to read. ``root`` is where ``/proc`` and ``/sys`` are (a test's
    copy)."""
    try:
        lines = (root / "proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    limits: list[float] = []
    for line in lines:
        _id, controllers, path = line.split(":", 2)
        if not controllers:  # cgroup v2: cpu.max ("max 100000" or "150000 100000")
            places = [root / "sys/fs/cgroup", root / "sys/fs/cgroup/unified"]
            limits += _limits(places, path, ["cpu.max"])
        elif "cpu" in controllers.split(","):  # v1: cfs quota (-1: none) and period
            places = [root / "sys/fs/cgroup" / name for name in _V1_CPU_MOUNTS]
            limits += _limits(places, path, ["cpu.cfs_quota_us", "cpu.cfs_period_us"])
    return min(limits) if limits else None


_V1_CPU_MOUNTS = ("cpu", "cpu,cpuacct", "cpuacct,cpu")


def _limits(places: Sequence[Path], path: str, files: Sequence[str]) -> list[float]:
    """The limits set in ``files`` of cgroup ``path`` and its ancestors, under each mount
    point of ``places`` that has them."""
    found: list[float] = []
    parts = [part for part in path.split("/") if part]
    for place in places:
        for depth in range(len(parts), -1, -1):
            directory = place.joinpath(*parts[:depth])
            try:
                words = " ".join((directory / name).read_text() for name in files).split()
            except OSError:
                continue
            try:
                quota, period = words[0], int(words[1])
                if quota not in ("max", "-1") and period > 0:
                    found.append(int(quota) / period)
            except (IndexError, ValueError):
                continue  # a file we do not understand limits nothing
    return found


def process_pool(
    processes: int,
    preload: Sequence[str],
    initializer: Callable[..., None] | None = None,
    initargs: tuple[Any, ...] = (),
) -> ProcessPoolExecutor:
    """A pool of ``processes`` workers, all started before this returns; ``preload`` names
    the modules a fresh server process imports first (when forking is not safe),
    ``initializer(*initargs)`` runs in each worker."""
    context = _context(preload)
    forking = context.get_start_method() == "fork"
    if forking:
        _share_with_workers()
    pool = ProcessPoolExecutor(
        max_workers=processes,
        mp_context=context,
        initializer=_worker_started,
        initargs=(initializer, initargs),
    )
    # Start them now, while this may be the only thread. A forking pool forks all its
    # workers at its first task, so a task that returns at once will do (a sleep here cost
    # every command 50 ms); a server process starts a worker per task while none is idle,
    # so there each task holds its worker a moment.
    hold = 0.0 if forking else 0.05
    try:
        for future in [pool.submit(time.sleep, hold) for _ in range(processes)]:
            future.result()
    finally:
        if forking:
            gc.unfreeze()  # the workers keep their frozen copy; this process collects again
    return pool


def _share_with_workers() -> None:
    """Before forking: keep what the workers inherit shared with this process. A forked
    worker shares its parent's pages until either writes one. Its own allocations would
    reuse the free chunks it inherited (so malloc gives them back to the system first), and
    its garbage collector would write to every object it inherited (so they are frozen:
    it never looks at them). Measured on a restore of 200,000 small files from S3, whose
    process had checked its manifest before forking its writers: 336 MB at its peak, every
    process counted, against 279 MB before that check used worker processes; see the
    commit for the figures with this."""
    call("malloc_trim", 0)  # glibc's: nothing elsewhere
    gc.freeze()


def _worker_started(initializer: Callable[..., None] | None, initargs: tuple[Any, ...]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()
    threading.Thread(target=_exit_when_orphaned, args=(parent,), daemon=True).start()
    if initializer is not None:
        initializer(*initargs)


def _exit_when_orphaned(parent: int) -> None:
    """A worker whose parent was killed waits on a queue nobody will write to: leave."""
    while os.getppid() == parent:
        time.sleep(_ORPHAN_CHECK_SECONDS)
    os._exit(1)


def _context(preload: Sequence[str]) -> multiprocessing.context.BaseContext:
    if threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(preload))
    return context
