"""A lock held in a cluster: a Lease that expires if its holder dies.

One import at a time per target cluster (``kube-system/migrator-import``), one migration run
at a time per pair of clusters: such locks live in the cluster they protect, as a
``coordination.k8s.io/v1`` Lease (the object Kubernetes itself uses for leader election),
not in a store: two runs from different stores must still exclude each other, and the API
server gives what an object store does not, an atomic create and a compare-and-swap on
``resourceVersion``.

The holder renews the lease every ``renew_every`` seconds (a heartbeat thread); a lease not
renewed for ``leaseDurationSeconds`` (plus a margin for clock skew between machines) belongs
to a dead holder and is taken over (at once if that holder ran on this machine and its
process is gone). Who holds it (host, pid, and what the caller adds: snapshot, store, start)
is kept in an annotation, so the refusal can say who to look for. :func:`lease_state` is the
pure decision, tested without a cluster.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from migrator.errors import ApiError, ClusterUnreachable, LockHeld
from migrator.kube.client import Cluster

log = logging.getLogger(__name__)

NAMESPACE = "kube-system"
HOLDER_ANNOTATION = "migrator.io/holder"
DEFAULT_DURATION = 30
CLOCK_SKEW = 5.0  # seconds of disagreement between two machines' clocks we tolerate


def micro_time(when: float) -> str:
    """A Kubernetes MicroTime: ``2024-05-01T12:00:00.123456Z``."""
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str | None) -> float | None:
    """Seconds since the epoch of a MicroTime or Time string; None if absent or malformed."""
    if not text:
        return None
    for layout in ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.strptime(text, layout).replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
    return None


@dataclass(frozen=True)
class LeaseState:
    """What a lease says: who holds it, and whether that holder is alive at ``now``."""

    holder: str
    alive: bool
    age: float | None  # seconds since the last heartbeat (None: never renewed)
    expires_in: float  # seconds until a dead holder's lease may be taken over
    details: Mapping[str, Any]


def lease_state(lease: Mapping[str, Any], now: float, skew: float = CLOCK_SKEW) -> LeaseState:
    """Decide whether ``lease`` is held by a live holder at ``now`` (pure).

    Alive means renewed less than ``leaseDurationSeconds`` + ``skew`` ago. A lease with no
    holder, or no renew time, is free.
    """
    spec = lease.get("spec") or {}
    holder = str(spec.get("holderIdentity") or "")
    renewed = parse_time(spec.get("renewTime")) or parse_time(spec.get("acquireTime"))
    duration = float(spec.get("leaseDurationSeconds") or DEFAULT_DURATION)
    annotations = (lease.get("metadata") or {}).get("annotations") or {}
    try:
        details = json.loads(annotations.get(HOLDER_ANNOTATION) or "{}")
    except ValueError:
        details = {}
    if not holder or renewed is None:
        return LeaseState(holder, False, None, 0.0, details)
    age = now - renewed
    limit = duration + skew
    return LeaseState(holder, age < limit, age, max(0.0, limit - age), details)


def describe_holder(state: LeaseState) -> str:
    """A person's description of a lock holder (for the refusal message)."""
    info = state.details
    who = f"{info.get('host', '?')} pid {info.get('pid', '?')}"
    what = f"snapshot {info.get('snapshot', '?')} from {info.get('store', '?')}"
    since = f", started {info['started']}" if info.get("started") else ""
    return f"{who} ({what}{since})"


def holder_died_here(details: Mapping[str, Any], host: str | None = None) -> bool:
    """True if the holder ran on this machine and its process is gone (killed, crashed).

    Lets a re-run right after a crash start at once instead of waiting for the lease to
    expire; a holder on another machine is always waited for.
    """
    if details.get("host") != (host or socket.gethostname()):
        return False
    try:
        os.kill(int(details.get("pid", 0)), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError, OverflowError):
        return False
    return False


