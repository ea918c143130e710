"""SNS HTTP(S) messages: parsing, topic allow-list, signature verification, subscription confirmation.

Nothing in a message is trusted before its signature verifies: the topic must be on
``TOCSIN_SNS_TOPIC_ARNS`` (checked first, it costs nothing), then the signature is checked against the
certificate at SigningCertURL (see ``certs`` for which URLs may be fetched). SignatureVersion 1 is
SHA1withRSA, 2 is SHA256withRSA, both over the documented "string to sign": for each signed key, in a fixed
order, ``Key\\nValue\\n``.

The allow-list matters as much as the signature: any AWS account can create a topic, subscribe this
endpoint and publish correctly signed messages. ``*`` in an entry matches within one ARN part (a region,
a topic name), never across ``:``; settings refuse it in the account part.

Raw message delivery must be off for the subscription: a raw message carries no signature and is refused.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from app.aws import certs
from app.errors import AppError, Forbidden, ValidationFailed
from app.settings import Settings

log = logging.getLogger("tocsin.sns")

NOTIFICATION = "Notification"
SUBSCRIPTION_CONFIRMATION = "SubscriptionConfirmation"
UNSUBSCRIBE_CONFIRMATION = "UnsubscribeConfirmation"

# The signed keys of each message type, in the order they are signed (AWS SNS developer guide,
# "Verifying the signatures of Amazon SNS messages"). Subject is signed only when the message has one.
_SUBSCRIPTION_KEYS = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")
SIGNED_KEYS: dict[str, tuple[str, ...]] = {
    NOTIFICATION: ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    SUBSCRIPTION_CONFIRMATION: _SUBSCRIPTION_KEYS,
    UNSUBSCRIBE_CONFIRMATION: _SUBSCRIPTION_KEYS,
}
_OPTIONAL_KEYS = frozenset({"Subject"})
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "1": hashes.SHA1,  # SignatureVersion 1 is defined by AWS as SHA1withRSA
    "2": hashes.SHA256,
}
MAX_SIGNATURE_CHARS = 4096


class VerificationFailed(Forbidden):
    """The message is not provably from an allowed SNS topic: 403, nothing stored."""


class UpstreamFailed(AppError):
    """SNS could not be reached to fetch a certificate or confirm a subscription; SNS will retry."""

    status_code = 502
    code = "bad_gateway"


@dataclass(frozen=True, slots=True)
class SnsMessage:
    type: str
    fields: dict[str, Any]

    @property
    def topic_arn(self) -> str:
        return str(self.fields["TopicArn"])

    @property
    def message_id(self) -> str:
        return str(self.fields["MessageId"])

    @property
    def message(self) -> str:
        return str(self.fields["Message"])


def parse_message(body: bytes, header_type: str | None) -> SnsMessage:
    """The JSON body as an SNS message with every signed field a string; 422 naming the field if not."""
    if not body.strip():
        raise ValidationFailed("the body is empty; expected an SNS message (JSON)", field="body")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValidationFailed(f"the body is not valid JSON: {exc}", field="body") from exc
    if not isinstance(document, dict):
        raise ValidationFailed("an SNS message is a JSON object", field="body")
    message_type = document.get("Type")
    if message_type not in SIGNED_KEYS:
        hint = (
            " (raw message delivery must be off: raw messages carry no signature)"
            if message_type is None
            else ""
        )
        raise ValidationFailed(
            f"Type must be one of {', '.join(SIGNED_KEYS)}; got {message_type!r}{hint}", field="Type"
        )
    if header_type is not None and header_type != message_type:
        raise ValidationFailed(
            f"the x-amz-sns-message-type header ({header_type!r}) does not match Type ({message_type!r})",
            field="x-amz-sns-message-type",
        )
    for key in SIGNED_KEYS[message_type]:
        value = document.get(key)
        if value is None and key in _OPTIONAL_KEYS:
            continue
        if not isinstance(value, str):
            raise ValidationFailed(f"{key} is missing or not a string", field=key)
    return SnsMessage(type=message_type, fields=document)


def string_to_sign(message: SnsMessage) -> bytes:
    """``Key\\nValue\\n`` for each signed key of the message's type, in the documented order."""
    parts = []
    for key in SIGNED_KEYS[message.type]:
        value = message.fields.get(key)
        if value is None and key in _OPTIONAL_KEYS:
            continue
        parts.append(f"{key}\n{value}\n")
    return "".join(parts).encode("utf-8")


