"""Helm release records: decoded, rewritten, re-encoded in Helm's format."""
from __future__ import annotations

import base64
import gzip
import json
from typing import Any

import pytest
import yaml

from migrator.transform import registry
from migrator.transform.conversions import helm

pytestmark = pytest.mark.unit
SERVES = registry.release_serves(33)
INGRESS = ("# Source: web/templates/ingress.yaml\napiVersion: extensions/v1beta1\nkind: Ingress\n"
           "metadata:\n  name: web\nspec:\n  backend:\n    serviceName: web\n    servicePort: 80\n")
SERVICE = "# Source: web/templates/svc.yaml\napiVersion: v1\nkind: Service\nmetadata:\n  name: web # keep me\n"


def release_secret(docs: list[Any], texts: tuple[str, ...] = ()) -> dict[str, Any]:
    """A Helm v3 release Secret whose manifest holds ``docs`` (dumped) and ``texts`` (as is)."""
    manifest = "".join(f"---\n{text}" for text in (*texts, *(yaml.safe_dump(d) for d in docs)))
    release = {"name": "web", "manifest": manifest, "version": 3,
               "hooks": [{"name": "pre", "manifest": INGRESS}]}
    encoded = base64.b64encode(gzip.compress(json.dumps(release).encode())).decode()
    return {"apiVersion": "v1", "kind": "Secret", "type": helm.RELEASE_SECRET_TYPE,
            "metadata": {"name": "sh.helm.release.v1.web.v3", "labels": {"owner": "helm"}},
            "data": {"release": base64.b64encode(encoded.encode()).decode()}}


def test_release_manifest_and_hooks_are_rewritten() -> None:
    secret = release_secret([], (INGRESS, SERVICE))
    result = registry.convert_for(secret, lambda _: True, kind_serves=SERVES)
    release = helm.decode_release(base64.b64decode(result.obj["data"]["release"]).decode())
    docs = [d for d in yaml.safe_load_all(release["manifest"]) if d]
    assert docs[0]["apiVersion"] == "networking.k8s.io/v1"
    assert docs[0]["spec"]["defaultBackend"] == {"service": {"name": "web", "port": {"number": 80}}}
    assert "# Source: web/templates/ingress.yaml" in release["manifest"]
    assert SERVICE in release["manifest"]  # untouched documents are kept byte for byte
    assert "networking.k8s.io/v1" in release["hooks"][0]["manifest"]
    assert [c.path for c in result.changes] == ["/data/release"]
    assert result.changes[0].before is None and result.changes[0].after is None


def test_release_encoding_is_helms() -> None:
    encoded = helm.encode_release({"name": "x", "manifest": ""})
    raw = base64.b64decode(encoded)
    assert raw[:3] == b"\x1f\x8b\x08"
    assert helm.decode_release(encoded) == {"name": "x", "manifest": ""}


def test_release_without_removed_versions_is_unchanged() -> None:
    secret = release_secret([], (SERVICE,))
    secret["data"]["release"] = base64.b64encode(helm.encode_release({"manifest": SERVICE}).encode()).decode()
    result = registry.convert_for(secret, lambda _: True, kind_serves=SERVES)
    assert result.obj is secret and not result.changes


def test_configmap_driver() -> None:
    configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "r", "labels": {"owner": "helm"}},
                 "data": {"release": helm.encode_release({"manifest": "---\n" + INGRESS})}}
    result = registry.convert_for(configmap, lambda _: True, kind_serves=SERVES)
    assert "networking.k8s.io/v1" in helm.decode_release(result.obj["data"]["release"])["manifest"]


def test_a_document_that_is_not_yaml_is_kept_and_reported_without_its_content() -> None:
    broken = "apiVersion: v1\nkind: Secret\ndata:\n  password: c2VjcmV0\n  bad: [unclosed\n"
    secret = release_secret([], (broken, INGRESS))
    result = registry.convert_for(secret, lambda _: True, kind_serves=SERVES)
    release = helm.decode_release(base64.b64decode(result.obj["data"]["release"]).decode())
    assert broken in release["manifest"]  # kept byte for byte
    assert "networking.k8s.io/v1" in release["manifest"]  # the rest still converted
    review = [c for c in result.changes if c.severity.value == "review"]
    assert len(review) == 1 and "not valid YAML" in review[0].reason
    assert "c2VjcmV0" not in review[0].reason and "password" not in review[0].reason
    # Nothing else to convert: still reported, the record itself unchanged.
    release = {"name": "web", "manifest": f"---\n{broken}", "version": 1}
    encoded = base64.b64encode(gzip.compress(json.dumps(release).encode())).decode()
    only_broken = {**secret, "data": {"release": base64.b64encode(encoded.encode()).decode()}}
    kept = registry.convert_for(only_broken, lambda _: True, kind_serves=SERVES)
    assert kept.obj == only_broken
    assert [c.severity.value for c in kept.changes] == ["review"]
