"""Connecting: kubeconfig and context errors, and an API server that is not there."""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import urllib3

from migrator import kube
from migrator.errors import ClusterUnreachable, ConfigError, ContextNotFound, KubeconfigNotFound
from migrator.kube import retry

pytestmark = pytest.mark.unit

WriteKubeconfig = Callable[..., Path]


def test_missing_kubeconfig_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "config"
    with pytest.raises(KubeconfigNotFound) as info:
        kube.connect(missing, "old")
    assert str(missing) in str(info.value)
    assert info.value.exit_code == 2


def test_missing_default_kubeconfig_names_the_env_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'a'}:{tmp_path / 'b'}")
    with pytest.raises(KubeconfigNotFound) as info:
        kube.connect()
    assert info.value.paths == [str(tmp_path / "a"), str(tmp_path / "b")]


def test_invalid_yaml_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text("clusters: [unclosed", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        kube.connect(path)


def test_unknown_context_lists_the_real_ones(write_kubeconfig: WriteKubeconfig) -> None:
    path = write_kubeconfig({"old": "https://127.0.0.1:1", "new": "https://127.0.0.1:2"})
    with pytest.raises(ContextNotFound) as info:
        kube.connect(path, "prod")
    assert info.value.available == ["new", "old"]
    assert "'prod'" in str(info.value) and "new, old" in str(info.value)


def test_no_current_context_and_none_asked(write_kubeconfig: WriteKubeconfig) -> None:
    path = write_kubeconfig({"old": "https://127.0.0.1:1"})
    with pytest.raises(ContextNotFound, match="no current-context"):
        kube.connect(path)


def test_current_context_from_kubeconfig_env(
    write_kubeconfig: WriteKubeconfig, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    first = write_kubeconfig({"old": "https://127.0.0.1:1001"}, current="old", name="one")
    second = write_kubeconfig({"new": "https://127.0.0.1:1002"}, current="new", name="two")
    monkeypatch.setenv("KUBECONFIG", f"{first}:{tmp_path / 'missing'}:{second}")
    with kube.connect() as cluster:  # the first file that sets current-context wins
        assert (cluster.context, cluster.server) == ("old", "https://127.0.0.1:1001")
    with kube.connect(context="new") as cluster:  # contexts of every file are available
        assert cluster.server == "https://127.0.0.1:1002"


def test_token_is_sent_as_bearer_header(write_kubeconfig: WriteKubeconfig) -> None:
    path = write_kubeconfig({"old": "https://127.0.0.1:1"})
    with kube.connect(path, "old") as cluster:
        assert cluster._auth_headers() == {"authorization": "Bearer token-old"}


def test_pool_size_reaches_the_pool(write_kubeconfig: WriteKubeconfig) -> None:
    path = write_kubeconfig({"old": "https://127.0.0.1:1"})
    with kube.connect(path, "old", pool_size=3) as cluster:
        assert cluster.pool_size == 3
        assert cluster._pool.connection_pool_kw["maxsize"] == 3


@pytest.mark.timeout(20)
def test_closed_port_is_unreachable_after_the_configured_retries(
    write_kubeconfig: WriteKubeconfig, closed_port: int, sleeps: list[float]
) -> None:
    server = f"http://127.0.0.1:{closed_port}"
    path = write_kubeconfig({"old": server})
    with kube.connect(path, "old") as cluster:
        pool = cluster._pool
        attempts: list[str] = []
        real_urlopen = pool.urlopen

        def counting_urlopen(method: str, url: str, **kw: Any) -> Any:
            attempts.append(url)
            return real_urlopen(method, url, **kw)

        pool.urlopen = counting_urlopen  # type: ignore[method-assign]
        started = time.monotonic()
        with pytest.raises(ClusterUnreachable) as info:
            cluster.request("GET", "/version")
        elapsed = time.monotonic() - started

    assert len(attempts) == len(sleeps) + 1 > 10
    assert sum(sleeps) == pytest.approx(retry.DEFAULT_POLICY.budget)  # on fake time
    assert elapsed < 5
    exc = info.value
    assert (exc.context, exc.server, exc.reason) == ("old", server, "connection refused")
    assert f"'old' at {server}: connection refused" in str(exc)
    assert isinstance(exc.__cause__, urllib3.exceptions.NewConnectionError)
