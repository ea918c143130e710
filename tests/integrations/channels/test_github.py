"""The GitHub Issues channel through its real httpx client against a local fake GitHub REST API: the whole
issue lifecycle of a group, recovery by label, rate limits, errors, and the outbound guard."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from app.contracts import Channel, DeliveryResult, Notification, OutboundPolicy
from integrations.channels import build_channel, validate_channel
from integrations.channels._github_render import escape, title
from integrations.channels.github import recovery_label
from integrations.testing_channels import (
    assert_channel_shape,
    assert_no_secret,
    assert_retry_classification,
    sample_finding,
    sample_notification,
)
from tests.fakes.github import FakeGitHub

TOKEN = "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB"
REPO = "acme/security"
LOCAL = OutboundPolicy(frozenset({"127.0.0.1"}))


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub(token=TOKEN, repos=(REPO,)) as fake:
        yield fake


def make(
    github: FakeGitHub,
    token: str | None = TOKEN,
    policy: OutboundPolicy = LOCAL,
    target: str = REPO,
    **options: Any,
) -> Channel:
    opts = {"base_url": github.url, "insecure": True, **options}
    return build_channel("github", target, opts, None if token is None else SecretStr(token), policy)


def send(channel: Channel, *notifications: Notification) -> list[DeliveryResult]:
    async def run() -> list[DeliveryResult]:
        try:
            return [await channel.send(n) for n in notifications]
        finally:
            await channel.aclose()

    return asyncio.run(run())


def send_one(github: FakeGitHub, notification: Notification | None = None, **kwargs: Any) -> DeliveryResult:
    return send(make(github, **kwargs), notification or sample_notification(1))[0]


def message(event: str, thread_ref: str | None = None, n: int = 1, status: str | None = None) -> Notification:
    base = sample_notification(n, thread_ref=thread_ref)
    findings = [
        sample_finding(i, event=event).model_copy(update={"status": status} if status else {})  # type: ignore[arg-type]
        for i in range(n)
    ]
    return base.model_copy(update={"findings": findings, "id": f"ntf_{event}"})


def test_full_lifecycle_creates_once_comments_closes_and_reopens(github: FakeGitHub) -> None:
    channel = make(github, labels=["security", "team-payments"], assignees=["octocat"])
    created = send(channel, message("new"))[0]
    assert created.ok and created.thread_ref == "1"
    ref = created.thread_ref

    results = send(
        make(github),
        message("reminder", ref),
        message("escalated", ref),
        message("resolved", ref),
        message("regressed", ref),
    )

    assert all(r.ok and r.thread_ref == "1" for r in results), results
    [issue] = github.all_issues(REPO)
    assert issue.labels == ["security", "team-payments", recovery_label(sample_notification().group_key)]
    assert issue.assignees == ["octocat"]
    assert issue.title.startswith("[HIGH] S3 bucket allows public read access #0 — arn:aws:s3:::")
    assert "Risk score" in issue.body and "resource is public" in issue.body
    assert len(issue.comments) == 4  # reminder, escalated, resolved, regressed
    assert "Still open" in issue.comments[0] and "Resolved" in issue.comments[2]
    assert issue.history == ["closed:completed", "open:reopened"]
    assert issue.state == "open"
    # create: one search, then the create; later messages never search again
    assert github.api_calls()[:2] == ["GET /search/issues", f"POST /repos/{REPO}/issues"]
    assert github.api_calls().count("GET /search/issues") == 1


def test_requests_carry_the_token_and_the_api_headers(github: FakeGitHub) -> None:
    assert send_one(github).ok
    request = github.requests[-1]
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["accept"] == "application/vnd.github+json"
    assert request.headers["x-github-api-version"] == "2022-11-28"


def test_a_lost_thread_ref_is_recovered_by_label_instead_of_opening_a_second_issue(
    github: FakeGitHub,
) -> None:
    first = send_one(github, message("new"))
    again = send_one(github, message("new"))  # the store lost thread_ref: same group, no ref

    assert first.thread_ref == again.thread_ref == "1"
    [issue] = github.all_issues(REPO)
    assert len(issue.comments) == 1


def test_a_recovered_closed_issue_is_reopened_when_the_group_is_back(github: FakeGitHub) -> None:
    ref = send_one(github, message("new")).thread_ref
    assert send_one(github, message("resolved", ref)).ok
    assert github.all_issues(REPO)[0].state == "closed"

    result = send_one(github, message("new"))

    assert result.ok and result.thread_ref == ref
    assert github.all_issues(REPO)[0].state == "open"


def test_a_deleted_issue_is_replaced_instead_of_failing_the_group_forever(github: FakeGitHub) -> None:
    ref = send_one(github, message("new")).thread_ref
    github.issues[REPO].clear()  # deleted on GitHub: the stored number now answers 404

    result = send_one(github, message("reminder", ref))

    assert result.ok and result.thread_ref == "2"
    assert [issue.number for issue in github.all_issues(REPO)] == [2]


def test_resolving_a_group_without_an_issue_sends_nothing(github: FakeGitHub) -> None:
    result = send_one(github, message("resolved"))

    assert result.ok and result.thread_ref is None
    assert github.all_issues(REPO) == []


def test_other_groups_get_their_own_issue(github: FakeGitHub) -> None:
    other = sample_notification(2).model_copy(update={"group_key": "team=payments|type=IAM/RootKey"})
    results = send(make(github), message("new"), other)

    assert [r.thread_ref for r in results] == ["1", "2"]
    assert github.all_issues(REPO)[1].title.startswith("[HIGH] 2 findings: team=payments")


def test_github_enterprise_base_url(github: FakeGitHub) -> None:
    result = send_one(github, base_url=f"{github.url}/api/v3")

    assert result.ok
    assert github.requests[-1].path == f"/api/v3/repos/{REPO}/issues"


def test_markdown_in_finding_text_is_escaped() -> None:
    evil = "<img src=x> [click](https://evil.example) @octocat #1 **bold**"
    text = escape(evil)
    assert "<img" not in text and "[click](" not in text and " @octocat" not in text
    assert "\\@octocat" in text and "\\#1" in text and "\\*\\*bold" in text
    assert len(title(sample_notification(1, title="x" * 400))) <= 256


def test_the_shared_rule_of_retry_classification_holds(github: FakeGitHub) -> None:
    results: dict[int | str, DeliveryResult] = {201: send_one(github)}
    for status in (429, 500, 502, 422, 404):
        github.fail_next(status, body={"message": "scripted"})
        results[status] = send_one(github)
    github.secondary_rate_limit(retry_after=42)
    results["secondary_rate_limit"] = send_one(github)
    github.primary_rate_limit(reset_in=120)
    results["primary_rate_limit"] = send_one(github)
    github.fail_next(403, body={"message": "Resource not accessible by integration"})
    results["forbidden"] = send_one(github)
    results[401] = send_one(github, token="ghp_wrong_token_wrong_token_wrong_token")
    github.hang_next(3)
    results["timeout"] = send_one(github, timeout_seconds=0.3)
    results["no_secret"] = send_one(github, token=None)

    assert_retry_classification(
        results, expected={"secondary_rate_limit": True, "primary_rate_limit": True, "forbidden": False}
    )
    assert results["secondary_rate_limit"].retry_after_seconds == 42
    assert 100 < (results["primary_rate_limit"].retry_after_seconds or 0) <= 120
    assert "Bad credentials" in results[401].detail
    for result in results.values():
        assert_no_secret(result, TOKEN)


def test_a_rate_limit_in_the_middle_of_the_lifecycle_is_retryable(github: FakeGitHub) -> None:
    ref = send_one(github, message("new")).thread_ref
    github.fail_next(429, retry_after=5)
    failed = send_one(github, message("resolved", ref))
    retried = send_one(github, message("resolved", ref))

    assert failed.retryable and failed.retry_after_seconds == 5
    assert retried.ok and github.all_issues(REPO)[0].state == "closed"


def test_an_unreachable_github_is_retryable(github: FakeGitHub) -> None:
    url = github.url
    github.stop()

    result = send(
        build_channel("github", REPO, {"base_url": url, "insecure": True}, SecretStr(TOKEN), LOCAL),
        sample_notification(1),
    )[0]

    assert not result.ok and result.retryable
    assert_no_secret(result, TOKEN)


@pytest.mark.parametrize(
    "base_url",
    ["http://127.0.0.1:9/", "http://10.0.0.5/api/v3", "http://169.254.169.254/", "http://[::1]:8080/"],
)
def test_internal_addresses_are_refused_unless_allow_listed(base_url: str) -> None:
    channel = build_channel("github", REPO, {"base_url": base_url, "insecure": True}, SecretStr(TOKEN))

    result = send(channel, sample_notification(1))[0]

    assert not result.ok and not result.retryable
    assert "refused" in result.detail
    assert_no_secret(result, TOKEN)


def test_the_allow_list_lets_the_fake_through_and_nothing_else(github: FakeGitHub) -> None:
    assert not send_one(github, policy=OutboundPolicy()).ok
    assert send_one(github, policy=LOCAL).ok


def test_https_is_required_unless_insecure() -> None:
    with pytest.raises(ValueError, match="https"):
        validate_channel("github", REPO, {"base_url": "http://ghe.example.com/api/v3"})
    validate_channel("github", REPO, {"base_url": "https://ghe.example.com/api/v3"})
    validate_channel("github", REPO, {"base_url": "http://localhost:8080", "insecure": True})


@pytest.mark.parametrize(
    ("target", "options", "field"),
    [
        ("acme", {}, "target"),
        ("acme/repo/extra", {}, "target"),
        (REPO, {"labels": [""]}, "options.labels"),
        (REPO, {"assignees": ["not a login"]}, "options.assignees"),
        (REPO, {"timeout_seconds": 0}, "options.timeout_seconds"),
        (REPO, {"colour": "red"}, "options.colour"),
        (REPO, {"base_url": "https://user:pw@ghe.example.com"}, "credentials"),
    ],
)
def test_invalid_config_is_rejected_by_name(target: str, options: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        validate_channel("github", target, options)


def test_render_shows_the_issue_a_preview_would_create() -> None:
    from integrations.channels import CHANNEL_KINDS

    rendered = CHANNEL_KINDS["github"].render(sample_notification(1))  # type: ignore[attr-defined]
    assert rendered["title"] == title(sample_notification(1))
    assert rendered["labels"] == [recovery_label(sample_notification(1).group_key)]
    assert "Risk score" in rendered["body"] and "Tocsin update" in rendered["comment"]


def test_channel_satisfies_the_protocol(github: FakeGitHub) -> None:
    channel = make(github)
    assert_channel_shape(channel)
    assert channel.kind == "github" and channel.endpoint.startswith(github.url)
