"""What a cutover test needs around a shift: the old and new clusters' endpoints, and a
client that keeps sending requests through DNS the way real clients do.

Shared by the cutover tests (``tests/integration/test_traffic_cutover.py``) and the
benchmark (``scripts/bench/cutover_bench.py``): ``from tests.cutover import ...``.

**Endpoints.** A :class:`Backend` is one cluster's endpoint for a name: the addresses the
name points at on that cluster and one port, serving HTTP and answering with its cluster's
name, so the client knows where a request went; ``fail()`` breaks it (the "new cluster
breaks" of the rollback test), ``heal()`` undoes it. :func:`real_node_backends` are pods on
each cluster's real node behind one NodePort (what the cutover tests use);
:func:`local_backends` are HTTP servers on loopback addresses (old on 127.0.10.x, new on
127.0.20.x, one port for both, as two clusters' load balancers), several per side, for the
benchmark's finer round-robin shares.

**The client** resolves the name through the DNS server on every request, keeping an
answer only for its TTL as a stub resolver does, picks one of the addresses at random (as
clients spread over a round-robin set), and sends ``GET /`` with the name as Host header,
from several threads, without pause or at a set ``rate``; every request's outcome is kept
with its time.
"""

from __future__ import annotations

import http.client
import random
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import dns.exception
import dns.message
import dns.query
import dns.rdatatype

from migrator.errors import ApiError
from tests.namespaces import shared_namespace

# A lookup waits and is asked again as a stub resolver does by default (resolv.conf's
# "timeout:5 attempts:2"): a UDP answer lost on a loaded machine is no failure of a backend.
LOOKUP_TIMEOUT, LOOKUP_ATTEMPTS = 5.0, 2


class Backend(ABC):
    """One cluster's endpoint (see the module doc); ``settle`` is how long a ``fail()`` may
    take to be seen by clients."""

    settle = 0.0

    def __init__(self, name: str, addresses: Sequence[str], port: int) -> None:
        self.name = name
        self.addresses = list(addresses)
        self.port = port

    @abstractmethod
    def fail(self) -> None:
        """Make this endpoint answer with errors."""

    @abstractmethod
    def heal(self) -> None:
        """Make it answer normally again."""


class LocalBackend(Backend):
    """HTTP servers on loopback addresses, answering ``<name>`` (200) or 503 when failing."""

    def __init__(self, name: str, addresses: Sequence[str], port: int) -> None:
        super().__init__(name, addresses, port)
        self.failing = threading.Event()
        self.requests = 0
        self._lock = threading.Lock()
        self._servers: list[ThreadingHTTPServer] = []

    def fail(self) -> None:
        self.failing.set()

    def heal(self) -> None:
        self.failing.clear()

    def start(self) -> None:
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                with backend._lock:
                    backend.requests += 1
                status = 503 if backend.failing.is_set() else 200
                body = f"{backend.name}\n".encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        for address in self.addresses:
            server = ThreadingHTTPServer((address, self.port), Handler)
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self._servers.append(server)

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()


