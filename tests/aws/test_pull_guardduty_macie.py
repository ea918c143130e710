"""``tocsin pull aws`` for GuardDuty and Macie against the local fake of their REST APIs (boto3's real path)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import Engine

from app.aws.pull import epoch_ms
from app.db import unit_of_work
from app.repositories import cursors
from app.repositories.cursors import CursorKey
from tests.aws.conftest import ACCOUNT, REGION, clones, count_findings, guardduty_samples, macie_samples
from tests.fakes.aws_api import FakeAwsApi

Pull = Callable[..., tuple[int, str]]
DETECTOR = "12abc34d567e8fa901bc2d34e56789f0"


@pytest.fixture
def served(fake_aws: FakeAwsApi, aws_env: pytest.MonkeyPatch) -> FakeAwsApi:
    """The samples plus clones (more than one page of 50 for each service), every call to the fake."""
    aws_env.setenv("TOCSIN_AWS_ENDPOINT_URL", fake_aws.url)
    aws_env.setenv("TOCSIN_AWS_PULL_SERVICES", "guardduty,macie")
    gd = guardduty_samples()
    fake_aws.guardduty[DETECTOR] = gd + clones(gd[0], 60, "id", "updatedAt", "2024-05-01T00:00:00Z")
    macie = macie_samples()
    fake_aws.macie = macie + clones(macie[0], 50, "id", "updatedAt", "2024-05-01T00:00:00Z")
    return fake_aws


def test_pulls_guardduty_and_macie_in_pages_then_nothing_new(
    served: FakeAwsApi, db: Engine, pull: Pull
) -> None:
    status, output = pull()

    assert status == 0, output
    gd_total, macie_total = len(served.guardduty[DETECTOR]), len(served.macie)
    assert count_findings(db, source="guardduty") == gd_total
    assert count_findings(db, source="macie") == macie_total
    assert f"guardduty {ACCOUNT} {REGION} page 1: 50 findings, 50 created" in output
    assert f"guardduty {ACCOUNT} {REGION} page 2: {gd_total - 50} findings, {gd_total - 50} created" in output
    assert f"macie {ACCOUNT} {REGION} page 2: {macie_total - 50} findings" in output
    for service in ("guardduty", "macie2"):
        listed = served.calls(service, "ListFindings")
        assert len(listed) == 2 and all(call.body["maxResults"] <= 50 for call in listed)
        assert all(len(call.body["findingIds"]) <= 50 for call in served.calls(service, "GetFindings"))
    first_gd = served.calls("guardduty", "ListFindings")[0].body
    assert set(first_gd["findingCriteria"]["criterion"]["updatedAt"]) == {"lessThanOrEqual"}  # no cursor yet
    assert first_gd["sortCriteria"] == {"attributeName": "updatedAt", "orderBy": "ASC"}
    with unit_of_work(db) as session:
        gd_cursor = cursors.get(session, CursorKey("guardduty", ACCOUNT, REGION))
        macie_cursor = cursors.get(session, CursorKey("macie", ACCOUNT, REGION))
    assert gd_cursor is not None and gd_cursor.position is not None
    assert macie_cursor is not None and macie_cursor.position is not None
    served.requests.clear()

    status, output = pull()

    assert status == 0, output
    assert "created" not in output.split("pulled")[0].replace("0 created", "")
    assert count_findings(db) == gd_total + macie_total
    gd_since = served.calls("guardduty", "ListFindings")[0].body["findingCriteria"]["criterion"]["updatedAt"]
    assert gd_since["greaterThanOrEqual"] == epoch_ms(gd_cursor.position)
    macie_since = served.calls("macie2", "ListFindings")[0].body["findingCriteria"]["criterion"]["updatedAt"]
    assert macie_since["gte"] == epoch_ms(macie_cursor.position)


def test_access_denied_names_what_to_grant_and_the_others_go_on(
    served: FakeAwsApi, db: Engine, pull: Pull
) -> None:
    served.fail(
        "macie2",
        "ListFindings",
        403,
        "AccessDeniedException",
        f"User: arn:aws:iam::{ACCOUNT}:user/tocsin-test is not authorized to perform: macie2:ListFindings",
    )

    status, output = pull()

    assert status == 1
    assert (
        f"FAILED macie {ACCOUNT} {REGION}: macie2:ListFindings denied for the default credentials "
        f"(account {ACCOUNT}) in {REGION}: grant macie2:ListFindings, macie2:GetFindings" in output
    )
    assert count_findings(db, source="guardduty") == len(served.guardduty[DETECTOR])
    assert "1 failed" in output


def test_macie_not_enabled_says_so(served: FakeAwsApi, db: Engine, pull: Pull) -> None:
    served.fail(
        "macie2", "ListFindings", 403, "AccessDeniedException", "Macie is not enabled for this account."
    )

    status, output = pull("--service", "macie")

    assert status == 1
    assert f"Macie is not enabled for the default credentials (account {ACCOUNT}) in {REGION}" in output
    assert "remove macie from TOCSIN_AWS_PULL_SERVICES" in output


def test_throttled_calls_are_retried_and_reported_after_the_last_attempt(
    served: FakeAwsApi, db: Engine, pull: Pull, aws_env: pytest.MonkeyPatch
) -> None:
    served.guardduty[DETECTOR] = (
        guardduty_samples()
    )  # one page: adaptive mode slows every call after a throttle
    served.fail("guardduty", "GetFindings", 429, "TooManyRequestsException", "Rate exceeded", times=1)
    served.fail("macie2", "ListFindings", 429, "ThrottlingException", "Rate exceeded")
    aws_env.setenv("TOCSIN_AWS_MAX_RETRIES", "1")

    status, output = pull()

    assert status == 1
    assert count_findings(db, source="guardduty") == len(served.guardduty[DETECTOR])  # one retry was enough
    assert len(served.calls("guardduty", "GetFindings")) == 2
    assert (
        f"FAILED macie {ACCOUNT} {REGION}: macie2:ListFindings throttled for the default credentials "
        f"(account {ACCOUNT}) in {REGION} after 2 attempt(s)" in output
    )
    assert len(served.calls("macie2", "ListFindings")) == 2, output


def test_no_detector_is_a_note_not_a_failure(
    fake_aws: FakeAwsApi, db: Engine, pull: Pull, aws_env: pytest.MonkeyPatch
) -> None:
    aws_env.setenv("TOCSIN_AWS_ENDPOINT_URL", fake_aws.url)

    status, output = pull("--service", "guardduty")

    assert status == 0, output
    assert "no GuardDuty detector in this region" in output


def test_roles_are_assumed_per_account_and_a_refused_role_fails_alone(
    served: FakeAwsApi, db: Engine, pull: Pull, aws_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    reader = "arn:aws:iam::210987654321:role/TocsinReader"
    refused = "arn:aws:iam::111122223333:role/Elsewhere"
    served.denied_roles.add(refused)
    aws_env.setenv("TOCSIN_AWS_ROLE_ARNS", f"{refused},{reader}")

    status, output = pull("--service", "guardduty")

    assert status == 1
    assert f"sts:AssumeRole denied for role {refused}" in output
    assert "guardduty 210987654321 us-east-1 page 1: 50 findings" in output
    (assume, *_) = [call for call in served.calls("sts", "AssumeRole") if call.body["RoleArn"] == reader]
    assert assume.body["RoleSessionName"] == "tocsin-pull"
    assert {call.access_key for call in served.calls("guardduty")} == {"ASIA210987654321"}
    printed = output + caplog.text
    assert "assumed-secret" not in printed and "assumed-token" not in printed
    assert "testing-secret-never-printed" not in printed


def test_a_crash_between_pages_repeats_no_page_and_skips_none(
    served: FakeAwsApi, db: Engine, pull: Pull, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cursor is written with its page: a failure on page 2 leaves it at page 1's last finding."""
    from app.delivery import pull_aws

    real_ingest = pull_aws.ingest
    calls = {"n": 0}

    def failing_on_the_second_page(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("database went away")
        return real_ingest(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pull_aws, "ingest", failing_on_the_second_page)
    with pytest.raises(RuntimeError):
        pull("--service", "guardduty")
    assert count_findings(db) == 50
    with unit_of_work(db) as session:
        cursor = cursors.get(session, CursorKey("guardduty", ACCOUNT, REGION))
    assert cursor is not None and cursor.lease_owner is None  # released on the way out

    monkeypatch.setattr(pull_aws, "ingest", real_ingest)
    status, output = pull("--service", "guardduty")

    assert status == 0, output
    total = len(served.guardduty[DETECTOR])
    assert count_findings(db) == total
    # Asked again from the cursor (updatedAt >= it): the finding at the cursor comes back and is dropped.
    assert (
        f"page 1: {total - 49} findings, {total - 50} created, 0 updated, 0 unchanged, 1 already stored"
        in output
    )


def test_a_leased_stream_is_skipped(served: FakeAwsApi, db: Engine, pull: Pull) -> None:
    from datetime import timedelta

    from app.clock import utcnow

    now = utcnow()
    with unit_of_work(db) as session:
        cursors.claim(
            session,
            CursorKey("guardduty", ACCOUNT, REGION),
            "other-host:1:abc",
            now,
            now + timedelta(minutes=5),
        )

    status, output = pull("--service", "guardduty")

    assert status == 0, output
    assert "skipped: another pull (other-host:1:abc) holds this stream" in output
    assert served.calls("guardduty", "ListFindings") == []
