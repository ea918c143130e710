"""The pull's parts: the cursor repository on both databases, settings, pacing, messages, the schedule."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, NoCredentialsError
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.aws import pull as aws
from app.db import unit_of_work
from app.main import create_app
from app.repositories import cursors
from app.repositories.cursors import CursorKey
from app.settings import SettingsError, load_settings
from tests.aws.conftest import ACCOUNT, REGION, count_findings, guardduty_samples
from tests.fakes.aws_api import FakeAwsApi
from tests.test_cli import clean_env, run_tocsin

KEY = CursorKey("guardduty", ACCOUNT, REGION)
T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)


def test_cursor_upsert_never_moves_back(db: Engine) -> None:
    with unit_of_work(db) as session:
        assert cursors.get(session, KEY) is None
        cursors.set(session, KEY, T0, ["a"], T0)
    with unit_of_work(db) as session:
        cursors.set(session, KEY, T0 + timedelta(seconds=1), ["b", "c"], T0)
        cursors.set(session, KEY, T0 - timedelta(days=1), ["old"], T0)  # a late writer: ignored
    with unit_of_work(db) as session:
        state = cursors.get(session, KEY)
    assert state is not None
    assert (state.position, state.boundary_ids) == (T0 + timedelta(seconds=1), ["b", "c"])


def test_one_lease_at_a_time_and_an_expired_one_is_free(db: Engine) -> None:
    with unit_of_work(db) as session:
        assert cursors.claim(session, KEY, "me", T0, T0 + timedelta(minutes=15)).lease_owner == "me"
        assert cursors.claim(session, KEY, "other", T0, T0 + timedelta(minutes=15)).lease_owner == "me"
        cursors.set(session, KEY, T0, ["a"], T0)  # advancing keeps the lease
    with unit_of_work(db) as session:
        later = T0 + timedelta(minutes=16)
        assert (
            cursors.claim(session, KEY, "other", later, later + timedelta(minutes=15)).lease_owner == "other"
        )
        cursors.release(session, KEY, "me")  # not ours any more: nothing happens
        assert cursors.get(session, KEY).lease_owner == "other"  # type: ignore[union-attr]
        cursors.release(session, KEY, "other")
        state = cursors.get(session, KEY)
    assert state is not None and state.lease_owner is None and state.position == T0


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("TOCSIN_AWS_REGIONS", "eu-west-1,Europe", "'Europe' is not an AWS region"),
        ("TOCSIN_AWS_ROLE_ARNS", "arn:aws:iam::123:role/x", "is not an IAM role ARN"),
        (
            "TOCSIN_AWS_PULL_SERVICES",
            "securityhub,inspector",
            "must name some of securityhub, guardduty, macie",
        ),
        ("TOCSIN_AWS_PULL_INTERVAL", "1", "greater than or equal to 10"),
        ("TOCSIN_AWS_ENDPOINT_URL", "localhost:4566", "should match pattern"),
    ],
)
def test_invalid_aws_settings_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, words: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert f"{variable}:" in str(caught.value) and words in str(caught.value)


def test_aws_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOCSIN_AWS_REGIONS", " eu-west-1, us-gov-west-1 ,eu-west-1")
    monkeypatch.setenv("TOCSIN_AWS_ROLE_ARNS", "arn:aws:iam::123456789012:role/path/Reader")
    monkeypatch.setenv("TOCSIN_AWS_PULL_SERVICES", "GuardDuty")
    settings = load_settings()
    assert settings.aws_regions == ["eu-west-1", "us-gov-west-1"]
    assert settings.aws_role_arns == ["arn:aws:iam::123456789012:role/path/Reader"]
    assert settings.aws_pull_services == ["guardduty"]
    assert settings.aws_pull_interval is None  # no schedule unless asked
    assert aws.client_config(settings).retries == {"mode": "adaptive", "max_attempts": 10}


def test_pacer_spaces_calls() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(round(seconds, 3))
        now[0] += seconds

    pacer = aws.Pacer(3.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(4):
        pacer.wait()
    now[0] += 5  # idle: no debt carried over
    pacer.wait()
    assert slept == [0.333, 0.333, 0.333]


def test_timestamps_back_to_json_and_compared_to_the_microsecond() -> None:
    document = aws.jsonable(
        {"findings": [{"updatedAt": datetime(2021, 9, 14, 19, 46, 12, 814000, tzinfo=UTC)}]}
    )
    assert document == {"findings": [{"updatedAt": "2021-09-14T19:46:12.814Z"}]}
    nano = {"UpdatedAt": "2024-05-01T12:00:00.123456789Z"}
    assert aws.updated_at(aws.SECURITYHUB, nano) == T0
    assert aws.updated_at(aws.SECURITYHUB, {"UpdatedAt": "yesterday"}) is None


def test_error_messages_name_the_permission_and_never_a_secret() -> None:
    account = aws.Account("210987654321", "arn:aws:iam::210987654321:role/Reader", None)  # type: ignore[arg-type]
    denied = ClientError(
        {"Error": {"Code": "AccessDeniedException", "Message": "not authorized"}}, "GetFindings"
    )
    assert aws.describe_error(denied, aws.SECURITYHUB, account, "eu-west-1") == (
        "securityhub:GetFindings denied for role arn:aws:iam::210987654321:role/Reader in eu-west-1: "
        "grant securityhub:GetFindings (AccessDeniedException: not authorized)"
    )
    hub_off = ClientError(
        {
            "Error": {
                "Code": "InvalidAccessException",
                "Message": "Account 210987654321 is not subscribed to AWS Security Hub",
            }
        },
        "GetFindings",
    )
    assert "Security Hub is not enabled for role" in aws.describe_error(
        hub_off, aws.SECURITYHUB, account, "eu-west-1"
    )
    assert aws.describe_error(NoCredentialsError(), aws.MACIE, account, "eu-west-1").startswith(
        "no AWS credentials"
    )


def test_the_schedule_runs_in_the_service_and_stops_with_it(
    fake_aws: FakeAwsApi, db: Engine, aws_env: pytest.MonkeyPatch, database_url: str
) -> None:
    fake_aws.guardduty["d1"] = guardduty_samples()
    aws_env.setenv("TOCSIN_AWS_ENDPOINT_URL", fake_aws.url)
    aws_env.setenv("TOCSIN_AWS_PULL_SERVICES", "guardduty")
    aws_env.setenv("TOCSIN_AWS_PULL_INTERVAL", "3600")
    settings = load_settings(database_url=database_url)
    with TestClient(create_app(settings, db)):
        deadline = time.monotonic() + 10
        while count_findings(db) < len(guardduty_samples()) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert count_findings(db) == len(guardduty_samples())
    assert len(fake_aws.calls("guardduty", "ListFindings")) == 1  # once at start, then every interval


def test_no_schedule_without_an_interval(
    fake_aws: FakeAwsApi, db: Engine, aws_env: pytest.MonkeyPatch, database_url: str
) -> None:
    aws_env.setenv("TOCSIN_AWS_ENDPOINT_URL", fake_aws.url)
    with TestClient(create_app(load_settings(database_url=database_url), db)) as client:
        assert client.get("/healthz").status_code == 200
    assert fake_aws.requests == []


def test_the_command_exits_non_zero_when_a_stream_fails(
    fake_aws: FakeAwsApi, aws_env: pytest.MonkeyPatch, db: Engine, database_url: str, tmp_path: Path
) -> None:
    """As a process: the exit status, one line per failed stream on stderr, nothing secret."""
    fake_aws.fail(
        "guardduty",
        "ListDetectors",
        403,
        "AccessDeniedException",
        "not authorized to perform guardduty:ListDetectors",
    )
    env = clean_env(
        TOCSIN_DATABASE_URL=database_url,
        TOCSIN_AWS_ENDPOINT_URL=fake_aws.url,
        TOCSIN_AWS_REGIONS="eu-west-1",
        TOCSIN_AWS_PULL_SERVICES="guardduty",
    )
    env.update({key: os.environ[key] for key in os.environ if key.startswith("AWS_")})
    result = run_tocsin("pull", "aws", env=env, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert (
        f"FAILED guardduty {ACCOUNT} eu-west-1: guardduty:ListDetectors denied for the default credentials "
        f"(account {ACCOUNT}) in eu-west-1: grant guardduty:ListDetectors, guardduty:ListFindings, "
        "guardduty:GetFindings" in result.stderr
    )
    assert "testing-secret-never-printed" not in result.stderr + result.stdout
