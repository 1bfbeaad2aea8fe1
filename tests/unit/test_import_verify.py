"""Verify's comparison: only fields the snapshot sets count, Secret values never shown."""
from __future__ import annotations

from migrator.resources.owners import OwnerIndex
from migrator.resources.readiness import FAILED, READY, WAITING, readiness
from migrator.verify import MASK, differences, expected, is_regenerated, project

DEPLOYMENTS = {"group": "apps", "version": "v1", "resource": "deployments", "kind": "Deployment",
               "namespaced": True, "objects": 1, "parts": [], "aside_parts": []}
SECRETS = {**DEPLOYMENTS, "group": "", "resource": "secrets", "kind": "Secret"}
CONFIGMAPS = {**DEPLOYMENTS, "group": "", "resource": "configmaps", "kind": "ConfigMap"}


def snapshot_deployment() -> dict:
    return {"metadata": {"name": "web", "namespace": "ns", "labels": {"app": "web"},
                         "annotations": {"deployment.kubernetes.io/revision": "7"}},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [
                {"name": "app", "image": "app:1"}]}}}}


def live_deployment(**changes: object) -> dict:
    live = {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "ns", "uid": "u", "resourceVersion": "9",
                         "generation": 1, "creationTimestamp": "2024-01-01T00:00:00Z",
                         "managedFields": [{"manager": "migrator"}], "labels": {"app": "web"},
                         "annotations": {"deployment.kubernetes.io/revision": "1"}},
            "spec": {"replicas": 2, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600,
                     "template": {"spec": {"containers": [
                         {"name": "app", "image": "app:1", "imagePullPolicy": "IfNotPresent",
                          "terminationMessagePath": "/dev/termination-log"}],
                         "restartPolicy": "Always"}}},
            "status": {"replicas": 2}}
    live["spec"].update(changes)
    return live


def test_defaults_server_fields_status_and_controller_annotations_do_not_count() -> None:
    desired = expected(snapshot_deployment(), DEPLOYMENTS)
    assert differences(desired, live_deployment()) == []


def test_a_value_we_set_that_differs_counts() -> None:
    desired = expected(snapshot_deployment(), DEPLOYMENTS)
    found = differences(desired, live_deployment(replicas=3))
    assert found == [{"path": "/spec/replicas", "change": "values_changed",
                      "snapshot": 2, "target": 3}]


def test_a_field_we_set_that_is_gone_counts() -> None:
    desired = expected(snapshot_deployment(), DEPLOYMENTS)
    live = live_deployment()
    del live["metadata"]["labels"]
    assert [d["path"] for d in differences(desired, live)] == ["/metadata/labels"]


def test_empty_values_the_server_omits_do_not_count() -> None:
    """Export can leave ``annotations: {}`` (all stripped); the API server stores nothing."""
    obj = snapshot_deployment()
    obj["metadata"]["annotations"] = {}
    obj["spec"]["template"]["spec"]["volumes"] = []
    desired = expected(obj, DEPLOYMENTS)
    live = live_deployment()
    del live["metadata"]["annotations"]
    assert differences(desired, live) == []
    obj["spec"]["template"]["spec"]["volumes"] = [{"name": "v", "emptyDir": {}}]
    assert [d["path"] for d in differences(expected(obj, DEPLOYMENTS), live)] == [
        "/spec/template/spec/volumes"]


def test_list_length_change_counts() -> None:
    desired = expected(snapshot_deployment(), DEPLOYMENTS)
    live = live_deployment()
    live["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "s"})
    assert differences(desired, live)


def test_secret_values_are_masked() -> None:
    snap = {"metadata": {"name": "s", "namespace": "ns"}, "type": "Opaque",
            "data": {"password": "c2VjcmV0", "gone": "eA=="}}
    live = {"metadata": {"name": "s", "namespace": "ns"}, "type": "Opaque",
            "data": {"password": "b3RoZXI="}}
    found = differences(expected(snap, SECRETS), live, secret=True)
    assert {d["path"] for d in found} == {"/data/password", "/data/gone"}
    text = repr(found)
    assert "c2VjcmV0" not in text and "b3RoZXI=" not in text and "eA==" not in text
    assert MASK in text


def test_owner_refs_compare_without_uid_and_without_dropped_ones() -> None:
    index = OwnerIndex({("apps", "Deployment"): True, ("", "ConfigMap"): True})
    refs = [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "old"},
            {"apiVersion": "apps/v1", "kind": "Deployment", "name": "gone", "uid": "old2"}]
    index.add_dependent(("", "ConfigMap", "ns", "cm"), refs)
    index.add_present(("apps", "Deployment", "ns", "web"))
    snap = {"metadata": {"name": "cm", "namespace": "ns", "ownerReferences": refs}}
    live = {"metadata": {"name": "cm", "namespace": "ns", "ownerReferences": [
        {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "new"}]}}
    assert differences(expected(snap, CONFIGMAPS, index), live) == []


def test_projection_keeps_only_desired_keys() -> None:
    assert project({"a": {"b": 1}}, {"a": {"b": 2, "c": 3}, "d": 4}) == {"a": {"b": 2}}
    assert project([{"a": 1}], [{"a": 1, "b": 2}, {"a": 3}]) == [{"a": 1, "b": 2}, {"a": 3}]


def test_regenerated_objects_are_not_extra() -> None:
    assert is_regenerated({"metadata": {"name": "kube-root-ca.crt"}}, CONFIGMAPS)
    assert not is_regenerated({"metadata": {"name": "mine"}}, CONFIGMAPS)


def test_readiness_fails_early_and_waits_otherwise() -> None:
    stuck = {"metadata": {"generation": 1}, "spec": {"replicas": 1}, "status": {
        "observedGeneration": 1, "conditions": [{"type": "Progressing", "status": "False",
                                                 "reason": "ProgressDeadlineExceeded"}]}}
    assert readiness("apps", "Deployment", stuck).state == FAILED
    ready = {"metadata": {"generation": 1}, "spec": {"replicas": 1}, "status": {
        "observedGeneration": 1, "updatedReplicas": 1, "availableReplicas": 1}}
    assert readiness("apps", "Deployment", ready).state == READY
    assert readiness("", "PersistentVolumeClaim", {"status": {"phase": "Pending"}}).state == WAITING
    assert readiness("", "PersistentVolumeClaim", {"status": {"phase": "Lost"}}).state == FAILED
    assert readiness("batch", "Job", {"status": {"conditions": [
        {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}}).state == FAILED
    assert readiness("", "ConfigMap", {}).state == READY
