"""Hostile input: documents built to break a parser, a validator or the database, posted to the ingest
endpoints. Each gets a 4xx naming what is wrong (which finding, which field) or is stored as sent; the
service stays up, and a finding stored before the attack is unchanged after it."""

from __future__ import annotations

import json
import select
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.helpers import finding, post
from tests.samples import AWS

INGEST_PATHS = ("/v1/findings", "/v1/ingest/native")
REPORT_PATHS = ("/v1/ingest/trivy", "/v1/ingest/auto")
HUGE = 100_000


@pytest.fixture
def known(client: Any) -> Iterator[dict[str, Any]]:
    """A finding stored before the attacks; after the test it must read back exactly the same."""
    resp = post(client, finding(title="known before the attack", resource={"id": "known-resource"}))
    assert resp.status_code == 200, resp.text
    fid = resp.json()["results"][0]["id"]
    before = client.get(f"/v1/findings/{fid}").json()
    yield before
    assert client.get(f"/v1/findings/{fid}").json() == before, "an attack changed a stored finding"
    assert client.get("/readyz").status_code == 200
    # A normal ingest still works after the attack.
    follow_up = post(client, finding(resource={"id": "after-the-attack"}))
    assert follow_up.status_code == 200 and follow_up.json()["created"] == 1, follow_up.text


def send(client: Any, path: str, body: bytes | str) -> Any:
    resp = client.post(path, content=body, headers={"content-type": "application/json"})
    assert resp.status_code < 500, f"{path}: {resp.status_code} {resp.text[:500]}"
    return resp


def batch(*items: Any) -> str:
    return json.dumps({"findings": list(items)})


def nested(depth: int, leaf: str = "1") -> str:
    return "[" * depth + leaf + "]" * depth


def only_failure(resp: Any) -> dict[str, Any]:
    """The one rejected finding of a 200 batch answer; nothing was stored."""
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["accepted"], body["created"]) == (0, 0), body
    assert len(body["failed"]) == 1, body
    failure: dict[str, Any] = body["failed"][0]
    return failure


def stored_detail(client: Any, resp: Any) -> dict[str, Any]:
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["failed"] == [] and body["accepted"] == 1, body
    detail: dict[str, Any] = client.get(f"/v1/findings/{body['results'][0]['id']}").json()
    return detail


# nesting


@pytest.mark.parametrize("path", INGEST_PATHS + REPORT_PATHS)
def test_json_nested_10000_deep_is_refused(client: Any, known: Any, path: str) -> None:
    body = '{"findings": [' + nested(10_000) + "]}" if path in INGEST_PATHS else nested(10_000)
    resp = send(client, path, body)
    assert resp.status_code == 422
    assert "nests more than 64 levels deep" in resp.json()["detail"]


@pytest.mark.parametrize("path", INGEST_PATHS)
@pytest.mark.parametrize("field", ["context", "raw"])
def test_a_finding_nested_too_deep_to_store_is_refused_by_index_and_field(
    client: Any, known: Any, path: str, field: str
) -> None:
    # 300 levels parse (orjson allows 1024) but cannot be encoded for storage (255): this was a 500.
    document = batch(finding(resource={"id": f"shallow-{path}"}), finding(**{field: "HOLE"}))
    hole = '{"a": ' + nested(300) + "}" if field == "context" else nested(300)
    resp = send(client, path, document.replace('"HOLE"', hole))
    assert resp.status_code == 200
    body = resp.json()
    assert (body["accepted"], body["created"]) == (1, 1)  # the other finding of the batch is stored
    assert body["failed"] == [
        {"index": 1, "errors": [{"field": field, "message": "nests more than 64 levels deep; flatten it"}]}
    ]


def test_an_eventbridge_event_nested_too_deep_is_refused(client: Any, known: Any) -> None:
    event = json.loads(
        (AWS / "eventbridge" / "guardduty-finding-event_Backdoor-EC2-Spambot_via-sns.json").read_text()
    )
    event["detail"]["service"]["additionalInfo"] = json.loads(nested(300))
    resp = send(client, "/v1/ingest/eventbridge", json.dumps(event))
    assert resp.status_code == 422
    assert "nests more than 64 levels deep" in resp.json()["detail"]


@pytest.mark.parametrize("path", REPORT_PATHS)
def test_a_report_nested_too_deep_to_store_is_refused(client: Any, known: Any, path: str) -> None:
    report = {"SchemaVersion": 2, "ArtifactName": "x", "Results": [{"Target": "t", "Vulnerabilities": []}]}
    text = json.dumps(report).replace("[]", nested(300, "{}"))
    resp = send(client, path, text)
    assert resp.status_code == 422
    assert "nests more than 64 levels deep (at $.Results[0].Vulnerabilities" in resp.json()["detail"]


