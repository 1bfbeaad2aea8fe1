"""Pod Security levels of pods and namespaces (the Pod Security Standards, v1.33), and the
labels that replace PodSecurityPolicy."""
from __future__ import annotations

from pathlib import Path

import pytest

from migrator.snapshot import SnapshotReader, SnapshotWriter
from migrator.store import open_store
from migrator.transform import podsecurity
from migrator.transform.podsecurity import BASELINE, PRIVILEGED, RESTRICTED, evaluate

pytestmark = pytest.mark.unit

RESTRICTED_CONTEXT = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
RESTRICTED_POD = {"securityContext": {"runAsNonRoot": True,
                                      "seccompProfile": {"type": "RuntimeDefault"}},
                  "volumes": [{"name": "c", "configMap": {"name": "c"}}],
                  "containers": [{"name": "app", "securityContext": RESTRICTED_CONTEXT}]}


def pod(**changes) -> dict:
    """A pod spec that passes restricted, with ``changes`` laid over it."""
    return {**RESTRICTED_POD, **changes}


def with_container(**context) -> dict:
    return pod(containers=[{"name": "app", "securityContext": {**RESTRICTED_CONTEXT, **context}}])


@pytest.mark.parametrize(("spec", "level"), [
    (pod(), RESTRICTED),
    # restricted checks
    (pod(securityContext={"seccompProfile": {"type": "RuntimeDefault"}}), BASELINE),  # root may run
    (pod(securityContext={"runAsNonRoot": True}), BASELINE),  # no seccomp profile
    (with_container(allowPrivilegeEscalation=None), BASELINE),
    (with_container(capabilities={"drop": ["NET_RAW"]}), BASELINE),
    (with_container(capabilities={"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}), RESTRICTED),
    (with_container(capabilities={"drop": ["ALL"], "add": ["CHOWN"]}), BASELINE),
    (with_container(runAsUser=0), BASELINE),
    (with_container(runAsNonRoot=False), BASELINE),
    (pod(volumes=[{"name": "n", "nfs": {"server": "s", "path": "/"}}]), BASELINE),
    (with_container(seccompProfile={"type": "Localhost", "localhostProfile": "p.json"}),
     RESTRICTED),
    # baseline checks
    (pod(hostNetwork=True), PRIVILEGED),
    (pod(volumes=[{"name": "h", "hostPath": {"path": "/"}}]), PRIVILEGED),
    (with_container(privileged=True), PRIVILEGED),
    (with_container(capabilities={"drop": ["ALL"], "add": ["SYS_ADMIN"]}), PRIVILEGED),
    (with_container(seccompProfile={"type": "Unconfined"}), PRIVILEGED),
    (with_container(procMount="Unmasked"), PRIVILEGED),
    (with_container(seLinuxOptions={"type": "spc_t"}), PRIVILEGED),
    (with_container(seLinuxOptions={"type": "container_t"}), RESTRICTED),
    (with_container(appArmorProfile={"type": "Unconfined"}), PRIVILEGED),
    (with_container(windowsOptions={"hostProcess": True}), PRIVILEGED),
    (pod(containers=[{"name": "app", "securityContext": RESTRICTED_CONTEXT,
                      "ports": [{"containerPort": 80, "hostPort": 80}]}]), PRIVILEGED),
    (pod(securityContext={**RESTRICTED_POD["securityContext"],
                          "sysctls": [{"name": "net.ipv4.tcp_rmem", "value": "1"}]}), RESTRICTED),
    (pod(securityContext={**RESTRICTED_POD["securityContext"],
                          "sysctls": [{"name": "kernel.msgmax", "value": "1"}]}), PRIVILEGED),
    (pod(initContainers=[{"name": "init", "securityContext": {"privileged": True}}]), PRIVILEGED),
    # a bare pod: baseline (root, no seccomp, escalation allowed), not privileged
    ({"containers": [{"name": "app", "image": "busybox"}]}, BASELINE),
])
def test_level_of_a_pod(spec, level) -> None:
    found, reasons = evaluate({}, spec)
    assert found == level, reasons
    assert bool(reasons) == (level != RESTRICTED)


def test_apparmor_annotation_counts_like_the_field() -> None:
    annotations = {"container.apparmor.security.beta.kubernetes.io/app": "unconfined"}
    assert evaluate({"annotations": annotations}, pod())[0] == PRIVILEGED
    annotations = {"container.apparmor.security.beta.kubernetes.io/app": "runtime/default"}
    assert evaluate({"annotations": annotations}, pod())[0] == RESTRICTED


def write(store_path: Path) -> SnapshotReader:
    """A snapshot: namespaces a (a privileged DaemonSet template and a restricted pod),
    b (a baseline CronJob template whose seccomp annotation becomes a field), c (empty)."""
    store = open_store(str(store_path))
    writer = SnapshotWriter(store, "src")
    with writer.resource("", "v1", "namespaces", "Namespace", False) as res:
        for name in ("a", "b", "c"):
            res.write({"metadata": {"name": name}})
    with writer.resource("apps", "v1", "daemonsets", "DaemonSet", True) as res:
        res.write({"metadata": {"name": "agent", "namespace": "a"}, "spec": {"template": {
            "spec": {"hostNetwork": True, "containers": [{"name": "c"}]}}}})
    with writer.resource("", "v1", "pods", "Pod", True) as res:
        res.write({"metadata": {"name": "p", "namespace": "a"}, "spec": RESTRICTED_POD})
    with writer.resource("batch", "v1beta1", "cronjobs", "CronJob", True) as res:
        res.write({"metadata": {"name": "nightly", "namespace": "b"}, "spec": {"jobTemplate": {
            "spec": {"template": {"metadata": {"annotations": {
                "seccomp.security.alpha.kubernetes.io/pod": "runtime/default"}},
                "spec": {"containers": [{"name": "c"}]}}}}}})
    writer.commit(source={"context": "old"})
    return SnapshotReader(store, "src")


def test_survey_gives_each_namespace_the_level_all_its_pods_pass(tmp_path: Path) -> None:
    found = podsecurity.survey(write(tmp_path)).to_dict()
    levels = {ns: v["level"] for ns, v in found["namespaces"].items()}
    assert levels == {"a": PRIVILEGED, "b": BASELINE, "c": RESTRICTED}
    assert found["namespaces"]["a"]["podsAndTemplates"] == 2
    assert found["namespaces"]["a"]["whyNotStricter"] == [
        "DaemonSet agent: host namespaces: hostNetwork=true"]
    # the seccomp annotation became a field before the check: only root and escalation remain
    assert "seccomp" not in " ".join(found["namespaces"]["b"]["whyNotStricter"])
    assert found["version"] == "v1.33"


def test_labels_are_set_on_namespaces_and_existing_ones_kept(tmp_path: Path) -> None:
    found = podsecurity.survey(write(tmp_path)).renamed({"a": "a2"})
    rule = podsecurity.PodSecurityLabels(found)
    renamed = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a2"}}
    changes = rule.apply(renamed)
    assert renamed["metadata"]["labels"] == {"pod-security.kubernetes.io/enforce": "privileged",
                                             "pod-security.kubernetes.io/enforce-version": "v1.33"}
    assert [c.path for c in changes] == ["/metadata/labels/pod-security.kubernetes.io~1enforce",
                                         "/metadata/labels/pod-security.kubernetes.io~1enforce-version"]
    labelled = {"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": "c", "labels": {"pod-security.kubernetes.io/enforce": "baseline"}}}
    assert rule.apply(labelled) == []
    assert labelled["metadata"]["labels"] == {"pod-security.kubernetes.io/enforce": "baseline"}
    report = found.to_dict()["namespaces"]
    assert report["a2"]["label"] == "set: pod-security.kubernetes.io/enforce=privileged"
    assert report["c"]["label"] == "kept: pod-security.kubernetes.io/enforce=baseline"
