"""What an email says: the subject line and the text and HTML parts, rendered from Jinja2 templates.

Kept apart from ``email.py`` (which speaks SMTP) so previews can render without a server. The HTML
templates are autoescaped — a finding title is attacker-influenced text (a scanner copies it from a
package description or a resource tag), so ``<script>`` must arrive as text, not markup. The plain-text
templates are not escaped (escaping would only garble them). Anything that goes into a header is flattened
to one line first: a CR or LF in a title must not be able to start a header of its own.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from app.contracts import Notification, NotifiedFinding, Severity

SEVERITY_ORDER: tuple[Severity, ...] = (
    Severity.critical,
    Severity.high,
    Severity.medium,
    Severity.low,
    Severity.informational,
)
_RANK = {severity: rank for rank, severity in enumerate(SEVERITY_ORDER)}
SUBJECT_MAX = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]+")
_SPACES = re.compile(r"\s{2,}")


_ENV = Environment(
    loader=PackageLoader("integrations.channels", "templates/email"),
    autoescape=select_autoescape(
        enabled_extensions=("html.j2",), disabled_extensions=("txt.j2",), default=True
    ),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
_ENV.filters["oneline"] = lambda value: header_safe(str(value), 1000)


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


@dataclass(frozen=True, slots=True)
class SeverityGroup:
    severity: Severity
    findings: list[NotifiedFinding]


def header_safe(value: str, limit: int = SUBJECT_MAX) -> str:
    """One line, no control characters (CR/LF would inject headers), at most ``limit`` characters."""
    flat = _SPACES.sub(" ", _CONTROL.sub(" ", value)).strip()
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def resource_of(finding: NotifiedFinding) -> str:
    """The thing a finding is about, as one short phrase: a resource id, a file, or its type."""
    if finding.resource_id:
        return finding.resource_id
    if finding.path:
        where = f"{finding.repository}/{finding.path}" if finding.repository else finding.path
        return f"{where}:{finding.line}" if finding.line is not None else where
    return finding.repository or finding.resource_type or finding.type


def top_severity(findings: Sequence[NotifiedFinding]) -> Severity:
    if not findings:
        return Severity.informational
    return min((f.severity for f in findings), key=_RANK.__getitem__)


def by_severity(findings: Sequence[NotifiedFinding]) -> list[SeverityGroup]:
    """Findings grouped by severity, critical first, each group most risky first; empty groups left out."""
    groups = []
    for severity in SEVERITY_ORDER:
        members = sorted((f for f in findings if f.severity == severity), key=lambda f: -f.score)
        if members:
            groups.append(SeverityGroup(severity, members))
    return groups


def group_name(notification: Notification) -> str:
    """``payments/S3/PublicRead``: the group's label values, or the team when it has none."""
    values = [v for v in notification.group_labels.values() if v]
    return "/".join(values) if values else notification.team


def subject(notification: Notification, prefix: str) -> str:
    findings = notification.findings
    severity = top_severity(findings).value.upper()
    head = f"{prefix}[{severity}]"
    if notification.digest:
        text = f"{head} Digest: {notification.total} findings held for {notification.team}"
    elif len(findings) == 1 and notification.total == 1:
        only = findings[0]
        event = {"resolved": "Resolved: ", "regressed": "Regressed: "}.get(only.event, "")
        text = f"{head} {event}{only.title} — {resource_of(only)}"
    else:
        text = f"{head} {notification.total} findings — {group_name(notification)}"
    return header_safe(text)


def render(notification: Notification, *, prefix: str = "[Tocsin]") -> RenderedEmail:
    """Subject, text and HTML for one notification (a digest when ``notification.digest``)."""
    shown = len(notification.findings)
    context = {
        "n": notification,
        "group": group_name(notification),
        "groups": by_severity(notification.findings),
        "findings": notification.findings,
        "more": max(notification.total - shown, 0),
        "resource_of": resource_of,
    }
    name = "digest" if notification.digest else "message"
    return RenderedEmail(
        subject=subject(notification, header_safe(prefix, 40)),
        text=_ENV.get_template(f"{name}.txt.j2").render(context),
        html=_ENV.get_template(f"{name}.html.j2").render(context),
    )
