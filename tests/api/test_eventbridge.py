"""POST /v1/ingest/eventbridge: real AWS events dispatched to their parsers; the API-key header."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.main import create_app
from app.settings import Settings, load_settings
from tests.conftest import ADMIN_TOKEN
from tests.samples import AWS

EVENTS = AWS / "eventbridge"
URL = "/v1/ingest/eventbridge"
SAMPLE_EVENTS = {
    "guardduty-finding-event_Backdoor-EC2-Spambot_via-sns.json": 1,
    "awsdocs_eventbridge_macie-finding-event_truncated.json": 1,
    "asr_CIS-1.3_findings-imported.json": 1,
    "asr_afsbp-ec2.7_findings-imported.json": 1,
    "asr_CIS_1-6-multi-select_custom-action_2-findings.json": 2,
}


def event(name: str = "guardduty-finding-event_Backdoor-EC2-Spambot_via-sns.json") -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return loaded


def guardduty_event(finding_id: str = "7ebc050b71c556086b524045c9067feb", **detail: Any) -> dict[str, Any]:
    document = copy.deepcopy(event())
    document["detail"]["id"] = finding_id
    document["detail"]["arn"] = document["detail"]["arn"].rsplit("/", 1)[0] + "/" + finding_id
    document["detail"].update(detail)
    return document


def total(client: Any) -> int:
    count: int = client.get("/v1/stats", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).json()["total"]
    return count


def key_header(token_for: Any, *scopes: str, header: str = "X-Tocsin-Key") -> dict[str, str]:
    secret = token_for(*scopes)["Authorization"].removeprefix("Bearer ")
    return {header: secret}


@pytest.mark.parametrize(("name", "findings"), sorted(SAMPLE_EVENTS.items()))
def test_sample_event_is_stored_through_its_parser(client: Any, name: str, findings: int) -> None:
    resp = client.post(URL, json=event(name))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert set(body) == {"accepted", "created", "updated", "unchanged", "resolved", "failed", "results"}
    assert (body["accepted"], body["created"], body["failed"]) == (findings, findings, [])
    assert [item["index"] for item in body["results"]] == list(range(findings))
    again = client.post(URL, json=event(name)).json()
    assert (again["created"], again["unchanged"]) == (0, findings)
    assert total(client) == findings


@pytest.mark.parametrize(
    ("name", "parser"),
    [
        ("guardduty-finding-event_Backdoor-EC2-Spambot_via-sns.json", "guardduty"),
        ("awsdocs_eventbridge_macie-finding-event_truncated.json", "macie"),
        ("asr_afsbp-ec2.7_findings-imported.json", "asff"),
    ],
)
def test_event_is_dispatched_to_the_parser_of_its_source(client: Any, name: str, parser: str) -> None:
    resp = client.post(URL, json=event(name))
    assert resp.status_code == 200, resp.text
    finding_id = resp.json()["results"][0]["id"]
    detail = client.get(f"/v1/findings/{finding_id}").json()
    if parser == "asff":
        assert detail["raw"]["ProductArn"]  # the ASFF finding itself, not the envelope
    else:
        assert detail["source"] == parser
        assert detail["raw"]["id"] == event(name)["detail"]["id"]


def test_findings_imported_v2_is_read_as_ocsf(client: Any) -> None:
    # No captured "Findings Imported V2" event exists in the samples: wrap real OCSF findings in one.
    findings = json.loads((AWS / "securityhub" / "ocsf" / "prowler_example_output_aws.ocsf.json").read_text())
    for index, item in enumerate(findings):  # the sample's uids are all the placeholder "<finding_uid>"
        item["finding_info"]["uid"] = f"prowler-aws-check-{index}"
    document = {
        "version": "0",
        "source": "aws.securityhub",
        "detail-type": "Findings Imported V2",
        "account": "123456789012",
        "region": "eu-west-1",
        "detail": {"findings": findings},
    }
    resp = client.post(URL, json=document)
    assert resp.status_code == 200, resp.text
    assert resp.json()["created"] == len(findings) == 5


def test_a_list_of_events_is_stored_together(client: Any) -> None:
    events = [guardduty_event("a" * 32), event("asr_CIS_1-6-multi-select_custom-action_2-findings.json")]
    body = client.post(URL, json=events).json()
    assert (body["accepted"], body["created"], body["failed"]) == (3, 3, [])
    assert [item["index"] for item in body["results"]] == [0, 1, 2]


def test_failing_events_in_a_list_are_listed_by_index_and_the_others_stored(client: Any) -> None:
    unknown = {"source": "aws.inspector2", "detail-type": "Inspector2 Finding", "detail": {}}
    events = [guardduty_event("a" * 32), guardduty_event("b" * 32, severity="very bad"), unknown, "nope"]
    resp = client.post(URL, json=events)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["accepted"], body["created"]) == (1, 1)
    failed = {item["index"]: item["errors"] for item in body["failed"]}
    assert sorted(failed) == [1, 2, 3]
    assert failed[1][0]["field"] == "detail.severity"
    assert "detail.severity" in failed[1][0]["message"] and "$" not in failed[1][0]["message"]
    assert failed[2][0]["field"] == "detail-type"
    assert "aws.guardduty / GuardDuty Finding" in failed[2][0]["message"]
    assert "must be a JSON object" in failed[3][0]["message"]
    assert total(client) == 1


def test_missing_required_field_names_it_from_the_event(client: Any) -> None:
    document = guardduty_event()
    del document["detail"]["severity"]
    resp = client.post(URL, json=document)
    assert resp.status_code == 422
    assert resp.json()["errors"] == [{"field": "detail.severity", "message": resp.json()["detail"]}]
    assert total(client) == 0


def test_unknown_source_and_detail_type_is_422_listing_the_supported_pairs(client: Any) -> None:
    resp = client.post(URL, json={"source": "aws.health", "detail-type": "AWS Health Event", "detail": {}})
    assert resp.status_code == 422
    detail = resp.json()["detail"]
    for pair in (
        "aws.guardduty / GuardDuty Finding",
        "aws.macie / Macie Finding",
        "aws.securityhub / Security Hub Findings - Imported",
        "aws.securityhub / Security Hub Findings - Custom Action",
        "aws.securityhub / Findings Imported V2",
    ):
        assert pair in detail
    assert resp.json()["errors"][0]["field"] == "detail-type"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"", "body"),
        (b"{not json", "body"),
        (b"[]", "body"),
        (b"42", "body"),
        (b'{"source": "aws.guardduty", "detail-type": "GuardDuty Finding"}', "detail"),
        (
            b'{"source": "aws.securityhub", "detail-type": "Findings Imported V2", "detail": {}}',
            "detail.findings",
        ),
        (
            b'{"source": "aws.securityhub", "detail-type": "Security Hub Findings - Imported", '
            b'"detail": {"findings": {}}}',
            "detail.findings",
        ),
    ],
)
def test_malformed_bodies_are_422_naming_the_field(client: Any, body: bytes, field: str) -> None:
    resp = client.post(URL, content=body, headers={"content-type": "application/json"})
    assert resp.status_code == 422, resp.text
    assert resp.json()["errors"][0]["field"] == field


# --- authentication: the bearer token, or the same token in the API-key header ---------------------


def test_api_key_header_with_an_ingest_token_stores(anon: Any, token_for: Any) -> None:
    resp = anon.post(URL, json=guardduty_event(), headers=key_header(token_for, "ingest"))
    assert resp.status_code == 200, resp.text
    assert resp.json()["created"] == 1


def test_bearer_token_works_too(anon: Any, token_for: Any) -> None:
    resp = anon.post(URL, json=guardduty_event(), headers=token_for("ingest"))
    assert resp.status_code == 200, resp.text
    assert resp.json()["created"] == 1


def test_wrong_api_key_is_401_and_stores_nothing(anon: Any) -> None:
    resp = anon.post(URL, json=guardduty_event(), headers={"X-Tocsin-Key": "tcn_never-issued"})
    assert resp.status_code == 401
    assert resp.json()["detail"] == "unknown token"
    assert total(anon) == 0


def test_missing_credentials_name_both_ways(anon: Any) -> None:
    resp = anon.post(URL, json=guardduty_event())
    assert resp.status_code == 401
    assert "Authorization: Bearer" in resp.json()["detail"] and "X-Tocsin-Key" in resp.json()["detail"]


def test_revoked_api_key_is_401_and_stores_nothing(client: Any, anon: Any) -> None:
    secret = client.post("/v1/tokens", json={"name": "eventbridge", "scopes": ["ingest"]}).json()["token"]
    headers = {"X-Tocsin-Key": secret}
    assert anon.post(URL, json=guardduty_event("a" * 32), headers=headers).status_code == 200
    assert client.delete("/v1/tokens/eventbridge").status_code == 200
    resp = anon.post(URL, json=guardduty_event("b" * 32), headers=headers)
    assert resp.status_code == 401 and "revoked" in resp.json()["detail"]
    assert total(anon) == 1


def test_read_only_token_as_api_key_is_403(anon: Any, token_for: Any) -> None:
    resp = anon.post(URL, json=guardduty_event(), headers=key_header(token_for, "read"))
    assert resp.status_code == 403
    assert "lacks the 'ingest' scope" in resp.json()["detail"]
    assert total(anon) == 0


def test_api_key_header_is_not_accepted_elsewhere(anon: Any, token_for: Any) -> None:
    headers = key_header(token_for, "admin")
    assert anon.get("/v1/stats", headers=headers).status_code == 401
    assert anon.post("/v1/ingest/native", json={"findings": []}, headers=headers).status_code == 401


@pytest.fixture
def custom_header_client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    custom = load_settings(
        database_url=settings.database_url,
        bootstrap_token=ADMIN_TOKEN,
        log_json=False,
        eventbridge_api_key_header="X-Custom-Connection-Key",
    )
    with TestClient(create_app(custom, engine)) as test_client:
        yield test_client


def test_api_key_header_name_is_configurable(custom_header_client: Any, token_for: Any) -> None:
    event_body = guardduty_event()
    default = key_header(token_for, "ingest")
    assert custom_header_client.post(URL, json=event_body, headers=default).status_code == 401
    custom = key_header(token_for, "ingest", header="x-custom-connection-key")
    assert custom_header_client.post(URL, json=event_body, headers=custom).status_code == 200


def test_empty_header_name_disables_the_api_key(settings: Settings, engine: Engine, token_for: Any) -> None:
    disabled = load_settings(
        database_url=settings.database_url, log_json=False, eventbridge_api_key_header=""
    )
    assert disabled.eventbridge_api_key_header is None
    with TestClient(create_app(disabled, engine)) as anon:
        resp = anon.post(URL, json=guardduty_event(), headers=key_header(token_for, "ingest"))
        assert resp.status_code == 401
        assert "X-Tocsin-Key" not in resp.json()["detail"]


def test_the_api_key_never_reaches_the_logs(
    anon: Any, token_for: Any, caplog: pytest.LogCaptureFixture
) -> None:
    headers = key_header(token_for, "ingest")
    caplog.set_level("DEBUG")
    anon.post(URL, json=guardduty_event(), headers=headers)
    anon.post(URL, json=guardduty_event(), headers={"X-Tocsin-Key": headers["X-Tocsin-Key"] + "x"})
    assert headers["X-Tocsin-Key"] not in caplog.text


# --- the raw-document endpoints of the same sources -------------------------------------------------


@pytest.mark.parametrize(
    ("path", "sample"),
    [
        (
            "/v1/ingest/guardduty",
            "guardduty/aws-samples_gd-automated-response_s3_PenTest-S3-ParrotLinux.json",
        ),
        ("/v1/ingest/macie", "macie/aws-samples_macie-reveal_csv.json"),
        ("/v1/ingest/securityhub", "securityhub/awsdocs_sample-control-finding_fsbp.json"),
        ("/v1/ingest/asff", "securityhub/awsdocs_sample-control-finding_fsbp.json"),
    ],
)
def test_raw_documents_of_the_aws_sources(client: Any, path: str, sample: str) -> None:
    resp = client.post(
        path, content=(AWS / sample).read_bytes(), headers={"content-type": "application/json"}
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["created"] == 1
