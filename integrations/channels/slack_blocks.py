"""Block Kit rendering of a notification: pure, no I/O, so it is tested without Slack.

Slack rejects a whole message (``invalid_blocks``) when one block breaks a limit, and a finding's text is
whatever a scanner wrote, so every piece of finding text is escaped and cut to fit here, never trusted.
Lengths are counted in UTF-16 code units, which is never fewer than Slack's own count, so a title full of
emoji cannot push a block over its limit. Escaping ``&``, ``<`` and ``>`` is what Slack asks for: it keeps a
title such as ``<!channel>`` or ``<https://evil|click>`` from becoming a mention or a link.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.contracts import Notification, NotifiedFinding, Severity

MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_HEADER_TEXT = 150
MAX_CONTEXT_TEXT = 2000
MAX_FALLBACK_TEXT = 3000
MAX_ACTION_FINDINGS = 5
"""Findings that get triage buttons (the first, most severe ones): five buttons per finding, one actions
block each, so a big group still fits in Slack's 50 blocks with room for its findings."""
ACTION_PREFIX = "tocsin:"
ACTIONS: tuple[tuple[str, str], ...] = (
    ("acknowledge", "Acknowledge"),
    ("snooze", "Snooze 7 days"),
    ("resolve", "Resolve"),
    ("false_positive", "False positive"),
    ("open_ticket", "Open ticket"),
)
"""``action_id`` suffix and button label; the button's ``value`` is the finding id."""
ELLIPSIS = "…"

Block = dict[str, Any]

_SEVERITY_EMOJI: dict[Severity, str] = {
    Severity.critical: ":rotating_light:",
    Severity.high: ":red_circle:",
    Severity.medium: ":large_orange_circle:",
    Severity.low: ":large_yellow_circle:",
    Severity.informational: ":white_circle:",
}
_SEVERITY_RANK = {s: rank for rank, s in enumerate(_SEVERITY_EMOJI)}  # 0 is the most severe
_RESOLVED_EMOJI = ":white_check_mark:"
_EVENT_LABEL = {
    "new": "New",
    "regressed": "Regressed (back after being resolved)",
    "escalated": "Escalated",
    "resolved": "Resolved",
    "reminder": "Still open (reminder)",
    "acknowledged": "Acknowledged",
}
_EVENT_ADJECTIVE = {
    "new": "new",
    "regressed": "regressed",
    "escalated": "escalated",
    "resolved": "resolved",
    "reminder": "still open",
    "acknowledged": "acknowledged",
}
_EVENT_SHORT = {
    "new": "New",
    "regressed": "Regressed",
    "escalated": "Escalated",
    "resolved": "Resolved",
    "reminder": "Still open",
    "acknowledged": "Acknowledged",
}
_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_TOP_REASONS = 3


def render(notification: Notification, *, actions: bool = True) -> tuple[str, list[Block]]:
    """The fallback ``text`` (notifications, screen readers) and the ``blocks`` of one message.

    ``actions``: triage buttons under the first ``MAX_ACTION_FINDINGS`` findings that are not resolved
    (off for incoming-webhook channels, whose messages Tocsin can never update)."""
    header = _header_text(notification)
    shown, more = _split(notification, actions)
    blocks: list[Block] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": clip(header, MAX_HEADER_TEXT), "emoji": True},
        }
    ]
    for index, finding in enumerate(shown):
        blocks.append(_section(_finding_text(finding)))
        if actions and index < MAX_ACTION_FINDINGS and finding.event != "resolved":
            blocks.append(actions_block(finding.id))
    if more:
        blocks.append(_section(f"{ELLIPSIS}and {more} more finding{_s(more)} in this group"))
    blocks.append(_context(notification, len(shown)))
    return _fallback_text(header, notification, shown, more), blocks


