"""CertificateSigningRequest certificates.k8s.io/v1beta1 → v1.

v1 requires ``signerName`` and ``usages`` (v1beta1 defaulted them) and a ``status`` on each
condition. v1 refuses to create a request for ``kubernetes.io/legacy-unknown``, so such a
request is dropped: it must be made again with a real signer.
"""

from __future__ import annotations

from typing import Any

from migrator.transform.base import Change, Result, Severity
from migrator.transform.conversions.convert import Rewrite
from migrator.transform.conversions.rewriter import Rewriter

V1 = "certificates.k8s.io/v1"
V1BETA1 = "certificates.k8s.io/v1beta1"
CSR = "CertificateSigningRequest"
LEGACY_SIGNER = "kubernetes.io/legacy-unknown"
DEFAULT_USAGES = ["digital signature", "key encipherment"]


def csr_edit(rw: Rewriter) -> None:
    rw.default(
        ("spec", "signerName"),
        LEGACY_SIGNER,
        "v1 requires signerName; v1beta1 defaulted "
        "legacy-unknown when it could not tell the signer",
    )
    rw.default(
        ("spec", "usages"), list(DEFAULT_USAGES), "v1 requires usages; v1beta1 defaulted them"
    )
    for path, condition in rw.each(("status", "conditions")):
        if isinstance(condition, dict):
            rw.default(
                (*path, "status"), "True", "v1 requires a condition status; v1beta1 defaulted True"
            )


class _CsrRewrite(Rewrite):
    """The rewrite, then a drop when the signer cannot exist in v1."""

    def convert(self, obj: dict[str, Any]) -> Result:
        result = super().convert(obj)
        if result.obj is not None and result.obj["spec"].get("signerName") == LEGACY_SIGNER:
            drop = Change(
                "",
                "drop",
                f"v1 does not accept requests for {LEGACY_SIGNER}: make the "
                "request again with a specific signer on the new cluster",
                Severity.DROP,
                source=self.name,
            )
            return Result(None, [*result.changes, drop])
        return result


CONVERSIONS = (_CsrRewrite((V1BETA1, CSR), (V1, CSR), (csr_edit,)),)
