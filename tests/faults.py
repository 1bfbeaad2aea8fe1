"""A TCP proxy in front of an API server that fails on command: the fault-injection harness.

Tests route a client through :class:`FaultyProxy` (a kubeconfig whose server is the proxy's
address, see :func:`kubeconfig_through`) and make the connection misbehave the ways a real
network or a restarting control plane does:

- ``refuse(seconds)``: nothing listens on the port for a while (connections refused), and the
  connections already open are cut, as when an API server restarts;
- ``reset(count)``: the next ``count`` connections are reset (TCP RST) as soon as they open;
- ``cut(count)``: the next ``count`` responses are cut short after their first bytes;
- ``stall(seconds)``: bytes stop flowing both ways for a while, connections stay open;
- ``outage_after(nbytes, seconds)``: a ``refuse`` that starts once ``nbytes`` of responses
  have gone through, so it lands in the middle of the work under test.

TLS passes through untouched (the proxy only moves bytes), so the client still verifies the
API server's certificate. Events are recorded (``events``) so a test can prove the fault
really happened.
"""
from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

_CHUNK = 64 * 1024


class FaultyProxy:
    """Forwards 127.0.0.1:``port`` to ``upstream`` (host, port), failing on command."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.events: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._open: set[socket.socket] = set()
        self._refuse_until = 0.0
        self._stall_until = 0.0
        self._resets = 0
        self._cuts = 0
        self._outage: tuple[int, float] | None = None
        self.response_bytes = 0
        self._listener: socket.socket | None = None
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._listen()
        self._thread = threading.Thread(target=self._serve, name="faulty-proxy", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    # -- commands -------------------------------------------------------------------------

    def refuse(self, seconds: float) -> None:
        """Cut every open connection and refuse new ones for ``seconds``."""
        with self._lock:
            self._refuse_until = time.monotonic() + seconds
            self.events.append(f"refuse {seconds:.0f}s")
            self._close_listener()
            self._cut_all()

    def reset(self, count: int) -> None:
        with self._lock:
            self._resets += count
            self.events.append(f"reset next {count}")

    def cut(self, count: int) -> None:
        with self._lock:
            self._cuts += count
            self.events.append(f"cut next {count} responses")

    def stall(self, seconds: float) -> None:
        with self._lock:
            self._stall_until = time.monotonic() + seconds
            self.events.append(f"stall {seconds:.0f}s")

    def outage_after(self, nbytes: int, seconds: float) -> None:
        """A :meth:`refuse` of ``seconds`` once ``nbytes`` more response bytes have passed."""
        with self._lock:
            self._outage = (self.response_bytes + nbytes, seconds)

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            self._close_listener()
            self._cut_all()
        self._thread.join(timeout=5)

    def __enter__(self) -> FaultyProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the proxy ------------------------------------------------------------------------

    def _listen(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.1)
        self._listener = listener

    def _close_listener(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def _cut_all(self) -> None:
        for sock in list(self._open):
            _hard_close(sock)
        self._open.clear()

    def _serve(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                if self._listener is None and time.monotonic() >= self._refuse_until:
                    self._listen()
                    self.events.append("listening again")
                listener = self._listener
            if listener is None:
                time.sleep(0.05)
                continue
            try:
                client, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            with self._lock:
                if self._resets:
                    self._resets -= 1
                    self.events.append("reset a connection")
                    _hard_close(client)
                    continue
            threading.Thread(target=self._pipe, args=(client,), daemon=True).start()

    def _pipe(self, client: socket.socket) -> None:
        try:
            server = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            _hard_close(client)
            return
        with self._lock:
            self._open.update((client, server))
        cut_after: int | None = None
        try:
            while not self._stop.is_set():
                if time.monotonic() < self._stall_until:
                    time.sleep(0.05)
                    continue
                ready, _, _ = select.select([client, server], [], [], 0.1)
                for source in ready:
                    data = source.recv(_CHUNK)
                    if not data:
                        return
                    if source is server:
                        cut_after = self._count_response(len(data), cut_after)
                        if cut_after is not None and cut_after <= 0:
                            client.sendall(data[: max(1, len(data) // 2)])
                            return
                        client.sendall(data)
                    else:
                        server.sendall(data)
        except (OSError, ValueError):  # cut by refuse(): the socket is gone under us
            return
        finally:
            with self._lock:
                self._open.discard(client)
                self._open.discard(server)
            _hard_close(client)
            _hard_close(server)

    def _count_response(self, size: int, cut_after: int | None) -> int | None:
        """Count response bytes; start a pending outage, or a cut, when it is due."""
        with self._lock:
            self.response_bytes += size
            if self._outage is not None and self.response_bytes >= self._outage[0]:
                seconds = self._outage[1]
                self._outage = None
                threading.Thread(target=self.refuse, args=(seconds,), daemon=True).start()
            if cut_after is None and self._cuts:
                self._cuts -= 1
                self.events.append("cut a response")
                return 0
        return cut_after


def _hard_close(sock: socket.socket) -> None:
    """Close with a TCP reset (SO_LINGER 0), as a crashed peer does."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


def kubeconfig_through(kubeconfig: str, proxies: dict[str, FaultyProxy], out: Path) -> Path:
    """A copy of ``kubeconfig`` whose clusters named in ``proxies`` are reached through them."""
    doc: dict[str, Any] = yaml.safe_load(Path(kubeconfig).read_text())
    for entry in doc.get("clusters") or []:
        proxy = proxies.get(entry["name"])
        if proxy is not None:
            entry["cluster"]["server"] = proxy.url
    out.write_text(yaml.safe_dump(doc))
    return out


def upstream_of(server: str) -> tuple[str, int]:
    """(host, port) of an ``https://host:port`` URL."""
    host, _, port = server.removeprefix("https://").rstrip("/").rpartition(":")
    return host, int(port)


@contextlib.contextmanager
def proxied(kubeconfig: str, servers: dict[str, str], out: Path
            ) -> Iterator[tuple[Path, dict[str, FaultyProxy]]]:
    """Proxies in front of each cluster of ``servers`` (name → server URL), and the
    kubeconfig that goes through them."""
    proxies = {name: FaultyProxy(upstream_of(url)) for name, url in servers.items()}
    try:
        yield kubeconfig_through(kubeconfig, proxies, out), proxies
    finally:
        for proxy in proxies.values():
            proxy.close()
