"""Markdown for GitHub issues and comments: title, body and comment of one group's message.

Finding text comes from scanners and cloud APIs, so it is escaped before it is put in Markdown: a title must
not become a heading, a link, an HTML tag, an ``@mention`` that pings someone or a ``#123`` that links another
issue. Bodies stay under GitHub's 65,536-character limit.
"""

from __future__ import annotations

import re

from app.contracts import Notification, NotifiedFinding

MAX_TITLE = 256
MAX_BODY = 65_000
_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~@:])")
_SEVERITY_ORDER = ("critical", "high", "medium", "low", "informational")
_EVENT_WORDS = {
    "new": "New",
    "regressed": "Regressed",
    "escalated": "Escalated",
    "resolved": "Resolved",
    "reminder": "Still open",
}


def escape(text: str | None, limit: int = 1000) -> str:
    """Plain text safe to show in Markdown, on one line."""
    if not text:
        return ""
    flat = " ".join(text.split())[:limit]
    flat = flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _SPECIAL.sub(r"\\\1", flat)


def _resource(finding: NotifiedFinding) -> str:
    if finding.resource_id:
        return finding.resource_id
    if finding.repository or finding.path:
        where = "/".join(part for part in (finding.repository, finding.path) if part)
        return f"{where}:{finding.line}" if finding.line is not None else where
    return finding.resource_type or ""


def _top(notification: Notification) -> NotifiedFinding | None:
    return notification.findings[0] if notification.findings else None


def title(notification: Notification) -> str:
    """``[HIGH] <title> — <resource>`` for one finding; ``[HIGH] N findings: <group>`` for several. Titles
    are plain text on GitHub (not Markdown), so they are only flattened and shortened."""
    top = _top(notification)
    severity = top.severity.value.upper() if top else "INFO"
    if notification.total <= 1 and top is not None:
        text = f"[{severity}] {top.title}"
        resource = _resource(top)
        if resource:
            text += f" — {resource}"
    else:
        labels = ", ".join(f"{k}={v}" for k, v in notification.group_labels.items()) or notification.group_key
        text = f"[{severity}] {notification.total} findings: {labels}"
    text = " ".join(text.split())
    return text if len(text) <= MAX_TITLE else text[: MAX_TITLE - 1] + "…"


def _finding_block(finding: NotifiedFinding) -> str:
    lines = [f"### {finding.severity.value.upper()} · {escape(finding.title, 300)}", ""]
    lines.append(
        f"- **Event:** {_EVENT_WORDS.get(finding.event, finding.event)} (status: {escape(finding.status)})"
    )
    resource = _resource(finding)
    if resource:
        kind = f" ({escape(finding.resource_type)})" if finding.resource_type else ""
        lines.append(f"- **Resource:** {escape(resource, 500)}{kind}")
    where = ", ".join(escape(part) for part in (finding.account_id, finding.region) if part)
    if where:
        lines.append(f"- **Account/region:** {where}")
    lines.append(f"- **Risk score:** {finding.score:.0f}/100 (severity {finding.severity_score:.0f})")
    for reason in finding.score_reasons[:10]:
        lines.append(f"  - {escape(reason, 200)}")
    lines.append(f"- **Source:** {escape(finding.source)} · {escape(finding.type)}")
    lines.append(f"- **Seen:** {finding.occurrences} times since {finding.first_seen:%Y-%m-%d %H:%M} UTC")
    if finding.remediation:
        lines.append(f"- **Remediation:** {escape(finding.remediation, 1000)}")
    link = _link(finding.url)
    if link:
        lines.append(f"- [Open in Tocsin]({link})")
    return "\n".join(lines)


def _link(url: str | None) -> str:
    """A link target that cannot break out of ``(...)``: http(s) only, parentheses and spaces encoded."""
    if not url or not url.startswith(("https://", "http://")):
        return ""
    return (
        url.replace(" ", "%20")
        .replace("(", "%28")
        .replace(")", "%29")
        .replace("<", "%3C")
        .replace(">", "%3E")
    )


def _findings(notification: Notification) -> str:
    blocks = [_finding_block(finding) for finding in notification.findings]
    text = "\n\n".join(blocks)
    more = notification.total - len(notification.findings)
    if more > 0:
        text += f"\n\n_…and {more} more finding{'s' if more != 1 else ''} in this group._"
    return text


def _clip(text: str) -> str:
    if len(text) <= MAX_BODY:
        return text
    return text[: MAX_BODY - 60].rsplit("\n", 1)[0] + "\n\n_(truncated: see Tocsin for the rest)_"


def issue_body(notification: Notification) -> str:
    labels = ", ".join(f"{escape(k)}={escape(v)}" for k, v in notification.group_labels.items())
    head = f"Tocsin opened this issue for team **{escape(notification.team)}**"
    head += f" (group {labels})." if labels else "."
    foot = "_Tocsin comments here when findings repeat, closes it when they are resolved, reopens it if they come back._"
    return _clip(f"{head}\n\n{_findings(notification)}\n\n---\n{foot}")


def comment(notification: Notification) -> str:
    counts: dict[str, int] = {}
    for finding in notification.findings:
        counts[finding.event] = counts.get(finding.event, 0) + 1
    summary = ", ".join(f"{n} {_EVENT_WORDS.get(e, e).lower()}" for e, n in sorted(counts.items()))
    head = f"**Tocsin update** ({summary})" if summary else "**Tocsin update**"
    return _clip(f"{head}\n\n{_findings(notification)}")
