"""Worker processes for CPU-bound work a stage spreads over cores (export's pages, the
volume mover's small files): one way to start them safely and to size the pool.

The pool's processes are forked at once, before the caller starts threads of its own, from
a process with a single thread; a process that already runs other threads starts them from
a fresh server process instead (forking a multi-threaded process can copy a lock some other
thread holds). The workers ignore Ctrl-C (the stage handles it) and exit when their parent
is gone, however it ended: a killed command leaves no process behind.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

# Past a few processes something else is the bound: the API server, the store, the disk.
MAX_DEFAULT_PROCESSES = 4
_ORPHAN_CHECK_SECONDS = 0.5


def default_processes() -> int:
    """Worker processes a stage uses unless told: one per usable core (at most
    :data:`MAX_DEFAULT_PROCESSES`), none on a single core or where processes cannot fork."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    return min(cores, MAX_DEFAULT_PROCESSES) if cores > 1 else 0


def process_pool(
    processes: int,
    preload: Sequence[str],
    initializer: Callable[..., None] | None = None,
    initargs: tuple[Any, ...] = (),
) -> ProcessPoolExecutor:
    """A pool of ``processes`` workers, all started before this returns; ``preload`` names
    the modules a fresh server process imports first (when forking is not safe),
    ``initializer(*initargs)`` runs in each worker."""
    pool = ProcessPoolExecutor(
        max_workers=processes,
        mp_context=_context(preload),
        initializer=_worker_started,
        initargs=(initializer, initargs),
    )
    for future in [pool.submit(time.sleep, 0.05) for _ in range(processes)]:
        future.result()  # start them now, while this may be the only thread
    return pool


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