def escape(text: str) -> str:
    """Slack's mrkdwn escaping: only ``&``, ``<`` and ``>`` are control characters."""
    return "".join(_ESCAPES.get(char, char) for char in text)


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` UTF-16 units, ending with an ellipsis when cut."""
    if _units(text) <= limit:
        return text
    kept: list[str] = []
    used = _units(ELLIPSIS)
    for char in text:
        used += _units(char)
        if used > limit:
            break
        kept.append(char)
    return "".join(kept).rstrip() + ELLIPSIS


def escape_clip(text: str, limit: int) -> str:
    """Escape then cut to ``limit`` units without splitting an entity such as ``&amp;``."""
    escaped = escape(text)
    if _units(escaped) <= limit:
        return escaped
    kept: list[str] = []
    used = _units(ELLIPSIS)
    for char in text:
        piece = _ESCAPES.get(char, char)
        used += _units(piece)
        if used > limit:
            break
        kept.append(piece)
    return "".join(kept).rstrip() + ELLIPSIS


def _units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _s(count: int) -> str:
    return "" if count == 1 else "s"


def actions_block(finding_id: str) -> Block:
    """The triage buttons of one finding; ``block_id`` lets an update find them again."""
    return {
        "type": "actions",
        "block_id": f"{ACTION_PREFIX}actions:{finding_id}"[:255],
        "elements": [
            {
                "type": "button",
                "action_id": f"{ACTION_PREFIX}{action}",
                "text": {"type": "plain_text", "text": label, "emoji": True},
                "value": finding_id,
                **({"style": "primary"} if action == "resolve" else {}),
            }
            for action, label in ACTIONS
        ],
    }


def resolved_note() -> Block:
    """The line a root message gets when its findings resolved at their source."""
    text = f"{_RESOLVED_EMOJI} Resolved at the source; details in the thread."
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def with_status_line(blocks: list[Block], finding_id: str, text: str) -> list[Block]:
    """A copy of a posted message's ``blocks`` with a status line (``✅ Acknowledged by @name``) under
    the finding's buttons, replacing an earlier one; appended at the end if the buttons are not found."""
    status_id = f"{ACTION_PREFIX}status:{finding_id}"[:255]
    actions_id = f"{ACTION_PREFIX}actions:{finding_id}"[:255]
    line: Block = {
        "type": "context",
        "block_id": status_id,
        "elements": [{"type": "mrkdwn", "text": clip(text, MAX_CONTEXT_TEXT)}],
    }
    kept = [b for b in blocks if not (isinstance(b, dict) and b.get("block_id") == status_id)]
    for index, block in enumerate(kept):
        if isinstance(block, dict) and block.get("block_id") == actions_id:
            return [*kept[: index + 1], line, *kept[index + 1 :]][:MAX_BLOCKS]
    return [*kept, line][-MAX_BLOCKS:]


def _split(notification: Notification, actions: bool = True) -> tuple[list[NotifiedFinding], int]:
    """The findings that fit (header and context take two blocks, each actions block one) and how many
    are left unsaid."""
    findings = notification.findings
    total = max(notification.total, len(findings))
    room = MAX_BLOCKS - 2
    if actions:
        room -= min(MAX_ACTION_FINDINGS, len(findings))
    if total > len(findings) or len(findings) > room:
        room -= 1  # the "…and N more" section takes a block
    shown = list(findings[:room])
    return shown, total - len(shown)


def _worst(findings: Sequence[NotifiedFinding]) -> Severity:
    return min((f.severity for f in findings), key=_SEVERITY_RANK.__getitem__, default=Severity.informational)


def _header_text(notification: Notification) -> str:
    findings = notification.findings
    total = max(notification.total, len(findings))
    events = {f.event for f in findings}
    prefix = "Quiet-hours digest: " if notification.digest else ""
    emoji = _RESOLVED_EMOJI if events == {"resolved"} else _SEVERITY_EMOJI[_worst(findings)]
    if total == 1 and findings:
        only = findings[0]
        return f"{emoji} {prefix}{_EVENT_SHORT[only.event]} {only.severity.value.upper()}: {only.title}"
    adjective = f"{_EVENT_ADJECTIVE[next(iter(events))]} " if len(events) == 1 else ""
    severities = {f.severity for f in findings}
    if len(severities) == 1:
        what = f"{total} {adjective}{next(iter(severities)).value.upper()} findings"
    else:
        what = f"{total} {adjective}findings, up to {_worst(findings).value.upper()}"
    return f"{emoji} {prefix}{what} — {notification.team}"


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, MAX_SECTION_TEXT)}}


def _finding_text(finding: NotifiedFinding) -> str:
    """One finding as mrkdwn; each field has its own budget, and the budgets add up to less than Slack's
    3000 units, so the final clip in ``_section`` never cuts a link or an entity in half."""
    title = escape_clip(finding.title, 300)
    link = _safe_url(finding.url)
    lines = [f"*<{link}|{title}>*" if link else f"*{title}*"]
    lines.append(
        f"{_SEVERITY_EMOJI[finding.severity]} *{finding.severity.value.upper()}* · "
        f"{_EVENT_LABEL[finding.event]} · risk score *{finding.score:.0f}*/100"
    )
    if finding.score_reasons:
        reasons = "; ".join(escape_clip(r, 120) for r in finding.score_reasons[:_TOP_REASONS])
        lines.append(f"Why: {reasons}")
    if finding.resource_type or finding.resource_id:
        parts = [escape_clip(finding.resource_type or "", 100), escape_clip(finding.resource_id or "", 300)]
        lines.append(f"Resource: {' '.join(p for p in parts if p)}")
    where = [escape_clip(p, 64) for p in (finding.account_id, finding.region) if p]
    if where:
        lines.append(f"Account: {' · '.join(where)}")
    if finding.repository or finding.path:
        code = escape_clip(finding.path or "", 250)
        if finding.path and finding.line is not None:
            code += f":{finding.line}"
        lines.append(f"Code: {' '.join(p for p in (escape_clip(finding.repository or '', 200), code) if p)}")
    seen = f"first seen {finding.first_seen:%Y-%m-%d %H:%M} UTC"
    if finding.occurrences > 1:
        seen = f"seen {finding.occurrences} times, {seen}"
    lines.append(f"{escape_clip(finding.source, 80)} · {escape_clip(finding.type, 150)} · {seen}")
    if finding.remediation and finding.event != "resolved":
        lines.append(f"Fix: {escape_clip(finding.remediation, 250)}")
    return "\n".join(lines)


def _safe_url(url: str | None) -> str | None:
    """A link target that cannot break out of ``<url|label>``; None for anything but a plain http(s) URL."""
    if not url or not url.startswith(("https://", "http://")) or len(url) > 400:
        return None
    if any(char.isspace() for char in url):
        return None
    return url.replace("|", "%7C").replace("<", "%3C").replace(">", "%3E").replace("&", "&amp;")


def _context(notification: Notification, shown: int) -> Block:
    total = max(notification.total, len(notification.findings))
    parts = [f"Tocsin · team {escape_clip(notification.team, 100)}"]
    labels = ", ".join(
        f"{escape_clip(k, 60)}={escape_clip(v, 200)}" for k, v in notification.group_labels.items()
    )
    if labels:
        parts.append(f"group {labels}")
    if shown < total:
        parts.append(f"{shown} of {total} shown")
    if notification.digest:
        parts.append("digest of what quiet hours held back")
    text = clip(" · ".join(parts), MAX_CONTEXT_TEXT)
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def _fallback_text(
    header: str, notification: Notification, shown: Sequence[NotifiedFinding], more: int
) -> str:
    """Short plain summary for push notifications; the blocks carry the detail."""
    lines = [escape_clip(header, MAX_HEADER_TEXT)]
    if notification.digest:
        lines.append("Collected while quiet hours held notifications back.")
    if len(shown) > 1 or more:
        lines.extend(f"• {f.severity.value.upper()} {escape_clip(f.title, 200)}" for f in shown[:5])
        rest = more + max(len(shown) - 5, 0)
        if rest:
            lines.append(f"{ELLIPSIS}and {rest} more")
    return clip("\n".join(lines), MAX_FALLBACK_TEXT)
