"""`migrator discover` and the kube layer against the real clusters."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from migrator.cli import cli
from migrator.errors import ApiError
from migrator.kube import Discovery, connect, discover, iter_items
from tests.waiting import wait_until


def test_discover_reports_both_clusters(proving_ground):
    result = CliRunner().invoke(cli, ["discover", "--kubeconfig", proving_ground["kubeconfig"],
                                      "--from", "old", "--to", "new", "-o", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    old, new = report["clusters"]
    assert old["version"]["gitVersion"] == "v" + proving_ground["clusters"]["old"]["version"]
    assert new["version"]["gitVersion"] == "v" + proving_ground["clusters"]["new"]["version"]
    for cluster in (old, new):
        assert cluster["nodes"]["count"] >= 3
        assert cluster["nodes"]["ready"] >= 3
    old_deprecated = {e["groupVersion"] for e in old["deprecatedGroupVersions"]}
    assert {"extensions/v1beta1", "policy/v1beta1", "batch/v1beta1"} <= old_deprecated
    assert not {e["groupVersion"] for e in new["deprecatedGroupVersions"]} & old_deprecated
    missing = {e["groupVersion"] for e in report["comparison"]["targets"][0]["missingInTarget"]}
    assert "extensions/v1beta1" in missing and "apps/v1" not in missing


def test_discover_text_report(proving_ground):
    result = CliRunner().invoke(cli, ["discover", "--kubeconfig", proving_ground["kubeconfig"],
                                      "--from", "old", "--to", "new"])
    assert result.exit_code == 0, result.output
    assert "v1.21.14" in result.output and "extensions/v1beta1" in result.output
    assert "old → new" in result.output


def test_unknown_context_is_a_clear_error(proving_ground):
    result = CliRunner().invoke(cli, ["discover", "--kubeconfig", proving_ground["kubeconfig"],
                                      "--from", "staging"])
    assert result.exit_code == 2
    assert "staging" in result.output and "old" in result.output and "Traceback" not in result.output


def test_pager_follows_continue_tokens(old_cluster, old_namespace):
    api, ns = old_cluster.client, old_namespace
    for i in range(7):
        api.request("POST", f"/api/v1/namespaces/{ns}/configmaps",
                    body={"metadata": {"name": f"cm-{i}"}, "data": {"i": str(i)}})
    names = [o["metadata"]["name"] for o in iter_items(api, f"/api/v1/namespaces/{ns}/configmaps", limit=2)]
    assert sorted(n for n in names if n.startswith("cm-")) == [f"cm-{i}" for i in range(7)]
    assert len(names) == len(set(names))


def test_aggregated_api_down_is_reported_not_fatal(old_cluster):
    api = old_cluster.client
    name = "v1alpha1.broken.migrator.test"
    api.request("POST", "/apis/apiregistration.k8s.io/v1/apiservices", body={
        "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": name},
        "spec": {"group": "broken.migrator.test", "version": "v1alpha1", "groupPriorityMinimum": 100,
                 "versionPriority": 100, "insecureSkipTLSVerify": True,
                 "service": {"namespace": "default", "name": "no-such-service", "port": 443}}})
    try:
        def failed_discovery() -> Discovery | None:
            found = discover(old_cluster.client)
            return found if "broken.migrator.test/v1alpha1" in found.failed else None

        found = wait_until("the broken API failing discovery", failed_discovery, timeout=30,
                           interval=1)
        assert "broken.migrator.test/v1alpha1" in found.failed
        assert found.serves("apps/v1") and found.resources("apps/v1")
    finally:
        api.request("DELETE", f"/apis/apiregistration.k8s.io/v1/apiservices/{name}")


def test_http_errors_carry_the_status_body(old_cluster):
    with pytest.raises(ApiError) as err:
        old_cluster.client.request("GET", "/api/v1/namespaces/default/configmaps/does-not-exist")
    assert err.value.status == 404
    assert "does-not-exist" in str(err.value)


def test_connect_with_each_context(proving_ground):
    for name in ("old", "new"):
        with connect(proving_ground["kubeconfig"], name) as cluster:
            assert cluster.server == proving_ground["clusters"][name]["server"]
            assert cluster.request("GET", "/version")["gitVersion"] == "v" + proving_ground["clusters"][name]["version"]
