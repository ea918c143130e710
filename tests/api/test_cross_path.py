"""One finding whatever the path: GuardDuty direct (EventBridge) and relayed by Security Hub (ASFF)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integrations.test_asff import _as_asff
from tests.samples import AWS

EVENT = AWS / "eventbridge" / "guardduty-finding-event_Backdoor-EC2-Spambot_via-sns.json"


def direct_event() -> dict[str, Any]:
    event: dict[str, Any] = json.loads(EVENT.read_text())
    return event


def hub_event(detail: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": "Security Hub Findings - Imported",
        "source": "aws.securityhub",
        "account": detail["accountId"],
        "time": detail["updatedAt"],
        "region": detail["region"],
        "resources": [detail["arn"]],
        "detail": {"findings": [_as_asff(detail)]},
    }


def post_event(client: Any, event: dict[str, Any]) -> dict[str, Any]:
    resp = client.post("/v1/ingest/eventbridge", json=event)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


@pytest.mark.parametrize("hub_first", [False, True], ids=["direct-then-hub", "hub-then-direct"])
def test_guardduty_direct_and_through_security_hub_is_one_finding(client: Any, hub_first: bool) -> None:
    event = direct_event()
    detail = event["detail"]
    first, second = (hub_event(detail), event) if hub_first else (event, hub_event(detail))
    created = post_event(client, first)
    again = post_event(client, second)
    assert created["created"] == 1 and again["created"] == 0
    finding_id = created["results"][0]["id"]
    assert again["results"][0]["id"] == finding_id
    assert client.get("/v1/stats").json()["total"] == 1
    found = client.get(f"/v1/findings/{finding_id}").json()
    assert found["source"] == "guardduty"
    assert found["aliases"][0] == f"guardduty:{detail['accountId']}:{detail['region']}:{detail['id']}"
    assert detail["arn"] in found["aliases"]
    assert any(alias.startswith("asff:arn:aws:securityhub:") for alias in found["aliases"])
    # GuardDuty's own count, once: the relay does not add to it.
    assert found["occurrences"] == detail["service"]["count"]


MACIE = AWS / "macie" / "aws-samples_macie-reveal_json.json"


def macie_hub_finding(direct: dict[str, Any]) -> dict[str, Any]:
    """Security Hub's copy of the same Macie finding: its Id is the macie2 finding ARN."""
    from tests.integrations.test_asff import macie_asff

    region, account = direct["region"], direct["accountId"]
    copy = macie_asff(f"arn:aws:macie2:{region}:{account}:finding/{direct['id']}")
    copy.update({"AwsAccountId": account, "Region": region})
    copy["ProductArn"] = f"arn:aws:securityhub:{region}::product/aws/macie"
    return {"Findings": [copy]}


def test_macie_direct_and_through_security_hub_is_one_finding(client: Any) -> None:
    direct = json.loads(MACIE.read_text())
    first = client.post("/v1/ingest/macie", json=direct).json()
    second = client.post("/v1/ingest/securityhub", json=macie_hub_finding(direct)).json()
    assert (first["created"], second["created"]) == (1, 0)
    assert second["results"][0]["id"] == first["results"][0]["id"]
    found = client.get(f"/v1/findings/{first['results'][0]['id']}").json()
    assert found["source"] == "macie"
    assert any(alias.startswith("asff:") for alias in found["aliases"])
    assert found["occurrences"] == direct["count"]
