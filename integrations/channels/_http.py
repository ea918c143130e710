"""What the HTTP channels (GitHub, PagerDuty, webhook) share: option parsing with errors that name the
field, and turning an HTTP answer or a transport failure into a ``DeliveryResult``.

The channels only classify; retry and backoff live in delivery/. The rule is the conformance kit's: 429,
5xx, timeouts and connection errors are retryable (with ``retry_after_seconds`` when the server says when),
other 4xx are final, and a destination refused by the outbound guard is final (the address will not become
public by waiting). Every detail passes through ``scrub`` so no secret reaches the notification log.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from app.contracts import DeliveryResult
from integrations.channels._net import OutboundRefused

DETAIL_MAX = 300
ConfigT = TypeVar("ConfigT", bound=BaseModel)


def parse_config(
    kind: str, model: type[ConfigT], options_model: type[BaseModel], target: str, options: Any
) -> ConfigT:
    """Validate ``{"target", "options"}`` into ``model``; raises ValueError naming every bad field."""
    if not isinstance(options, Mapping):
        raise ValueError(f"invalid {kind} channel: options: must be an object of option names to values")
    try:
        return model.model_validate({"target": target, "options": dict(options)})
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"]) or "options"
            if error["type"] == "extra_forbidden":
                known = ", ".join(options_model.model_fields)
                problems.append(f"{field}: unknown option ({kind} accepts {known})")
            else:
                problems.append(f"{field}: {error['msg'].removeprefix('Value error, ')}")
        raise ValueError(f"invalid {kind} channel: {'; '.join(problems)}") from None


def retry_after(headers: httpx.Headers, *, now: datetime | None = None) -> float | None:
    """Seconds to wait, from ``Retry-After`` (seconds or an HTTP date) or, failing that, GitHub's
    ``x-ratelimit-reset`` (epoch seconds) when ``x-ratelimit-remaining`` is 0."""
    moment_now = now or datetime.now(UTC)
    value = headers.get("retry-after")
    if value:
        try:
            return max(float(value), 0.0)
        except ValueError:
            pass
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            moment = None
        if moment is not None:
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            return max((moment - moment_now).total_seconds(), 0.0)
    reset = headers.get("x-ratelimit-reset")
    if reset and headers.get("x-ratelimit-remaining") == "0":
        try:
            return max(float(reset) - moment_now.timestamp(), 0.0)
        except ValueError:
            return None
    return None


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Belt and braces: no path should put a secret in a detail, and this makes sure none does."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def http_failure(
    what: str,
    response: httpx.Response,
    *,
    secrets: Iterable[str] = (),
    retryable: bool | None = None,
    explanation: str = "",
) -> DeliveryResult:
    """A non-success answer: retryable for 429 and 5xx unless ``retryable`` says otherwise."""
    status = response.status_code
    if retryable is None:
        retryable = status == 429 or status >= 500
    wait = retry_after(response.headers) if retryable else None
    detail = f"{what}: HTTP {status}"
    if wait is not None:
        detail += f", retry after {wait:g}s"
    if 300 <= status < 400:
        detail += " (redirects are not followed: configure the final URL)"
    if explanation:
        detail += f": {explanation}"
    return DeliveryResult(
        ok=False,
        retryable=retryable,
        status_code=status,
        detail=scrub(detail, secrets)[:DETAIL_MAX],
        retry_after_seconds=wait,
    )


def transport_failure(
    what: str, exc: httpx.HTTPError, *, timeout: float, secrets: Iterable[str] = ()
) -> DeliveryResult:
    """A request that got no answer: refused by the guard (final), timed out or failed to connect
    (retryable), or could not be made at all (final)."""
    if isinstance(exc, OutboundRefused):
        return DeliveryResult(ok=False, retryable=False, detail=scrub(f"{what}: {exc}", secrets)[:DETAIL_MAX])
    if isinstance(exc, httpx.TimeoutException):
        return DeliveryResult(ok=False, retryable=True, detail=f"{what}: timed out after {timeout:g}s")
    if isinstance(exc, httpx.TransportError):
        detail = f"{what}: connection failed: {type(exc).__name__}"
        return DeliveryResult(ok=False, retryable=True, detail=scrub(detail, secrets)[:DETAIL_MAX])
    detail = f"{what}: request failed: {type(exc).__name__}"
    return DeliveryResult(ok=False, retryable=False, detail=scrub(detail, secrets)[:DETAIL_MAX])


def json_body(response: httpx.Response) -> Any:
    """The parsed JSON answer, or None when it is not JSON (a proxy's HTML error page)."""
    try:
        return response.json()
    except ValueError:
        return None