def topic_pattern(entry: str) -> re.Pattern[str]:
    """An allow-list entry as a regex: ``*`` matches within one ARN part."""
    return re.compile("[^:]*".join(re.escape(piece) for piece in entry.split("*")))


class SnsGate:
    """Everything an SNS message must pass, built once per app from its settings."""

    def __init__(self, settings: Settings) -> None:
        self.topics = [topic_pattern(entry) for entry in settings.sns_topic_arns]
        self.host_pattern = re.compile(settings.sns_cert_host_pattern)
        self.timeout = settings.sns_http_timeout_seconds
        self.tls = certs.ssl_context(str(settings.sns_ca_bundle) if settings.sns_ca_bundle else None)
        self.certificates = certs.CertificateCache(self.tls, self.timeout)
        certs.redact_httpx_log()

    def check_topic(self, message: SnsMessage) -> None:
        if not any(pattern.fullmatch(message.topic_arn) for pattern in self.topics):
            log.warning(
                "SNS %s %r refused: topic %r is not allowed",
                message.type,
                message.message_id,
                message.topic_arn,
            )
            raise VerificationFailed(
                f"topic {message.topic_arn} is not allowed; add it to TOCSIN_SNS_TOPIC_ARNS"
            )

    def verify(self, message: SnsMessage) -> None:
        """Topic allowed and signature valid, or VerificationFailed (403) / UpstreamFailed (502)."""
        self.check_topic(message)
        try:
            self._verify_signature(message)
        except (VerificationFailed, UpstreamFailed) as exc:
            log.warning(
                "SNS %s %r from topic %r refused: %s",
                message.type,
                message.message_id,
                message.topic_arn,
                exc.message,
            )
            raise

    def _verify_signature(self, message: SnsMessage) -> None:
        version = message.fields.get("SignatureVersion")
        algorithm = _HASHES.get(version) if isinstance(version, str) else None
        if algorithm is None:
            raise VerificationFailed(
                f"unsupported SignatureVersion {version!r}; expected 1 or 2 (is raw message delivery on?)"
            )
        signature = _signature_bytes(message.fields.get("Signature"))
        try:
            url = certs.checked_url(message.fields.get("SigningCertURL"), self.host_pattern, "SigningCertURL")
            certificate = self.certificates.get(url)
        except (certs.UrlRefused, certs.CertificateRefused) as exc:
            raise VerificationFailed(str(exc)) from exc
        except certs.FetchFailed as exc:
            raise UpstreamFailed(str(exc)) from exc
        key = certificate.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise VerificationFailed("the signing certificate does not hold an RSA key")
        try:
            key.verify(signature, string_to_sign(message), padding.PKCS1v15(), algorithm())
        except InvalidSignature as exc:
            raise VerificationFailed("the message signature does not verify") from exc

    def confirm_subscription(self, message: SnsMessage) -> None:
        """GET the SubscribeURL of a verified SubscriptionConfirmation (an SNS host, for this topic)."""
        try:
            url = certs.checked_url(message.fields.get("SubscribeURL"), self.host_pattern, "SubscribeURL")
        except certs.UrlRefused as exc:
            raise VerificationFailed(str(exc)) from exc
        if (
            url.params.get("Action") != "ConfirmSubscription"
            or url.params.get("TopicArn") != message.topic_arn
        ):
            raise VerificationFailed("SubscribeURL does not confirm a subscription to this message's topic")
        try:
            with certs.http_client(self.tls, self.timeout) as client:
                response = client.get(url)
        except httpx.HTTPError as exc:
            raise UpstreamFailed(f"confirming the subscription failed ({type(exc).__name__})") from exc
        if response.status_code != 200:
            raise UpstreamFailed(f"SNS answered HTTP {response.status_code} to the subscription confirmation")
        # The SubscribeURL holds the confirmation token: log the topic only.
        log.info("SNS subscription to topic %s confirmed", message.topic_arn)


def _signature_bytes(value: Any) -> bytes:
    if not isinstance(value, str) or not value or len(value) > MAX_SIGNATURE_CHARS:
        raise VerificationFailed("the message has no usable Signature")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise VerificationFailed("the Signature is not base64") from exc
