"""What a CRD says about its custom resources: storage version, conversion webhook."""
from __future__ import annotations

from migrator.resources.crds import ConversionWebhook, by_identity, crd_info, webhook_notes

V1 = {
    "metadata": {"name": "certificates.cert-manager.io"},
    "spec": {"group": "cert-manager.io", "names": {"plural": "certificates", "kind": "Certificate"},
             "versions": [{"name": "v1alpha2", "served": True, "storage": False},
                          {"name": "v1", "served": True, "storage": True},
                          {"name": "v1alpha1", "served": False, "storage": False}],
             "conversion": {"strategy": "Webhook", "webhook": {"clientConfig": {
                 "service": {"namespace": "cert-manager", "name": "cert-manager-webhook",
                             "path": "/convert"}, "caBundle": "Q0E="}}}}}
V1BETA1 = {
    "metadata": {"name": "gadgets.example.com"},
    "spec": {"group": "example.com", "version": "v1beta1",
             "names": {"plural": "gadgets", "kind": "Gadget"},
             "conversion": {"strategy": "Webhook",
                            "webhookClientConfig": {"url": "https://hooks.example.com/c"}}}}
PLAIN = {"metadata": {"name": "widgets.example.com"},
         "spec": {"group": "example.com", "names": {"plural": "widgets", "kind": "Widget"},
                  "versions": [{"name": "v1", "served": True, "storage": True}]}}


def test_storage_version_and_webhook_from_either_layout() -> None:
    info = crd_info(V1)
    assert info is not None
    assert (info.storage_version, info.served_versions) == ("v1", ("v1alpha2", "v1"))
    assert info.webhook == ConversionWebhook("cert-manager", "cert-manager-webhook", 443)
    assert info.needs_conversion("v1alpha2") and not info.needs_conversion("v1")
    old = crd_info(V1BETA1)
    assert old is not None and old.storage_version == "v1beta1"
    assert old.webhook is not None and old.webhook.describe() == "https://hooks.example.com/c"
    plain = crd_info(PLAIN)
    assert plain is not None and plain.webhook is None and not plain.needs_conversion("v0")
    assert crd_info({"spec": {"group": "x"}}) is None


def test_notes_name_only_the_crds_with_webhooks() -> None:
    assert set(by_identity([V1, V1BETA1, PLAIN])) == {
        ("cert-manager.io", "certificates"), ("example.com", "gadgets"),
        ("example.com", "widgets")}
    notes = webhook_notes([V1, V1BETA1, PLAIN])
    assert set(notes) == {"certificates.cert-manager.io", "gadgets.example.com"}
    assert "storage version v1" in notes["certificates.cert-manager.io"]
    assert "service cert-manager/cert-manager-webhook:443" in notes["certificates.cert-manager.io"]
