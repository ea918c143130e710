"""The email channel through aiosmtplib against real aiosmtpd servers started here on 127.0.0.1: plain,
with AUTH, and with STARTTLS on a self-signed certificate made for the test."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import ipaddress
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import SecretStr

from app.contracts import DeliveryResult, Notification, OutboundPolicy, Severity
from integrations.channels import CHANNEL_KINDS, build_channel, validate_channel
from integrations.channels.email import EmailChannel, parse_config, root_message_id
from integrations.testing_channels import (
    assert_channel_shape,
    assert_no_secret,
    assert_retry_classification,
    sample_finding,
    sample_notification,
)

LOCAL = OutboundPolicy(frozenset({"127.0.0.1"}))
PASSWORD = "smtp-pa55word-7c1e0b"
USER = "tocsin"
TO = "secops@example.com, cso@example.com"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class FakeInbox:
    """An aiosmtpd handler that keeps what it accepts; recipients starting with ``refuse-`` get
    ``550`` and ``busy-`` get ``451`` at RCPT; ``data_reply`` replaces the answer to DATA."""

    messages: list[tuple[Envelope, EmailMessage]] = field(default_factory=list)
    data_reply: str | None = None
    logins: list[str] = field(default_factory=list)

    async def handle_RCPT(
        self, server: SMTPServer, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.startswith("refuse-"):
            return "550 5.1.1 mailbox unavailable"
        if address.startswith("busy-"):
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        if self.data_reply:
            return self.data_reply
        content = envelope.content if isinstance(envelope.content, bytes) else b""
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append((envelope, parsed))
        return "250 OK queued"

    def authenticate(
        self, server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
            USER.encode(),
            PASSWORD.encode(),
        )
        if ok:
            self.logins.append(mechanism)
        return AuthResult(success=ok, handled=False)  # handled=False: the server answers 535

    def only(self) -> EmailMessage:
        assert len(self.messages) == 1, f"expected one message, got {len(self.messages)}"
        return self.messages[0][1]


@dataclass
class Server:
    inbox: FakeInbox
    port: int


def serve(**kwargs: Any) -> Iterator[Server]:
    inbox = FakeInbox()
    port = free_port()
    if kwargs.pop("auth", False):
        kwargs.update(authenticator=inbox.authenticate)
    controller = Controller(inbox, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield Server(inbox, port)
    finally:
        controller.stop()


@pytest.fixture
def smtp() -> Iterator[Server]:
    yield from serve()


@pytest.fixture
def smtp_auth() -> Iterator[Server]:
    yield from serve(auth=True, auth_require_tls=False)


@dataclass
class Tls:
    server: ssl.SSLContext
    client: ssl.SSLContext


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    """A self-signed certificate for 127.0.0.1 and a client context that trusts only it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tocsin test smtp")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    folder: Path = tmp_path_factory.mktemp("tls")
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    (folder / "cert.pem").write_bytes(cert_pem)
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    client = ssl.create_default_context(cadata=cert_pem.decode())
    return Tls(server, client)


def options(port: int, **extra: Any) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "insecure": True,
        "from_address": "tocsin@alerts.example.com",
        "timeout_seconds": 2,
        **extra,
    }


def make(
    port: int,
    *,
    target: str = TO,
    secret: str | None = None,
    policy: OutboundPolicy = LOCAL,
    tls_context: ssl.SSLContext | None = None,
    **extra: Any,
) -> EmailChannel:
    config = parse_config(target, options(port, **extra))
    return EmailChannel(config, SecretStr(secret) if secret else None, policy, tls_context=tls_context)


def send(channel: EmailChannel, notification: Notification) -> DeliveryResult:
    return asyncio.run(channel.send(notification))


def parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None, "both a text and an HTML part"
    return str(text.get_content()), str(html.get_content())


# --- configuration -------------------------------------------------------------------------------------


def test_email_is_a_registered_kind_and_builds_a_conforming_channel() -> None:
    assert "email" in CHANNEL_KINDS
    channel = build_channel("email", TO, options(2525), None, LOCAL)
    assert_channel_shape(channel)
    assert channel.endpoint == "http://127.0.0.1:2525"


