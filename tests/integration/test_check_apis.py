"""check-apis on a live cluster: the migrated CRDs' custom resources are fine, built-ins are
left out, deprecated objects are listed."""
from __future__ import annotations

import json
import uuid

from click.testing import CliRunner

from migrator.cli import cli
from migrator.errors import ApiError
from tests.waiting import wait_until


def test_check_apis_live(old_cluster, old_namespace):
    api, ns = old_cluster.client, old_namespace
    group = f"g{uuid.uuid4().hex[:8]}.example.com"
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": f"widgets.{group}"},
           "spec": {"group": group, "scope": "Namespaced",
                    "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                    "versions": [{"name": "v1", "served": True, "storage": True, "schema": {
                        "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}}
    api.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", body=crd)
    try:
        wait_until("a widget created (its CRD established)", lambda: api.request(
            "POST", f"/apis/{group}/v1/namespaces/{ns}/widgets",
            body={"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w"}}),
            timeout=30, ignore=(ApiError,))
        api.request("POST", f"/apis/batch/v1beta1/namespaces/{ns}/cronjobs", body={
            "apiVersion": "batch/v1beta1", "kind": "CronJob", "metadata": {"name": "nightly"},
            "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "busybox"}]}}}}}})
        result = CliRunner().invoke(cli, ["check-apis", "--kubeconfig", old_cluster.kubeconfig,
                                          "--from", "old", "--to", "new", "-o", "json"])
        report = json.loads(result.stdout)
        names = {(o["object"].get("apiVersion"), o["object"].get("name")): o for o in report["objects"]}
        assert names[("batch/v1beta1", "nightly")]["verdict"] == "convert"
        assert not [k for k in names if k[0] == f"{group}/v1"], "custom resources of migrated CRDs are served"
        assert not [k for k in names if k[0].startswith("flowcontrol")], "built-in flow control is not exported"
    finally:
        api.request("DELETE", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.{group}")
