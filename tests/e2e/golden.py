"""Golden manifests: objects read back from a cluster, normalised, compared with files.

The expected objects live in ``tests/golden/expected/`` as one YAML file per object, in the
form a person reviews: what the new cluster holds after a migration, minus what differs from
run to run (server-set metadata, status, allocated cluster IPs) and with the test's unique
namespace name written ``NAMESPACE``. ``MIGRATOR_UPDATE_GOLDEN=1`` rewrites the files from
the run instead of comparing (then review ``git diff tests/golden`` before committing).
"""
from __future__ import annotations

import copy
import difflib
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
INPUT = GOLDEN / "input"
EXPECTED = GOLDEN / "expected"
PLACEHOLDER = "NAMESPACE"
UPDATE_ENV = "MIGRATOR_UPDATE_GOLDEN"

# Written by the API server or its controllers, different on every run.
_SERVER_METADATA = ("uid", "resourceVersion", "creationTimestamp", "generation",
                    "managedFields", "selfLink")
_CONTROLLER_ANNOTATIONS = ("deployment.kubernetes.io/revision",)
_ALLOCATED_SPEC = {"Service": ("clusterIP", "clusterIPs")}


def render(path: Path, namespace: str) -> str:
    """An input manifest with its placeholder replaced by the test's namespace."""
    return path.read_text().replace(PLACEHOLDER, namespace)


def kubectl_apply(kubectl: str, kubeconfig: str, context: str, manifest: str) -> None:
    """``kubectl apply -f -`` with the given release's kubectl, as a user of it would."""
    subprocess.run([kubectl, "--kubeconfig", kubeconfig, "--context", context, "apply",
                    "-f", "-"], input=manifest, text=True, check=True, capture_output=True)


def normalise(obj: Mapping[str, Any], namespace: str) -> dict[str, Any]:
    """``obj`` without what varies between runs, its namespace written as the placeholder."""
    out = copy.deepcopy(dict(obj))
    out.pop("status", None)
    meta = out.get("metadata") or {}
    for key in _SERVER_METADATA:
        meta.pop(key, None)
    annotations = meta.get("annotations") or {}
    for key in _CONTROLLER_ANNOTATIONS:
        annotations.pop(key, None)
    if not annotations:
        meta.pop("annotations", None)
    for key in _ALLOCATED_SPEC.get(str(out.get("kind")), ()):
        (out.get("spec") or {}).pop(key, None)
    text = yaml.safe_dump(out, sort_keys=True, allow_unicode=True)
    loaded: dict[str, Any] = yaml.safe_load(text.replace(namespace, PLACEHOLDER))
    return loaded


def file_name(obj: Mapping[str, Any]) -> str:
    """``<kind>-<name>.yaml`` (lower case), from a normalised object."""
    return f"{str(obj['kind']).lower()}-{obj['metadata']['name']}.yaml"


class _Dumper(yaml.SafeDumper):
    """YAML for review: multi-line strings as literal blocks, long lines never folded."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(obj: Mapping[str, Any]) -> str:
    return yaml.dump(dict(obj), Dumper=_Dumper, sort_keys=True, allow_unicode=True,
                     width=1_000_000)


def check(actual: list[dict[str, Any]], folder: Path = EXPECTED) -> list[str]:
    """Compare normalised objects with ``folder``; the problems found, as readable text.

    With ``MIGRATOR_UPDATE_GOLDEN=1`` the folder is rewritten instead (stale files removed)
    and nothing is reported.
    """
    files = {file_name(obj): dump(obj) for obj in actual}
    if os.environ.get(UPDATE_ENV) == "1":
        folder.mkdir(parents=True, exist_ok=True)
        for stale in set(p.name for p in folder.glob("*.yaml")) - set(files):
            (folder / stale).unlink()
        for name, text in files.items():
            (folder / name).write_text(text)
        return []
    problems = []
    expected = {p.name: p.read_text() for p in folder.glob("*.yaml")}
    for name in sorted(set(expected) - set(files)):
        problems.append(f"{name}: expected, but no such object in the cluster")
    for name in sorted(set(files) - set(expected)):
        problems.append(f"{name}: in the cluster, but no golden file "
                        f"(set {UPDATE_ENV}=1 to write it, then review it)")
    for name in sorted(set(files) & set(expected)):
        if yaml.safe_load(expected[name]) != yaml.safe_load(files[name]):
            diff = difflib.unified_diff(expected[name].splitlines(), files[name].splitlines(),
                                        f"golden/{name}", "cluster", lineterm="")
            problems.append("\n".join(diff))
    return problems
