"""The transform report: secret values never appear."""
from __future__ import annotations

import json

import pytest

from migrator.transform.base import Change, Severity
from migrator.transform.report import TransformReport, is_sensitive, object_ref

pytestmark = pytest.mark.unit

SECRET = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "a"},
          "data": {"password": "aHVudGVyMg=="}}
HELM = {"apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1",
        "metadata": {"name": "sh.helm.release.v1.app.v1", "namespace": "a",
                     "labels": {"owner": "helm"}}, "data": {"release": "H4sIAAAA"}}


@pytest.mark.parametrize("obj", [SECRET, HELM])
def test_secret_values_are_masked(obj: dict) -> None:
    report = TransformReport("src", "dst", {"version": "1.33"})
    value = next(iter(obj["data"].values()))
    changes = [Change("/data/x", "set", "rule", before=value, after="bmV3"),
               Change("/metadata/annotations/x", "convert", "rewritten", Severity.REVIEW,
                      before={"data": value}, after={"data": value})]
    report.record(object_ref(obj), "changed", changes, sensitive=is_sensitive(obj), written=obj)
    text = json.dumps(report.to_dict())
    assert value not in text and "bmV3" not in text
    assert "(hidden)" in text and "/data/x" in text
    assert report.summary()["needsPerson"][0]["object"].startswith("v1 Secret a/")


def test_other_objects_keep_their_values() -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    assert not is_sensitive(cm)
    report = TransformReport("src", "dst", {})
    report.record(object_ref(cm), "changed", [Change("/data/a", "set", "r", before="1", after="2")],
                  sensitive=False)
    assert report.to_dict()["objects"][0]["changes"][0]["after"] == "2"
    assert is_sensitive({**cm, "metadata": {"name": "c", "labels": {"owner": "helm"}}})
