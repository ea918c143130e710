"""JSON logs, one object per line, carrying the request id of the request being served."""

from __future__ import annotations

import contextvars
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
# Record attributes that are not fields: uvicorn's copy of the message with terminal colour codes.
_SKIPPED = _STANDARD | {"color_message"}


# Credentials with a recognisable shape: Tocsin tokens, Slack tokens, AWS access key ids. Nothing logs them
# on purpose (the access log has no headers and no query string); this is the net for what slips through, such
# as a token pasted into a URL path or quoted in an exception message.
_CREDENTIAL = re.compile(
    r"(?P<keep>tcn_|xox[abposr]-|(?<![A-Z0-9])(?:AKIA|ASIA))(?P<secret>[A-Za-z0-9_\-]{8,})"
)
_HINTS = ("tcn_", "xox", "AKIA", "ASIA")


def redact(text: str) -> str:
    """``text`` with the secret part of every credential-shaped value replaced."""
    if not any(hint in text for hint in _HINTS):
        return text
    return _CREDENTIAL.sub(lambda m: f"{m.group('keep')}[redacted]", text)


class RedactingFormatter(logging.Formatter):
    """The plain-text format, redacted like the JSON one."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(self._format(record))

    def _format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = request_id_var.get()
        if rid:
            entry["request_id"] = rid
        for key, value in record.__dict__.items():
            if key not in _SKIPPED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(level: str, as_json: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if as_json:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").setLevel("WARNING")  # our middleware logs each request once
    logging.getLogger("alembic.runtime.plugins").setLevel("WARNING")  # a line per plugin at every start
    # httpx logs every request URL at INFO; outbound URLs can carry secrets (SNS confirmation tokens,
    # webhook paths), so only its warnings are kept.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel("WARNING")
