"""A connection to one cluster, made from a kubeconfig context.

:mod:`migrator.kube.kubeconfig` reads the context's cluster and credentials and
:mod:`migrator.kube.transport` builds the TLS connection pool (through the official
``kubernetes`` package only for credential plugins, whose hooks then refresh expiring
tokens); we send raw requests through that pool, asking for the ``authorization`` header
on every attempt. Going below the generated API classes keeps this module independent of
the client generator (whose ``call_api`` signature changed between releases), keeps the
package's slow import out of every command, and gives later stages the raw response bytes,
parsed once or streamed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

import urllib3

from migrator import __version__, jsoncodec
from migrator.errors import ApiError, ClusterUnreachable
from migrator.kube import kubeconfig as kubeconfig_files
from migrator.kube import retry
from migrator.kube.transport import open_transport

log = logging.getLogger(__name__)

Query = Mapping[str, str | int | bool] | Sequence[tuple[str, str | int | bool]]

# Every write migrator makes is a server-side apply under this field manager, so a cluster
# records which fields migrator set, and a re-run changes nothing.
FIELD_MANAGER = "migrator"
APPLY_PATCH = "application/apply-patch+yaml"


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
        choice, access = kubeconfig_files.load(kubeconfig, context)
        self._choice = choice
        self._transport = open_transport(choice, access, pool_size)
        self._pool = self._transport.pool
        self._api_client: Any = self._transport.official_client
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
        return self._transport.server

    @property
    def api_client(self) -> Any:
        """An official ``kubernetes.client.ApiClient`` for the same context, for the rare call
        that wants its typed API; made (and the package imported) on first use."""
        if self._api_client is None:
            from kubernetes.config import new_client_from_config

            self._api_client = new_client_from_config(
                config_file=self._choice.config_file,
                context=self._choice.context,
                persist_config=False,
            )
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
        return {} if not raw or raw.isspace() else jsoncodec.loads(raw)  # strip() would copy

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
            response = self._pool.urlopen(
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

    def apply(
        self,
        path: str,
        body: Mapping[str, Any],
        *,
        force: bool = False,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Server-side apply ``body`` to the object at ``path`` as :data:`FIELD_MANAGER`
        (``force`` takes over fields other managers own; ``dry_run`` changes nothing)."""
        query: dict[str, str | int | bool] = {"fieldManager": FIELD_MANAGER}
        if force:
            query["force"] = True
        if dry_run:
            query["dryRun"] = "All"
        return self.request("PATCH", path, query=query, body=body, content_type=APPLY_PATCH)

    def close(self) -> None:
        """Release the pooled connections; the object is unusable afterwards."""
        self._transport.close()
        if self._api_client is not None and self._api_client is not self._transport.official_client:
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
        return self._transport.auth_headers()

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
    return jsoncodec.dumps(body)


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds; the HTTP-date form is not used by Kubernetes and is ignored."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
