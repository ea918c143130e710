"""One message per group: the ``Notification`` a channel renders, built from stored rows.

Every text field of a finding passes through ``mask_secrets_in_text`` (the shape-based masking of
``integrations.sources.secrets``) here, once for every channel: ingest masks what a scanner reports *as* a
secret, but a key pasted into a title, a resource id or a remediation would otherwise reach Slack, email
or a ticket verbatim.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from app.contracts import Notification, NotifiedFinding, Severity, severity_label
from integrations.sources.secrets import mask_secrets_in_text

MAX_FINDINGS = 200
"""Findings carried in one message; ``total`` says how many the group holds (channels show what fits)."""

_EVENT_RANK = {"resolved": 0, "regressed": 1, "escalated": 2, "new": 3, "reminder": 4}


def score_reasons(breakdown: Mapping[str, Any] | None, limit: int = 3) -> list[str]:
    """The top reasons of the score breakdown (``factors[].reason``), strongest factor first."""
    factors = (breakdown or {}).get("factors") or []
    ranked = sorted(
        (f for f in factors if isinstance(f, dict) and f.get("reason")),
        key=lambda f: -abs(float(f.get("value") or 1.0) - 1.0),
    )
    return [str(f["reason"]) for f in ranked[:limit]]


def _clean(value: Any) -> str | None:
    """A text field as a channel may show it: secrets masked; None stays None."""
    return None if value is None else mask_secrets_in_text(str(value))


def notified_finding(row: Mapping[str, Any], event: str, public_url: str | None) -> NotifiedFinding:
    """What a channel may show of one finding row (``findings`` column names)."""
    fid = str(row["id"])
    severity = float(row["severity"])
    label = str(row.get("severity_label") or "")
    return NotifiedFinding(
        id=fid,
        event=event,  # stored from a NotificationEvent; pydantic checks it
        title=mask_secrets_in_text(str(row["title"])),
        severity=Severity(label) if label in Severity.__members__ else severity_label(severity),
        severity_score=severity,
        score=float(row["score"]),
        score_reasons=[mask_secrets_in_text(r) for r in score_reasons(row.get("score_breakdown"))],
        status=str(row["status"]),
        source=str(row["source"]),
        type=mask_secrets_in_text(str(row["type"])),
        resource_type=_clean(row.get("resource_type")),
        resource_id=_clean(row.get("resource_id")),
        account_id=_clean(row.get("account_id")),
        region=_clean(row.get("region")),
        repository=_clean(row.get("repository")),
        path=_clean(row.get("path")),
        line=row.get("line"),
        remediation=_clean(row.get("remediation")),
        occurrences=int(row.get("occurrences") or 1),
        first_seen=row["first_seen"],
        last_seen=row["last_seen"],
        url=f"{public_url.rstrip('/')}/v1/findings/{fid}" if public_url else None,
    )


def build_message(
    *,
    message_id: str,
    team: str,
    channel_name: str,
    group_key: str,
    group_labels: Mapping[str, str],
    thread_ref: str | None,
    digest: bool,
    items: Sequence[tuple[str, Mapping[str, Any]]],
    public_url: str | None,
    still_open_in_group: int = 0,
) -> Notification:
    """``items``: (event, finding row) per notification being sent. A finding named by several
    notifications (new, then escalated) appears once, under its most telling event; most severe first."""
    best: dict[str, tuple[str, Mapping[str, Any]]] = {}
    for event, row in items:
        fid = str(row["id"])
        if fid not in best or _EVENT_RANK.get(event, 9) < _EVENT_RANK.get(best[fid][0], 9):
            best[fid] = (event, row)
    ordered = sorted(
        best.values(), key=lambda er: (-float(er[1]["severity"]), -float(er[1]["score"]), str(er[1]["id"]))
    )
    findings = [notified_finding(row, event, public_url) for event, row in ordered[:MAX_FINDINGS]]
    return Notification(
        id=message_id,
        team=team,
        channel=channel_name,
        group_key=group_key,
        group_labels=dict(group_labels),
        findings=findings,
        total=len(ordered),
        digest=digest,
        thread_ref=thread_ref,
        still_open_in_group=still_open_in_group,
    )
