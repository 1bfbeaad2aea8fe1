"""Finding the kubeconfig, choosing a context and reading what it takes to reach the cluster.

The official client's loader reports a missing file as "No configuration found" and an unknown
context as a lookup failure deep in its config tree. We read the file(s) first, as plain
YAML, so that we can name the path that is missing and list the contexts that do exist.

:func:`load` then resolves the context's cluster and user into :class:`ClusterAccess`, plain
data for the common cases (client certificate, CA, token, token file, basic auth,
insecure-skip-tls-verify, an HTTP proxy): :mod:`migrator.kube.transport` builds the
connection pool from it without importing the ``kubernetes`` package, whose import (every
generated model) costs more than a second of every command. Users that need a credential
plugin (``exec``, ``auth-provider``) or a SOCKS proxy are marked ``official``: the official
package handles those.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from migrator.errors import ConfigError, ContextNotFound, KubeconfigNotFound

DEFAULT_PATH = Path("~/.kube/config")
# libyaml's safe loader when PyYAML was built with it: kubeconfigs with inline certificates
# are long, and the pure-Python parser takes tens of milliseconds on each.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class KubeconfigChoice:
    """The files to load (in merge order) and the context chosen from them."""

    paths: tuple[Path, ...]
    context: str

    @property
    def config_file(self) -> str:
        """The form the official loader takes: paths joined like ``$KUBECONFIG``."""
        return os.pathsep.join(str(path) for path in self.paths)


def candidate_paths(kubeconfig: str | os.PathLike[str] | None) -> list[Path]:
    """The kubeconfig files to consider: the given one, else ``$KUBECONFIG``, else the default."""
    if kubeconfig is not None:
        return [Path(kubeconfig).expanduser()]
    env = os.environ.get("KUBECONFIG", "")
    listed = [Path(part).expanduser() for part in env.split(os.pathsep) if part]
    return listed or [DEFAULT_PATH.expanduser()]


def read_documents(paths: list[Path]) -> list[tuple[Path, dict[str, Any]]]:
    """Read and parse the files that exist; missing ones in a list are skipped, like kubectl."""
    documents: list[tuple[Path, dict[str, Any]]] = []
    problems: list[str] = []
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            problems.append("no such file")
            continue
        except OSError as exc:
            raise KubeconfigNotFound([str(path)], exc.strerror or str(exc)) from exc
        try:
            doc = yaml.load(text, Loader=_YAML_LOADER) or {}
        except yaml.YAMLError as exc:
            # Where and what only: the offending line may hold a token or a key.
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or "cannot be parsed"
            raise ConfigError(f"kubeconfig {path} is not valid YAML{where}: {problem}") from None
        if not isinstance(doc, dict):
            raise ConfigError(f"kubeconfig {path} is not a kubeconfig (expected a mapping)")
        for section in ("clusters", "contexts", "users"):
            entries = doc.get(section)
            if entries is not None and not (
                isinstance(entries, list) and all(isinstance(e, dict) for e in entries)
            ):
                raise ConfigError(
                    f"kubeconfig {path}: {section} must be a list of named entries "
                    f"(- name: ...), not {type(entries).__name__}",
                    hint="compare it with `kubectl config view`",
                )
        documents.append((path, doc))
    if not documents:
        raise KubeconfigNotFound([str(path) for path in paths], problems[0] if problems else "")
    return documents


def choose(kubeconfig: str | os.PathLike[str] | None, context: str | None) -> KubeconfigChoice:
    """Resolve the kubeconfig files and the context, or raise a :class:`ConfigError`."""
    return _choose(read_documents(candidate_paths(kubeconfig)), context)


def _choose(documents: list[tuple[Path, dict[str, Any]]], context: str | None) -> KubeconfigChoice:
    available: list[str] = []
    current: str | None = None
    for _path, doc in documents:
        for entry in doc.get("contexts") or []:
            name = entry.get("name") if isinstance(entry, dict) else None
            if isinstance(name, str) and name not in available:
                available.append(name)
        # As in kubectl, the first file that sets current-context wins.
        current = current or doc.get("current-context") or None
    source = os.pathsep.join(str(path) for path, _doc in documents)
    wanted = context or current
    if wanted is None or wanted not in available:
        raise ContextNotFound(wanted, available, source)
    return KubeconfigChoice(paths=tuple(path for path, _doc in documents), context=wanted)


# -- what the chosen context needs to reach its cluster ----------------------------------------

# Settings of a user entry that only the official package implements.
_PLUGIN_USER_KEYS = ("exec", "auth-provider")


@dataclass(frozen=True)
class ClusterAccess:
    """Where the chosen context's API server is and how to authenticate to it.

    PEM bytes are read from ``*-data`` fields or from the files named (relative to the
    kubeconfig that names them). ``official`` names the reason the official package must
    build the connection instead (a credential plugin, a SOCKS proxy); the other fields are
    then not filled.
    """

    server: str
    ca_pem: bytes | None = None
    insecure: bool = False
    tls_server_name: str | None = None
    proxy_url: str | None = None
    client_cert_pem: bytes | None = None
    client_key_pem: bytes | None = None
    token: str | None = None
    token_file: Path | None = None
    username: str | None = None
    password: str | None = None
    official: str | None = None


def load(
    kubeconfig: str | os.PathLike[str] | None, context: str | None
) -> tuple[KubeconfigChoice, ClusterAccess]:
    """The chosen context and what it takes to reach its cluster; :class:`ConfigError` when
    the context's cluster or user is missing or a credential cannot be read."""
    documents = read_documents(candidate_paths(kubeconfig))
    choice = _choose(documents, context)
    where = f"context {choice.context!r} of {choice.config_file}"
    ctx, _ = _named(documents, "contexts", "context", choice.context, where)
    cluster, cluster_dir = _named(documents, "clusters", "cluster", ctx.get("cluster"), where)
    user_name = ctx.get("user")
    user, user_dir = (
        _named(documents, "users", "user", user_name, where) if user_name else ({}, Path("."))
    )
    server = str(cluster.get("server") or "").rstrip("/")
    if not server:
        raise ConfigError(f"the cluster of {where} has no server URL")
    proxy = cluster.get("proxy-url") or None
    official = next((key for key in _PLUGIN_USER_KEYS if user.get(key)), None)
    if proxy and not str(proxy).startswith(("http://", "https://")):
        official = "proxy-url " + str(proxy).split(":", 1)[0]
    if official is not None:
        return choice, ClusterAccess(server=server, official=official)
    token_file = user.get("tokenFile")
    return choice, ClusterAccess(
        server=server,
        ca_pem=_data_or_file(cluster, "certificate-authority", cluster_dir, where),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        tls_server_name=cluster.get("tls-server-name") or None,
        proxy_url=proxy,
        client_cert_pem=_data_or_file(user, "client-certificate", user_dir, where),
        client_key_pem=_data_or_file(user, "client-key", user_dir, where),
        token=user.get("token") or None,
        token_file=(user_dir / Path(token_file).expanduser()) if token_file else None,
        username=user.get("username") or None,
        password=user.get("password") or None,
    )


