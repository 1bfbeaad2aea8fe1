"""A TCP forwarder: the real nodes' way to the servers that listen on the host's loopback.

The proving ground's servers listen on 127.0.0.1, which a node's network namespace cannot
reach. This process listens on the host's end of each node's link and forwards every
connection to a loopback port: the node's kubelet and kube-proxy reach their API server,
and pods reach MinIO, at the node's gateway address. Bytes are copied as they are (TLS
passes through untouched).

    python -m proving_ground.forward 10.231.0.1:6443=127.0.0.1:6443 ...
"""
from __future__ import annotations

import argparse
import socket
import sys
import threading


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def _serve_one(client: socket.socket, target: tuple[str, int]) -> None:
    try:
        upstream = socket.create_connection(target, timeout=10)
    except OSError as exc:
        print(f"forward to {target[0]}:{target[1]} failed: {exc}", file=sys.stderr, flush=True)
        client.close()
        return
    upstream.settimeout(None)
    for sock in (client, upstream):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    back = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
    back.start()
    _pipe(client, upstream)
    back.join()
    client.close()
    upstream.close()


def _bind(listen: tuple[str, int]) -> socket.socket:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(listen)
    server.listen(128)
    return server


def _accept(server: socket.socket, target: tuple[str, int]) -> None:
    while True:
        client, _ = server.accept()
        threading.Thread(target=_serve_one, args=(client, target), daemon=True).start()


def _address(text: str) -> tuple[str, int]:
    host, port = text.rsplit(":", 1)
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("routes", nargs="+", metavar="LISTEN=TARGET", help="host:port=host:port")
    args = parser.parse_args(argv)
    # Bind every address first: a port that cannot be had fails the process at once.
    servers = []
    for route in args.routes:
        listen, target = route.split("=", 1)
        servers.append((_bind(_address(listen)), _address(target)))
        print(f"forwarding {listen} -> {target}", flush=True)
    threads = [threading.Thread(target=_accept, args=pair, daemon=True) for pair in servers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
