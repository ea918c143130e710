"""A local stand-in for the PagerDuty Events API v2 (``POST /v2/enqueue``), validating events as PagerDuty
does and keeping the resulting alerts by ``dedup_key``.

Checks: a 32-character ``routing_key`` (and a known one), ``event_action`` in trigger/acknowledge/resolve,
``dedup_key`` (required for acknowledge/resolve, at most 255 characters), and for a trigger
``payload.summary`` (at most 1024 characters), ``payload.source`` and ``payload.severity`` in
critical/error/warning/info. A bad event answers 400 with PagerDuty's shape
``{"status": "invalid event", "message": "Event object is invalid", "errors": [...]}``; a good one 202
``{"status": "success", "message": "Event processed", "dedup_key": ...}``. Scripted: ``fail_next(429)``,
``fail_next(500)``, ``hang_next(seconds)``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from tests.fakes._server import Answer, FakeServer, Request

ACTIONS = ("trigger", "acknowledge", "resolve")
SEVERITIES = ("critical", "error", "warning", "info")


@dataclass
class Alert:
    dedup_key: str
    status: str
    payload: dict[str, Any]
    actions: list[str] = field(default_factory=list)


class FakePagerDuty(FakeServer):
    def __init__(self, routing_keys: tuple[str, ...] = ("R" * 32,)) -> None:
        super().__init__()
        self.routing_keys = set(routing_keys)
        self.alerts: dict[str, Alert] = {}
        self.events: list[dict[str, Any]] = []
        """Accepted events, in order."""

    def __enter__(self) -> FakePagerDuty:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def answer(self, request: Request) -> Answer:
        if request.method != "POST" or request.path != "/v2/enqueue":
            return 404, {}, {"status": "not found", "message": "Not Found"}
        try:
            event = request.json()
        except ValueError:
            return _invalid(["Event object is not valid JSON"])
        errors = validate_event(event)
        if errors:
            return _invalid(errors)
        if event["routing_key"] not in self.routing_keys:
            return _invalid(["Invalid routing key"])
        key = event.get("dedup_key") or uuid.uuid4().hex
        self.events.append(event)
        self._apply(event["event_action"], key, event.get("payload") or {})
        return 202, {}, {"status": "success", "message": "Event processed", "dedup_key": key}

    def _apply(self, action: str, key: str, payload: dict[str, Any]) -> None:
        alert = self.alerts.get(key)
        if action == "trigger":
            if alert is None or alert.status == "resolved":
                alert = self.alerts[key] = Alert(key, "triggered", payload, alert.actions if alert else [])
            alert.payload = payload
            if alert.status != "acknowledged":
                alert.status = "triggered"
        elif alert is None:
            return  # PagerDuty accepts acknowledge/resolve for unknown keys and does nothing
        elif action == "acknowledge" and alert.status == "triggered":
            alert.status = "acknowledged"
        elif action == "resolve":
            alert.status = "resolved"
        alert.actions.append(action)


def validate_event(event: Any) -> list[str]:
    """PagerDuty's checks on an Events v2 body, as messages in its style."""
    if not isinstance(event, dict):
        return ["Event object must be a JSON object"]
    errors: list[str] = []
    routing_key = event.get("routing_key")
    if not isinstance(routing_key, str) or len(routing_key) != 32:
        errors.append("'routing_key' is invalid: must be 32 characters")
    action = event.get("event_action")
    if action not in ACTIONS:
        errors.append("'event_action' is missing or blank" if not action else "'event_action' is invalid")
    key = event.get("dedup_key")
    if key is not None and (not isinstance(key, str) or not key or len(key) > 255):
        errors.append("'dedup_key' is invalid: must be a string of at most 255 characters")
    if action in ("acknowledge", "resolve") and not key:
        errors.append("'dedup_key' is missing or blank")
    if action == "trigger":
        payload = event.get("payload")
        if not isinstance(payload, dict):
            return [*errors, "'payload' is missing or blank"]
        summary = payload.get("summary")
        if not isinstance(summary, str) or not summary.strip():
            errors.append("'payload.summary' is missing or blank")
        elif len(summary) > 1024:
            errors.append("'payload.summary' is too long: must be at most 1024 characters")
        if not isinstance(payload.get("source"), str) or not payload["source"].strip():
            errors.append("'payload.source' is missing or blank")
        if payload.get("severity") not in SEVERITIES:
            errors.append("'payload.severity' is invalid (must be one of critical, error, warning or info)")
        details = payload.get("custom_details")
        if details is not None and not isinstance(details, dict | str):
            errors.append("'payload.custom_details' is invalid")
    return errors


def _invalid(errors: list[str]) -> Answer:
    return 400, {}, {"status": "invalid event", "message": "Event object is invalid", "errors": errors}
