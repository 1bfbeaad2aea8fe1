"""What every phase of a run shares: the plan, the store and key, both clusters, the journal,
the events people and webhooks are told, the stuck-step watchdog and the hooks.

Connections open when first needed and close with the context, so a phase that needs no
cluster (a report) opens none, and a resumed run reconnects as the first phase asks.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from migrator import crypto, kube
from migrator.kube import Cluster
from migrator.migrate.hooks import HookResult, run_hook
from migrator.migrate.notify import Notifier
from migrator.migrate.plan import Hook, Plan
from migrator.migrate.state import RunStore, now_iso
from migrator.migrate.watchdog import Watchdog
from migrator.run import Journal
from migrator.snapshot import SnapshotReader
from migrator.store import Store, open_store

log = logging.getLogger(__name__)

Event = dict[str, Any]
OnEvent = Callable[[Event], None]


@dataclass
class RunContext:
    """One command's view of a plan's run (see the module doc)."""

    plan: Plan
    store: Store
    key: bytes | None
    runs: RunStore
    on_event: OnEvent | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    journal: Journal | None = None
    notifier: Notifier | None = None
    watchdog: Watchdog | None = None
    checked: dict[str, Any] | None = None  # a preflight run before the journal was opened
    _clusters: dict[str, Cluster] = field(default_factory=dict)
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    @classmethod
    def open(cls, plan: Plan, *, on_event: OnEvent | None = None) -> RunContext:
        """The context of ``plan``'s run: its store and key (read now, so a wrong key or an
        unreachable store fails before anything else)."""
        store = open_store(plan.store.url, s3_endpoint=plan.store.s3_endpoint)
        key = crypto.load_key(plan.store.key_file)
        return cls(plan, store, key, RunStore(store, plan.name), on_event=on_event)

    def __enter__(self) -> RunContext:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stack.close()
        self._clusters.clear()

    # -- clusters ----------------------------------------------------------------------------

    def cluster(self, side: str, **connect: Any) -> Cluster:
        """The ``old`` or ``new`` cluster, connected on first use."""
        if side not in self._clusters:
            ref = self.plan.source if side == "old" else self.plan.target
            self._clusters[side] = self._stack.enter_context(
                kube.connect(self.plan.kubeconfig, ref.context, **connect)
            )
        return self._clusters[side]

    @property
    def old(self) -> Cluster:
        return self.cluster("old")

    @property
    def new(self) -> Cluster:
        return self.cluster("new")

    def clusters(self) -> dict[str, Cluster]:
        return {"old": self.old, "new": self.new}

    def enter(self, manager: Any) -> Any:
        """Keep ``manager`` open until the context closes."""
        return self._stack.enter_context(manager)

    # -- snapshots ---------------------------------------------------------------------------

    def reader(self, snapshot_id: str) -> SnapshotReader:
        return SnapshotReader(self.store, snapshot_id, key=self.key)

    # -- telling people ----------------------------------------------------------------------

    def emit(self, kind: str, **fields: Any) -> None:
        """Tell the command line and the webhooks: a phase change, an alert, the end."""
        event: Event = {"type": kind, "plan": self.plan.name, "at": now_iso(), **fields}
        if self.on_event is not None:
            self.on_event(event)
        if self.notifier is not None:
            self.notifier.send(event)

    def progress(self, task: str, done: int, total: int | None = None) -> None:
        """The stages' progress callback: feeds the watchdog (the step moved)."""
        if self.watchdog is not None:
            self.watchdog.progress()

    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        """The notifier and the stuck-step watchdog, for the length of a run."""
        self.notifier = Notifier(self.plan.notifications)

        def stuck(step: str, seconds: float) -> None:
            message = f"{step} has made no progress for {seconds:.0f} s; still trying"
            log.warning(message)
            alerts = list(self.runs.state().get("alerts", []))[-19:]
            alerts.append({"at": now_iso(), "phase": step, "message": message})
            self.runs.set_state(alerts=alerts)
            self.emit("alert", phase=step, message=message)

        try:
            with Watchdog(self.plan.stuck_after, stuck) as dog:
                self.watchdog = dog
                yield
        finally:
            self.watchdog = None
            self.notifier.close()

    def step(self, name: str) -> None:
        if self.watchdog is not None:
            self.watchdog.step(name)

    # -- hooks -------------------------------------------------------------------------------

    def run_hooks(self, point: str, phase: str) -> list[dict[str, Any]]:
        """Run the plan's hooks at ``point`` in order; the first that fails for good raises
        :class:`~migrator.errors.HookFailed` (the phase fails, and a resume runs it again)."""
        results: list[dict[str, Any]] = []
        for hook in self.plan.hooks.at(point):
            self.emit("hook", phase=phase, hook=hook.where, status="started")
            self.runs.set_state(waiting=f"hook {hook.where}")
            results.append(self.run_hook(hook, phase).to_dict())
            self.emit("hook", phase=phase, hook=hook.where, status="done")
        return results

    def run_hook(self, hook: Hook, phase: str) -> HookResult:
        """One hook of the plan, with the run's environment, in the plan's folder."""
        return run_hook(
            hook,
            clusters=_LazyClusters(self),
            env=self.hook_env(phase, hook.where),
            base_dir=self.plan.file.parent if self.plan.file else None,
            stop=self.stop,
        )

    def hook_env(self, phase: str, where: str) -> dict[str, str]:
        env = {
            "MIGRATOR_PLAN": self.plan.name,
            "MIGRATOR_PHASE": phase,
            "MIGRATOR_HOOK": where,
            "MIGRATOR_SOURCE_CONTEXT": self.plan.source.context,
            "MIGRATOR_TARGET_CONTEXT": self.plan.target.context,
            "MIGRATOR_STORE": self.plan.store.url,
        }
        if self.plan.kubeconfig is not None:
            env["KUBECONFIG"] = str(self.plan.kubeconfig)
        return env


class _LazyClusters(Mapping[str, Cluster]):
    """``old``/``new`` connected only when a Job hook asks for one."""

    def __init__(self, context: RunContext) -> None:
        self._context = context

    def __getitem__(self, side: str) -> Cluster:
        if side not in ("old", "new"):
            raise KeyError(side)
        return self._context.cluster(side)

    def __iter__(self) -> Iterator[str]:
        return iter(("old", "new"))

    def __len__(self) -> int:
        return 2
