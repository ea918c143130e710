"""Email: one multipart (text + HTML) message per notification, sent with aiosmtplib.

Threading: every group has a stable root Message-ID derived from the channel and the group key
(``<tocsin-<sha256[:24]>@<from domain>>``). The first message of a group *is* the root (its Message-ID) and
is returned as ``thread_ref``; later messages get their own unique Message-ID and point at the root with
``In-Reply-To`` and ``References``, so mail clients show repeats as one conversation. A quiet-hours digest
(``notification.digest``) is one message with everything held, grouped by severity.

SSRF: the SMTP host is user configuration, so it is resolved with the outbound guard
(``_net.resolve_allowed``) and the socket is connected to the address that was checked; the host name is
still what TLS verifies the certificate against (SNI and hostname check). ``endpoint`` gives host and port
in the http(s) URL form delivery/'s pre-send guard reads: SMTP has no URL, and the scheme only says whether
the session is encrypted.

Errors: 4xx replies, timeouts and connection errors are retryable; 5xx replies (550 mailbox unavailable,
535 authentication failed, 554 rejected) and refusals (guard, certificate, missing STARTTLS) are final.
The password is a ``SecretStr`` used for ``AUTH`` only and scrubbed from every ``detail``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import socket
import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formataddr, formatdate
from typing import Any, Literal

import aiosmtplib
import httpx
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from app.contracts import DeliveryResult, Notification, OutboundPolicy
from integrations.channels import _http, email_render
from integrations.channels._net import OutboundRefused, resolve_allowed

kind = "email"

_ADDRESS = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@"
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
_HOST = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?)+$|^\[?[0-9A-Fa-f:.]+\]?$")
_MESSAGE_REF = re.compile(r"^<[^<>\s@]+@[^<>\s@]+>$")
_ID_CHARS = re.compile(r"[^A-Za-z0-9._-]")
MAX_RECIPIENTS = 50
_DETAIL_MAX = 300


def _address(value: str, field: str) -> str:
    value = value.strip()
    if len(value) > 254 or not _ADDRESS.match(value):
        raise ValueError(f"{field}: {value[:80]!r} is not an email address such as security@example.com")
    return value


class Options(BaseModel):
    """What a user may set on an email channel besides its recipients; anything else is refused by name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(..., min_length=1, max_length=253, description="SMTP server host name or address.")
    port: int = Field(587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = Field(
        "starttls",
        description="STARTTLS after connecting (587), implicit TLS (465), or none (insecure only).",
    )
    insecure: bool = Field(False, description="Allow security: none (plain text SMTP), for local testing.")
    username: str | None = Field(None, max_length=256, description="AUTH user; the secret is the password.")
    from_address: str
    subject_prefix: str = Field("[Tocsin]", max_length=40)
    reply_to: str | None = None
    timeout_seconds: float = Field(10.0, gt=0, le=120, description="Timeout of each SMTP step.")

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        value = value.strip().lower()
        if not _HOST.match(value):
            raise ValueError("must be a host name or an IP address, such as smtp.example.com")
        return value.strip("[]")

    @field_validator("from_address")
    @classmethod
    def _from(cls, value: str) -> str:
        return _address(value, "from_address")

    @field_validator("reply_to")
    @classmethod
    def _reply_to(cls, value: str | None) -> str | None:
        return None if value is None else _address(value, "reply_to")

    @field_validator("username")
    @classmethod
    def _username(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or any(ord(c) < 32 for c in value)):
            raise ValueError("must be a non-empty user name without control characters")
        return value.strip() if value is not None else None

    @field_validator("subject_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        return email_render.header_safe(value, 40)

    @model_validator(mode="after")
    def _plain_text_is_explicit(self) -> Options:
        if self.security == "none" and not self.insecure:
            raise ValueError("security: none sends mail (and any password) in clear text; set insecure: true")
        return self


class Config(BaseModel):
    """A validated email channel: recipients (``target``, comma-separated) and the SMTP options."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    target: list[str]
    options: Options

    @field_validator("target", mode="before")
    @classmethod
    def _recipients(cls, value: Any) -> list[str]:
        if not isinstance(value, str):
            raise ValueError("must be a comma-separated list of email addresses")
        parts = [part.strip() for part in value.split(",") if part.strip()]
        if not parts:
            raise ValueError("must name at least one recipient, such as security@example.com")
        if len(parts) > MAX_RECIPIENTS:
            raise ValueError(f"at most {MAX_RECIPIENTS} recipients; use a mailing list")
        return list(dict.fromkeys(_address(part, "target") for part in parts))


def parse_config(target: str, options: Mapping[str, Any]) -> Config:
    """Validate target and options; raises ValueError naming each bad field (safe to show a user)."""
    return _http.parse_config("email", Config, Options, target, options)


def validate(target: str, options: Mapping[str, Any]) -> None:
    """What the API calls when a channel is created: no secret needed, raises ValueError naming the field."""
    parse_config(target, options)


def build(
    target: str, options: Mapping[str, Any], secret: SecretStr | None, outbound: OutboundPolicy | None = None
) -> EmailChannel:
    return EmailChannel(parse_config(target, options), secret, outbound or OutboundPolicy())


def root_message_id(channel: str, group_key: str, domain: str) -> str:
    """The stable Message-ID of a group's first message, which later messages reply to."""
    digest = hashlib.sha256(f"{channel}\x00{group_key}".encode()).hexdigest()[:24]
    return f"<tocsin-{digest}@{domain}>"


class EmailChannel:
    """One email destination. Opens one SMTP session per message (no state kept between sends).

    ``tls_context`` replaces the system trust store (tests pass one trusting their own CA; a deployment
    with a private CA sets ``SSL_CERT_FILE``); certificates are always verified against the host name.
    """

    kind = kind

    def __init__(
        self,
        config: Config,
        secret: SecretStr | None,
        outbound: OutboundPolicy,
        *,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.config = config
        self.outbound = outbound
        opts = config.options
        host = f"[{opts.host}]" if ":" in opts.host else opts.host
        self.endpoint = f"{'http' if opts.security == 'none' else 'https'}://{host}:{opts.port}"
        self.domain = opts.from_address.rsplit("@", 1)[1].lower()
        self._password = secret.get_secret_value() if secret is not None else ""
        self._tls_context = tls_context

    def compose(self, notification: Notification) -> tuple[EmailMessage, str]:
        """The message to send and the group's root Message-ID (the ``thread_ref`` to keep)."""
        opts = self.config.options
        rendered = email_render.render(notification, prefix=opts.subject_prefix)
        root = root_message_id(notification.channel, notification.group_key, self.domain)
        message = EmailMessage(policy=SMTP_POLICY)
        message["Subject"] = rendered.subject
        message["From"] = formataddr(("Tocsin", opts.from_address))
        message["To"] = ", ".join(self.config.target)
        if opts.reply_to:
            message["Reply-To"] = opts.reply_to
        message["Date"] = formatdate(localtime=False, usegmt=True)
        if notification.thread_ref is None:
            message["Message-ID"] = root
        else:
            unique = _ID_CHARS.sub("", notification.id)[:64] or "message"
            message["Message-ID"] = f"<{unique}@{self.domain}>"
            # The stored ref is normally the root; a ref from another kind of channel is ignored.
            parent = notification.thread_ref if _MESSAGE_REF.match(notification.thread_ref) else root
            message["In-Reply-To"] = parent
            message["References"] = parent
        message["Auto-Submitted"] = "auto-generated"
        message["X-Tocsin-Team"] = email_render.header_safe(notification.team, 100)
        message.set_content(rendered.text)
        message.add_alternative(rendered.html, subtype="html")
        return message, notification.thread_ref or root

    async def send(self, notification: Notification) -> DeliveryResult:
        opts = self.config.options
        if opts.username and not self._password:
            return DeliveryResult(
                ok=False,
                retryable=False,
                detail="email channel has a username but no password: set secret_ref",
            )
        try:
            message, thread_ref = self.compose(notification)
            errors = await self._deliver(message)
        except Exception as exc:  # classified below; a send never raises
            return self._failure(exc)
        recipients = len(self.config.target)
        detail = f"sent to {recipients - len(errors)} of {recipients} recipients via {opts.host}"
        if errors:
            refused = ", ".join(f"{addr} ({reply.code})" for addr, reply in errors.items())
            detail += f"; refused: {refused}"
        return DeliveryResult(ok=True, detail=self._scrub(detail)[:_DETAIL_MAX], thread_ref=thread_ref)

    async def aclose(self) -> None:
        return None

    async def _deliver(self, message: EmailMessage) -> dict[str, aiosmtplib.SMTPResponse]:
        opts = self.config.options
        sock = await self._connect()
        smtp = aiosmtplib.SMTP(
            hostname=opts.host,  # what TLS verifies; the socket is already connected to the checked address
            sock=sock,
            use_tls=opts.security == "tls",
            start_tls=False,
            validate_certs=True,
            tls_context=self._tls_context,
            timeout=opts.timeout_seconds,
        )
        try:
            await smtp.connect()
            if opts.security == "starttls":
                await smtp.starttls()
            if self._password:
                await smtp.login(opts.username or opts.from_address, self._password)
            errors, _ = await smtp.send_message(
                message, sender=opts.from_address, recipients=list(self.config.target)
            )
            with contextlib.suppress(aiosmtplib.SMTPException):
                await smtp.quit()  # the message was accepted; a rude goodbye does not change that
            return errors
        finally:
            smtp.close()
            sock.close()

    async def _connect(self) -> socket.socket:
        """A TCP socket to the first reachable checked address of the host (raises OSError/TimeoutError)."""
        opts = self.config.options
        addresses = await resolve_allowed(opts.host, opts.port, self.outbound)
        loop = asyncio.get_running_loop()
        last: BaseException | None = None
        for address in addresses:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                await asyncio.wait_for(loop.sock_connect(sock, (address, opts.port)), opts.timeout_seconds)
                return sock
            except (OSError, TimeoutError) as exc:
                sock.close()
                last = exc
        if isinstance(last, TimeoutError):
            raise last
        raise ConnectionError(f"cannot connect to {opts.host}:{opts.port}: {last}")

    def _failure(self, exc: Exception) -> DeliveryResult:
        detail, retryable, code = _classify(exc, self.config.options)
        return DeliveryResult(
            ok=False, retryable=retryable, status_code=code, detail=self._scrub(detail)[:_DETAIL_MAX]
        )

    def _scrub(self, text: str) -> str:
        """No path should put the password in a detail; this makes sure none does."""
        return text.replace(self._password, "***") if self._password else text


def _classify(exc: Exception, opts: Options) -> tuple[str, bool, int | None]:
    """(detail, retryable, SMTP reply code) for what went wrong."""
    where = f"{opts.host}:{opts.port}"
    if isinstance(exc, OutboundRefused):
        return str(exc), False, None
    if isinstance(exc, httpx.ConnectError):  # the guard could not resolve the name: may work later
        return str(exc), True, None
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        refused = ", ".join(f"{r.recipient} ({r.code} {r.message[:60]})" for r in exc.recipients)
        return f"SMTP {where} refused every recipient: {refused}", any(c < 500 for c in codes), min(codes)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        what = "authentication failed" if isinstance(exc, aiosmtplib.SMTPAuthenticationError) else "error"
        return f"SMTP {where} {what}: {exc.code} {exc.message[:160]}", 400 <= exc.code < 500, exc.code
    if isinstance(exc, TimeoutError | aiosmtplib.SMTPTimeoutError):
        return f"SMTP {where} timed out after {opts.timeout_seconds:g}s", True, None
    if _cause(exc, ssl.SSLCertVerificationError):
        return f"SMTP {where} TLS certificate not trusted for {opts.host}", False, None
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected | aiosmtplib.SMTPConnectError | OSError):
        return f"SMTP {where} connection failed: {exc}", True, None
    if isinstance(exc, aiosmtplib.SMTPException):  # STARTTLS or AUTH not offered: configuration
        return f"SMTP {where}: {exc}", False, None
    return f"email channel error: {type(exc).__name__}", True, None


def _cause(exc: BaseException, kind_: type[BaseException]) -> bool:
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, kind_):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
