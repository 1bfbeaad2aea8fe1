"""The connection pool and credentials a :class:`~migrator.kube.client.Cluster` sends through.

:func:`open_transport` builds a urllib3 pool from :class:`~migrator.kube.kubeconfig.ClusterAccess`
itself (TLS context, client certificate, bearer token or basic auth), which is fast: the
``kubernetes`` package is not imported. Only a context that needs what that package alone
implements (``exec`` and ``auth-provider`` credential plugins, a SOCKS proxy) goes through
it, as before: its loader builds the pool, and its configuration hands out the (refreshed)
``authorization`` header on every attempt.
"""

from __future__ import annotations

import base64
import logging
import os
import ssl
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3

from migrator.errors import ConfigError
from migrator.kube.kubeconfig import ClusterAccess, KubeconfigChoice

log = logging.getLogger(__name__)


@dataclass
class Transport:
    """A pool to send requests through and the credential headers for each attempt."""

    server: str
    pool: urllib3.PoolManager
    auth_headers: Callable[[], dict[str, str]]
    official_client: Any = None  # the official ApiClient, when it built the pool

    def close(self) -> None:
        """Release the pooled connections."""
        self.pool.clear()
        if self.official_client is not None:
            self.official_client.close()


def open_transport(choice: KubeconfigChoice, access: ClusterAccess, pool_size: int) -> Transport:
    """A transport for ``access``; :class:`ConfigError` when its credentials are unusable."""
    where = f"context {choice.context!r} of {choice.config_file}"
    if access.official is not None:
        log.debug("%s needs %s: connecting through the kubernetes package", where, access.official)
        return _official_transport(choice, pool_size)
    pool_kw: dict[str, Any] = {"num_pools": 4, "maxsize": pool_size}
    if access.server.startswith("https:"):
        pool_kw["ssl_context"] = _ssl_context(access, where)
        if access.insecure:
            pool_kw.update(cert_reqs=ssl.CERT_NONE, assert_hostname=False)
        elif access.tls_server_name:
            pool_kw.update(
                server_hostname=access.tls_server_name, assert_hostname=access.tls_server_name
            )
    pool: urllib3.PoolManager
    if access.proxy_url:
        pool = urllib3.ProxyManager(access.proxy_url, **pool_kw)
    else:
        pool = urllib3.PoolManager(**pool_kw)
    return Transport(server=access.server, pool=pool, auth_headers=_auth(access))


def _ssl_context(access: ClusterAccess, where: str) -> ssl.SSLContext:
    """Verification against the kubeconfig's CA (else the system's), the client certificate."""
    try:
        context = ssl.create_default_context(
            cadata=access.ca_pem.decode("ascii") if access.ca_pem else None
        )
    except (ssl.SSLError, ValueError) as exc:
        raise ConfigError(f"the certificate authority of {where} is not usable: {exc}") from exc
    if access.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if access.client_cert_pem or access.client_key_pem:
        if not (access.client_cert_pem and access.client_key_pem):
            raise ConfigError(f"the user of {where} has a client certificate or key, not both")
        _load_client_certificate(context, access.client_cert_pem, access.client_key_pem, where)
    return context


def _load_client_certificate(context: ssl.SSLContext, cert: bytes, key: bytes, where: str) -> None:
    """Load PEM data into ``context``; ssl reads files only, so they pass through a private
    temporary folder that is gone as soon as they are loaded."""
    with tempfile.TemporaryDirectory(prefix="migrator-tls-") as folder:
        cert_path, key_path = Path(folder, "client.crt"), Path(folder, "client.key")
        for path, data in ((cert_path, cert), (key_path, key)):
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
        try:
            context.load_cert_chain(cert_path, key_path)
        except ssl.SSLError as exc:
            raise ConfigError(
                f"the client certificate or key of {where} is not usable: {exc}"
            ) from exc


def _auth(access: ClusterAccess) -> Callable[[], dict[str, str]]:
    """Credential headers per attempt; a token file is read each time, as it may be rotated."""
    if access.token:
        headers = {"authorization": f"Bearer {access.token}"}
        return lambda: headers
    if access.token_file is not None:
        token_file = access.token_file

        def from_file() -> dict[str, str]:
            try:
                token = token_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(
                    f"cannot read token file {token_file}: {exc.strerror or exc}"
                ) from exc
            return {"authorization": f"Bearer {token}"}

        return from_file
    if access.username and access.password:
        basic = base64.b64encode(f"{access.username}:{access.password}".encode()).decode()
        headers = {"authorization": f"Basic {basic}"}
        return lambda: headers
    return dict


def _official_transport(choice: KubeconfigChoice, pool_size: int) -> Transport:
    """The official package's loader and pool, for credential plugins (imported only here)."""
    import kubernetes.client
    from kubernetes.config import kube_config
    from kubernetes.config.config_exception import ConfigException

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
    api_client = kubernetes.client.ApiClient(configuration=configuration)

    def auth_headers() -> dict[str, str]:
        headers: dict[str, str] = {}
        settings: Any = configuration.auth_settings()  # {name: {"in", "key", "value"}}
        for setting in settings.values():
            if setting.get("in") == "header" and setting.get("value"):
                headers[setting["key"]] = setting["value"]
        return headers

    return Transport(
        server=str(configuration.host),
        pool=api_client.rest_client.pool_manager,
        auth_headers=auth_headers,
        official_client=api_client,
    )
