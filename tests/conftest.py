"""Fixtures that hand tests the proving ground: two clusters, an S3 endpoint, a DNS zone.

The proving ground is started by ``scripts/proving-ground start`` (``scripts/test`` does it
for the whole suite); these fixtures read its state file. A test that needs it fails, with
the reason, when it is not running: it never skips.
"""
from __future__ import annotations

import json
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pytest

from migrator.kube import Cluster, connect

REPO = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by where they live: unit/ needs no server, the rest needs the ground."""
    for item in items:
        parts = item.path.relative_to(REPO / "tests").parts
        if parts[0] == "unit":
            item.add_marker(pytest.mark.unit)
        else:
            item.add_marker(pytest.mark.integration)


def _state_file() -> Path:
    return Path(os.environ.get("MIGRATOR_PG_DIR") or REPO / ".proving-ground") / "state.json"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="session")
def proving_ground() -> dict:
    """The running proving ground's state (ports, credentials, paths)."""
    path = _state_file()
    if not path.exists():
        pytest.fail(f"the proving ground is not running ({path} does not exist): "
                    "start it with `scripts/proving-ground start`", pytrace=False)
    state = json.loads(path.read_text())
    dead = [p["name"] for p in state["processes"] if not _alive(p["pid"])]
    if dead:
        pytest.fail(f"proving-ground processes are down: {', '.join(dead)} "
                    f"(logs in {path.parent / 'logs'}); restart with `scripts/proving-ground start`",
                    pytrace=False)
    return state


@dataclass
class TestCluster:
    """One proving-ground cluster as a test sees it."""

    name: str
    kubeconfig: str
    context: str
    server: str
    version: str
    service_cidr: str
    pod_cidr: str
    client: Cluster

    @property
    def minor(self) -> int:
        return int(self.version.split(".")[1])


def _cluster(state: dict, name: str) -> Iterator[TestCluster]:
    info = state["clusters"][name]
    client = connect(state["kubeconfig"], name)
    yield TestCluster(name=name, kubeconfig=state["kubeconfig"], context=name, server=info["server"],
                      version=info["version"], service_cidr=info["service_cidr"],
                      pod_cidr=info["pod_cidr"], client=client)
    client.close()


@pytest.fixture(scope="session")
def old_cluster(proving_ground: dict) -> Iterator[TestCluster]:
    """The old release (serves the deprecated group/versions)."""
    yield from _cluster(proving_ground, "old")


@pytest.fixture(scope="session")
def new_cluster(proving_ground: dict) -> Iterator[TestCluster]:
    """The new release."""
    yield from _cluster(proving_ground, "new")


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def make_namespace(request: pytest.FixtureRequest) -> Iterator[Callable[[TestCluster], str]]:
    """Create fresh namespaces on either cluster; each is deleted after the test."""
    made: list[tuple[TestCluster, str]] = []

    def make(cluster: TestCluster) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:40].strip("-")
        name = _unique("t-" + slug)
        cluster.client.request("POST", "/api/v1/namespaces",
                               body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        made.append((cluster, name))
        return name

    yield make
    for cluster, name in made:
        cluster.client.request("DELETE", f"/api/v1/namespaces/{name}")


@pytest.fixture
def old_namespace(old_cluster: TestCluster, make_namespace) -> str:
    return make_namespace(old_cluster)


@pytest.fixture
def new_namespace(new_cluster: TestCluster, make_namespace) -> str:
    return make_namespace(new_cluster)


@dataclass
class S3Target:
    """The MinIO endpoint with credentials and a bucket of the test's own."""

    endpoint: str
    access_key: str
    secret_key: str
    region: str
    bucket: str

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key, region_name=self.region)

    def env(self) -> dict[str, str]:
        """The usual AWS settings, for code that reads them from the environment."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_DEFAULT_REGION": self.region, "AWS_ENDPOINT_URL_S3": self.endpoint}


@pytest.fixture
def s3(proving_ground: dict) -> Iterator[S3Target]:
    """A fresh, empty bucket on the proving ground's MinIO; emptied and removed afterwards."""
    info = proving_ground["s3"]
    target = S3Target(endpoint=info["endpoint"], access_key=info["access_key"],
                      secret_key=info["secret_key"], region=info["region"], bucket=_unique("t"))
    client = target.client()
    client.create_bucket(Bucket=target.bucket)
    yield target
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=target.bucket):
        keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=target.bucket, Delete={"Objects": keys})
    client.delete_bucket(Bucket=target.bucket)