def test_a_json_lines_report_nested_too_deep_names_the_line(client: Any, known: Any) -> None:
    lines = '{"a": 1}\n{"b": ' + nested(300) + "}\n"
    resp = send(client, "/v1/ingest/trufflehog", lines)
    assert resp.status_code == 422
    assert resp.json()["errors"][0]["field"] == "body.line[2]"


def test_nesting_that_real_reports_use_is_stored(client: Any, known: Any) -> None:
    context = json.loads(nested(40, '{"cvss": 9.8}'))
    detail = stored_detail(
        client, post(client, finding(resource={"id": "nested-ok"}, context={"x": context}))
    )
    assert detail["context"] == {"x": context}


# size


TEXT_FIELDS = {
    "title": ("title", "at most 512 characters"),
    "type": ("type", "at most 512 characters"),
    "description": ("description", "at most 65536 characters"),
    "remediation": ("remediation", "at most 65536 characters"),
    "source_id": ("source_id", "at most 2048 characters"),
    "source": ("source", "at most 64 characters"),
}
NESTED_TEXT_FIELDS = {
    "resource.id": ({"resource": {"id": "A" * HUGE}}, "at most 2048 characters"),
    "resource.type": ({"resource": {"id": "r", "type": "A" * HUGE}}, "at most 256 characters"),
    "resource.account_id": ({"resource": {"id": "r", "account_id": "A" * HUGE}}, "at most 128 characters"),
    "resource.region": ({"resource": {"id": "r", "region": "A" * HUGE}}, "at most 64 characters"),
    "resource.tags": ({"resource": {"id": "r", "tags": {"owner": "A" * HUGE}}}, "values at most 1024"),
    "resource.tags ": ({"resource": {"id": "r", "tags": {"A" * HUGE: "v"}}}, "keys must be 1-256"),
    "location.path": ({"location": {"path": "A" * HUGE}}, "at most 2048 characters"),
    "location.repository": ({"location": {"repository": "A" * HUGE}}, "at most 2048 characters"),
    "references": ({"references": ["https://" + "A" * HUGE]}, "at most 2048 characters"),
    "aliases": ({"aliases": ["A" * HUGE]}, "1-2048 characters"),
}


@pytest.mark.parametrize("path", INGEST_PATHS)
@pytest.mark.parametrize("field", sorted(TEXT_FIELDS))
def test_100k_characters_in_a_text_field_is_refused_naming_the_field(
    client: Any, known: Any, path: str, field: str
) -> None:
    name, message = TEXT_FIELDS[field]
    failure = only_failure(send(client, path, batch(finding(**{field: "A" * HUGE}))))
    assert failure["index"] == 0
    assert failure["errors"][0]["field"] == name
    assert message in failure["errors"][0]["message"]
    assert len(json.dumps(failure)) < 1000  # the answer does not echo the 100,000 characters


@pytest.mark.parametrize("field", sorted(NESTED_TEXT_FIELDS))
def test_100k_characters_in_a_nested_field_is_refused_naming_the_field(
    client: Any, known: Any, field: str
) -> None:
    overrides, message = NESTED_TEXT_FIELDS[field]
    failure = only_failure(send(client, "/v1/findings", batch(finding(**overrides))))
    assert failure["errors"][0]["field"] == field.strip()
    assert message in failure["errors"][0]["message"]
    assert len(json.dumps(failure)) < 1000


def test_100k_characters_in_context_are_stored_whole(client: Any, known: Any) -> None:
    # context and raw are free-form JSON, bounded only by the body size limit.
    context = {"evidence": "A" * HUGE}
    detail = stored_detail(client, post(client, finding(resource={"id": "big-context"}, context=context)))
    assert detail["context"] == context


def test_100k_characters_in_a_trivy_report_are_shortened_by_the_parser(client: Any, known: Any) -> None:
    vulnerability = {"VulnerabilityID": "CVE-2024-1", "PkgName": "p", "Severity": "HIGH"}
    report = {
        "SchemaVersion": 2,
        "ArtifactName": "registry.example.com/app:1",
        "Results": [
            {
                "Target": "app",
                "Vulnerabilities": [
                    {**vulnerability, "VulnerabilityID": "CVE-2024-0"},
                    {**vulnerability, "Title": "A" * HUGE, "Description": "B" * HUGE},
                ],
            }
        ],
    }
    resp = send(client, "/v1/ingest/trivy", json.dumps(report))
    assert resp.status_code == 200, resp.text
    assert resp.json()["created"] == 2
    for result in resp.json()["results"]:
        detail = client.get(f"/v1/findings/{result['id']}").json()
        assert len(detail["title"]) <= 512
        assert len(detail["description"] or "") <= 65_536


