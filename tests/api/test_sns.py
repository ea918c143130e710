"""POST /v1/ingest/sns: signed SNS messages against a local HTTPS fake of the SNS certificate host.

Each test signs its own messages with a key generated here; the fake serves the certificate over TLS
from a CA the service trusts through TOCSIN_SNS_CA_BUNDLE. TLS verification is never switched off, and the
host rule is the real check pointed at 127.0.0.1 (TOCSIN_SNS_CERT_HOST_PATTERN).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.main import create_app
from app.settings import Settings, SettingsError, load_settings
from tests.conftest import ADMIN_TOKEN
from tests.fakes.sns import FakeSnsHost, Signer, TestAuthority
from tests.samples import AWS

URL = "/v1/ingest/sns"
TOPIC = "arn:aws:sns:eu-west-1:123456789012:security-findings"
GLOB_TOPICS = "arn:aws:sns:*:123456789012:findings-*"
OTHER_TOPIC = "arn:aws:sns:eu-west-1:999999999999:security-findings"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
EVENT = json.loads(
    (AWS / "eventbridge" / "guardduty-finding-event_Backdoor-EC2-Spambot_via-sns.json").read_text()
)


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> TestAuthority:
    return TestAuthority(Path(tmp_path_factory.mktemp("sns-tls")))


@pytest.fixture(scope="module")
def fake_host(authority: TestAuthority) -> Iterator[FakeSnsHost]:
    host = FakeSnsHost(authority)
    yield host
    host.close()


@pytest.fixture
def sns_host(fake_host: FakeSnsHost) -> FakeSnsHost:
    fake_host.requests.clear()
    fake_host.confirm_status = 200
    return fake_host


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer()


@pytest.fixture
def cert_url(sns_host: FakeSnsHost, signer: Signer) -> str:
    """The signer's certificate at a path of its own (each test starts with a cold cache anyway)."""
    return sns_host.serve(f"/SimpleNotificationService-{uuid.uuid4().hex}.pem", signer.pem)


def sns_settings(settings: Settings, authority: TestAuthority, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": settings.database_url,
        "bootstrap_token": ADMIN_TOKEN,
        "log_json": False,
        "sns_topic_arns": f"{TOPIC},{GLOB_TOPICS}",
        "sns_cert_host_pattern": r"127\.0\.0\.1",
        "sns_ca_bundle": str(authority.ca_file),
        "sns_http_timeout_seconds": 3,
    }
    values.update(overrides)
    return load_settings(**values)


@pytest.fixture
def sns(settings: Settings, engine: Engine, authority: TestAuthority) -> Iterator[TestClient]:
    """A client without any token: SNS authenticates with the message's signature."""
    with TestClient(create_app(sns_settings(settings, authority), engine)) as test_client:
        yield test_client


def notification(cert_url: str, topic: str = TOPIC, message: Any = EVENT, **fields: Any) -> dict[str, Any]:
    return {
        "Type": "Notification",
        "MessageId": str(uuid.uuid4()),
        "TopicArn": topic,
        "Message": message if isinstance(message, str) else json.dumps(message),
        "Timestamp": "2024-03-07T00:30:36.655Z",
        "SigningCertURL": cert_url,
        "UnsubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=x",
        **fields,
    }


def confirmation(
    cert_url: str, subscribe_base: str, topic: str = TOPIC, kind: str = "SubscriptionConfirmation"
) -> dict[str, Any]:
    token = "2336412f37fb687f5d51e6e241da92fd" + uuid.uuid4().hex
    return {
        "Type": kind,
        "MessageId": str(uuid.uuid4()),
        "Token": token,
        "TopicArn": topic,
        "Message": f"You have chosen to subscribe to the topic {topic}.",
        "SubscribeURL": f"{subscribe_base}/?Action=ConfirmSubscription&TopicArn={quote(topic)}&Token={token}",
        "Timestamp": "2024-03-07T00:30:36.655Z",
        "SigningCertURL": cert_url,
    }


