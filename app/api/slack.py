"""/v1/slack/interactions: Slack's callback for the triage buttons on finding messages.

Authenticated by Slack's request signature (``X-Slack-Signature`` over ``v0:<timestamp>:<body>`` with the
app's signing secret, ``TOCSIN_SLACK_SIGNING_SECRET``; timestamps older than 5 minutes are refused), not by
a bearer token. Slack gives up after 3 s, so the answer is an empty 200 at once and the work
(``app.delivery.slack_actions``) runs after the response has been sent.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qs

import orjson
from fastapi import APIRouter, BackgroundTasks, Request, Response
from slack_sdk.signature import SignatureVerifier

from app.api.deps import EngineDep, SettingsDep
from app.api.docs import error_responses
from app.delivery import slack_actions
from app.errors import Unauthorized, ValidationFailed

router = APIRouter(prefix="/v1/slack", tags=["slack"])
log = logging.getLogger("tocsin.slack")


def verify(signing_secret: str | None, body: bytes, timestamp: str | None, signature: str | None) -> None:
    """Raise 401 unless the request is signed with our secret within the last 5 minutes."""
    if not signing_secret:
        raise Unauthorized("Slack interactions are off: set TOCSIN_SLACK_SIGNING_SECRET")
    if not timestamp or not signature:
        raise Unauthorized("missing X-Slack-Signature or X-Slack-Request-Timestamp")
    try:
        valid = SignatureVerifier(signing_secret).is_valid(body, timestamp, signature)
    except ValueError:  # a timestamp that is not a number
        valid = False
    if not valid:
        raise Unauthorized("invalid or expired Slack signature")


def parse_payload(body: bytes) -> dict[str, Any]:
    """The JSON ``payload`` field of Slack's form-encoded interaction body."""
    fields = parse_qs(body.decode("utf-8", "replace"))
    raw = (fields.get("payload") or [""])[0]
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ValidationFailed("payload must be a JSON object", field="payload") from None
    if not isinstance(payload, dict):
        raise ValidationFailed("payload must be a JSON object", field="payload")
    return payload


@router.post(
    "/interactions",
    summary="Slack interactions (triage buttons)",
    description="Called by Slack when someone clicks a button on a finding message: Acknowledge, Snooze "
    "7 days, Resolve, False positive, Open ticket. Verified with the Slack signing secret (5-minute "
    "window), answered at once with an empty 200; the triage, its audit record (actor `slack:<user id>`) "
    "and the update of the message happen after the answer.",
    status_code=200,
    response_class=Response,
    responses=error_responses(401, 422),
)
async def interactions(
    request: Request, background: BackgroundTasks, engine: EngineDep, settings: SettingsDep
) -> Response:
    body = await request.body()
    secret = settings.slack_signing_secret
    verify(
        secret.get_secret_value() if secret is not None else None,
        body,
        request.headers.get("X-Slack-Request-Timestamp"),
        request.headers.get("X-Slack-Signature"),
    )
    clicks = slack_actions.parse_clicks(parse_payload(body))
    for click in clicks:
        background.add_task(slack_actions.handle, engine, settings, click)
    if not clicks:
        log.info("slack interaction with nothing for Tocsin to do")
    return Response(status_code=200)