@pytest.mark.parametrize(
    ("target", "opts", "message"),
    [
        ("not-an-address", {}, "target"),
        ("a@example.com, b@exa mple.com", {}, "target"),
        ("a@example.com\r\nBcc: x@evil.com", {}, "target"),
        ("", {}, "at least one recipient"),
        (TO, {"insecure": False}, "insecure: true"),
        (TO, {"from_address": "tocsin"}, "from_address"),
        (TO, {"reply_to": "x@y.com\nBcc: z@evil.com"}, "reply_to"),
        (TO, {"security": "ssl"}, "security"),
        (TO, {"host": "smtp example com"}, "host"),
        (TO, {"colour": "red"}, "unknown option"),
    ],
)
def test_bad_configuration_is_refused_naming_the_field(
    target: str, opts: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        validate_channel("email", target, options(25, **opts))


def test_defaults_are_starttls_on_587_with_the_tocsin_prefix() -> None:
    config = parse_config("a@example.com", {"host": "smtp.example.com", "from_address": "t@example.com"})
    assert (config.options.port, config.options.security, config.options.subject_prefix) == (
        587,
        "starttls",
        "[Tocsin]",
    )


# --- messages, headers, threading ---------------------------------------------------------------------


def test_a_group_is_one_multipart_message_with_tocsin_headers(smtp: Server) -> None:
    channel = make(smtp.port, reply_to="secops-team@example.com")
    notification = sample_notification(12, title="<script>alert(1)</script> public bucket")
    result = send(channel, notification)
    assert result.ok and not result.retryable, result.detail
    envelope, message = smtp.inbox.messages[0]
    assert envelope.mail_from == "tocsin@alerts.example.com"
    assert sorted(envelope.rcpt_tos) == ["cso@example.com", "secops@example.com"]
    assert message["Subject"] == "[Tocsin][HIGH] 12 findings — payments/S3/PublicRead"
    assert message["From"] == "Tocsin <tocsin@alerts.example.com>"
    assert message["To"] == "secops@example.com, cso@example.com"
    assert message["Reply-To"] == "secops-team@example.com"
    root = root_message_id(notification.channel, notification.group_key, "alerts.example.com")
    assert message["Message-ID"] == root == result.thread_ref
    assert message["In-Reply-To"] is None
    text, html = parts(message)
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert(1)</script> public bucket" in text  # plain text is not escaped
    assert "https://tocsin.example.com/v1/findings/fnd_000011" in html and "fnd_000011" in text


def test_one_finding_names_its_title_and_resource_in_the_subject(smtp: Server) -> None:
    result = send(make(smtp.port), sample_notification(1, title="S3 bucket is public"))
    assert result.ok
    subject = smtp.inbox.only()["Subject"]
    assert subject == "[Tocsin][HIGH] S3 bucket is public — arn:aws:s3:::acme-payments-exports-0"


def test_repeats_of_a_group_thread_under_the_root_and_ids_are_unique(smtp: Server) -> None:
    channel = make(smtp.port, subject_prefix="[Sec]")
    first = send(channel, sample_notification(2, notification_id="ntf_1"))
    second = send(channel, sample_notification(1, notification_id="ntf_2", thread_ref=first.thread_ref))
    third = send(channel, sample_notification(1, notification_id="ntf_3", thread_ref=second.thread_ref))
    assert first.ok and second.ok and third.ok
    root = first.thread_ref
    assert root and root.startswith("<tocsin-") and root.endswith("@alerts.example.com>")
    assert second.thread_ref == third.thread_ref == root
    ids = [m["Message-ID"] for _, m in smtp.inbox.messages]
    assert ids[0] == root and len(set(ids)) == 3
    for _, later in smtp.inbox.messages[1:]:
        assert later["In-Reply-To"] == root and later["References"] == root
    assert smtp.inbox.messages[1][1]["Subject"].startswith("[Sec][HIGH] ")
    other_group = sample_notification(1).model_copy(update={"group_key": "team=payments|type=IAM"})
    assert root_message_id("payments-slack", other_group.group_key, "alerts.example.com") != root


def test_a_digest_groups_every_held_finding_by_severity_critical_first(smtp: Server) -> None:
    severities = [Severity.medium, Severity.critical, Severity.high, Severity.medium, Severity.low]
    findings = [
        sample_finding(i, severity=s, title=f"finding {i} {s.value}") for i, s in enumerate(severities)
    ]
    digest = sample_notification(0, digest=True).model_copy(
        update={"findings": findings, "total": 5, "group_key": "digest:payments", "group_labels": {}}
    )
    assert send(make(smtp.port), digest).ok
    message = smtp.inbox.only()
    assert message["Subject"] == "[Tocsin][CRITICAL] Digest: 5 findings held for payments"
    text, html = parts(message)
    headings = [
        text.index(f"== {label} ({count}) ==")
        for label, count in (("CRITICAL", 1), ("HIGH", 1), ("MEDIUM", 2), ("LOW", 1))
    ]
    assert headings == sorted(headings)
    assert text.index("finding 1 critical") < text.index("finding 2 high") < text.index("finding 4 low")
    assert "INFORMATIONAL" not in text
    for label, count in (("CRITICAL", 1), ("HIGH", 1), ("MEDIUM", 2), ("LOW", 1)):
        assert f"<li>{label}: {count}</li>" in html
    assert html.index("finding 1 critical") < html.index("finding 0 medium")


def test_header_injection_through_a_title_is_neutralized(smtp: Server) -> None:
    evil = "Bucket open\r\nBcc: attacker@evil.example\r\nX-Injected: yes"
    result = send(make(smtp.port, target="secops@example.com"), sample_notification(1, title=evil))
    assert result.ok
    envelope, message = smtp.inbox.messages[0]
    assert envelope.rcpt_tos == ["secops@example.com"]
    assert message["Bcc"] is None and message["X-Injected"] is None
    assert message["Subject"].startswith("[Tocsin][HIGH] Bucket open Bcc: attacker@evil.example X-Injected")
    assert "\n" not in message["Subject"]


# --- SMTP answers and failures ------------------------------------------------------------------------


def test_smtp_replies_are_classified_4xx_retryable_5xx_final(smtp: Server) -> None:
    results: dict[int | str, DeliveryResult] = {
        "rcpt_550": send(make(smtp.port, target="refuse-me@example.com"), sample_notification(1)),
        "rcpt_451": send(make(smtp.port, target="busy-me@example.com"), sample_notification(1)),
    }
    smtp.inbox.data_reply = "554 5.7.1 message rejected as spam"
    results["data_554"] = send(make(smtp.port), sample_notification(1))
    smtp.inbox.data_reply = "452 4.3.1 insufficient system storage"
    results["data_452"] = send(make(smtp.port), sample_notification(1))
    assert_retry_classification(
        results, expected={"rcpt_550": False, "rcpt_451": True, "data_554": False, "data_452": True}
    )
    assert results["rcpt_550"].status_code == 550 and "mailbox unavailable" in results["rcpt_550"].detail
    assert results["data_554"].status_code == 554
    assert smtp.inbox.messages == []


def test_some_refused_recipients_still_deliver_and_say_so(smtp: Server) -> None:
    result = send(make(smtp.port, target="secops@example.com, refuse-x@example.com"), sample_notification(1))
    assert result.ok and "1 of 2" in result.detail and "refuse-x@example.com (550)" in result.detail
    assert smtp.inbox.messages[0][0].rcpt_tos == ["secops@example.com"]


def test_a_server_that_is_down_or_silent_is_retryable() -> None:
    down = send(make(free_port()), sample_notification(1))
    with socket.socket() as silent:  # accepts the connection (backlog) but never greets
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        timeout = send(make(silent.getsockname()[1], timeout_seconds=0.3), sample_notification(1))
    assert_retry_classification({"connection_error": down, "timeout": timeout})
    assert "timed out" in timeout.detail and "connection failed" in down.detail


def test_login_with_the_secret_and_a_wrong_password_is_final_without_the_password(smtp_auth: Server) -> None:
    ok = send(make(smtp_auth.port, username=USER, secret=PASSWORD), sample_notification(1))
    assert ok.ok, ok.detail
    assert smtp_auth.inbox.logins and len(smtp_auth.inbox.messages) == 1
    wrong = "not-the-" + PASSWORD
    bad = send(make(smtp_auth.port, username=USER, secret=wrong), sample_notification(1))
    assert not bad.ok and not bad.retryable and bad.status_code == 535
    assert "authentication failed" in bad.detail
    assert_no_secret(bad, wrong)
    assert_no_secret(ok, PASSWORD)
    no_password = send(make(smtp_auth.port, username=USER), sample_notification(1))
    assert not no_password.ok and not no_password.retryable and "secret_ref" in no_password.detail


def test_the_password_never_reaches_a_detail_even_if_the_server_echoes_it(smtp: Server) -> None:
    smtp.inbox.data_reply = f"554 5.7.0 rejected {PASSWORD}"
    result = send(make(smtp.port, username="x", secret=PASSWORD), sample_notification(1))
    # this server offers no AUTH: refused as configuration, before any data is sent
    assert not result.ok and not result.retryable
    assert_no_secret(result, PASSWORD)


def test_starttls_with_a_verified_certificate(tls: Tls) -> None:
    for server in serve(tls_context=tls.server, require_starttls=True, auth=True):
        channel = make(
            server.port,
            security="starttls",
            insecure=False,
            username=USER,
            secret=PASSWORD,
            tls_context=tls.client,
        )
        result = send(channel, sample_notification(1))
        assert result.ok, result.detail
        assert server.inbox.logins and len(server.inbox.messages) == 1
        untrusted = make(server.port, security="starttls", insecure=False)  # the system trust store
        refused = send(untrusted, sample_notification(1))
        assert not refused.ok and not refused.retryable and "certificate" in refused.detail
        plain = send(make(server.port), sample_notification(1))  # the server requires STARTTLS first
        assert not plain.ok and not plain.retryable and plain.status_code == 530


# --- the outbound guard -------------------------------------------------------------------------------


def test_a_private_smtp_host_is_refused_unless_allow_listed(smtp: Server) -> None:
    refused = send(make(smtp.port, policy=OutboundPolicy()), sample_notification(1))
    assert not refused.ok and not refused.retryable
    assert "loopback" in refused.detail and "TOCSIN_OUTBOUND_ALLOW_HOSTS" in refused.detail
    assert smtp.inbox.messages == []
    private = send(make(25, host="10.1.2.3", policy=OutboundPolicy()), sample_notification(1))
    metadata = send(make(25, host="169.254.169.254", policy=OutboundPolicy()), sample_notification(1))
    assert "private" in private.detail and "link-local" in metadata.detail
    assert not private.retryable and not metadata.retryable
    assert send(make(smtp.port, policy=LOCAL), sample_notification(1)).ok
    assert len(smtp.inbox.messages) == 1
