"""The RBAC manifests shipped in manifests/ do what their comments promise, on both releases."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from migrator.errors import ApiError
from tests.waiting import wait_until

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"
PATHS = {
    "Namespace": "/api/v1/namespaces",
    "ServiceAccount": "/api/v1/namespaces/{ns}/serviceaccounts",
    "ClusterRole": "/apis/rbac.authorization.k8s.io/v1/clusterroles",
    "ClusterRoleBinding": "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
}


def _docs(role: str, file: str = "rbac.yaml") -> list[dict]:
    docs = [d for d in yaml.safe_load_all((MANIFESTS / file).read_text()) if d]
    return [d for d in docs if d["metadata"]["labels"]["migrator.io/role"] == role]


def _apply(api, docs: list[dict]) -> list[tuple[str, str]]:
    created = []
    for doc in docs:
        path = PATHS[doc["kind"]].format(ns=doc["metadata"].get("namespace", ""))
        try:
            api.request("POST", path, body=doc)
            created.append((path, doc["metadata"]["name"]))
        except ApiError as exc:
            if exc.status != 409:
                raise
    return created


def _allowed(api, user: str, verb: str, resource: str, group: str = "", subresource: str = "") -> bool:
    review = api.request("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", body={
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": user, "groups": ["system:serviceaccounts", "system:authenticated"],
                 "resourceAttributes": {"verb": verb, "resource": resource, "group": group,
                                        "subresource": subresource, "namespace": "default"}}})
    return review["status"]["allowed"]


@pytest.mark.parametrize("which,role", [("old", "exporter"), ("new", "importer"),
                                        ("old", "importer"), ("new", "exporter")])
def test_rbac_manifest_grants_what_it_says(which, role, request):
    api = request.getfixturevalue(f"{which}_cluster").client
    created = _apply(api, _docs(role))
    user = f"system:serviceaccount:migrator:migrator-{role}"
    try:
        # The authorizer learns of new bindings through a watch: give it a moment.
        wait_until(f"{user} allowed to list secrets",
                   lambda: _allowed(api, user, "list", "secrets"), timeout=20)
        assert _allowed(api, user, "get", "deployments", "apps")
        assert _allowed(api, user, "create", "configmaps") is (role == "importer")
        assert _allowed(api, user, "delete", "namespaces") is (role == "importer")
    finally:
        for path, name in reversed(created):
            if not path.endswith("/namespaces"):
                api.request("DELETE", f"{path}/{name}")


@pytest.mark.parametrize("which", ["old", "new"])
def test_volume_sync_rbac_grants_the_movers_and_the_quiesce_and_nothing_more(which, request):
    api = request.getfixturevalue(f"{which}_cluster").client
    created = _apply(api, _docs("volume-sync", "volume-sync.yaml"))
    user = "system:serviceaccount:migrator:migrator-volume-sync"
    try:
        wait_until(f"{user} allowed to create jobs",
                   lambda: _allowed(api, user, "create", "jobs", "batch"), timeout=20)
        assert _allowed(api, user, "delete", "secrets")
        assert _allowed(api, user, "get", "pods", subresource="log")
        assert _allowed(api, user, "patch", "statefulsets", "apps", subresource="scale")
        assert _allowed(api, user, "create", "pods", subresource="exec")
        assert _allowed(api, user, "create", "persistentvolumes")
        assert not _allowed(api, user, "list", "secrets")  # it makes its own, reads none
        assert not _allowed(api, user, "delete", "statefulsets", "apps")
        assert not _allowed(api, user, "create", "pods")
    finally:
        for path, name in reversed(created):
            if not path.endswith("/namespaces"):
                api.request("DELETE", f"{path}/{name}")