class RealNodeBackend(Backend):
    """Pods of one cluster on its real node: a busybox httpd Deployment answering the
    cluster's name, behind a NodePort Service reached at the node's address. ``fail()``
    points the Service at a port the pods do not listen on (they refuse it at once),
    ``heal()`` points it back; kube-proxy takes up to a couple of seconds to follow.
    """

    LABELS = {"app": "cutover"}
    settle = 2.0

    def __init__(self, name: str, api: Any, node: Any, namespace: str) -> None:
        super().__init__(name, [node.address], 0)
        self.api, self.node, self.namespace = api, node, namespace

    def deploy(self) -> None:
        serve = (f'mkdir -p /www && echo "{self.name}" > /www/index.html && '
                 "exec httpd -f -p 8080 -h /www")
        container = {"name": "web", "image": self.node.images["busybox"],
                     "imagePullPolicy": "Never", "command": ["sh", "-c", serve],
                     "ports": [{"containerPort": 8080}],
                     "readinessProbe": {"httpGet": {"path": "/", "port": 8080},
                                        "periodSeconds": 1}}
        self.api.request("POST", f"/apis/apps/v1/namespaces/{self.namespace}/deployments", body={
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "cutover"},
            "spec": {"replicas": 2, "selector": {"matchLabels": self.LABELS}, "template": {
                "metadata": {"labels": self.LABELS},
                "spec": {"containers": [container], "terminationGracePeriodSeconds": 1,
                         **self.node.placement()}}}})

    def expose(self, port: int) -> None:
        """The NodePort Service on ``port`` (an ApiError when the cluster has it in use)."""
        self.api.request("POST", f"/api/v1/namespaces/{self.namespace}/services", body={
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "cutover"},
            "spec": {"type": "NodePort", "selector": self.LABELS, "ports": [
                {"port": 80, "targetPort": 8080, "nodePort": port}]}})
        self.port = port

    def unexpose(self) -> None:
        self.api.request("DELETE", f"/api/v1/namespaces/{self.namespace}/services/cutover")

    def fail(self) -> None:
        self._target(8081)

    def heal(self) -> None:
        self._target(8080)
        self.wait_answering()

    def _target(self, container_port: int) -> None:
        self.api.request(
            "PATCH", f"/api/v1/namespaces/{self.namespace}/services/cutover",
            body={"spec": {"ports": [{"port": 80, "targetPort": container_port,
                                      "nodePort": self.port}]}},
            content_type="application/merge-patch+json")

    def wait_answering(self, timeout: float = 120) -> None:
        """Return once the node answers with this cluster's name on the port."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                conn = http.client.HTTPConnection(self.node.address, self.port, timeout=2)
                conn.request("GET", "/")
                if conn.getresponse().read().decode().strip() == self.name:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}'s pods on {self.node.name} do not answer on "
                                   f"{self.node.address}:{self.port}")
            time.sleep(0.3)


@contextmanager
def real_node_backends(clusters: Sequence[Any], nodes: Any) -> Iterator[tuple[Backend, Backend]]:
    """Old and new backends as pods on each cluster's real node, behind one NodePort (free in
    both clusters), in a namespace of their own that is removed afterwards."""
    with shared_namespace(list(clusters), prefix="cutover") as namespace:
        backends = []
        for cluster in clusters:
            backend = RealNodeBackend(cluster.name, cluster.client, nodes[cluster.name],
                                      namespace)
            backend.deploy()
            backends.append(backend)
        old, new = backends
        for _ in range(20):  # a port neither cluster has given to a Service already
            port = 30000 + random.randrange(2700)
            try:
                old.expose(port)
            except ApiError:
                continue
            try:
                new.expose(port)
                break
            except ApiError:
                old.unexpose()
        else:
            raise RuntimeError("no NodePort free in both clusters")
        for backend in backends:
            backend.wait_answering()
        yield old, new


def free_port(addresses: Sequence[str]) -> int:
    """A port free on every one of ``addresses``."""
    import socket

    for _ in range(50):
        with socket.socket() as probe:
            probe.bind((addresses[0], 0))
            port = int(probe.getsockname()[1])
        try:
            for address in addresses[1:]:
                with socket.socket() as other:
                    other.bind((address, port))
        except OSError:
            continue
        return port
    raise RuntimeError("no port free on every address")


@contextmanager
def local_backends(per_side: int = 1, *, base: int = 10) -> Iterator[tuple[LocalBackend, LocalBackend]]:
    """Old and new backends with ``per_side`` loopback addresses each (old 127.0.<base>.x,
    new 127.0.<base + 10>.x, x from 2), on one free port."""
    olds = [f"127.0.{base}.{i + 2}" for i in range(per_side)]
    news = [f"127.0.{base + 10}.{i + 2}" for i in range(per_side)]
    port = free_port(olds + news)
    old, new = LocalBackend("old", olds, port), LocalBackend("new", news, port)
    old.start()
    new.start()
    try:
        yield old, new
    finally:
        old.stop()
        new.stop()


@dataclass(frozen=True)
class Result:
    """One request: when it was sent and when its answer came (wall clock), where it went,
    whether it succeeded, and which cluster answered it."""

    at: float
    address: str
    ok: bool
    served_by: str
    detail: str = ""
    done: float = 0.0


@dataclass
class _Answer:
    addresses: list[str]
    expires: float


@dataclass
class Client:
    """The client of the module doc; ``start()``, then ``stop()`` returns every result."""

    name: str
    dns_server: str
    dns_port: int
    port: int
    threads: int = 4
    timeout: float = 2.0
    rate: float | None = None  # requests a second in all; None: each thread without pause
    results: list[Result] = field(default_factory=list)
    lookups: int = 0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._answer: _Answer | None = None
        self._workers: list[threading.Thread] = []

    def resolve(self) -> list[str]:
        """The name's addresses: the cached answer while its TTL lasts, else asked anew."""
        with self._lock:
            answer = self._answer
            if answer is not None and time.time() < answer.expires:
                return answer.addresses
            query = dns.message.make_query(self.name, "A")
            for attempt in range(LOOKUP_ATTEMPTS):  # as a stub resolver does (resolv.conf)
                try:
                    response = dns.query.udp(query, self.dns_server, port=self.dns_port,
                                             timeout=LOOKUP_TIMEOUT)
                    break
                except dns.exception.Timeout:
                    if attempt == LOOKUP_ATTEMPTS - 1:
                        raise
            self.lookups += 1
            for rrset in response.answer:
                if rrset.rdtype == dns.rdatatype.A:
                    self._answer = _Answer([r.to_text() for r in rrset], time.time() + rrset.ttl)
                    return self._answer.addresses
            self._answer = None
            return []

    def _work(self) -> None:
        rng = random.Random()
        interval = self.threads / self.rate if self.rate else 0.0
        due = time.monotonic()
        while not self._stop.is_set():
            if interval:
                due = max(due + interval, time.monotonic() - interval)
                self._stop.wait(max(0.0, due - time.monotonic()))
            at = time.time()
            try:
                addresses = self.resolve()
            except Exception as exc:  # noqa: BLE001 (a failed lookup is a failed request)
                self._record(Result(at, "", False, "", f"lookup: {exc}", time.time()))
                continue
            if not addresses:
                self._record(Result(at, "", False, "", "no address", time.time()))
                time.sleep(0.01)
                continue
            address = rng.choice(addresses)
            self._record(self._get(at, address))

    def _get(self, at: float, address: str) -> Result:
        connection = http.client.HTTPConnection(address, self.port, timeout=self.timeout)
        try:
            connection.request("GET", "/", headers={"Host": self.name.rstrip(".")})
            response = connection.getresponse()
            body = response.read().decode().strip()
        except (OSError, http.client.HTTPException) as exc:
            return Result(at, address, False, "", str(exc) or type(exc).__name__, time.time())
        finally:
            connection.close()
        ok = response.status == 200
        return Result(at, address, ok, body, "" if ok else f"HTTP {response.status}", time.time())

    def _record(self, result: Result) -> None:
        with self._lock:
            self.results.append(result)

    def start(self) -> None:
        for _ in range(self.threads):
            worker = threading.Thread(target=self._work, daemon=True)
            worker.start()
            self._workers.append(worker)

    def stop(self) -> list[Result]:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=10)
        with self._lock:
            return list(self.results)


def share_new(results: Sequence[Result], start: float, end: float) -> float | None:
    """The share of successful requests sent in [start, end) that the new cluster answered."""
    window = [r for r in results if start <= r.at < end and r.ok]
    return sum(r.served_by == "new" for r in window) / len(window) if window else None
