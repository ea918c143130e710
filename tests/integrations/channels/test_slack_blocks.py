"""What a Slack user sees: the rendered header, finding sections and context, within Block Kit's limits."""

from __future__ import annotations

import json
from typing import Any

from app.contracts import Severity
from integrations.channels.slack_blocks import (
    MAX_ACTION_FINDINGS,
    MAX_BLOCKS,
    MAX_HEADER_TEXT,
    MAX_SECTION_TEXT,
    escape,
    render,
    with_status_line,
)
from integrations.testing_channels import sample_finding, sample_notification


def texts(blocks: list[dict[str, Any]], kind: str) -> list[str]:
    out = []
    for block in blocks:
        if block["type"] != kind:
            continue
        if "text" in block:
            out.append(block["text"]["text"])
        out.extend(e["text"] for e in block.get("elements", []))
    return out


def utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def assert_within_limits(blocks: list[dict[str, Any]]) -> None:
    assert len(blocks) <= MAX_BLOCKS
    assert all(utf16(t) <= MAX_HEADER_TEXT for t in texts(blocks, "header"))
    assert all(utf16(t) <= MAX_SECTION_TEXT for t in texts(blocks, "section"))


def test_a_group_reads_as_one_message_with_a_section_per_finding() -> None:
    text, blocks = render(sample_notification(3))

    kinds = ["header", "section", "actions", "section", "actions", "section", "actions", "context"]
    assert [b["type"] for b in blocks] == kinds
    assert blocks[0]["text"]["text"] == ":red_circle: 3 new HIGH findings — payments"
    assert text.startswith(":red_circle: 3 new HIGH findings — payments")
    cloud, code = texts(blocks, "section")[:2]
    assert (
        "<https://tocsin.example.com/v1/findings/fnd_000000|S3 bucket allows public read access #0>" in cloud
    )
    assert "*HIGH*" in cloud and "New" in cloud and "risk score *92*/100" in cloud
    assert "resource is public (+15); production account (+10); holds customer data (+10)" in cloud
    assert "AwsS3Bucket arn:aws:s3:::acme-payments-exports-0" in cloud
    assert "123456789012 · eu-west-1" in cloud
    assert "github.com/acme/shop src/shop/settings.py:41" in code
    context = texts(blocks, "context")[0]
    assert "team payments" in context and "type=S3/PublicRead" in context


def test_a_single_finding_is_named_in_the_header() -> None:
    _, blocks = render(sample_notification(1, severity=Severity.critical))

    assert (
        blocks[0]["text"]["text"] == ":rotating_light: New CRITICAL: S3 bucket allows public read access #0"
    )


def test_mixed_severities_and_events_are_summarised_by_the_worst() -> None:
    notification = sample_notification(2).model_copy(
        update={
            "findings": [
                sample_finding(0, severity=Severity.critical, event="regressed"),
                sample_finding(1, severity=Severity.low, event="new"),
            ]
        }
    )

    _, blocks = render(notification)

    assert blocks[0]["text"]["text"] == ":rotating_light: 2 findings, up to CRITICAL — payments"
    sections = texts(blocks, "section")
    assert "Regressed (back after being resolved)" in sections[0]
    assert "*LOW*" in sections[1]


def test_each_event_is_said_in_words() -> None:
    for event, words in [
        ("new", "New"),
        ("escalated", "Escalated"),
        ("reminder", "Still open (reminder)"),
        ("resolved", "Resolved"),
    ]:
        _, blocks = render(sample_notification(2, event=event))  # type: ignore[arg-type]
        assert words in texts(blocks, "section")[0], event
    _, resolved = render(sample_notification(2, event="resolved"))
    assert resolved[0]["text"]["text"].startswith(":white_check_mark: 2 resolved HIGH findings")


def test_sixty_findings_fit_in_fifty_blocks_and_say_how_many_more() -> None:
    text, blocks = render(sample_notification(60))

    assert len(blocks) == MAX_BLOCKS
    assert blocks[-2]["text"]["text"] == "…and 18 more findings in this group"
    assert len(texts(blocks, "section")) == 43  # 42 findings + the "more" line
    assert sum(b["type"] == "actions" for b in blocks) == MAX_ACTION_FINDINGS
    assert "42 of 60 shown" in texts(blocks, "context")[0]
    assert "…and 55 more" in text  # the fallback lists five


def test_a_group_larger_than_what_was_handed_over_says_so() -> None:
    _, blocks = render(sample_notification(3, total=12))

    assert blocks[0]["text"]["text"].startswith(":red_circle: 12 new HIGH findings")
    assert blocks[-2]["text"]["text"] == "…and 9 more findings in this group"
    assert len(texts(blocks, "section")) == 4


def test_forty_three_findings_fit_exactly_without_a_more_line() -> None:
    _, blocks = render(sample_notification(43))

    assert len(blocks) == MAX_BLOCKS
    assert not any("more finding" in t for t in texts(blocks, "section"))


