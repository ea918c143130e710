"""Masking for secret-scanner findings: the secret itself is never stored, forwarded or logged.

A secret scanner's finding *is* the secret, so its report cannot be kept verbatim. Before a finding is built,
every value the scanner reported as the secret (and every longer string quoting it, such as a regex match or
a source line) is replaced by its **masked form** in every field, ``raw`` included:

* ``mask(value)`` is the first 4 characters, an ellipsis and the length in parentheses:
  ``"AKIAIOSFODNN7EXAMPLE"`` -> ``"AKIA…(20)"``. A value shorter than 12 characters shows no prefix
  (``"hunter2"`` -> ``"…(7)"``): four characters of a short password are most of it. The prefix is what a
  person needs to find the key in a console (``AKIA``, ``ghp_``, ``xoxb``) and reveals at most a third.
* ``Redactor`` replaces each secret wherever it occurs inside any string of an object (dict keys too,
  recursively, longest secret first so a secret that contains another is masked whole) and returns a copy;
  the input is never modified. A mask that contains a shorter secret is masked again; if a secret could
  still be found after three rounds, the whole string becomes ``REDACTED_TEXT``. Parsers build one per
  report from every secret of the report, and apply it to every finding *before* cutting text to the
  contract's limits (a cut must not leave half a secret behind).

Identity. A re-scan must find the same finding although the value is gone, so parsers key secret findings
by ``secret_digest(value)``: an HMAC-SHA256 of the value keyed by a salt, truncated to 128 bits. The salt
is the deployment's ``TOCSIN_SECRETS_SALT``, which the caller passes to ``parse(document, secret_salt=...)``
(parsers read no settings); every format uses the same one, so the same secret reported by two tools gets
the same digest. Unset, it is the constant ``DEFAULT_SALT``: that stops precomputed tables and keeps the
digest from equalling any hash published elsewhere, but anyone who reads the database *and* this source can
test guesses offline, which matters for low-entropy secrets (passwords); a deployment salt closes that.
Changing the salt re-keys every secret finding once (they are reported as new and the old ones are left to
resolve).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from typing import Any

import orjson

from app.contracts import SEVERITY_LABEL_SCORE, Severity

DEFAULT_SALT = "tocsin/secret-identity/v1"
ELLIPSIS = "…"
PREFIX_LENGTH = 4
MIN_LENGTH_FOR_PREFIX = 12
REDACTED_TEXT = "[redacted by tocsin]"
_SPACES = re.compile(r"\s+")
# Credentials that open a cloud account or a host: worth waking someone for even unverified.
_CRITICAL_SECRET = re.compile(
    r"aws|amazon|gcp|google[-_ ]?cloud|azure|alibaba|private[-_ ]?key|asymmetric", re.IGNORECASE
)


def mask(value: str) -> str:
    """The masked form stored instead of a secret: ``AKIA…(20)``; ``…(7)`` under 12 characters."""
    prefix = value[:PREFIX_LENGTH] if len(value) >= MIN_LENGTH_FOR_PREFIX else ""
    return f"{prefix}{ELLIPSIS}({len(value)})"


def secret_digest(value: str, salt: str | None = None) -> str:
    """128 bits of HMAC-SHA256(salt, value): the stable, non-reversible stand-in for a secret in keys.
    ``salt`` is the deployment's ``TOCSIN_SECRETS_SALT`` as the caller passed it to ``parse``; None (unset)
    means ``DEFAULT_SALT``."""
    digest = hmac.new(
        (salt or DEFAULT_SALT).encode("utf-8"), value.encode("utf-8", "surrogatepass"), hashlib.sha256
    )
    return digest.hexdigest()[:32]


def secret_severity(*labels: str) -> float:
    """Severity of an unverified secret from its rule's names: critical for cloud-provider credentials
    (AWS, GCP, Azure, Alibaba) and private keys, high for every other secret a rule names. Never below high:
    the scanner cannot tell a live key from a dead one, and rotating it is the fix either way. (Bare entropy
    hits, which are mostly hashes and ids, are the parsers' call.)"""
    critical = any(_CRITICAL_SECRET.search(label) for label in labels if label)
    return SEVERITY_LABEL_SCORE[Severity.critical if critical else Severity.high]


def collapse_whitespace(text: str) -> str:
    """Runs of whitespace to one space, ends trimmed: a re-indented line is the same line."""
    return _SPACES.sub(" ", text).strip()


class Redactor:
    """Replaces a set of secrets by their masked forms in strings and in nested JSON-like objects.

    Parsers build one per report, from every secret of the report, so a secret quoted by *another* entry (two
    keys on one line, a commit message) is masked too. With many secrets, testing each against each string
    would cost secrets x strings; above ``_INDEX_FROM`` secrets a string is first cut into the k-grams all
    secrets are long enough to contain, and only the secrets starting with one of them are tested.
    """

    __slots__ = ("_gram", "_index", "_json_forms", "_secrets")

    _INDEX_FROM = 16
    _MAX_GRAM = 8
    _MAX_ROUNDS = 3

    def __init__(self, secrets: Iterable[str | None]) -> None:
        unique = {value for value in secrets if isinstance(value, str) and value}
        # Longest first, so a secret quoted inside a longer one (Secret inside Match) is masked as a whole.
        self._secrets: tuple[str, ...] = tuple(sorted(unique, key=_longest_first))
        self._gram = min((len(s) for s in unique), default=0)
        self._gram = min(self._gram, self._MAX_GRAM)
        self._index: dict[str, list[str]] | None = None
        self._json_forms = [(s, orjson.dumps(s).decode("utf-8")[1:-1]) for s in self._secrets]
        if len(self._secrets) > self._INDEX_FROM:
            self._index = {}
            for secret in self._secrets:
                self._index.setdefault(secret[: self._gram], []).append(secret)

    def __bool__(self) -> bool:
        return bool(self._secrets)

    @property
    def secrets(self) -> tuple[str, ...]:
        return self._secrets

    def text(self, value: str) -> str:
        """``value`` with every secret replaced by its masked form."""
        result = value
        for _ in range(self._MAX_ROUNDS):  # a mask can itself contain a shorter secret: mask that too
            present = self._present(result)
            if not present:
                return result
            for secret in present:
                if secret in result:
                    result = result.replace(secret, mask(secret))
        return REDACTED_TEXT if self._present(result) else result

    def _present(self, value: str) -> list[str]:
        """The secrets occurring in ``value``, longest first."""
        if self._index is None:
            return [secret for secret in self._secrets if secret in value]
        size = self._gram
        if len(value) < size:
            return []
        grams = {value[i : i + size] for i in range(len(value) - size + 1)}
        index = self._index
        found = {secret for gram in grams & index.keys() for secret in index[gram] if secret in value}
        return sorted(found, key=_longest_first)

    def value(self, obj: Any) -> Any:
        """A redacted copy of a JSON-like object (dicts, lists, tuples, strings; other scalars as they are).

        When no secret occurs in it the object itself is returned, not a copy: with few secrets, one search
        of its JSON text decides, so the findings of a report that quote none of its secrets cost a dump,
        not a walk."""
        if not self._secrets:
            return obj
        if self._index is None and not self._in_json_of(obj):
            return obj
        return self._copy(obj)

    def _copy(self, obj: Any) -> Any:
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, dict):
            return {
                (self.text(key) if isinstance(key, str) else key): self._copy(item)
                for key, item in obj.items()
            }
        if isinstance(obj, list | tuple):
            return [self._copy(item) for item in obj]
        return obj

    def _in_json_of(self, obj: Any) -> bool:
        """Whether a secret (or its JSON-escaped form) occurs in the JSON text of ``obj``; True if unsure."""
        try:
            blob = orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS, default=str).decode("utf-8")
        except (TypeError, orjson.JSONEncodeError, UnicodeDecodeError):
            return True
        return any(form in blob for forms in self._json_forms for form in forms)

    def leaks(self, obj: Any) -> bool:
        """Whether any secret occurs in a string (or dict key) of ``obj``."""
        if isinstance(obj, str):
            return bool(self._present(obj))
        if isinstance(obj, dict):
            return any(self.leaks(key) or self.leaks(item) for key, item in obj.items())
        if isinstance(obj, list | tuple):
            return any(self.leaks(item) for item in obj)
        return False


