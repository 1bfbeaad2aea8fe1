"""Unit-test helpers: kubeconfig files as plain data, a retry policy that never sleeps."""
from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from migrator.kube import retry


def kubeconfig_data(servers: dict[str, str], current: str | None = None) -> dict[str, Any]:
    """A kubeconfig with one cluster, user and context per name (token auth)."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": name, "cluster": {"server": url, "insecure-skip-tls-verify": True}}
            for name, url in servers.items()
        ],
        "users": [{"name": name, "user": {"token": f"token-{name}"}} for name in servers],
        "contexts": [
            {"name": name, "context": {"cluster": name, "user": name}} for name in servers
        ],
        "current-context": current,
    }


@pytest.fixture
def write_kubeconfig(tmp_path: Path) -> Callable[..., Path]:
    """Write a kubeconfig YAML into tmp_path and return its path."""

    def write(servers: dict[str, str], current: str | None = None, name: str = "config") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(kubeconfig_data(servers, current)), encoding="utf-8")
        return path

    return write


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on: bound, then released."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FakeTime:
    """A clock that moves only when someone sleeps; the sleeps are recorded."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def fake_policy(fake: FakeTime, **settings: Any) -> retry.RetryPolicy:
    """A retry policy on ``fake`` time, its jitter pinned to the middle."""
    return retry.RetryPolicy(sleep=fake.sleep, clock=fake.clock, jitter=lambda: 0.5, **settings)


@pytest.fixture
def fake_time(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    """Replace the module-wide retry policy with one on fake time: nothing really sleeps."""
    fake = FakeTime()
    monkeypatch.setattr(retry, "DEFAULT_POLICY", fake_policy(fake))
    return fake


@pytest.fixture
def sleeps(fake_time: FakeTime) -> list[float]:
    """The waits the module-wide retry policy made (on fake time)."""
    return fake_time.sleeps
