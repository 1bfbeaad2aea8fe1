"""A Secret's values never appear in what migrator prints, logs or reports.

A marker is planted in every value a Secret holds (data, stringData, an annotation, and the
last-applied annotation `kubectl apply` writes, which repeats the data); every command of a
migration then runs at the highest verbosity, in text and JSON, with the target's copy
changed so that verify has differences to show. No output, log line or report file may hold
a marker, plain or base64.
"""
from __future__ import annotations

import base64
import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.timeout(300)
def test_no_command_shows_a_secret_value(old_cluster, new_cluster, make_namespace, tmp_path):
    tag = uuid.uuid4().hex[:10]
    markers = {name: f"zq{name}{tag}" for name in ("data", "string", "note", "lastdata", "laststr")}
    namespace = make_namespace(old_cluster)
    applied = {"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "vault", "namespace": namespace},
               "data": {"token": b64(markers["lastdata"])},
               "stringData": {"password": markers["laststr"]}}
    old_cluster.client.request("POST", f"/api/v1/namespaces/{namespace}/secrets", body={
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": "vault", "annotations": {
            "team.example.com/note": markers["note"],
            "kubectl.kubernetes.io/last-applied-configuration": json.dumps(applied)}},
        "data": {"token": b64(markers["data"])},
        "stringData": {"password": markers["string"]}})
    store, report_file = tmp_path / "snapshots", tmp_path / "transform-report.json"
    k = ["--kubeconfig", old_cluster.kubeconfig]
    outputs: list[str] = []

    def run(*args: str, ok: tuple[int, ...] = (0,)) -> None:
        done = subprocess.run([sys.executable, "-m", "migrator", "-vv", *args], cwd=REPO,
                              capture_output=True, text=True, timeout=120)
        outputs.append(f"$ {' '.join(args)}\n{done.stdout}\n{done.stderr}")
        assert done.returncode in ok, outputs[-1]

    for output in ("json", "text"):
        run("export", "--from", "old", "--to", "new", *k, "--store", str(store), "--id",
            f"sec-{output}", "--include-namespace", namespace, "-o", output)
        run("snapshot", "show", f"sec-{output}", "--store", str(store), "-o", output)
        run("check-apis", "--snapshot", f"sec-{output}", "--store", str(store), "--to", "new",
            *k, "-o", output)
        run("transform", f"sec-{output}", "--store", str(store), "--to", "new", *k, "--id",
            f"sec-{output}-new", "--validate", "-o", output, "--report", str(report_file))
        outputs.append(report_file.read_text())
    run("snapshot", "verify", "sec-json", "--store", str(store))
    run("import", "sec-json-new", "--store", str(store), "--to", "new", *k, "-o", "json")
    run("import", "sec-json-new", "--store", str(store), "--to", "new", *k, "--restart")
    # The target's copy changed in every secret field, so verify shows differences there.
    changed = {"metadata": {"annotations": {
        "team.example.com/note": markers["note"] + "x",
        "kubectl.kubernetes.io/last-applied-configuration": json.dumps(
            {**applied, "stringData": {"password": markers["laststr"] + "x"}})}},
        "data": {"token": b64(markers["data"] + "x")}}
    new_cluster.client.request("PATCH", f"/api/v1/namespaces/{namespace}/secrets/vault",
                               body=changed, content_type="application/merge-patch+json")
    for output in ("json", "text"):
        run("verify", "sec-json-new", "--store", str(store), "--to", "new", *k, "-o", output,
            ok=(7,))
    shown = "\n".join(outputs)
    assert "/data/token" in shown and "<masked>" in shown  # verify did show the difference
    for name, marker in markers.items():
        for form in (marker, b64(marker), b64(marker + "x"), marker + "x"):
            assert form not in shown, f"the {name} marker appears ({form})"
    new_cluster.client.request("DELETE", f"/api/v1/namespaces/{namespace}")
