"""What a Jira ticket says: summary, description and comments, as ADF (Cloud, REST v3) or wiki text
(Server/Data Center, REST v2). Pure: no I/O, no config beyond what the caller passes.

Both flavors render the same intermediate ``Section`` list, so the two formats cannot drift apart. Jira
refuses descriptions over 32,767 characters (Cloud counts the ADF document as JSON): sections that do not
fit are left out and a note says how many, instead of the create failing on a large group.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from app.contracts import Notification, NotifiedFinding

Flavor = Literal["cloud", "server"]
DESCRIPTION_LIMIT = 32_767
SUMMARY_LIMIT = 255
FIELD_LIMIT = 8_000
"""A single free-text field (remediation, title) is clipped to this, so one finding always fits."""
_NOTE_RESERVE = 600
_EVENT_WORDS = {
    "new": "New",
    "regressed": "Regressed",
    "escalated": "Escalated",
    "resolved": "Resolved",
    "reminder": "Still open",
}
_WIKI_SPECIAL = str.maketrans({c: "\\" + c for c in "\\{}[]|*_^~+-#"})


@dataclass(frozen=True, slots=True)
class Section:
    """One finding as a ticket shows it: a heading, label/value facts, an optional link and remediation."""

    heading: str
    facts: tuple[tuple[str, str], ...]
    url: str | None
    remediation: str | None


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 12, 0)] + " [truncated]"


def _resource(finding: NotifiedFinding) -> str | None:
    if finding.resource_id:
        return finding.resource_id
    if finding.path:
        where = f"{finding.repository}/{finding.path}" if finding.repository else finding.path
        return f"{where}:{finding.line}" if finding.line is not None else where
    return finding.repository


def summary(notification: Notification) -> str:
    """``[HIGH] <title> — <resource>`` for one finding; ``[HIGH] N findings: <group>`` for a group."""
    top = notification.findings[0] if notification.findings else None
    severity = top.severity.value.upper() if top else "INFO"
    if notification.total <= 1 and top is not None:
        resource = _resource(top)
        text = f"[{severity}] {top.title}" + (f" — {resource}" if resource else "")
    else:
        group = ", ".join(f"{k}={v}" for k, v in notification.group_labels.items()) or notification.group_key
        text = f"[{severity}] {notification.total} findings: {group}"
    return clip(" ".join(text.split()), SUMMARY_LIMIT)


def section(finding: NotifiedFinding) -> Section:
    facts: list[tuple[str, str]] = [
        ("Event", _EVENT_WORDS.get(finding.event, finding.event)),
        ("Severity", f"{finding.severity.value} ({finding.severity_score:g})"),
        (
            "Risk score",
            f"{finding.score:g}"
            + (f" — {'; '.join(finding.score_reasons)}" if finding.score_reasons else ""),
        ),
        ("Source", f"{finding.source} / {finding.type}"),
    ]
    resource = _resource(finding)
    if resource:
        facts.append(("Resource", f"{finding.resource_type or 'resource'} {resource}"))
    if finding.account_id:
        facts.append(("Account", f"{finding.account_id} {finding.region or ''}".strip()))
    facts.append(("Status", finding.status))
    facts.append(("Occurrences", str(finding.occurrences)))
    facts.append(("First seen", finding.first_seen.isoformat()))
    facts.append(("Last seen", finding.last_seen.isoformat()))
    facts.append(("Tocsin id", finding.id))
    return Section(
        heading=clip(f"[{finding.severity.value.upper()}] {finding.title}", FIELD_LIMIT),
        facts=tuple((label, clip(value, FIELD_LIMIT)) for label, value in facts),
        url=finding.url,
        remediation=clip(finding.remediation, FIELD_LIMIT) if finding.remediation else None,
    )


def _truncation_note(left_out: int, total_hidden: int) -> str:
    parts = []
    if left_out:
        parts.append(
            f"{left_out} more finding(s) are not shown: the description was truncated to fit "
            f"Jira's limit of {DESCRIPTION_LIMIT:,} characters."
        )
    if total_hidden:
        parts.append(f"{total_hidden} more finding(s) in this group are not listed in the message.")
    return " ".join(parts) + " See Tocsin for the full list."


# -- ADF (Cloud, REST v3) ---------------------------------------------------------------------------


def _text(value: str, *, strong: bool = False, href: str | None = None) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "text", "text": value or " "}
    marks: list[dict[str, Any]] = []
    if strong:
        marks.append({"type": "strong"})
    if href:
        marks.append({"type": "link", "attrs": {"href": href}})
    if marks:
        node["marks"] = marks
    return node


def _paragraph(*nodes: dict[str, Any]) -> dict[str, Any]:
    return {"type": "paragraph", "content": list(nodes)}


def adf_section(sec: Section) -> list[dict[str, Any]]:
    items = [
        {"type": "listItem", "content": [_paragraph(_text(f"{label}: ", strong=True), _text(value))]}
        for label, value in sec.facts
    ]
    nodes: list[dict[str, Any]] = [
        {"type": "heading", "attrs": {"level": 3}, "content": [_text(sec.heading)]},
        {"type": "bulletList", "content": items},
    ]
    if sec.url:
        nodes.append(_paragraph(_text("Open in Tocsin", href=sec.url)))
    if sec.remediation:
        nodes.append(_paragraph(_text("Remediation: ", strong=True), _text(sec.remediation)))
    return nodes


def adf_doc(content: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "doc", "version": 1, "content": list(content)}


def _adf_size(content: Sequence[dict[str, Any]]) -> int:
    return len(json.dumps(adf_doc(content), ensure_ascii=False))


def _intro(notification: Notification, verb: str) -> str:
    shown = len(notification.findings)
    total = notification.total
    count = f"{total} finding" + ("s" if total != 1 else "")
    labels = ", ".join(f"{k}={v}" for k, v in notification.group_labels.items())
    return (
        f"Tocsin {verb} {count} for team {notification.team}"
        + (f" ({labels})" if labels else "")
        + (f"; the {shown} most severe are listed." if shown < total else ".")
    )


def adf_body(notification: Notification, verb: str = "reports") -> dict[str, Any]:
    """An ADF document listing the message's findings, truncated with a note to fit Jira's limit."""
    content: list[dict[str, Any]] = [_paragraph(_text(_intro(notification, verb)))]
    sections = [adf_section(section(f)) for f in notification.findings]
    budget = DESCRIPTION_LIMIT - _NOTE_RESERVE
    size = _adf_size(content)
    used = 0
    for nodes in sections:
        extra = len(json.dumps(nodes, ensure_ascii=False)) + 1
        if size + extra > budget:
            break
        content.extend(nodes)
        size += extra
        used += 1
    hidden = notification.total - len(notification.findings)
    if used < len(sections):
        content.append(_paragraph(_text(_truncation_note(len(sections) - used, max(hidden, 0)), strong=True)))
    return adf_doc(content)


# -- wiki markup (Server/Data Center, REST v2) ----------------------------------------------------


def wiki_escape(text: str) -> str:
    return text.translate(_WIKI_SPECIAL)


def wiki_section(sec: Section) -> str:
    lines = [f"h3. {wiki_escape(sec.heading)}"]
    lines += [f"* *{label}:* {wiki_escape(value)}" for label, value in sec.facts]
    if sec.url:
        lines.append(f"[Open in Tocsin|{sec.url.replace('|', '%7C').replace(']', '%5D')}]")
    if sec.remediation:
        lines.append(f"*Remediation:* {wiki_escape(sec.remediation)}")
    return "\n".join(lines)


def wiki_body(notification: Notification, verb: str = "reports") -> str:
    """Wiki text listing the message's findings, truncated with a note to fit Jira's limit."""
    parts = [wiki_escape(_intro(notification, verb))]
    size = len(parts[0])
    budget = DESCRIPTION_LIMIT - _NOTE_RESERVE
    sections = [wiki_section(section(f)) for f in notification.findings]
    used = 0
    for text in sections:
        if size + len(text) + 2 > budget:
            break
        parts.append(text)
        size += len(text) + 2
        used += 1
    if used < len(sections):
        hidden = max(notification.total - len(notification.findings), 0)
        parts.append(f"*{wiki_escape(_truncation_note(len(sections) - used, hidden))}*")
    return "\n\n".join(parts)


def body(notification: Notification, flavor: Flavor, verb: str = "reports") -> dict[str, Any] | str:
    """The description (``verb`` "reports") or a comment body ("regressed", "reminds of"...)."""
    return adf_body(notification, verb) if flavor == "cloud" else wiki_body(notification, verb)


def comment_verb(notification: Notification) -> str:
    events = {f.event for f in notification.findings}
    if "regressed" in events:
        return "saw again (regressed)"
    if "escalated" in events:
        return "escalated"
    if events == {"reminder"}:
        return "still sees"
    if events == {"resolved"}:
        return "resolved"
    return "reports"
