"""Fetching from SNS: URL checks (https, an SNS host) and the signing-certificate cache.

Only two URLs in an SNS message are ever fetched, the SigningCertURL and the SubscribeURL, and only after
this module has checked that they are https URLs on a host matching ``TOCSIN_SNS_CERT_HOST_PATTERN``:
the message is untrusted until verified, so an unchecked fetch would let anyone make the service request
any URL (SSRF). The URL is parsed once and that parsed URL is what is requested, so the check and the
request cannot disagree about the host. TLS is always verified (``TOCSIN_SNS_CA_BUNDLE`` or the system
trust store); redirects are not followed.

Certificates are cached in-process, keyed by URL and bounded (least recently used goes first). Nothing
else needs them, so each replica keeps its own; the cache is a speed-up, never a source of truth, and a
certificate's validity period is checked on every use, cached or not.
"""

from __future__ import annotations

import logging
import re
import ssl
import threading
from collections import OrderedDict
from datetime import UTC, datetime

import httpx
from cryptography import x509

MAX_CERTIFICATE_BYTES = 64 * 1024
CACHE_ENTRIES = 64


class UrlRefused(Exception):
    """A URL from a message that must not be fetched; the message is safe to return."""


class CertificateRefused(Exception):
    """The certificate is unusable (not found, not a certificate, not currently valid)."""


class FetchFailed(Exception):
    """The SNS host could not be reached or answered with a server error: worth retrying later."""


def checked_url(url: object, host_pattern: re.Pattern[str], what: str) -> httpx.URL:
    """The parsed URL, if it is https on an allowed host; else UrlRefused."""
    if not isinstance(url, str) or not url:
        raise UrlRefused(f"{what} is missing")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as exc:
        raise UrlRefused(f"{what} is not a valid URL") from exc
    if parsed.scheme != "https":
        raise UrlRefused(f"{what} must be an https URL")
    if parsed.userinfo:
        raise UrlRefused(f"{what} must not carry credentials")
    if not host_pattern.fullmatch(parsed.host):
        raise UrlRefused(f"{what} host {parsed.host!r} is not an SNS host")
    return parsed


def ssl_context(ca_bundle: str | None) -> ssl.SSLContext:
    """Verifying TLS context: the given CA bundle, or the system trust store."""
    return ssl.create_default_context(cafile=ca_bundle)


def http_client(context: ssl.SSLContext, timeout: float) -> httpx.Client:
    return httpx.Client(verify=context, timeout=timeout, follow_redirects=False)


class RedactQueries(logging.Filter):
    """Drops the query from URLs in httpx's request log: a SubscribeURL's query holds its Token."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                arg.copy_with(query=None) if isinstance(arg, httpx.URL) and arg.query else arg
                for arg in record.args
            )
        return True


def redact_httpx_log() -> None:
    """Install ``RedactQueries`` on the ``httpx`` logger, once."""
    logger = logging.getLogger("httpx")
    if not any(isinstance(existing, RedactQueries) for existing in logger.filters):
        logger.addFilter(RedactQueries())


def fetch_certificate(url: httpx.URL, context: ssl.SSLContext, timeout: float) -> x509.Certificate:
    """GET a PEM certificate (bounded in size) and parse it."""
    try:
        with http_client(context, timeout) as client, client.stream("GET", url) as response:
            if response.status_code >= 500:
                raise FetchFailed(f"the certificate host answered HTTP {response.status_code}")
            if response.status_code != 200:
                raise CertificateRefused(
                    f"the signing certificate could not be fetched (HTTP {response.status_code})"
                )
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_CERTIFICATE_BYTES:
                    raise CertificateRefused("the signing certificate is implausibly large")
    except httpx.HTTPError as exc:
        raise FetchFailed(f"the signing certificate could not be fetched ({type(exc).__name__})") from exc
    try:
        return x509.load_pem_x509_certificate(bytes(body))
    except ValueError as exc:
        raise CertificateRefused("the SigningCertURL does not serve a PEM certificate") from exc


def check_validity(certificate: x509.Certificate, now: datetime | None = None) -> None:
    now = now or datetime.now(UTC)
    if now < certificate.not_valid_before_utc:
        raise CertificateRefused("the signing certificate is not valid yet")
    if now > certificate.not_valid_after_utc:
        raise CertificateRefused("the signing certificate has expired")


class CertificateCache:
    """Signing certificates by URL, least recently used evicted first; safe across threads."""

    def __init__(self, context: ssl.SSLContext, timeout: float, max_entries: int = CACHE_ENTRIES) -> None:
        self._context = context
        self._timeout = timeout
        self._max_entries = max_entries
        self._entries: OrderedDict[str, x509.Certificate] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, url: httpx.URL) -> x509.Certificate:
        """The certificate at ``url`` (already checked by ``checked_url``), currently valid."""
        key = str(url)
        with self._lock:
            certificate = self._entries.get(key)
            if certificate is not None:
                self._entries.move_to_end(key)
        if certificate is None:
            # Fetched outside the lock: a slow host must not stall verifications of cached certificates.
            certificate = fetch_certificate(url, self._context, self._timeout)
            with self._lock:
                self._entries[key] = certificate
                self._entries.move_to_end(key)
                while len(self._entries) > self._max_entries:
                    self._entries.popitem(last=False)
        check_validity(certificate)
        return certificate

    def __len__(self) -> int:
        return len(self._entries)
