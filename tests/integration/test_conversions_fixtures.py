"""The k8s.io/api testdata of the old release (every field filled) through every conversion.

For each removed group/version/kind migrator converts: no crash, and every input field is
carried to the same path, or covered by a recorded change (moved, converted, dropped).
"""
from __future__ import annotations

import json

import pytest

from migrator.transform import registry
from tests.integration.conversion_support import unaccounted_fields

SERVES = registry.release_serves(33)
# group/versions the k8s.io/api module does not hold (apiextensions-apiserver, kube-aggregator)
# or that the old release predates (flowcontrol v1beta2/v1beta3): covered by other tests.
NOT_IN_K8S_API = {"apiextensions.k8s.io/v1beta1", "apiregistration.k8s.io/v1beta1",
                  "flowcontrol.apiserver.k8s.io/v1beta2", "flowcontrol.apiserver.k8s.io/v1beta3"}


@pytest.mark.parametrize("source", sorted(c.source for c in registry.CONVERSIONS if c.source[0] not in NOT_IN_K8S_API),
                         ids=lambda s: f"{s[0]}-{s[1]}")
def test_every_field_is_accounted_for(source, k8s_api_fixtures) -> None:
    path = k8s_api_fixtures / f"{source[0].replace('/', '.')}.{source[1]}.json"
    obj = json.loads(path.read_text())
    text = json.dumps(obj)
    result = registry.convert_for(obj, lambda _: True, kind_serves=SERVES)
    assert json.dumps(obj) == text, "the conversion modified its input"
    assert not unaccounted_fields(obj, result)
    if result.obj is not None:
        assert SERVES(result.obj["apiVersion"], result.obj["kind"])


def test_helm_release_secret_is_rewritten_and_still_decodes(k8s_api_fixtures) -> None:
    import base64

    from migrator.transform.conversions import helm
    from tests.unit.test_conversions_helm import release_secret

    deployment = json.loads((k8s_api_fixtures / "extensions.v1beta1.Deployment.json").read_text())
    secret = release_secret([deployment])
    result = registry.convert_for(secret, lambda _: True, kind_serves=SERVES)
    release = helm.decode_release(base64.b64decode(result.obj["data"]["release"]).decode())
    assert "apiVersion: apps/v1\n" in release["manifest"]
    assert "extensions/v1beta1" not in release["manifest"]