def post(client: Any, message: dict[str, Any], message_type: str | None = None) -> Any:
    headers = {"content-type": "text/plain; charset=UTF-8"}
    headers["x-amz-sns-message-type"] = message_type or message.get("Type", "Notification")
    return client.post(URL, content=json.dumps(message).encode(), headers=headers)


def total(client: Any) -> int:
    count: int = client.get("/v1/stats", headers=ADMIN).json()["total"]
    return count


def assert_refused(resp: Any, *words: str) -> None:
    assert resp.status_code == 403, resp.text
    assert resp.json()["code"] == "forbidden"
    assert all(word in resp.json()["detail"] for word in words), resp.json()["detail"]


# --- notifications ----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1", "2"])
def test_signed_notification_is_stored(
    sns: Any, sns_host: FakeSnsHost, signer: Signer, cert_url: str, version: str
) -> None:
    resp = post(sns, signer.sign(notification(cert_url), version))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["accepted"], body["created"], body["failed"]) == (1, 1, [])
    assert set(body) == {"accepted", "created", "updated", "unchanged", "resolved", "failed", "results"}
    finding = sns.get(f"/v1/findings/{body['results'][0]['id']}", headers=ADMIN).json()
    assert finding["source"] == "guardduty"
    assert finding["events"][-1]["actor"] == f"sns:{TOPIC}"
    assert sns_host.requests == [cert_url.removeprefix(sns_host.base_url)]


def test_the_certificate_is_fetched_once_and_cached(
    sns: Any, sns_host: FakeSnsHost, signer: Signer, cert_url: str
) -> None:
    for _ in range(3):
        assert post(sns, signer.sign(notification(cert_url), "2")).status_code == 200
    assert len(sns_host.requests) == 1
    assert total(sns) == 1


def test_subject_is_part_of_what_is_signed(sns: Any, signer: Signer, cert_url: str) -> None:
    signed = signer.sign(notification(cert_url, Subject="GuardDuty finding"))
    assert post(sns, signed).status_code == 200
    assert_refused(post(sns, {**signed, "Subject": "Something else"}), "signature does not verify")


def test_a_glob_entry_allows_matching_topics(sns: Any, signer: Signer, cert_url: str) -> None:
    topic = "arn:aws:sns:us-east-1:123456789012:findings-prod"
    assert post(sns, signer.sign(notification(cert_url, topic=topic))).status_code == 200


@pytest.mark.parametrize(
    "field", ["Message", "MessageId", "Timestamp", "TopicArn", "Type", "SignatureVersion", "Signature"]
)
def test_a_tampered_message_is_403_and_nothing_is_stored(
    sns: Any, signer: Signer, cert_url: str, field: str
) -> None:
    signed = signer.sign(notification(cert_url))
    tampered = dict(signed)
    if field == "Message":
        event = json.loads(signed["Message"])
        event["detail"]["severity"] = 1
        tampered["Message"] = json.dumps(event)
    elif field == "TopicArn":
        tampered["TopicArn"] = "arn:aws:sns:us-east-1:123456789012:findings-other"  # also allowed
    elif field == "Type":
        tampered["Type"] = "UnsubscribeConfirmation"
        tampered.update(Token="t", SubscribeURL="https://127.0.0.1/?Action=ConfirmSubscription")
    elif field == "SignatureVersion":
        tampered["SignatureVersion"] = "2"  # signed as SHA1, checked as SHA256
    elif field == "Signature":
        tampered["Signature"] = Signer().sign(notification(cert_url))["Signature"]
    else:
        tampered[field] = signed[field] + "0"
    resp = post(sns, tampered)
    assert_refused(resp)
    assert total(sns) == 0


def test_a_signature_from_another_key_is_403(sns: Any, sns_host: FakeSnsHost, cert_url: str) -> None:
    assert_refused(post(sns, Signer().sign(notification(cert_url))), "signature does not verify")
    assert total(sns) == 0


