"""The conformance kit every channel test reuses, so Slack, email, Jira... are held to the same rules.

Delivery/ decides whether to retry from ``DeliveryResult.retryable`` alone, so a channel that calls a 503
final loses a message and one that calls a 401 retryable hammers a dead token until the dead-letter. The
kit states the rule once: 429, 5xx, timeouts and connection errors are retryable; other 4xx are not; a
success is never "retryable"; a failure always says what happened, and never with the secret in it.
``sample_notification`` builds a realistic message so every channel renders the same shapes.

Lives beside ``integrations/testing.py`` (the parser kit) and, like it, needs nothing from the app beyond
the contracts; failures are ``ConformanceError`` (an ``AssertionError``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from app.contracts import (
    Channel,
    DeliveryResult,
    Notification,
    NotificationEvent,
    NotifiedFinding,
    Severity,
)
from integrations.testing import ConformanceError, assert_no_secret

__all__ = [
    "RETRYABLE_CONDITIONS",
    "ConformanceError",
    "assert_channel_shape",
    "assert_no_secret",
    "assert_retry_classification",
    "sample_finding",
    "sample_notification",
]

RETRYABLE_CONDITIONS: dict[str, bool] = {"timeout": True, "connection_error": True, "no_secret": False}
"""Named conditions that are not HTTP statuses, with the classification every channel must give them."""


def assert_channel_shape(channel: object) -> None:
    """The channel satisfies the ``Channel`` protocol and names an http(s) endpoint delivery/ can vet."""
    if not isinstance(channel, Channel):
        raise ConformanceError(f"{type(channel).__name__} does not implement the Channel protocol")
    if not channel.kind or not isinstance(channel.kind, str):
        raise ConformanceError("channel.kind must be a non-empty string")
    if not channel.endpoint.startswith(("https://", "http://")):
        raise ConformanceError(f"channel.endpoint must be an http(s) URL, got {channel.endpoint[:80]!r}")


def assert_retry_classification(
    results_by_status: Mapping[int | str, DeliveryResult],
    *,
    expected: Mapping[int | str, bool] | None = None,
) -> None:
    """Check each result against the shared rule for the condition that produced it.

    Keys are HTTP statuses (2xx must be ok; 429 and 5xx retryable; other 4xx final) or names from
    ``RETRYABLE_CONDITIONS`` ("timeout", "connection_error", "no_secret"). ``expected`` adds or overrides
    classifications for channel-specific conditions (e.g. a Slack error code answered with HTTP 200);
    a key with no rule is an error, so a test cannot silently check nothing.
    """
    rules: dict[int | str, bool] = {**(expected or {})}
    for name, retryable in RETRYABLE_CONDITIONS.items():
        rules.setdefault(name, retryable)
    problems: list[str] = []
    for key, result in results_by_status.items():
        label = f"{key!r}"
        if isinstance(key, int) and 200 <= key < 300 and key not in rules:
            if not result.ok or result.retryable:
                problems.append(f"{label}: a success must be ok and not retryable, got {_brief(result)}")
            continue
        want = rules.get(key, _http_rule(key))
        if want is None:
            problems.append(f"{label}: no rule for this condition; pass it in expected=")
            continue
        if result.ok:
            problems.append(f"{label}: must be a failure, got ok")
        elif result.retryable is not want:
            problems.append(f"{label}: retryable must be {want}, got {_brief(result)}")
        if not result.ok and not result.detail.strip():
            problems.append(f"{label}: a failure must say what happened in detail")
        if isinstance(key, int) and result.status_code not in (None, key):
            problems.append(f"{label}: status_code must be {key}, got {result.status_code}")
        if result.retry_after_seconds is not None and not result.retryable:
            problems.append(f"{label}: retry_after_seconds only makes sense on a retryable failure")
    if problems:
        raise ConformanceError("retry classification:\n  " + "\n  ".join(problems))


def _http_rule(key: int | str) -> bool | None:
    if not isinstance(key, int):
        return None
    if key == 429 or 500 <= key < 600:
        return True
    if 400 <= key < 500:
        return False
    return None


def _brief(result: DeliveryResult) -> str:
    return f"ok={result.ok} retryable={result.retryable} detail={result.detail[:120]!r}"


_T0 = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)
_SEVERITY_SCORE = {
    Severity.critical: 95.0,
    Severity.high: 80.0,
    Severity.medium: 55.0,
    Severity.low: 25.0,
    Severity.informational: 0.0,
}


def sample_finding(
    index: int = 0,
    *,
    event: NotificationEvent = "new",
    severity: Severity = Severity.high,
    title: str | None = None,
    code: bool | None = None,
    url: str | None = "https://tocsin.example.com/v1/findings/",
) -> NotifiedFinding:
    """A finding as delivery/ hands it to channels: cloud findings on even indexes, code findings on odd
    (``code`` forces one or the other); ``url`` is a prefix the finding id is appended to, None for none."""
    is_code = index % 2 == 1 if code is None else code
    finding_id = f"fnd_{index:06d}"
    common = {
        "id": finding_id,
        "event": event,
        "severity": severity,
        "severity_score": _SEVERITY_SCORE[severity],
        "status": "resolved" if event == "resolved" else "open",
        "occurrences": 1 + index % 3,
        "first_seen": _T0 - timedelta(days=index),
        "last_seen": _T0,
        "url": f"{url}{finding_id}" if url else None,
    }
    if is_code:
        return NotifiedFinding(
            **common,
            title=title or f"Hard-coded AWS secret key in settings module #{index}",
            score=min(100.0, _SEVERITY_SCORE[severity] + 8),
            score_reasons=["secret is verified live (+15)", "default branch (+5)", "public repository (+10)"],
            source="gitleaks",
            type="aws-secret-access-key",
            repository="github.com/acme/shop",
            path="src/shop/settings.py",
            line=40 + index,
            remediation="Revoke the key in IAM, rotate it, and load it from the secret store.",
        )
    return NotifiedFinding(
        **common,
        title=title or f"S3 bucket allows public read access #{index}",
        score=min(100.0, _SEVERITY_SCORE[severity] + 12),
        score_reasons=["resource is public (+15)", "production account (+10)", "holds customer data (+10)"],
        source="aws-securityhub",
        type="S3/PublicRead",
        resource_type="AwsS3Bucket",
        resource_id=f"arn:aws:s3:::acme-payments-exports-{index}",
        account_id="123456789012",
        region="eu-west-1",
        remediation="Turn on S3 Block Public Access for the bucket and its account.",
    )


def sample_notification(
    n_findings: int = 3,
    *,
    total: int | None = None,
    team: str = "payments",
    event: NotificationEvent = "new",
    severity: Severity = Severity.high,
    title: str | None = None,
    thread_ref: str | None = None,
    digest: bool = False,
    notification_id: str = "ntf_000001",
) -> Notification:
    """A realistic message for one group: ``n_findings`` shown out of ``total`` (default: all)."""
    findings = [sample_finding(i, event=event, severity=severity, title=title) for i in range(n_findings)]
    return Notification(
        id=notification_id,
        team=team,
        channel=f"{team}-slack",
        group_key=f"team={team}|type=S3/PublicRead",
        group_labels={"team": team, "type": "S3/PublicRead"},
        findings=findings,
        total=n_findings if total is None else total,
        digest=digest,
        thread_ref=thread_ref,
    )
