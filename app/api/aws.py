"""AWS push endpoints: EventBridge events (API destinations) and SNS HTTP(S) subscriptions.

Both end in the same place as every other source: the findings of the events go through the pipeline in
one transaction and the answer has the shape of ``POST /v1/findings``. Envelope dispatch, SNS signature
checks and subscription confirmation live in ``app.aws``; this module authorizes, calls and shapes.
"""

from __future__ import annotations

import threading
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Header, Request
from pydantic import BaseModel, Field
from sqlalchemy import Engine

from app.api.deps import EngineDep, IngestCaller, IngestOrApiKeyCaller, RawBody, SettingsDep
from app.api.docs import error_responses
from app.api.ingest import ReportBodyDep, ingest_format, store_items
from app.api.schemas import ErrorBody, IngestResponse, ReportIngestResponse
from app.auth import Principal, require_sources
from app.aws import eventbridge, sns
from app.errors import PayloadTooLarge, ValidationFailed
from app.pipeline.normalize import FieldError, ItemError, ValidItem
from app.settings import Settings
from integrations import registry

router = APIRouter(prefix="/v1/ingest", tags=["aws"])

MAX_ACTOR = 128  # the width of the actor column of finding events

EXAMPLE_EVENT: dict[str, Any] = {
    "version": "0",
    "id": "860d8fdd-3d43-d844-370b-0fb08d1b661d",
    "detail-type": "GuardDuty Finding",
    "source": "aws.guardduty",
    "account": "123456789012",
    "time": "2024-03-07T00:30:34Z",
    "region": "eu-west-1",
    "resources": [],
    "detail": {
        "schemaVersion": "2.0",
        "accountId": "123456789012",
        "region": "eu-west-1",
        "partition": "aws",
        "id": "7ebc050b71c556086b524045c9067feb",
        "arn": "arn:aws:guardduty:eu-west-1:123456789012:detector/e8b2d11e/finding/7ebc050b71c556086b524045c9067feb",
        "type": "Backdoor:EC2/Spambot",
        "resource": {"resourceType": "Instance", "instanceDetails": {"instanceId": "i-0abc1234def567890"}},
        "severity": 5,
        "createdAt": "2024-03-07T00:10:11.187Z",
        "updatedAt": "2024-03-07T00:10:11.187Z",
        "title": "Unusual outbound communication seen from EC2 instance i-0abc1234def567890 on port 25.",
        "description": "EC2 instance i-0abc1234def567890 is communicating with a remote host on port 25.",
    },
}

_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["source", "detail-type", "detail"],
    "properties": {
        "source": {"type": "string", "examples": ["aws.guardduty"]},
        "detail-type": {"type": "string", "examples": ["GuardDuty Finding"]},
        "detail": {"type": "object", "description": "The finding, or `{findings: [...]}` (Security Hub)."},
        "account": {"type": "string"},
        "region": {"type": "string"},
        "time": {"type": "string", "format": "date-time"},
    },
}

_SUPPORTED_MARKDOWN = "\n".join(
    f"- `{source}` / `{detail_type}` → `{route.parser}` on `{route.field}`"
    for (source, detail_type), route in eventbridge.ROUTES.items()
)


def _decode(body: bytes, what: str, field: str) -> Any:
    if not body.strip():
        raise ValidationFailed(f"{what} is empty; expected JSON", field=field)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValidationFailed(f"{what} is not valid JSON: {exc}", field=field) from exc


def store_events(
    document: Any, actor: str, engine: Engine, settings: Settings, caller: Principal | None = None
) -> IngestResponse:
    """Dispatch one event or a list and store what parsed; a single failing event is a 422. With a
    ``caller`` (token-authenticated), its source binding applies to the findings."""
    try:
        events, is_list = eventbridge.events_of(document, settings.max_batch_findings)
    except eventbridge.EventError as exc:
        raise ValidationFailed(exc.message, field=exc.field) from exc
    dispatched = eventbridge.dispatch(events, registry.get_parser)
    if not is_list and dispatched.failures:
        failure = dispatched.failures[0]
        where = f"{failure.field}: " if failure.field else ""
        raise ValidationFailed(f"event not ingested: {where}{failure.message}", field=failure.field or "body")
    if caller is not None:
        require_sources(caller, dispatched.findings)
    items = [ValidItem(index, finding, finding.raw) for index, finding in enumerate(dispatched.findings)]
    failed = [ItemError(f.index, [FieldError(f.field, f.message)]) for f in dispatched.failures]
    return store_items(items, failed, actor, engine, settings)


@router.post(
    "/eventbridge",
    summary="Ingest EventBridge finding events",
    description=(
        "One EventBridge event, or a list of them, as an EventBridge API destination or rule target sends "
        "it. The `source` / `detail-type` pair chooses the parser:\n\n"
        f"{_SUPPORTED_MARKDOWN}\n\n"
        "Any other pair answers 422 listing these. In a list, events that fail are reported in `failed` "
        "(`index` = the event's position, `errors[].field` = the path in the event, e.g. "
        "`detail.severity`) and the others are stored; `results[].index` numbers the findings of all "
        "events in order (a Security Hub event can carry several).\n\n"
        "Needs `ingest`: as `Authorization: Bearer <token>`, or, for an API-destination connection, the same "
        "token in the header named by `TOCSIN_EVENTBRIDGE_API_KEY_HEADER` (default `X-Tocsin-Key`)."
    ),
    response_model=IngestResponse,
    responses=error_responses(401, 403, 413, 422, 503),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"oneOf": [_EVENT_SCHEMA, {"type": "array", "items": _EVENT_SCHEMA}]},
                    "example": EXAMPLE_EVENT,
                }
            },
        }
    },
)
def ingest_eventbridge(
    caller: IngestOrApiKeyCaller, body: RawBody, engine: EngineDep, settings: SettingsDep
) -> IngestResponse:
    document = _decode(body, "the body", "body")
    return store_events(document, caller.name, engine, settings, caller)


