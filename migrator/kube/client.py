"""A connection to one cluster, made from a kubeconfig context.

The official ``kubernetes`` package reads the kubeconfig (client certificates, tokens, exec
and auth-provider plugins, proxies) and builds the TLS connection pool; we send raw
requests through that pool and ask its configuration for the ``authorization`` header on
every attempt, so expiring tokens are refreshed by the package's own hooks. Going below the
generated API classes keeps this module independent of the client generator (whose
``call_api`` signature changed between releases) and gives later stages the raw response
bytes, parsed once or streamed.
"""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

import kubernetes.client
import urllib3
from kubernetes.config import kube_config
from kubernetes.config.config_exception import ConfigException

from migrator import __version__
from migrator.errors import ApiError, ClusterUnreachable, ConfigError
from migrator.kube import kubeconfig as kubeconfig_files
from migrator.kube import retry

log = logging.getLogger(__name__)

Query = Mapping[str, str | int | bool] | Sequence[tuple[str, str | int | bool]]


class Cluster:
    """One API server, reached through one kubeconfig context.

    ``request`` returns decoded JSON, ``request_raw`` the body bytes. Both retry transient
    failures (see :mod:`migrator.kube.retry`) and raise :class:`ApiError` for an HTTP error or
    :class:`ClusterUnreachable` when no answer came. Thread-safe: the pool holds up to
    ``pool_size`` connections, so as many threads can have a request in flight.
    """

    def __init__(
        self,
        kubeconfig: str | os.PathLike[str] | None = None,
        context: str | None = None,
        *,
        pool_size: int = 16,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        retry_policy: retry.RetryPolicy | None = None,
    ) -> None:
        choice = kubeconfig_files.choose(kubeconfig, context)
        configuration = kubernetes.client.Configuration()
        try:
            kube_config.load_kube_config(
                config_file=choice.config_file,
                context=choice.context,
                client_configuration=configuration,
                persist_config=False,
            )
        except (ConfigException, OSError, ValueError) as exc:
            raise ConfigError(
                f"cannot use context {choice.context!r} of {choice.config_file}: {exc}",
                hint="check the cluster, user and credentials this context refers to",
            ) from exc
        configuration.connection_pool_maxsize = pool_size
        configuration.retries = False  # retrying is migrator.kube.retry's job, not urllib3's
        self._configuration = configuration
        self._api_client = kubernetes.client.ApiClient(configuration=configuration)
        self._context = choice.context
        self._timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
        self._retry_policy = retry_policy
        self.pool_size = pool_size
        log.debug("cluster %r at %s (pool of %d)", self._context, self.server, pool_size)

    @property
    def context(self) -> str:
        """The kubeconfig context this connection was made from."""
        return self._context

    @property
    def server(self) -> str:
        """The API server URL."""
        return str(self._configuration.host)

    @property
    def api_client(self) -> kubernetes.client.ApiClient:
        """The underlying official client, for the rare call that wants its typed API."""
        return self._api_client

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Query | None = None,
        body: Any = None,
        content_type: str | None = None,
    ) -> dict[str, Any]:
        """Send a request and return the decoded JSON body (``{}`` for an empty body)."""
        raw = self.request_raw(method, path, query=query, body=body, content_type=content_type)
        return json.loads(raw) if raw.strip() else {}

    def request_raw(
        self,
        method: str,
        path: str,
        *,
        query: Query | None = None,
        body: Any = None,
        content_type: str | None = None,
        accept: str = "application/json",
    ) -> bytes:
        """Send a request and return the body bytes, undecoded.

        ``body`` is sent as-is when it is ``bytes`` or ``str``, else encoded as JSON (also the
        right thing for ``application/apply-patch+yaml``: JSON is YAML). ``content_type``
        defaults to ``application/json`` when there is a body.
        """
        method = method.upper()
        url = self.server.rstrip("/") + path + (f"?{_encode_query(query)}" if query else "")
        payload = _encode_body(body)
        headers = {"Accept": accept, "User-Agent": f"migrator/{__version__}"}
        if payload is not None:
            headers["Content-Type"] = content_type or "application/json"

        def attempt() -> bytes:
            response = self._api_client.rest_client.pool_manager.urlopen(
                method,
                url,
                body=payload,
                headers={**headers, **self._auth_headers()},
                timeout=self._timeout,
                retries=False,
                redirect=False,
                preload_content=False,
            )
            try:
                data = response.data
            finally:
                response.release_conn()
            if not 200 <= response.status < 300:
                raise ApiError.from_response(
                    response.status,
                    data,
                    method,
                    path,
                    retry_after=_retry_after(response.headers.get("Retry-After")),
                )
            return data

        return retry.call(
            attempt,
            on_connection_error=self._unreachable,
            what=f"{method} {path}",
            policy=self._retry_policy,
        )

    def close(self) -> None:
        """Release the pooled connections; the object is unusable afterwards."""
        self._api_client.rest_client.pool_manager.clear()
        self._api_client.close()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Cluster(context={self._context!r}, server={self.server!r})"

    def _auth_headers(self) -> dict[str, str]:
        """Credentials as headers, asked anew each attempt so refreshed tokens are used."""
        headers: dict[str, str] = {}
        for setting in self._configuration.auth_settings().values():
            if setting.get("in") == "header" and setting.get("value"):
                headers[setting["key"]] = setting["value"]
        return headers

    def _unreachable(self, exc: BaseException) -> ClusterUnreachable:
        return ClusterUnreachable(self._context, self.server, retry.describe(exc))


def _encode_query(query: Query) -> str:
    pairs = query.items() if isinstance(query, Mapping) else query
    return urlencode([(key, _query_value(value)) for key, value in pairs])


def _query_value(value: str | int | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _encode_body(body: Any) -> bytes | None:
    if body is None:
        return None
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds; the HTTP-date form is not used by Kubernetes and is ignored."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
