"""Certificates and keys for the proving ground, made once per proving ground.

One CA signs the API servers' serving certificates and every client certificate
(admin, controller manager, scheduler, kwok); a second CA is the aggregation layer's
front proxy; one RSA key pair signs and verifies service-account tokens.
"""
from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

_VALID = datetime.timedelta(days=3650)


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _write_key(key: rsa.RSAPrivateKey, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.TraditionalOpenSSL,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def _write_cert(cert: x509.Certificate, path: Path) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _builder(subject: x509.Name, issuer: x509.Name, public_key) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
            .public_key(public_key).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + _VALID))


def _make_ca(directory: Path, stem: str, cn: str) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = _key()
    cert = (_builder(_name(cn), _name(cn), key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    _write_key(key, directory / f"{stem}.key")
    _write_cert(cert, directory / f"{stem}.crt")
    return key, cert


def _issue(directory: Path, stem: str, ca: tuple[rsa.RSAPrivateKey, x509.Certificate],
           cn: str, org: str | None = None, server: bool = False) -> None:
    ca_key, ca_cert = ca
    key = _key()
    usage = [x509.ExtendedKeyUsageOID.SERVER_AUTH] if server else [x509.ExtendedKeyUsageOID.CLIENT_AUTH]
    builder = (_builder(_name(cn, org), ca_cert.subject, key.public_key())
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage(usage), critical=False))
    if server:
        names = [x509.DNSName("localhost"), x509.DNSName("kubernetes"),
                 x509.DNSName("kubernetes.default.svc"),
                 x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    _write_key(key, directory / f"{stem}.key")
    _write_cert(builder.sign(ca_key, hashes.SHA256()), directory / f"{stem}.crt")


# Client identities: file stem -> (common name, organisation).
CLIENTS = {
    "admin": ("migrator-admin", "system:masters"),
    "controller-manager": ("system:kube-controller-manager", None),
    "scheduler": ("system:kube-scheduler", None),
    "kwok": ("kwok-controller", "system:masters"),
    # The API server's identity towards kubelets (logs, exec, port-forward).
    "apiserver-kubelet-client": ("kube-apiserver-kubelet-client", "system:masters"),
}


def create(directory: Path) -> None:
    """Write every key and certificate into ``directory`` (idempotent: kept if present)."""
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / ".done").exists():
        return
    ca = _make_ca(directory, "ca", "migrator-proving-ground-ca")
    _issue(directory, "apiserver", ca, "kube-apiserver", server=True)
    for stem, (cn, org) in CLIENTS.items():
        _issue(directory, stem, ca, cn, org)
    front = _make_ca(directory, "front-proxy-ca", "migrator-front-proxy-ca")
    _issue(directory, "front-proxy-client", front, "front-proxy-client")
    sa = _key()
    _write_key(sa, directory / "sa.key")
    (directory / "sa.pub").write_bytes(sa.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    (directory / ".done").write_text("ok\n")


def issue_client(directory: Path, stem: str, cn: str, org: str | None = None) -> None:
    """One more client certificate from the proving ground's CA (a node, kube-proxy)."""
    if (directory / f"{stem}.crt").exists():
        return
    ca_key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate((directory / "ca.crt").read_bytes())
    _issue(directory, stem, (ca_key, ca_cert), cn, org)
