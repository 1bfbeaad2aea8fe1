"""What the whole-migration tests share: the estate of ``scripts/demo.d`` on the old cluster
under a prefix of the test's own, DNS names for it in BIND, the environment the scenario plans
in ``examples/scenarios`` expand, and ``migrator`` run in-process or as a process of its own
(to be killed).
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from migrator.cli import cli
from migrator.errors import ApiError
from tests.integration.import_snapshots import delete_quietly
from tests.integration.traffic_support import bind_records, set_records, update
from tests.movers import claim_directory, running_pods
from tests.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
ESTATE = REPO / "scripts" / "demo.d"
SCENARIOS = REPO / "examples" / "scenarios"
OLD_TARGETS = {"shop": "192.0.2.10", "blog": "192.0.2.11"}
NEW_TARGETS = {"shop": "192.0.2.20", "blog": "192.0.2.21"}
CLAIM = "data-db-0"


@dataclass
class Estate:
    """The estate under ``prefix`` on the old cluster; ``env`` expands the scenario plans."""

    prefix: str
    env: dict[str, str]
    dns_zone: Any

    @property
    def shop(self) -> str:
        return f"{self.prefix}-shop"

    @property
    def blog(self) -> str:
        return f"{self.prefix}-blog"

    def name(self, app: str) -> str:
        return f"{app}.{self.prefix}.{self.dns_zone.zone}"

    def plan(self, scenario: str) -> Path:
        return SCENARIOS / f"{scenario}.yaml"

    def records(self, app: str) -> list[str]:
        """The addresses BIND answers for ``app``'s name."""
        return sorted(v for r in bind_records(self.dns_zone, self.name(app)) for v in r.values)


def _render(name: str, prefix: str) -> str:
    return (ESTATE / name).read_text().replace("NS", prefix)


def _apply(kubectl: str, cluster, manifest: str) -> None:
    subprocess.run([kubectl, "--kubeconfig", cluster.kubeconfig, "--context", cluster.context,
                    "apply", "-f", "-"], input=manifest, text=True, check=True,
                   capture_output=True)


def plan_env(proving_ground: dict, s3, prefix: str) -> dict[str, str]:
    """What the scenario plans' ``${...}`` name, for this proving ground and estate."""
    dns = proving_ground["dns"]
    return {
        **s3.env(),
        "ESTATE": prefix,
        "BUCKET": s3.bucket,
        "PG_KUBECONFIG": proving_ground["kubeconfig"],
        "PG_S3_ENDPOINT": s3.endpoint,
        "PG_DNS_SERVER": f"{dns['server']}:{dns['port']}",
        "PG_DNS_ZONE": dns["zone"],
        "PG_TSIG_KEY_FILE": dns["tsig_key_file"],
        "PG_MOVER_IMAGE": proving_ground["images"]["mover"],
        "PG_PODS_S3_ENDPOINT": proving_ground["real_nodes"]["old"]["s3_endpoint_from_pods"],
    }


@contextmanager
def estate(old_cluster, new_cluster, proving_ground: dict, s3, dns_zone,
           *, rehearsal_suffix: str = "-rehearsal") -> Iterator[Estate]:
    """The estate applied on old with its database seeded, and A records for its names on
    the old targets; everything removed from both clusters and BIND afterwards."""
    prefix = f"m{uuid.uuid4().hex[:6]}"
    kubectl = proving_ground["clusters"]["old"]["kubectl"]
    made = Estate(prefix, plan_env(proving_ground, s3, prefix), dns_zone)
    crd = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/carts.{prefix}.migrator.test"
    try:
        _apply(kubectl, old_cluster, _render("estate.yaml", prefix))
        wait_until("the cart CRD served", lambda: old_cluster.client.request(
            "GET", f"/apis/{prefix}.migrator.test/v1/namespaces/{prefix}-shop/carts"),
            timeout=60, ignore=(ApiError,))
        _apply(kubectl, old_cluster, _render("estate-carts.yaml", prefix))
        wait_until("the database seeded its volume",
                   lambda: running_pods(old_cluster.client, made.shop, "app=db"), timeout=180)
        for app, address in OLD_TARGETS.items():
            set_records(dns_zone, made.name(app), 5, "A", address)
        yield made
    finally:
        for cluster in (old_cluster, new_cluster):
            for ns in (made.shop, made.blog):
                for name in (ns, ns + rehearsal_suffix):
                    delete_quietly(cluster.client, f"/api/v1/namespaces/{name}")
            delete_quietly(cluster.client, crd)
        for app in OLD_TARGETS:
            update(dns_zone, lambda m, a=app: m.delete(made.name(a)))


def migrator(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """``migrator ARGS`` in this process: (exit code, stdout, stderr)."""
    result = CliRunner().invoke(cli, list(args), env=env)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def start_migrator(*args: str, env: dict[str, str], log: Path) -> subprocess.Popen:
    """``migrator ARGS`` as a process of its own (to be killed), output into ``log``."""
    handle = log.open("ab")
    return subprocess.Popen([sys.executable, "-m", "migrator", *args],
                            env={**os.environ, **env}, stdout=handle, stderr=subprocess.STDOUT,
                            cwd=REPO)


def tree(directory: Path) -> dict[str, str]:
    """Every file under ``directory``: relative path -> sha256."""
    return {p.relative_to(directory).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def claim_tree(cluster, namespace: str) -> dict[str, str]:
    return tree(claim_directory(cluster.client, namespace, CLAIM, timeout=60))


def replicas(cluster, path: str) -> int:
    return int(cluster.client.request("GET", path)["spec"].get("replicas", 1))