def test_an_expired_certificate_is_403(sns: Any, sns_host: FakeSnsHost) -> None:
    expired = Signer(expired=True)
    url = sns_host.serve(f"/SimpleNotificationService-{uuid.uuid4().hex}.pem", expired.pem)
    assert_refused(post(sns, expired.sign(notification(url))), "expired")
    assert total(sns) == 0


@pytest.mark.parametrize(
    "template",
    [
        "http://127.0.0.1:{port}/cert.pem",
        "https://localhost:{port}/cert.pem",
        "https://127.0.0.1.nip.io:{port}/cert.pem",
        "https://sns.eu-west-1.amazonaws.com.127.0.0.1.nip.io/cert.pem",
        "https://user@127.0.0.1:{port}/cert.pem",
        "https://127.0.0.1:{port}@localhost:{port}/cert.pem",
        "ftp://127.0.0.1:{port}/cert.pem",
        "/cert.pem",
        "",
    ],
)
def test_a_certificate_url_off_the_allowed_hosts_is_403_and_never_fetched(
    sns: Any, sns_host: FakeSnsHost, signer: Signer, template: str
) -> None:
    url = template.format(port=sns_host.port)
    sns_host.serve("/cert.pem", signer.pem)
    assert_refused(post(sns, signer.sign(notification(url))))
    assert sns_host.requests == []
    assert total(sns) == 0


def test_a_certificate_url_that_is_not_found_is_403(sns: Any, sns_host: FakeSnsHost, signer: Signer) -> None:
    url = f"{sns_host.base_url}/SimpleNotificationService-missing.pem"
    assert_refused(post(sns, signer.sign(notification(url))), "HTTP 404")


def test_a_url_that_does_not_serve_a_certificate_is_403(
    sns: Any, sns_host: FakeSnsHost, signer: Signer
) -> None:
    url = sns_host.serve("/not-a-cert.pem", b"<html>hello</html>")
    assert_refused(post(sns, signer.sign(notification(url))), "PEM certificate")


def test_a_topic_not_on_the_allow_list_is_403_without_any_fetch(
    sns: Any, sns_host: FakeSnsHost, signer: Signer, cert_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    resp = post(sns, signer.sign(notification(cert_url, topic=OTHER_TOPIC)))
    assert_refused(resp, OTHER_TOPIC, "TOCSIN_SNS_TOPIC_ARNS")
    assert sns_host.requests == []
    assert OTHER_TOPIC in caplog.text  # refusals are logged
    assert total(sns) == 0


@pytest.mark.parametrize("version", ["", "3", None])
def test_an_unknown_signature_version_is_403(sns: Any, signer: Signer, cert_url: str, version: Any) -> None:
    message = signer.sign(notification(cert_url))
    message["SignatureVersion"] = version
    assert_refused(post(sns, message), "SignatureVersion")


def test_an_unsigned_message_is_403(sns: Any, signer: Signer, cert_url: str) -> None:
    message = signer.sign(notification(cert_url))
    del message["Signature"]
    assert_refused(post(sns, message), "Signature")


def test_a_message_that_is_not_an_eventbridge_event_is_422_after_verification(
    sns: Any, signer: Signer, cert_url: str
) -> None:
    resp = post(sns, signer.sign(notification(cert_url, message="Hello world!")))
    assert resp.status_code == 422
    assert resp.json()["errors"][0]["field"] == "Message"
    unknown = {"source": "aws.health", "detail-type": "AWS Health Event", "detail": {}}
    resp = post(sns, signer.sign(notification(cert_url, message=unknown)))
    assert resp.status_code == 422 and "aws.guardduty / GuardDuty Finding" in resp.json()["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"", "body"),
        (b"{", "body"),
        (b"[]", "body"),
        (b'{"Type": "Nope"}', "Type"),
        (b'{"Type": "Notification", "MessageId": 1}', "Message"),
    ],
)
def test_malformed_messages_are_422(sns: Any, body: bytes, field: str) -> None:
    resp = sns.post(URL, content=body, headers={"content-type": "text/plain; charset=UTF-8"})
    assert resp.status_code == 422, resp.text
    assert resp.json()["errors"][0]["field"] == field


