"""The Jira channel through its real HTTP client against a local fake Jira (Cloud v3 and Server/DC v2)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from app.contracts import Channel, DeliveryResult, Notification, OutboundPolicy, Severity
from integrations.channels import build_channel, validate_channel
from integrations.channels.jira import recovery_label
from integrations.channels.jira_render import DESCRIPTION_LIMIT
from integrations.testing_channels import (
    assert_channel_shape,
    assert_no_secret,
    assert_retry_classification,
    sample_finding,
    sample_notification,
)
from tests.fakes.jira import FakeJira, adf_problems

TOKEN = "ATATT3xFfGF0-jira-test-token-9d2c"
USER = "tocsin@acme.example"
LOCAL = OutboundPolicy(frozenset({"127.0.0.1"}))


@pytest.fixture
def jira() -> Iterator[FakeJira]:
    with FakeJira(token=TOKEN, user=USER) as fake:
        yield fake


def make(
    jira: FakeJira, token: str | None = TOKEN, policy: OutboundPolicy = LOCAL, **options: Any
) -> Channel:
    opts: dict[str, Any] = {"base_url": jira.url, "insecure": True, "user": USER, **options}
    return build_channel("jira", "SEC", opts, None if token is None else SecretStr(token), policy)


def send(channel: Channel, *notifications: Notification) -> list[DeliveryResult]:
    async def run() -> list[DeliveryResult]:
        try:
            return [await channel.send(n) for n in notifications]
        finally:
            await channel.aclose()

    return asyncio.run(run())


def one(jira: FakeJira, notification: Notification | None = None, **options: Any) -> DeliveryResult:
    return send(make(jira, **options), notification or sample_notification(1))[0]


def note(event: str, thread_ref: str | None, n: int = 1, **kw: Any) -> Notification:
    return sample_notification(n, event=event, thread_ref=thread_ref, **kw)  # type: ignore[arg-type]


def test_creates_the_ticket_with_fields_priority_and_label(jira: FakeJira) -> None:
    channel = make(
        jira,
        labels=["security"],
        components=["Platform"],
        custom_fields={"customfield_10042": "payments"},
        priority_map={"high": "Highest"},
    )
    assert_channel_shape(channel)
    [result] = send(channel, sample_notification(1, severity=Severity.high))

    assert result.ok and result.thread_ref == "SEC-1", result
    [call] = jira.calls_to("POST", "/issue")
    fields = call.body["fields"]
    assert call.version == "3"
    assert fields["project"] == {"key": "SEC"} and fields["issuetype"] == {"name": "Task"}
    assert fields["summary"].startswith("[HIGH] S3 bucket allows public read access #0")
    assert fields["priority"] == {"name": "Highest"}
    label = recovery_label(sample_notification(1).group_key)
    assert fields["labels"] == [label, "security"] and len(label) == len("tocsin-") + 12
    assert fields["components"] == [{"name": "Platform"}]
    assert fields["customfield_10042"] == "payments"
    assert adf_problems(fields["description"]) == []
    assert call.auth is not None and call.auth.startswith("Basic ")


def test_default_priority_map(jira: FakeJira) -> None:
    one(jira, sample_notification(1, severity=Severity.critical))
    assert jira.calls_to("POST", "/issue")[0].body["fields"]["priority"] == {"name": "Highest"}
    one(jira, sample_notification(1, severity=Severity.low, team="other"))
    assert jira.calls_to("POST", "/issue")[1].body["fields"]["priority"] == {"name": "Low"}


def test_created_once_the_label_recovers_a_lost_ticket(jira: FakeJira) -> None:
    [first] = send(make(jira), note("new", None))
    # The store lost the key: the same group again finds its ticket by label and comments on it.
    [again] = send(make(jira), note("reminder", None, notification_id="n2"))

    assert first.thread_ref == again.thread_ref == "SEC-1"
    assert len(jira.issues) == 1 and len(jira.calls_to("POST", "/issue")) == 1
    search = jira.calls_to("POST", "/search/jql")
    assert len(search) == 2 and recovery_label(note("new", None).group_key) in search[0].body["jql"]
    assert "recovered" in again.detail and len(jira.issues["SEC-1"].comments) == 1
    assert not [c for c in jira.calls if c.path == "/rest/api/3/search"]  # never the removed endpoint


def test_reminder_comments_resolved_transitions_regressed_reopens(jira: FakeJira) -> None:
    [created] = send(make(jira), note("new", None))
    key = created.thread_ref
    results = send(
        make(jira),
        note("reminder", key, notification_id="n2"),
        note("resolved", key, notification_id="n3"),
        note("regressed", key, notification_id="n4"),
    )

    assert all(r.ok and r.thread_ref == key for r in results), results
    issue = jira.issues["SEC-1"]
    assert issue.transitions == ["Done", "Reopen"] and issue.status == "To Do"
    assert len(issue.comments) == 2  # the reminder, and the regression with the reopen
    assert all(adf_problems(c) == [] for c in issue.comments)
    assert "Still open" in json.dumps(issue.comments[0]) and "Regressed" in json.dumps(issue.comments[1])
    assert len(jira.calls_to("POST", "/issue")) == 1


def test_resolve_without_an_available_transition_comments_instead(jira: FakeJira) -> None:
    [created] = send(make(jira), note("new", None))
    jira.move("SEC-1", "Done")
    [result] = send(make(jira, transition_resolve="Close"), note("resolved", created.thread_ref))
    assert result.ok and "commented instead" in result.detail
    assert len(jira.issues["SEC-1"].comments) == 1


def test_server_flavor_uses_v2_wiki_text_bearer_and_search(jira: FakeJira) -> None:
    channel = make(jira, flavor="server", user=None)
    [created, comment] = send(channel, note("new", None), note("resolved", None, notification_id="n2"))

    assert created.ok and comment.ok and comment.thread_ref == created.thread_ref
    [call] = jira.calls_to("POST", "/issue")
    assert call.version == "2" and call.auth == f"Bearer {TOKEN}"
    description = call.body["fields"]["description"]
    assert isinstance(description, str) and description.startswith("Tocsin reports 1 finding")
    assert "h3. \\[HIGH\\] S3 bucket" in description and "[Open in Tocsin|https://" in description
    assert jira.calls_to("POST", "/rest/api/2/search")
    assert jira.issues["SEC-1"].transitions == ["Done"]


def test_long_descriptions_are_truncated_with_a_note(jira: FakeJira) -> None:
    long = "Rotate the key. " * 500
    findings = [sample_finding(i).model_copy(update={"remediation": long}) for i in range(10)]
    notification = sample_notification(1).model_copy(update={"findings": findings, "total": 12})
    for flavor in ("cloud", "server"):
        result = one(jira, notification.model_copy(update={"group_key": flavor}), flavor=flavor)
        assert result.ok, result
    cloud, server = (c.body["fields"]["description"] for c in jira.calls_to("POST", "/issue"))
    assert len(json.dumps(cloud, ensure_ascii=False)) <= DESCRIPTION_LIMIT and adf_problems(cloud) == []
    assert "truncated to fit Jira's limit" in json.dumps(cloud)
    assert len(server) <= DESCRIPTION_LIMIT and "truncated to fit Jira" in server


def test_jira_field_errors_are_final_and_named(jira: FakeJira) -> None:
    result = one(jira, issue_type="Epic")  # not a type of the project
    assert not result.ok and not result.retryable and result.status_code == 400
    assert "issuetype: Specify a valid issue type" in result.detail
    fake = FakeJira(token=TOKEN, user=USER, required_custom_fields=("customfield_10001",))
    with fake:
        result = one(fake)
    assert result.status_code == 400 and "customfield_10001 is required" in result.detail


def test_the_shared_rule_of_retry_classification_holds(jira: FakeJira) -> None:
    results: dict[int | str, DeliveryResult] = {201: one(jira)}
    for status in (429, 500, 502, 503, 401, 403, 404):
        jira.fail_next(status, retry_after=7 if status == 429 else None)
        results[status] = one(jira, sample_notification(1, team=f"t{status}"))
    results[401] = one(jira, sample_notification(1, team="badtoken"), token="wrong-token")
    jira.hang_next(3)
    results["timeout"] = one(jira, sample_notification(1, team="slow"), timeout_seconds=0.3)
    results["no_secret"] = one(jira, token=None)

    assert_retry_classification(results)
    assert results[429].retry_after_seconds == 7
    for result in results.values():
        assert_no_secret(result.detail, TOKEN)


def test_no_secret_in_details_even_when_jira_echoes_it(jira: FakeJira) -> None:
    jira.fail_next(400)
    result = one(jira)
    assert_no_secret(result.detail, TOKEN)
    result = one(jira, token="not-the-token")
    assert "credentials were refused" in result.detail and "not-the-token" not in result.detail


def test_private_base_url_is_refused_without_the_allow_list(jira: FakeJira) -> None:
    result = one(jira, policy=OutboundPolicy())
    assert not result.ok and not result.retryable
    assert "refused" in result.detail and "loopback" in result.detail
    assert jira.calls == []


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"base_url": "http://jira.example.com"}, "https"),
        ({"base_url": "https://jira.example.com", "priority_map": {"urgent": "P1"}}, "unknown severities"),
        ({"base_url": "https://jira.example.com", "labels": ["has space"]}, "without spaces"),
        ({"base_url": "https://jira.example.com", "custom_fields": {"team": "x"}}, "customfield_"),
        ({"base_url": "https://jira.example.com", "flavour": "cloud"}, "unknown option"),
        ({}, "base_url"),
    ],
)
def test_validation_names_the_field(options: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        validate_channel("jira", "SEC", options)


def test_target_must_be_a_project_key() -> None:
    with pytest.raises(ValueError, match="project key"):
        validate_channel("jira", "sec project", {"base_url": "https://jira.example.com"})
    validate_channel("jira", "SEC", {"base_url": "https://acme.atlassian.net", "transition_reopen": "Back"})


def test_a_group_resolved_before_it_had_a_ticket_opens_none(jira: FakeJira) -> None:
    [result] = send(make(jira), note("resolved", None))
    assert result.ok and result.thread_ref is None and "none created" in result.detail
    assert jira.issues == {} and len(jira.calls_to("POST", "/search/jql")) == 1


def test_render_previews_the_issue_without_sending() -> None:
    from integrations.channels import jira as jira_module
    from integrations.testing_channels import sample_notification

    preview = jira_module.render(sample_notification(n_findings=2))
    assert preview["summary"] and preview["description_cloud"]["type"] == "doc"
    assert isinstance(preview["description_server"], str) and preview["comment"]["type"] == "doc"


def test_a_shared_ticket_stays_open_while_another_finding_of_its_group_is_open(jira: FakeJira) -> None:
    [created] = send(make(jira), note("new", None))
    key = created.thread_ref
    partly = note("resolved", key, notification_id="n2").model_copy(update={"still_open_in_group": 1})
    [result] = send(make(jira), partly)
    assert result.ok and jira.issues["SEC-1"].transitions == []  # commented, not closed
    assert len(jira.issues["SEC-1"].comments) == 1
    [closed] = send(make(jira), note("resolved", key, notification_id="n3"))
    assert closed.ok and jira.issues["SEC-1"].transitions == ["Done"]