# encoding


def test_nul_bytes_are_dropped_from_text_and_kept_escaped_in_json(client: Any, known: Any) -> None:
    item = finding(
        title="nul\x00title",
        description="a\x00b",
        resource={"id": "nul\x00id", "tags": {"te\x00am": "pay\x00ments"}},
        location={"path": "src/\x00a.py"},
        context={"evidence": "bin\x00ary"},
    )
    detail = stored_detail(client, post(client, item))
    assert (detail["title"], detail["description"]) == ("nultitle", "ab")
    assert detail["resource"]["id"] == "nulid"
    assert detail["resource"]["tags"] == {"team": "payments"}
    assert detail["location"]["path"] == "src/a.py"
    assert detail["context"]["evidence"].replace("\x00", "") == "binary"


@pytest.mark.parametrize("path", INGEST_PATHS + REPORT_PATHS)
def test_invalid_utf8_is_refused(client: Any, known: Any, path: str) -> None:
    body = batch(finding(title="PLACEHOLDER")).encode().replace(b"PLACEHOLDER", b"\xff\xfe\xc3(")
    resp = send(client, path, body)
    assert resp.status_code == 422
    assert "not valid UTF-8" in resp.json()["detail"]


def test_a_lone_surrogate_escape_is_refused(client: Any, known: Any) -> None:
    resp = send(client, "/v1/findings", batch(finding(title="PLACEHOLDER")).replace("PLACEHOLDER", "\\ud800"))
    assert resp.status_code == 422
    assert "surrogate" in resp.json()["detail"]


# numbers