def test_raw_message_delivery_is_refused_with_a_hint(sns: Any) -> None:
    resp = sns.post(URL, content=json.dumps(EVENT).encode(), headers={"x-amz-sns-rawdelivery": "true"})
    assert resp.status_code == 422
    assert "raw message delivery must be off" in resp.json()["detail"]
    assert total(sns) == 0


def test_the_type_header_must_match_the_body(sns: Any, signer: Signer, cert_url: str) -> None:
    resp = post(sns, signer.sign(notification(cert_url)), message_type="SubscriptionConfirmation")
    assert resp.status_code == 422
    assert resp.json()["errors"][0]["field"] == "x-amz-sns-message-type"


def test_a_body_larger_than_any_sns_message_is_413(sns: Any) -> None:
    resp = sns.post(URL, content=b" " * (600 * 1024), headers={"content-type": "text/plain"})
    assert resp.status_code == 413


def test_no_bearer_token_is_needed_or_used(sns: Any, signer: Signer, cert_url: str) -> None:
    # A bearer token opens nothing here: without a valid signature the message is refused all the same.
    message = notification(cert_url)
    message.update(SignatureVersion="1", Signature="AAAA")
    resp = sns.post(
        URL,
        content=json.dumps(message).encode(),
        headers={"content-type": "text/plain", **ADMIN},
    )
    assert_refused(resp)


# --- subscription confirmation and unsubscription ---------------------------------------------------


def test_subscription_confirmation_on_an_allowed_topic_fetches_the_subscribe_url(
    sns: Any, sns_host: FakeSnsHost, signer: Signer, cert_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    message = signer.sign(confirmation(cert_url, sns_host.base_url), "2")
    resp = post(sns, message)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"type": "SubscriptionConfirmation", "topic_arn": TOPIC, "status": "confirmed"}
    subscribe_path = message["SubscribeURL"].removeprefix(sns_host.base_url)
    assert sns_host.requests == [cert_url.removeprefix(sns_host.base_url), subscribe_path]
    assert "confirmed" in caplog.text
    assert message["Token"] not in caplog.text  # the confirmation token is a credential
    assert total(sns) == 0


