"""A local stand-in for the SNS side of an HTTPS subscription.

- ``TestAuthority``: a throw-away CA and a server certificate for 127.0.0.1, so the fake is reached over
  verified TLS (the service trusts the CA through ``TOCSIN_SNS_CA_BUNDLE``; TLS checks are never off).
- ``FakeSnsHost``: an HTTPS server that serves signing certificates at the paths it is given and answers
  ``?Action=ConfirmSubscription`` like SNS; it records every request so a test can say whether a fetch
  happened at all.
- ``Signer``: an RSA key with a certificate (valid or expired), signing messages exactly as SNS documents
  it (SignatureVersion 1: SHA1withRSA, 2: SHA256withRSA over "Key\\nValue\\n" of the signed keys in order).
  The string to sign is built here independently of the service's code.
"""

from __future__ import annotations

import base64
import ipaddress
import ssl
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

NOTIFICATION_KEYS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
SUBSCRIPTION_KEYS = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def certificate(
    subject_key: Any,
    common_name: str,
    issuer_key: Any | None = None,
    issuer_name: str | None = None,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    ca: bool = False,
    ip: str | None = None,
) -> x509.Certificate:
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(issuer_name or common_name))
        .public_key(subject_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - timedelta(days=1))
        .not_valid_after(not_after or now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ip:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False
        )
    return builder.sign(issuer_key or subject_key, hashes.SHA256())


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


class TestAuthority:
    """A CA for the tests, and a server certificate it issued for 127.0.0.1."""

    __test__ = False  # not a test class, whatever pytest thinks of its name

    def __init__(self, directory: Path) -> None:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = certificate(ca_key, "Tocsin Test CA", ca=True)
        server_key = ec.generate_private_key(ec.SECP256R1())
        server_cert = certificate(server_key, "127.0.0.1", ca_key, "Tocsin Test CA", ip="127.0.0.1")
        self.ca_file = directory / "test-ca.pem"
        self.ca_file.write_bytes(pem(ca_cert))
        self.server_chain = directory / "server.pem"
        self.server_chain.write_bytes(
            server_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            + pem(server_cert)
        )

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.server_chain)
        return context


@dataclass
class FakeSnsHost:
    """HTTPS on 127.0.0.1: GET <path> serves a registered body; GET /?Action=ConfirmSubscription confirms."""

    authority: TestAuthority
    files: dict[str, bytes] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    confirm_status: int = 200

    def __post_init__(self) -> None:
        host = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                host.requests.append(self.path)
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                if url.path == "/" and query.get("Action") == ["ConfirmSubscription"]:
                    status, body = host.confirm_status, b"<ConfirmSubscriptionResponse/>"
                elif url.path in host.files:
                    status, body = 200, host.files[url.path]
                else:
                    status, body = 404, b"not found"
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.socket = self.authority.server_context().wrap_socket(
            self._server.socket, server_side=True
        )
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def serve(self, path: str, body: bytes) -> str:
        """Serve ``body`` at ``path``; returns its https URL."""
        self.files[path] = body
        return self.base_url + path

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


class Signer:
    """An SNS-like signing key and its certificate."""

    def __init__(self, expired: bool = False) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = datetime.now(UTC)
        window = (now - timedelta(days=30), now - timedelta(days=1)) if expired else (None, None)
        self.certificate = certificate(
            self.key, "sns.amazonaws.com", not_before=window[0], not_after=window[1]
        )

    @property
    def pem(self) -> bytes:
        return pem(self.certificate)

    def sign(self, message: dict[str, Any], version: str = "1") -> dict[str, Any]:
        """The message with SignatureVersion and Signature set."""
        keys = NOTIFICATION_KEYS if message["Type"] == "Notification" else SUBSCRIPTION_KEYS
        text = "".join(f"{key}\n{message[key]}\n" for key in keys if key in message)
        algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
        signature = self.key.sign(text.encode(), padding.PKCS1v15(), algorithm)
        return {**message, "SignatureVersion": version, "Signature": base64.b64encode(signature).decode()}