def test_a_huge_title_is_cut_with_an_ellipsis() -> None:
    text, blocks = render(sample_notification(1, title="A" * 10_000))

    assert_within_limits(blocks)
    header = blocks[0]["text"]["text"]
    assert header.endswith("…") and utf16(header) <= MAX_HEADER_TEXT
    section = texts(blocks, "section")[0]
    assert "A" * 200 in section and "A" * 400 not in section and "…" in section
    assert len(text) < 4000


def test_emoji_heavy_text_stays_within_limits_counted_as_slack_counts() -> None:
    _, blocks = render(sample_notification(3, title="🚨" * 5000))

    assert_within_limits(blocks)


def test_long_fields_everywhere_stay_under_the_section_limit() -> None:
    long = "&" * 600  # escapes to five times its length
    finding = sample_finding(1).model_copy(
        update={
            "title": long,
            "resource_type": long,
            "resource_id": long,
            "account_id": long,
            "region": long,
            "repository": long,
            "path": long,
            "type": long,
            "source": long,
            "remediation": long,
            "score_reasons": [long] * 5,
            "url": "https://tocsin.example.com/" + "a" * 390,
        }
    )
    notification = sample_notification(1).model_copy(update={"findings": [finding]})

    _, blocks = render(notification)

    assert_within_limits(blocks)
    for section in texts(blocks, "section"):
        assert "&am…" not in section and not section.rstrip("…").endswith("&")  # no entity cut in half


def test_finding_text_cannot_mention_or_link() -> None:
    hostile = "<!channel> <@U123> & <https://evil.example|reset your password>"
    notification = sample_notification(2, title=hostile).model_copy(
        update={"team": "<!here>", "group_labels": {"team": "<!everyone>"}}
    )

    text, blocks = render(notification)

    rendered = text + json.dumps(texts(blocks, "section") + texts(blocks, "context"))
    assert "<!channel>" not in rendered and "<@U123>" not in rendered and "<!here>" not in rendered
    assert "<https://evil.example" not in rendered
    assert "&lt;!channel&gt; &lt;@U123&gt; &amp; &lt;https://evil.example|reset your password&gt;" in rendered


def test_a_link_cannot_be_broken_out_of() -> None:
    finding = sample_finding(0).model_copy(update={"url": "https://tocsin.example.com/x|<!channel>"})
    notification = sample_notification(1).model_copy(update={"findings": [finding]})

    _, blocks = render(notification)

    section = texts(blocks, "section")[0]
    assert "<!channel>" not in section
    assert section.startswith("*<https://tocsin.example.com/x%7C%3C!channel%3E|")


def test_non_http_urls_are_not_linked() -> None:
    finding = sample_finding(0).model_copy(update={"url": "javascript:alert(1)"})
    notification = sample_notification(1).model_copy(update={"findings": [finding]})

    _, blocks = render(notification)

    assert "javascript" not in texts(blocks, "section")[0]


def test_a_digest_says_it_collects_what_quiet_hours_held_back() -> None:
    text, blocks = render(sample_notification(3, digest=True))

    assert "Quiet-hours digest" in blocks[0]["text"]["text"]
    assert "quiet hours held back" in texts(blocks, "context")[0]
    assert "quiet hours" in text


def test_escape_only_touches_slack_control_characters() -> None:
    assert escape("a & b < c > d * _ ~ `") == "a &amp; b &lt; c &gt; d * _ ~ `"


def test_the_first_findings_get_triage_buttons_carrying_their_id() -> None:
    _, blocks = render(sample_notification(7))

    actions = [b for b in blocks if b["type"] == "actions"]
    assert len(actions) == MAX_ACTION_FINDINGS
    first = actions[0]
    assert first["block_id"] == "tocsin:actions:fnd_000000"
    assert [e["action_id"] for e in first["elements"]] == [
        "tocsin:acknowledge",
        "tocsin:snooze",
        "tocsin:resolve",
        "tocsin:false_positive",
        "tocsin:open_ticket",
    ]
    assert {e["value"] for e in first["elements"]} == {"fnd_000000"}
    assert [e["text"]["text"] for e in first["elements"]][1] == "Snooze 7 days"


def test_resolved_findings_and_webhook_messages_have_no_buttons() -> None:
    _, resolved = render(sample_notification(2, event="resolved"))
    _, plain = render(sample_notification(2), actions=False)

    assert not [b for b in resolved + plain if b["type"] == "actions"]


def test_a_status_line_goes_under_the_findings_buttons_and_replaces_the_last_one() -> None:
    _, blocks = render(sample_notification(2))

    once = with_status_line(blocks, "fnd_000001", "Acknowledged by <@U1>")
    twice = with_status_line(once, "fnd_000001", "Resolved by <@U2>")

    assert [b["type"] for b in twice][3:6] == ["section", "actions", "context"]
    assert texts(twice, "context")[0] == "Resolved by <@U2>"
    assert len(twice) == len(blocks) + 1
    assert blocks == render(sample_notification(2))[1]  # the input is not changed