def test_subscription_confirmation_on_a_disallowed_topic_is_403_without_any_get(
    sns: Any, sns_host: FakeSnsHost, signer: Signer, cert_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    message = signer.sign(confirmation(cert_url, sns_host.base_url, topic=OTHER_TOPIC))
    assert_refused(post(sns, message), "not allowed")
    assert sns_host.requests == []
    assert "SubscriptionConfirmation" in caplog.text and OTHER_TOPIC in caplog.text


def test_an_unsigned_subscription_confirmation_is_not_confirmed(
    sns: Any, sns_host: FakeSnsHost, signer: Signer, cert_url: str
) -> None:
    message = signer.sign(confirmation(cert_url, sns_host.base_url))
    message["Token"] = "another-token"
    assert_refused(post(sns, message), "signature does not verify")
    assert not any("ConfirmSubscription" in request for request in sns_host.requests)


@pytest.mark.parametrize(
    "subscribe_base",
    ["http://127.0.0.1:{port}", "https://localhost:{port}", "https://169.254.169.254"],
)
def test_a_subscribe_url_off_the_allowed_hosts_is_never_fetched(
    sns: Any, sns_host: FakeSnsHost, signer: Signer, cert_url: str, subscribe_base: str
) -> None:
    message = signer.sign(confirmation(cert_url, subscribe_base.format(port=sns_host.port)))
    assert_refused(post(sns, message), "SubscribeURL")
    assert sns_host.requests == [cert_url.removeprefix(sns_host.base_url)]  # the certificate only


def test_a_subscribe_url_for_another_topic_is_not_fetched(
    sns: Any, sns_host: FakeSnsHost, signer: Signer, cert_url: str
) -> None:
    message = confirmation(cert_url, sns_host.base_url)
    message["SubscribeURL"] = message["SubscribeURL"].replace(quote(TOPIC), quote(OTHER_TOPIC))
    assert_refused(post(sns, signer.sign(message)), "SubscribeURL")
    assert not any("ConfirmSubscription" in request for request in sns_host.requests)


def test_a_failed_confirmation_is_502_so_sns_retries(
    sns: Any, sns_host: FakeSnsHost, signer: Signer, cert_url: str
) -> None:
    sns_host.confirm_status = 403
    resp = post(sns, signer.sign(confirmation(cert_url, sns_host.base_url)))
    assert resp.status_code == 502
    assert resp.json()["code"] == "bad_gateway"


def test_unsubscribe_confirmation_is_verified_and_acknowledged(
    sns: Any, sns_host: FakeSnsHost, signer: Signer, cert_url: str
) -> None:
    message = signer.sign(confirmation(cert_url, sns_host.base_url, kind="UnsubscribeConfirmation"))
    resp = post(sns, message)
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "acknowledged"
    assert not any("ConfirmSubscription" in request for request in sns_host.requests)
    assert_refused(post(sns, {**message, "Message": "changed"}), "signature does not verify")


# --- configuration ----------------------------------------------------------------------------------


def test_without_allowed_topics_every_message_is_refused(
    settings: Settings, engine: Engine, authority: TestAuthority, signer: Signer, cert_url: str
) -> None:
    closed = sns_settings(settings, authority, sns_topic_arns="")
    with TestClient(create_app(closed, engine)) as client:
        assert_refused(post(client, signer.sign(notification(cert_url))), "not allowed")


def test_without_the_test_ca_the_fake_host_is_not_trusted(
    settings: Settings, engine: Engine, authority: TestAuthority, signer: Signer, cert_url: str
) -> None:
    # The system trust store does not know the test CA: TLS verification is really on.
    system_trust = sns_settings(settings, authority, sns_ca_bundle=None)
    with TestClient(create_app(system_trust, engine)) as client:
        resp = post(client, signer.sign(notification(cert_url)))
        assert resp.status_code == 502, resp.text
        assert total(client) == 0


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("sns_topic_arns", "arn:aws:sns:eu-west-1:*:findings", "account"),
        ("sns_topic_arns", "*", "not an SNS topic ARN"),
        ("sns_topic_arns", "arn:aws:sqs:eu-west-1:123456789012:q", "not an SNS topic ARN"),
        ("sns_cert_host_pattern", ".*", "not SNS"),
        ("sns_cert_host_pattern", "(", "regular expression"),
        ("sns_ca_bundle", "/no/such/bundle.pem", "not a file"),
        ("eventbridge_api_key_header", "X Key", "header name"),
    ],
)
def test_unsafe_or_invalid_settings_stop_start_up(name: str, value: str, words: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(**{name: value})
    assert f"TOCSIN_{name.upper()}" in str(raised.value) and words in str(raised.value)


def test_default_host_pattern_accepts_sns_hosts_only() -> None:
    import re

    pattern = re.compile(load_settings().sns_cert_host_pattern)
    for host in (
        "sns.us-east-1.amazonaws.com",
        "sns.cn-north-1.amazonaws.com.cn",
        "sns.us-gov-west-1.amazonaws.com",
    ):
        assert pattern.fullmatch(host), host
    for host in ("sns.us-east-1.amazonaws.com.evil.example", "evil.example", "s3.us-east-1.amazonaws.com"):
        assert not pattern.fullmatch(host), host
