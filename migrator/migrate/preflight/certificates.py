"""``certificates``: the API servers' serving certificates and the kubeconfig's client
certificates must outlive the migration.

A serving certificate is read from a TLS handshake with the server of the kubeconfig's
cluster (verification off: the certificate's dates are what is asked, not whether it is
trusted; the connection that reached the cluster already verified it). A client certificate
is read from ``client-certificate-data`` or the ``client-certificate`` file. Under
``certificate_days`` left (or expired) is a fail, under twice that a warn.
"""

from __future__ import annotations

import socket
import ssl
from datetime import datetime, timedelta
from urllib.parse import urlparse

from migrator.errors import MigratorError
from migrator.kube import kubeconfig as kubeconfig_files
from migrator.migrate.preflight.context import SOURCE, TARGET, Context
from migrator.migrate.preflight.result import FAIL, PASS, WARN, CheckResult

HANDSHAKE_TIMEOUT = 5.0
_RANK = {PASS: 0, WARN: 1, FAIL: 2}


def expiry_status(not_after: datetime, now: datetime, days: float) -> str:
    """fail under ``days`` left (expired included), warn under twice that, else pass."""
    left = not_after - now
    if left < timedelta(days=days):
        return FAIL
    if left < timedelta(days=2 * days):
        return WARN
    return PASS


def describe_expiry(what: str, not_after: datetime, now: datetime) -> str:
    """``client certificate of context old expires 2026-12-08 (in 2 days)``."""
    date = not_after.strftime("%Y-%m-%d %H:%M UTC")
    left = not_after - now
    if left.total_seconds() <= 0:
        return f"{what} expired {date}"
    return f"{what} expires {date} (in {left.days} day(s))"


def certificate_not_after(pem_or_der: bytes) -> datetime:
    """The notAfter of the first certificate in PEM (or DER) bytes, timezone-aware UTC."""
    from cryptography import x509

    if b"-----BEGIN" in pem_or_der:
        cert = x509.load_pem_x509_certificate(pem_or_der)
    else:
        cert = x509.load_der_x509_certificate(pem_or_der)
    return cert.not_valid_after_utc


def serving_certificate(server: str, server_name: str | None = None) -> bytes:
    """The DER certificate an HTTPS server presents."""
    url = urlparse(server)
    if url.scheme != "https" or not url.hostname:
        raise ValueError(f"{server} is not an https:// URL")
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((url.hostname, url.port or 443), HANDSHAKE_TIMEOUT) as sock:
        with context.wrap_socket(sock, server_hostname=server_name or url.hostname) as tls:
            der = tls.getpeercert(binary_form=True)
    if not der:
        raise ValueError(f"{server} presented no certificate")
    return der


def _certificates(ctx: Context, side: str) -> list[tuple[str, datetime | str]]:
    """(which certificate, its notAfter or why it could not be read) for one side."""
    ref = ctx.plan.source if side == SOURCE else ctx.plan.target
    try:
        _choice, access = kubeconfig_files.load(ctx.plan.kubeconfig, ref.context)
    except MigratorError as exc:
        return [(f"kubeconfig context {ref.context!r}", str(exc))]
    found: list[tuple[str, datetime | str]] = []
    serving = f"serving certificate of {access.server}"
    if access.official is not None and access.official.startswith("proxy-url"):
        found.append((serving, "not checked: the server is reached through a proxy"))
    elif side in ctx.unreachable:
        found.append((serving, "not checked: the server did not answer"))
    else:
        try:
            found.append(
                (
                    serving,
                    certificate_not_after(
                        serving_certificate(access.server, access.tls_server_name)
                    ),
                )
            )
        except (OSError, ValueError) as exc:
            found.append((serving, f"cannot be read: {exc}"))
    if access.client_cert_pem:
        what = f"client certificate of context {ref.context!r}"
        try:
            found.append((what, certificate_not_after(access.client_cert_pem)))
        except ValueError as exc:
            found.append((what, f"cannot be parsed: {exc}"))
    return found


def check_certificates(ctx: Context) -> CheckResult:
    days = ctx.plan.preflight.certificate_days
    worst = PASS
    lines: list[str] = []
    unreadable: list[str] = []
    expiring: list[str] = []
    notes: list[str] = []
    for side in (SOURCE, TARGET):
        for what, when in _certificates(ctx, side):
            if isinstance(when, str):
                # a server that did not answer is the reachable check's failure already
                (notes if when.startswith("not checked") else unreadable).append(f"{what}: {when}")
                continue
            status = expiry_status(when, ctx.now, days)
            line = describe_expiry(what, when, ctx.now)
            lines.append(line)
            if status != PASS:
                expiring.append(line)
            worst = max(worst, status, key=_RANK.__getitem__)
    details = tuple(
        expiring + unreadable + notes + [line for line in lines if line not in expiring]
    )
    if worst == FAIL:
        return CheckResult(
            "certificates",
            FAIL,
            f"{len(expiring)} certificate(s) expire within {2 * days:g} days, some within {days:g}",
            "renew them before migrating (the run may outlast them): kubeadm certs renew, "
            "or a new kubeconfig from the cluster's provider",
            details,
        )
    if worst == WARN:
        return CheckResult(
            "certificates",
            WARN,
            f"{len(expiring)} certificate(s) expire within {2 * days:g} days",
            "renew them soon, before a long migration or its soak",
            details,
        )
    summary = f"{len(lines)} certificate(s) valid for more than {2 * days:g} days"
    if unreadable:
        return CheckResult(
            "certificates",
            WARN,
            summary + f"; {len(unreadable)} could not be read",
            "check them by hand (openssl x509 -noout -enddate)",
            details,
        )
    return CheckResult("certificates", PASS, summary, details=details)