class Lease:
    """The lease ``name`` in ``namespace`` of one cluster, held for one ``purpose`` ("import");
    use as a context manager around the work it protects.

    :meth:`check`, called before each write the lease protects, raises :class:`LockHeld` if
    the lease was lost meanwhile: another process took it over after this one stalled (paused,
    swapped out, cut off) longer than the lease duration. A holder whose heartbeat is overdue
    renews at once, in the caller's thread, before saying the lease is still its own.
    """

    def __init__(
        self,
        cluster: Cluster,
        name: str,
        purpose: str,
        details: Mapping[str, Any],
        *,
        namespace: str = NAMESPACE,
        duration: int = DEFAULT_DURATION,
        renew_every: float | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cluster = cluster
        self.name = name
        self.purpose = purpose
        self._path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        self._namespace = namespace
        self._duration = duration
        self._renew_every = renew_every if renew_every is not None else duration / 3
        self._clock = clock
        self._monotonic = monotonic
        self._renewed_at = monotonic()
        self._details = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": micro_time(clock()),
            **details,
        }
        self.identity = f"{self._details['host']}/{self._details['pid']}/{id(self):x}"
        self._lease: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._lost: str | None = None
        self._thread: threading.Thread | None = None
        self._mutex = threading.Lock()

    def acquire(self) -> None:
        """Take the lease, or raise :class:`LockHeld` naming the live holder."""
        body = self._body()
        sent = self._monotonic()
        try:
            self._lease = self._cluster.request("POST", self._path, body=body)
        except ApiError as exc:
            if exc.status != 409:
                raise
            self._take_over(body)
        self._renewed_at = sent
        self._thread = threading.Thread(
            target=self._heartbeat, name=f"{self.name}-lease", daemon=True
        )
        self._thread.start()
        log.info("%s lock taken on %s as %s", self.purpose, self._cluster.context, self.identity)

    def check(self) -> None:
        """Raise :class:`LockHeld` if the lease has been lost since :meth:`acquire`; renew it
        first when the heartbeat is overdue (this process was stalled)."""
        if not self._lost and self._monotonic() - self._renewed_at > self._renew_every * 1.5:
            with self._mutex:
                if self._monotonic() - self._renewed_at > self._renew_every * 1.5:
                    self._renew()
        if self._lost:
            raise LockHeld(
                self._lost,
                hint=f"another {self.purpose} took over while this one stalled; it stopped "
                "before writing again: re-run it when the other one ends",
            )

    def release(self) -> None:
        """Stop the heartbeat and delete the lease (only if it is still ours)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._renew_every + 5)
        with self._mutex:
            lease, self._lease = self._lease, None
        if lease is None or self._lost:
            return
        meta = lease.get("metadata") or {}
        options = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "preconditions": {
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
        }
        try:
            self._cluster.request("DELETE", f"{self._path}/{self.name}", body=options)
        except (ApiError, ClusterUnreachable) as exc:
            log.warning(
                "could not release the %s lock (it expires by itself): %s", self.purpose, exc
            )

    def __enter__(self) -> Lease:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    # -- helpers ---------------------------------------------------------------------------

    def _body(self, resource_version: str | None = None) -> dict[str, Any]:
        now = micro_time(self._clock())
        meta: dict[str, Any] = {
            "name": self.name,
            "namespace": self._namespace,
            "annotations": {HOLDER_ANNOTATION: json.dumps(self._details)},
        }
        if resource_version:
            meta["resourceVersion"] = resource_version
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": meta,
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": self._duration,
                "acquireTime": now,
                "renewTime": now,
            },
        }

    def _take_over(self, body: dict[str, Any]) -> None:
        current = self._cluster.request("GET", f"{self._path}/{self.name}")
        state = lease_state(current, self._clock())
        if state.alive and not holder_died_here(state.details):
            raise LockHeld(
                f"another {self.purpose} on cluster {self._cluster.context!r} is running: "
                f"{describe_holder(state)}, last heartbeat {state.age:.0f}s ago",
                hint=f"wait for it to finish; if its process died, the lock expires in "
                f"{state.expires_in:.0f}s and a new {self.purpose} may start",
            )
        version = (current.get("metadata") or {}).get("resourceVersion")
        log.info("taking over the expired %s lock of %s", self.purpose, describe_holder(state))
        try:
            self._lease = self._cluster.request(
                "PUT", f"{self._path}/{self.name}", body=self._body(str(version))
            )
        except ApiError as exc:
            if exc.status != 409:
                raise
            raise LockHeld(
                f"another {self.purpose} on cluster {self._cluster.context!r} took the lock "
                "just now",
                hint="wait for it to finish",
            ) from exc

    def _heartbeat(self) -> None:
        while not self._stop.wait(self._renew_every):
            with self._mutex:
                if self._lease is None:
                    return
                self._renew()

    def _renew(self) -> None:
        """Write a new renewTime (the caller holds the mutex); a conflict means another
        holder took the lease over: it is lost."""
        lease = self._lease
        if lease is None:
            return
        spec = dict(lease.get("spec") or {})
        spec["renewTime"] = micro_time(self._clock())
        # Renewed as of when the request left, not when its answer came: a process stalled
        # while the answer was on its way must not count the stall as time held.
        sent = self._monotonic()
        try:
            self._lease = self._cluster.request(
                "PUT", f"{self._path}/{self.name}", body={**lease, "spec": spec}
            )
            self._renewed_at = sent
        except ApiError as exc:
            if exc.status in (404, 409):
                self._lost = (
                    f"the {self.purpose} lock on {self._cluster.context!r} was lost "
                    f"({exc.reason or exc.status}): another {self.purpose} took it over"
                )
                self._lease = None
                return
            log.warning("%s lock heartbeat failed: %s", self.purpose, exc)
        except ClusterUnreachable as exc:
            log.warning("%s lock heartbeat failed: %s", self.purpose, exc)