class SnsAck(BaseModel):
    """The answer to an SNS subscription or unsubscription message."""

    type: Literal["SubscriptionConfirmation", "UnsubscribeConfirmation"]
    topic_arn: str
    status: Literal["confirmed", "acknowledged"] = Field(
        description="`confirmed`: the SubscribeURL was fetched; `acknowledged`: verified and logged."
    )


_GATE_LOCK = threading.Lock()
SNS_MAX_BYTES = 512 * 1024  # SNS messages are at most 256 KB; no token guards this endpoint


async def read_sns_body(request: Request) -> bytes:
    """The body, refused past ``SNS_MAX_BYTES`` while it arrives (not after reading 64 MB)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > SNS_MAX_BYTES:
            raise PayloadTooLarge(f"request body exceeds {SNS_MAX_BYTES} bytes; SNS messages are smaller")
    return bytes(body)


def _gate(request: Request, settings: Settings) -> sns.SnsGate:
    """The app's SNS gate (topic list, TLS context, certificate cache), built on first use."""
    state = request.app.state
    gate: sns.SnsGate | None = getattr(state, "sns_gate", None)
    if gate is None:
        with _GATE_LOCK:
            gate = getattr(state, "sns_gate", None)
            if gate is None:
                gate = sns.SnsGate(settings)
                state.sns_gate = gate
    return gate


_SNS_EXAMPLE = {
    "Type": "Notification",
    "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
    "TopicArn": "arn:aws:sns:eu-west-1:123456789012:security-findings",
    "Message": orjson.dumps(EXAMPLE_EVENT).decode(),
    "Timestamp": "2024-03-07T00:30:36.655Z",
    "SignatureVersion": "2",
    "Signature": "EXAMPLEw6JRN...",
    "SigningCertURL": "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-abc123.pem",
    "UnsubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=...",
}
_SNS_RESPONSES: dict[int | str, dict[str, Any]] = {
    **error_responses(413, 422, 503),
    403: {
        "model": ErrorBody,
        "description": "The topic is not on TOCSIN_SNS_TOPIC_ARNS, or the signature, its certificate or "
        "a URL in the message does not check out. Nothing is stored.",
    },
    502: {
        "model": ErrorBody,
        "description": "SNS could not be reached (signing certificate or SubscribeURL); SNS retries.",
    },
}


@router.post(
    "/sns",
    summary="Receive an SNS HTTP(S) message",
    description=(
        "The endpoint of an SNS HTTPS subscription (raw message delivery off). Authenticated by the "
        "message itself, not a token: the `TopicArn` must be on `TOCSIN_SNS_TOPIC_ARNS` and the signature "
        "(SignatureVersion 1 or 2) must verify against the certificate at `SigningCertURL`, which is "
        "fetched only over https from a host matching `TOCSIN_SNS_CERT_HOST_PATTERN`.\n\n"
        "- `SubscriptionConfirmation`: confirmed by fetching its `SubscribeURL` (same host rule).\n"
        "- `UnsubscribeConfirmation`: verified and logged.\n"
        "- `Notification`: its `Message` is an EventBridge event (or a list), ingested as by "
        "`POST /v1/ingest/eventbridge`; the answer has the same shape."
    ),
    response_model=IngestResponse | SnsAck,
    responses=_SNS_RESPONSES,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/plain": {"schema": {"type": "string"}, "example": orjson.dumps(_SNS_EXAMPLE).decode()}
            },
        }
    },
)
def ingest_sns(
    body: Annotated[bytes, Depends(read_sns_body)],
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    message_type: Annotated[
        str | None,
        Header(alias="x-amz-sns-message-type", description="Set by SNS; must match the body's `Type`."),
    ] = None,
) -> IngestResponse | SnsAck:
    message = sns.parse_message(body, message_type)
    gate = _gate(request, settings)
    gate.verify(message)
    if message.type == sns.SUBSCRIPTION_CONFIRMATION:
        gate.confirm_subscription(message)
        return SnsAck(type=message.type, topic_arn=message.topic_arn, status="confirmed")
    if message.type == sns.UNSUBSCRIBE_CONFIRMATION:
        sns.log.info("SNS unsubscribe confirmation verified for topic %r", message.topic_arn)
        return SnsAck(type=message.type, topic_arn=message.topic_arn, status="acknowledged")
    document = _decode(message.message.encode("utf-8"), "the SNS Message", "Message")
    actor = f"sns:{message.topic_arn}"[:MAX_ACTOR]
    return store_events(document, actor, engine, settings)


@router.post(
    "/securityhub",
    summary="Ingest Security Hub findings (ASFF)",
    description='An alias of `POST /v1/ingest/asff`: ASFF findings as a list, `{"Findings": [...]}` or '
    "an EventBridge Security Hub event. Stored in one transaction (whole or not at all). Needs `ingest`.",
    response_model=ReportIngestResponse,
    responses=error_responses(401, 403, 413, 422, 503),
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {}}}}},
)
def ingest_securityhub(
    caller: IngestCaller, body: ReportBodyDep, engine: EngineDep, settings: SettingsDep
) -> ReportIngestResponse:
    return ingest_format("asff", caller, body, engine, settings)
