"""``tocsin pull aws`` against moto's Security Hub: samples stored, the cursor, pages, one finding per key."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
from sqlalchemy import Engine, select

from app.aws.pull import SECURITYHUB, updated_at
from app.db import unit_of_work
from app.models import Finding
from app.repositories import cursors
from app.repositories.cursors import CursorKey
from tests.aws.conftest import (
    ACCOUNT,
    REGION,
    clones,
    count_findings,
    guardduty_samples,
    import_to_securityhub,
    load,
    securityhub_samples,
)
from tests.fakes.aws_api import FakeAwsApi
from tests.samples import SCANNERS

Pull = Callable[..., tuple[int, str]]


def test_pulls_the_samples_then_nothing_new_from_the_cursor(
    moto: str, db: Engine, pull: Pull, aws_env: pytest.MonkeyPatch
) -> None:
    aws_env.setenv("TOCSIN_AWS_ENDPOINT_URL", moto)
    samples = securityhub_samples()
    import_to_securityhub(moto, samples)

    status, output = pull("--service", "securityhub")

    assert status == 0, output
    assert f"securityhub {ACCOUNT} {REGION} page 1: {len(samples)} findings, {len(samples)} created" in output
    assert count_findings(db) == len(samples)
    with db.connect() as conn:
        stored = set(conn.execute(select(Finding.source_id)).scalars())  # type: ignore[call-overload]
    assert stored == {sample["Id"] for sample in samples}
    with unit_of_work(db) as session:
        cursor = cursors.get(session, CursorKey("securityhub", ACCOUNT, REGION))
    newest = max(updated_at(SECURITYHUB, sample) for sample in samples)  # type: ignore[type-var]
    assert cursor is not None and cursor.position == newest and cursor.lease_owner is None

    status, output = pull("--service", "securityhub")

    assert status == 0, output
    assert "0 created, 0 updated, 0 unchanged" in output and f"{len(samples)} already stored" in output
    assert count_findings(db) == len(samples)


def test_a_finding_updated_after_the_pull_comes_again_alone(
    moto: str, db: Engine, pull: Pull, aws_env: pytest.MonkeyPatch
) -> None:
    aws_env.setenv("TOCSIN_AWS_ENDPOINT_URL", moto)
    samples = securityhub_samples()
    import_to_securityhub(moto, samples)
    assert pull("--service", "securityhub")[0] == 0

    archived = copy.deepcopy(samples[0])
    archived["RecordState"] = "ARCHIVED"
    archived["UpdatedAt"] = "2030-01-01T00:00:00.000Z"
    import_to_securityhub(moto, [archived])
    status, output = pull("--service", "securityhub")

    assert status == 0, output
    assert "0 created, 1 updated" in output
    with db.connect() as conn:
        statuses = (
            conn.execute(select(Finding.status).where(Finding.source_id == archived["Id"])).scalars().all()
        )  # type: ignore[call-overload]
    assert statuses == ["resolved"]


def test_pages_of_a_hundred_with_next_token(
    moto: str, db: Engine, pull: Pull, aws_env: pytest.MonkeyPatch
) -> None:
    aws_env.setenv("TOCSIN_AWS_ENDPOINT_URL", moto)
    many = clones(securityhub_samples()[0], 150, "Id", "UpdatedAt", "2024-05-01T00:00:00Z")
    import_to_securityhub(moto, many)

    status, output = pull("--service", "securityhub")

    assert status == 0, output
    assert "page 1: 100 findings, 100 created" in output
    assert "page 2: 50 findings, 50 created" in output
    assert count_findings(db) == 150


def test_guardduty_direct_and_through_security_hub_is_one_finding(
    moto: str, fake_aws: FakeAwsApi, db: Engine, pull: Pull, aws_env: pytest.MonkeyPatch
) -> None:
    """botocore's per-service endpoints: Security Hub (and STS) to moto, GuardDuty to the fake."""
    aws_env.setenv("AWS_ENDPOINT_URL_SECURITYHUB", moto)
    aws_env.setenv("AWS_ENDPOINT_URL_STS", moto)
    aws_env.setenv("AWS_ENDPOINT_URL_GUARDDUTY", fake_aws.url)
    (relayed,) = load(
        SCANNERS / "asff" / "guardduty" / "Unusual Behaviors-User-Persistence IAMUser-NetworkPermissions.json"
    )
    arn = relayed["Id"]
    direct = {
        "accountId": "123456789012",
        "region": "eu-west-1",
        "partition": "aws",
        "id": arn.rsplit("/", 1)[-1],
        "arn": arn,
        "type": "Persistence:IAMUser/NetworkPermissions",
        "severity": 5,
        "createdAt": "2020-11-11T11:47:26.511Z",
        "updatedAt": "2020-11-28T23:11:30.811Z",
        "title": "Unusual network permission reconnaissance activity by GeneratedFindingUserName.",
        "resource": {"resourceType": "Instance", "instanceDetails": {"instanceId": "i-99999999"}},
        "service": {
            "count": 2,
            "archived": False,
            "serviceName": "guardduty",
            "detectorId": "cab6a714deb3b739eaddacbdfd5ef2f2",
        },
    }
    fake_aws.guardduty["cab6a714deb3b739eaddacbdfd5ef2f2"] = [direct, *guardduty_samples()]
    import_to_securityhub(moto, [relayed])

    status, output = pull("--service", "guardduty", "--service", "securityhub")

    assert status == 0, output
    key = f"123456789012:eu-west-1:{direct['id']}"
    assert count_findings(db, source="guardduty", source_id=key) == 1
    assert count_findings(db) == 1 + len(guardduty_samples())
    assert "securityhub 123456789012 us-east-1 page 1: 1 findings, 0 created" in output
