"""Finding the kubeconfig and choosing a context, with errors a user can act on.

The official client's loader reports a missing file as "No configuration found" and an unknown
context as a lookup failure deep in its config tree. We read the file(s) first, as plain
YAML, so that we can name the path that is missing and list the contexts that do exist.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from migrator.errors import ConfigError, ContextNotFound, KubeconfigNotFound

DEFAULT_PATH = Path("~/.kube/config")


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
            doc = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"kubeconfig {path} is not valid YAML: {exc}") from exc
        if not isinstance(doc, dict):
            raise ConfigError(f"kubeconfig {path} is not a kubeconfig (expected a mapping)")
        documents.append((path, doc))
    if not documents:
        raise KubeconfigNotFound([str(path) for path in paths], problems[0] if problems else "")
    return documents


def choose(kubeconfig: str | os.PathLike[str] | None, context: str | None) -> KubeconfigChoice:
    """Resolve the kubeconfig files and the context, or raise a :class:`ConfigError`."""
    documents = read_documents(candidate_paths(kubeconfig))
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