@dataclass
class DnsZone:
    """The BIND zone, updatable over RFC2136 with its TSIG key; ``label`` is the test's own."""

    server: str
    port: int
    zone: str
    tsig_name: str
    tsig_algorithm: str
    tsig_secret: str
    label: str

    def keyring(self):
        import dns.tsigkeyring

        return dns.tsigkeyring.from_text({self.tsig_name: (self.tsig_algorithm, self.tsig_secret)})


@pytest.fixture
def dns_zone(proving_ground: dict) -> DnsZone:
    info = proving_ground["dns"]
    return DnsZone(server=info["server"], port=info["port"], zone=info["zone"],
                   tsig_name=info["tsig_name"], tsig_algorithm=info["tsig_algorithm"],
                   tsig_secret=info["tsig_secret"], label=_unique("t"))


@pytest.fixture(scope="session")
def k8s_api_fixtures(proving_ground: dict) -> Path:
    """The k8s.io/api `testdata/` of the old release: one file per group/version/kind."""
    return Path(proving_ground["fixtures"]["k8s_api_testdata"])


@dataclass
class RealNode:
    """A cluster's real node: a kubelet with containerd, runc and CNI, where pods really run.

    ``address`` is reachable from the host (NodePorts answer there); ``host_address`` is the
    host as the node's pods see it (``s3_endpoint`` is MinIO there). Only pods that tolerate
    the node's taint and select its label land on it: ``placement()`` gives both.
    """

    cluster: str
    name: str
    address: str
    host_address: str
    kubelet_version: str
    pod_subnet: str
    storage_class: str
    volumes_dir: Path
    s3_endpoint: str
    label: dict
    taint: dict
    images: dict

    def placement(self) -> dict:
        """Pod spec fields that put a pod on this node and nowhere else."""
        taint = self.taint
        return {"nodeSelector": dict(self.label),
                "tolerations": [{"key": taint["key"], "operator": "Equal", "value": taint["value"],
                                 "effect": taint["effect"]}]}


@pytest.fixture(scope="session")
def real_nodes(proving_ground: dict) -> dict[str, RealNode]:
    """Each cluster's real node, by cluster name (``old``, ``new``)."""
    nodes = proving_ground.get("real_nodes")
    if not nodes:
        pytest.fail("the proving ground has no real nodes: restart it with `scripts/proving-ground start`",
                    pytrace=False)
    return {cluster: RealNode(cluster=cluster, name=info["name"], address=info["address"],
                              host_address=info["host_address"], kubelet_version=info["kubelet_version"],
                              pod_subnet=info["pod_subnet"], storage_class=info["storage_class"],
                              volumes_dir=Path(info["volumes_dir"]),
                              s3_endpoint=info["s3_endpoint_from_pods"],
                              label=info["label"], taint=info["taint"], images=proving_ground["images"])
            for cluster, info in nodes.items()}


@pytest.fixture
def cutover_backends(old_cluster, new_cluster, real_nodes) -> Iterator[tuple]:
    """(old, new): each cluster's endpoint for a name in a cutover test (tests/cutover.py):
    httpd pods on each cluster's real node, behind one NodePort at the node's address."""
    from tests.cutover import real_node_backends

    with real_node_backends([old_cluster, new_cluster], real_nodes) as backends:
        yield backends