@pytest.mark.parametrize("number", ["1e999", "-1e999", "NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("where", ["severity", "context"])
def test_numbers_json_cannot_hold_are_refused(client: Any, known: Any, number: str, where: str) -> None:
    if where == "severity":
        text = batch(finding(severity=0)).replace('"severity": 0', f'"severity": {number}')
    else:
        text = batch(finding(context={"cvss": 0})).replace('"cvss": 0', f'"cvss": {number}')
    for path in INGEST_PATHS:
        resp = send(client, path, text)
        assert resp.status_code == 422
        assert "not valid JSON" in resp.json()["detail"]
        assert resp.json()["errors"][0]["field"] == "body"


@pytest.mark.parametrize("number", ["1e308", "-5", "100.0000001", "123456789012345678901234567890"])
def test_out_of_range_severity_is_refused_naming_the_field(client: Any, known: Any, number: str) -> None:
    text = batch(finding(severity=0)).replace('"severity": 0', f'"severity": {number}')
    failure = only_failure(send(client, "/v1/findings", text))
    assert failure["errors"][0]["field"] == "severity"


def test_huge_integers_in_bounded_fields_are_refused(client: Any, known: Any) -> None:
    text = batch(finding(confidence=0, occurrences=1)).replace('"confidence": 0', '"confidence": ' + "9" * 40)
    failure = only_failure(send(client, "/v1/findings", text))
    assert failure["errors"][0]["field"] == "confidence"


# duplicate keys


def test_duplicate_keys_take_the_last_value(client: Any, known: Any) -> None:
    # orjson (like Python, JavaScript and PostgreSQL's jsonb) keeps the last of duplicate keys.
    text = batch(finding(resource={"id": "dup-keys"}, title="first")).replace(
        '"title": "first"', '"title": "first", "title": "second"'
    )
    assert stored_detail(client, send(client, "/v1/findings", text))["title"] == "second"


def test_duplicate_findings_keys_take_the_last_list(client: Any, known: Any) -> None:
    text = '{"findings": [], "findings": ' + json.dumps([finding(resource={"id": "dup-envelope"})]) + "}"
    assert stored_detail(client, send(client, "/v1/findings", text))["resource"]["id"] == "dup-envelope"


# timestamps


@pytest.mark.parametrize(
    "when",
    [
        "10000-01-01T00:00:00Z",
        "+10000-01-01T00:00:00Z",
        "9999-12-31T23:59:59-05:00",  # the year 10000 in UTC
        "0001-01-01T00:00:00+05:00",  # the year 0 in UTC
        "100000000000000000",  # milliseconds since 1970: the year 3 million
    ],
)
@pytest.mark.parametrize("field", ["observed_at", "first_observed_at"])
def test_timestamps_out_of_range_are_refused_naming_the_field(
    client: Any, known: Any, when: str, field: str
) -> None:
    value: Any = int(when) if when.isdigit() else when
    failure = only_failure(send(client, "/v1/findings", batch(finding(**{field: value}))))
    assert failure["errors"][0]["field"] == field
    message = failure["errors"][0]["message"]
    assert any(word in message for word in ("out of range", "9999", "valid datetime")), message


@pytest.mark.parametrize("when", ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z"])
def test_extreme_timestamps_in_range_are_stored(client: Any, known: Any, when: str) -> None:
    detail = stored_detail(client, post(client, finding(resource={"id": f"at-{when}"}, observed_at=when)))
    assert detail["observed_at"].startswith(when[:19])


# batches


@pytest.mark.parametrize("path", INGEST_PATHS)
def test_a_batch_where_every_finding_is_invalid_names_each(client: Any, known: Any, path: str) -> None:
    items: list[Any] = [
        {"title": f"no source {i}", "type": "x", "severity": "high", "resource": {"id": f"r{i}"}}
        for i in range(997)
    ]
    items += [None, "a string", [1, 2]]
    resp = send(client, path, batch(*items))
    assert resp.status_code == 200
    body = resp.json()
    assert (body["accepted"], body["created"], body["results"]) == (0, 0, [])
    assert [f["index"] for f in body["failed"]] == list(range(1000))
    assert body["failed"][0]["errors"] == [{"field": "source", "message": "Field required"}]
    assert "must be an object" in body["failed"][999]["errors"][0]["message"]


def test_more_findings_than_a_batch_holds_is_refused(client: Any, known: Any) -> None:
    resp = send(client, "/v1/findings", batch(*[finding()] * 1001))
    assert resp.status_code == 422
    assert "1 to 1000 findings" in resp.json()["detail"]


@pytest.mark.parametrize("path", INGEST_PATHS)
def test_the_same_finding_1000_times_is_stored_once(client: Any, known: Any, path: str) -> None:
    item = finding(resource={"id": f"repeated-{path}"})
    resp = send(client, path, batch(*[item] * 1000))
    body = resp.json()
    assert (body["accepted"], body["created"], body["unchanged"]) == (1000, 1, 999)
    assert len({r["id"] for r in body["results"]}) == 1
    listed = client.get("/v1/findings", params={"resource_id": item["resource"]["id"]}).json()["items"]
    assert len(listed) == 1


# size of the body


def _stream_until_refused(url: str, path: str, limit_bytes: int) -> tuple[bytes, int]:
    """Send a chunked body of up to 1 GB (made lazily, 64 KiB at a time) with no Content-Length; stop when
    the server answers or closes. Returns the start of the answer and how many body bytes were sent."""
    parts = urlsplit(url)
    chunk = b"[" + b"0," * (32 * 1024 - 1) + b"0"  # 64 KiB of valid-looking JSON
    frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    sent = 0
    answer = b""
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: Bearer {ADMIN}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        sock.sendall(head.encode())
        while sent < 1024**3:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break  # the server answered (or closed) before the body ended
            try:
                sock.sendall(frame)  # blocks while the server does not read; times out if it stopped
            except OSError:
                break
            sent += len(chunk)
        try:
            while b"\r\n\r\n" not in answer:
                more = sock.recv(65536)
                if not more:
                    break
                answer += more
        except OSError:
            pass
    return answer, sent


ADMIN = "tcn_test-admin-token-0123456789abcdefghijklmnopqrstuvwxyz"


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@pytest.mark.parametrize(("path", "limit"), [("/v1/findings", 10), ("/v1/ingest/trivy", 64)])
def test_a_1gb_chunked_body_is_refused_early_and_memory_stays_flat(
    live_server: str, client: Any, known: Any, path: str, limit: int
) -> None:
    rss_before = _rss_kib()
    answer, sent = _stream_until_refused(live_server, path, limit * 1024 * 1024)
    grown_mib = (_rss_kib() - rss_before) / 1024
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"TOCSIN_MAX_" in answer or b"413" in answer
    # The server stopped reading soon after its limit (socket buffers hold a few MB more)...
    assert sent < (limit + 48) * 1024 * 1024, f"sent {sent / 1024**2:.0f} MiB before the refusal"
    # ...and the process (server and client share it) did not keep what it read.
    assert grown_mib < limit * 3 + 64, f"RSS grew by {grown_mib:.0f} MiB"


def test_a_declared_1gb_body_is_refused_before_it_is_sent(client: Any, known: Any) -> None:
    resp = client.post(
        "/v1/findings", content=b"{}", headers={"content-length": str(1024**3), "content-type": "x"}
    )
    assert resp.status_code == 413
    assert "TOCSIN_MAX_BODY_BYTES" in resp.json()["detail"]
