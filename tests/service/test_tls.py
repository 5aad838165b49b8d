"""HTTPS: `rlops serve --tls-cert --tls-key` with a self-signed certificate made here, talked to over a real socket."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import rlops
from rlops.service.runner import ServiceProcess
from tests.keys import make_key
from tests.service.test_api import USER


def self_signed(folder: Path, name: str = "rlops test") -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, valid for a day, and its private key (PEM files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / f"{name.replace(' ', '-')}.crt", folder / f"{name.replace(' ', '-')}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


def test_serve_over_https(home: Path, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path / "tls")
    other_ca, _ = self_signed(tmp_path / "other", "someone else")
    api_key = make_key(home, "decider")
    with ServiceProcess(home, tls=(cert, key)) as url:
        assert url.startswith("https://")
        with rlops.Client(url, api_key=api_key, ca_file=cert) as client:
            decision = client.decide("news", USER, unit_id="u-tls")
            assert client.report(decision.decision_id, {"clicked": True}).accepted == 1
        # The session really was TLS, with the certificate served here.
        context = ssl.create_default_context(cafile=str(cert))
        with httpx.Client(verify=context) as raw:
            response = raw.get(f"{url}/healthz")
            assert response.status_code == 200 and response.http_version == "HTTP/1.1"
        # A client that does not trust the certificate refuses the connection; plain HTTP gets no answer.
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(f"{url}/healthz", verify=ssl.create_default_context(cafile=str(other_ca)))
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError, httpx.ConnectError)):
            httpx.get(url.replace("https://", "http://") + "/healthz", timeout=5)
        with (pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
              rlops.Client(url, api_key=api_key, ca_file=other_ca) as untrusting):
            untrusting.decide("news", USER, unit_id="u-tls")


def test_tls_options_are_checked_before_serving(home: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from rlops.cli.main import app

    cert, _ = self_signed(tmp_path / "tls")
    runner = CliRunner()
    half = runner.invoke(app, ["serve", "--home", str(home), "--port", "0", "--tls-cert", str(cert)])
    assert half.exit_code == 2 and "tls_cert and tls_key" in half.output
    missing = runner.invoke(app, ["serve", "--home", str(home), "--port", "0", "--tls-cert", str(cert),
                                  "--tls-key", str(tmp_path / "nope.key")])
    assert missing.exit_code == 2 and "not a readable file" in missing.output
