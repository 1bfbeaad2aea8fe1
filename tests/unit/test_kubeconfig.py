"""Reading a context's cluster and credentials from kubeconfig files written as plain data,
and building the connection pool from them without the ``kubernetes`` package."""
from __future__ import annotations

import base64
import datetime
import json
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import urllib3
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from migrator import kube
from migrator.errors import ConfigError
from migrator.kube import kubeconfig
from migrator.kube.transport import open_transport

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cert_and_key() -> tuple[bytes, bytes]:
    """A self-signed certificate and its key, PEM (doubles as a CA for these tests)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def write(path: Path, cluster: dict[str, Any], user: dict[str, Any], name: str = "c") -> Path:
    """A kubeconfig with one context ``name`` joining one cluster and one user."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
    }))
    return path


def test_certificate_data_is_decoded_and_loaded(tmp_path, cert_and_key) -> None:
    cert, key = cert_and_key
    path = write(tmp_path / "config",
                 {"server": "https://127.0.0.1:6443/", "certificate-authority-data": b64(cert)},
                 {"client-certificate-data": b64(cert), "client-key-data": b64(key)})
    choice, access = kubeconfig.load(path, None)
    assert (choice.context, access.server) == ("c", "https://127.0.0.1:6443")
    assert (access.ca_pem, access.client_cert_pem, access.client_key_pem) == (cert, cert, key)
    assert access.official is None
    transport = open_transport(choice, access, pool_size=4)
    context = transport.pool.connection_pool_kw["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert len(context.get_ca_certs()) == 1
    assert transport.auth_headers() == {}


def test_files_are_read_relative_to_the_kubeconfig(tmp_path, cert_and_key) -> None:
    cert, key = cert_and_key
    (tmp_path / "conf" / "pki").mkdir(parents=True)
    (tmp_path / "conf" / "pki" / "ca.crt").write_bytes(cert)
    (tmp_path / "conf" / "pki" / "me.crt").write_bytes(cert)
    (tmp_path / "conf" / "pki" / "me.key").write_bytes(key)
    path = write(tmp_path / "conf" / "config",
                 {"server": "https://h:1", "certificate-authority": "pki/ca.crt"},
                 {"client-certificate": "pki/me.crt", "client-key": "pki/me.key"})
    _choice, access = kubeconfig.load(path, "c")
    assert (access.ca_pem, access.client_cert_pem, access.client_key_pem) == (cert, cert, key)


def test_a_missing_credential_file_is_named(tmp_path) -> None:
    path = write(tmp_path / "config", {"server": "https://h:1"},
                 {"client-certificate": "nope.crt", "client-key": "nope.key"})
    with pytest.raises(ConfigError, match=r"cannot read client-certificate .*nope\.crt"):
        kubeconfig.load(path, "c")


def test_bad_base64_is_a_config_error(tmp_path) -> None:
    path = write(tmp_path / "config",
                 {"server": "https://h:1", "certificate-authority-data": "not base64!"}, {})
    with pytest.raises(ConfigError, match="certificate-authority-data .* not valid base64"):
        kubeconfig.load(path, "c")


def test_unusable_certificates_are_config_errors(tmp_path, cert_and_key) -> None:
    cert, _key = cert_and_key
    path = write(tmp_path / "a", {"server": "https://h:1", "certificate-authority-data": b64(b"x")},
                 {})
    with pytest.raises(ConfigError, match="certificate authority .* not usable"):
        kube.connect(path, "c")
    path = write(tmp_path / "b", {"server": "https://h:1"}, {"client-certificate-data": b64(cert)})
    with pytest.raises(ConfigError, match="not both"):
        kube.connect(path, "c")
    path = write(tmp_path / "c", {"server": "https://h:1"},
                 {"client-certificate-data": b64(cert), "client-key-data": b64(b"junk")})
    with pytest.raises(ConfigError, match="client certificate or key .* not usable"):
        kube.connect(path, "c")


def test_insecure_skip_tls_verify_turns_verification_off(tmp_path) -> None:
    path = write(tmp_path / "config", {"server": "https://h:1", "insecure-skip-tls-verify": True},
                 {"token": "t"})
    with kube.connect(path, "c") as cluster:
        kw = cluster._pool.connection_pool_kw
        assert kw["cert_reqs"] == ssl.CERT_NONE and kw["assert_hostname"] is False
        assert kw["ssl_context"].verify_mode == ssl.CERT_NONE


def test_token_file_is_read_on_every_attempt(tmp_path) -> None:
    token = tmp_path / "token"
    token.write_text("first\n")
    path = write(tmp_path / "config", {"server": "http://h:1"}, {"tokenFile": "token"})
    with kube.connect(path, "c") as cluster:
        assert cluster._auth_headers() == {"authorization": "Bearer first"}
        token.write_text("rotated")
        assert cluster._auth_headers() == {"authorization": "Bearer rotated"}


def test_basic_auth(tmp_path) -> None:
    path = write(tmp_path / "config", {"server": "http://h:1"},
                 {"username": "ada", "password": "pw"})
    with kube.connect(path, "c") as cluster:
        assert cluster._auth_headers() == {"authorization": f"Basic {b64(b'ada:pw')}"}


def test_http_proxy_goes_through_a_proxy_manager(tmp_path) -> None:
    path = write(tmp_path / "config",
                 {"server": "http://h:1", "proxy-url": "http://proxy:3128"}, {})
    with kube.connect(path, "c") as cluster:
        assert isinstance(cluster._pool, urllib3.ProxyManager)
        assert cluster._pool.proxy.host == "proxy"


def test_plugins_and_socks_proxies_are_left_to_the_official_package(tmp_path) -> None:
    exec_user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": "x"}}
    _c, access = kubeconfig.load(write(tmp_path / "a", {"server": "https://h:1"}, exec_user), "c")
    assert access.official == "exec"
    provider = {"auth-provider": {"name": "oidc", "config": {}}}
    _c, access = kubeconfig.load(write(tmp_path / "b", {"server": "https://h:1"}, provider), "c")
    assert access.official == "auth-provider"
    socks = {"server": "https://h:1", "proxy-url": "socks5://p:1080"}
    _c, access = kubeconfig.load(write(tmp_path / "c", socks, {}), "c")
    assert access.official == "proxy-url socks5"


def test_an_exec_plugin_still_works_through_the_official_package(tmp_path) -> None:
    credential = json.dumps({"apiVersion": "client.authentication.k8s.io/v1beta1",
                             "kind": "ExecCredential", "status": {"token": "from-plugin"}})
    user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1",
                     "command": sys.executable, "args": ["-c", f"print({credential!r})"]}}
    path = write(tmp_path / "config", {"server": "https://h:1", "insecure-skip-tls-verify": True},
                 user)
    with kube.connect(path, "c") as cluster:
        assert cluster.server == "https://h:1"
        assert cluster._auth_headers() == {"authorization": "Bearer from-plugin"}