def _longest_first(secret: str) -> tuple[int, str]:
    return (-len(secret), secret)


# Credentials with a recognisable shape, for text that was never reported *as* a secret (a scanner's
# description that quotes a key, a title with a token in it): the net outbound messages pass through.
# Each pattern's last group is the secret; what precedes it (a label such as ``password=``) is kept.
_SECRET_SHAPES = re.compile(
    "|".join(
        (
            r"(?P<pem>-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|$))",
            r"(?<![A-Z0-9])(?P<aws>(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16})(?![A-Z0-9])",
            r"(?P<slack>xox[abposre]-[A-Za-z0-9-]{10,})",
            r"(?P<hook>https://hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9/_-]+)",
            r"(?P<github>(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,}))",
            r"(?P<tocsin>tcn_[A-Za-z0-9_-]{16,})",
            r"(?P<stripe>[sr]k_live_[A-Za-z0-9]{16,})",
            r"(?P<jwt>eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})",
            r"(?i:(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|client[_-]?secret)"
            r"[\"']?\s*[:=]\s*[\"']?)(?P<labelled>[^\s\"'`,;…]{8,})",
        )
    ),
    re.DOTALL,
)
_SHAPE_HINTS = (
    "-----BEGIN",
    "AKIA",
    "ASIA",
    "AGPA",
    "AIDA",
    "AROA",
    "ANPA",
    "ANVA",
    "AIPA",
    "xox",
    "hooks.slack",
)
_SHAPE_HINTS_LOWER = ("gh", "github_pat_", "tcn_", "k_live_", "eyj", "pass", "pwd", "secret", "token", "key")


def mask_secrets_in_text(text: str) -> str:
    """``text`` with every credential-shaped value (AWS access key ids, Slack, GitHub, Stripe and Tocsin
    tokens, JWTs, private key blocks, ``password=…``-style labelled values) replaced by its masked form.

    Value-based masking (``Redactor``) needs to know the secret; this needs only its shape, so it is what
    outbound messages use on every text field: a secret planted in a title or a description reaches no
    channel. A masked form never matches again, so applying it twice changes nothing."""
    if not text:
        return text
    lowered = text.lower()
    if not any(hint in text for hint in _SHAPE_HINTS) and not any(h in lowered for h in _SHAPE_HINTS_LOWER):
        return text

    def replace(match: re.Match[str]) -> str:
        name = match.lastgroup or ""
        value = match.group(name)
        start, end = match.span(name)
        whole_start = match.start()
        return match.group(0)[: start - whole_start] + mask(value) + match.group(0)[end - whole_start :]

    return _SECRET_SHAPES.sub(replace, text)