def _named(
    documents: list[tuple[Path, dict[str, Any]]], section: str, field: str, name: Any, where: str
) -> tuple[Mapping[str, Any], Path]:
    """The ``field`` mapping of entry ``name`` in ``section`` and the folder of the file that
    defines it; as in kubectl, the first file that defines a name wins."""
    for path, doc in documents:
        for entry in doc.get(section) or []:
            if isinstance(entry, dict) and entry.get("name") == name:
                value = entry.get(field) or {}
                if not isinstance(value, dict):
                    raise ConfigError(f"{section[:-1]} {name!r} of {path} is not a mapping")
                return value, path.parent
    raise ConfigError(
        f"{where} refers to {section[:-1]} {name!r}, which no kubeconfig file defines",
        hint=f"add the {section[:-1]} to the kubeconfig or fix the context",
    )


def _data_or_file(entry: Mapping[str, Any], name: str, folder: Path, where: str) -> bytes | None:
    """``<name>-data`` (base64) if set, else the file ``<name>`` (relative to ``folder``)."""
    data = entry.get(f"{name}-data")
    if data:
        try:
            return base64.b64decode("".join(str(data).split()), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ConfigError(f"{name}-data of {where} is not valid base64: {exc}") from exc
    filename = entry.get(name)
    if not filename:
        return None
    path = folder / Path(str(filename)).expanduser()
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read {name} {path} (named by {where}): {exc.strerror or exc}"
        ) from exc