def test_first_file_that_defines_a_name_wins(tmp_path, monkeypatch) -> None:
    first = write(tmp_path / "one" / "config", {"server": "http://first:1"}, {"token": "a"})
    second = write(tmp_path / "two" / "config", {"server": "http://second:1"}, {"token": "b"})
    monkeypatch.setenv("KUBECONFIG", f"{first}:{second}")
    _choice, access = kubeconfig.load(None, "c")
    assert (access.server, access.token) == ("http://first:1", "a")


def test_a_context_naming_a_missing_user_is_a_config_error(tmp_path) -> None:
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump({
        "clusters": [{"name": "c", "cluster": {"server": "http://h:1"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "ghost"}}]}))
    with pytest.raises(ConfigError, match="user 'ghost', which no kubeconfig file defines"):
        kubeconfig.load(path, "c")


def test_connecting_does_not_import_the_kubernetes_package(tmp_path) -> None:
    path = write(tmp_path / "config", {"server": "http://h:1"}, {"token": "t"})
    code = ("import sys, migrator.cli, migrator.kube as k; k.connect(sys.argv[1], 'c').close(); "
            "sys.exit('kubernetes' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code, str(path)], cwd=REPO).returncode == 0


def test_invalid_yaml_says_where_without_quoting_the_line(tmp_path) -> None:
    path = tmp_path / "config"
    path.write_text("users:\n- name: u\n  user:\n    token: sEcReT-tOkEn: [oops\n")
    with pytest.raises(ConfigError) as info:
        kubeconfig.load(path, "c")
    message = str(info.value)
    assert message.startswith(f"kubeconfig {path} is not valid YAML at line 4, column ")
    assert "sEcReT" not in message and info.value.__cause__ is None
