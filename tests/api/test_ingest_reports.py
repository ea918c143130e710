"""POST /v1/ingest/{format} and /v1/ingest/auto with real reports from the shared samples."""

from __future__ import annotations

import json
from typing import Any

from tests.helpers import finding
from tests.samples import SCANNERS

TRIVY = SCANNERS / "trivy"


def report(name: str) -> bytes:
    return (TRIVY / name).read_bytes()


def post_report(client: Any, path: str, body: bytes, headers: dict[str, str] | None = None) -> Any:
    return client.post(path, content=body, headers={"content-type": "application/json", **(headers or {})})


def test_trivy_report_is_stored_once(client: Any) -> None:
    body = report("legacy_many_vulns.json")
    first = post_report(client, "/v1/ingest/trivy", body)
    assert first.status_code == 200, first.text
    result = first.json()
    assert result["format"] == "trivy"
    assert result["created"] == result["accepted"] == 93  # DefectDojo's parser also finds 93
    again = post_report(client, "/v1/ingest/trivy", body).json()
    assert (again["created"], again["unchanged"]) == (0, 93)
    stats = client.get("/v1/stats").json()
    assert stats["total"] == 93 and stats["by_source"] == {"trivy": 93}


def test_auto_detects_trivy_and_says_so(client: Any) -> None:
    resp = post_report(client, "/v1/ingest/auto", report("scheme_2_many_vulns.json"))
    assert resp.status_code == 200
    assert resp.json()["format"] == "trivy"
    item = client.get("/v1/findings", params={"limit": 1}).json()["items"][0]
    detail = client.get(f"/v1/findings/{item['id']}").json()
    assert detail["context"]  # CVSS, package and versions carried over
    assert detail["references"]


def test_auto_native_batch_keeps_partial_success(client: Any) -> None:
    body = json.dumps({"findings": [finding(), finding(type="x", severity="nope")]}).encode()
    result = post_report(client, "/v1/ingest/auto", body).json()
    assert result["format"] == "native"
    assert result["accepted"] == 1 and result["failed"][0]["index"] == 1


def test_undetectable_document_lists_formats(client: Any) -> None:
    resp = post_report(client, "/v1/ingest/auto", b'{"hello": "world"}')
    assert resp.status_code == 422
    assert "trivy" in resp.json()["detail"] and "native" in resp.json()["detail"]


def test_unknown_format_is_404_listing_formats(client: Any) -> None:
    resp = post_report(client, "/v1/ingest/nosuchscanner", b"{}")
    assert resp.status_code == 404
    assert "supported formats" in resp.json()["detail"] and "trivy" in resp.json()["detail"]


def test_wrong_document_for_format_is_422(client: Any) -> None:
    resp = post_report(client, "/v1/ingest/trivy", b'{"findings": []}')
    assert resp.status_code == 422
    assert "trivy" in resp.json()["detail"]
    assert post_report(client, "/v1/ingest/trivy", b"{oops").status_code == 422
    assert client.get("/v1/stats").json()["total"] == 0


def test_secrets_never_reach_storage_or_api(client: Any) -> None:
    body = report("misconfigurations_and_secrets.json")
    secrets = [
        s["Match"] for r in json.loads(body)["Results"] for s in r.get("Secrets", []) if s.get("Match")
    ]
    assert secrets
    assert post_report(client, "/v1/ingest/trivy", body).status_code == 200
    dump = json.dumps(
        [client.get(f"/v1/findings/{i['id']}").json() for i in client.get("/v1/findings").json()["items"]]
    )
    for secret in secrets:
        assert secret not in dump


def test_report_ingest_needs_ingest_scope(client: Any, token_for: Any) -> None:
    resp = post_report(
        client, "/v1/ingest/trivy", report("scheme_2_many_vulns.json"), headers=token_for("read")
    )
    assert resp.status_code == 403


def test_reports_have_their_own_size_limit(settings: Any, engine: Any) -> None:
    """A report may exceed the batch limit (TOCSIN_MAX_BODY_BYTES) up to TOCSIN_MAX_REPORT_BYTES."""
    from fastapi.testclient import TestClient

    from app.main import create_app
    from tests.conftest import ADMIN_TOKEN

    tight = settings.model_copy(update={"max_body_bytes": 4096, "max_report_bytes": 200_000})
    body = report("legacy_many_vulns.json")  # ~170 KB
    with TestClient(create_app(tight, engine), headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as client:
        assert post_report(client, "/v1/ingest/trivy", body).status_code == 200
        too_big = post_report(client, "/v1/ingest/trivy", body + b" " * 40_000)
        assert too_big.status_code == 413 and "TOCSIN_MAX_REPORT_BYTES" in too_big.json()["detail"]
        batch = client.post("/v1/findings", content=b'{"findings": [' + b" " * 5000 + b"]}")
        assert batch.status_code == 413 and "TOCSIN_MAX_BODY_BYTES" in batch.json()["detail"]


def test_json_lines_bodies_are_decoded_per_line(client: Any) -> None:
    """JSON-lines reports (TruffleHog, Nuclei) reach the parser as a list; a broken line is named."""
    line = json.dumps({"findings": [finding()]})
    resp = post_report(client, "/v1/ingest/auto", f"{line}\n{line}\n".encode())
    assert resp.status_code == 422  # a list of native batches is no known format...
    assert "supported formats" in resp.json()["detail"]  # ...but it was decoded, not refused as bad JSON
    broken = post_report(client, "/v1/ingest/auto", f"{line}\n{{oops\n".encode())
    assert broken.status_code == 422
    assert "line 2" in broken.json()["detail"]
    assert broken.json()["errors"][0]["field"] == "body.line[2]"


def _chunked_client(settings: Any, engine: Any, batch: int) -> Any:
    from fastapi.testclient import TestClient

    from app.main import create_app
    from tests.conftest import ADMIN_TOKEN

    app = create_app(settings.model_copy(update={"max_batch_findings": batch}), engine)
    return TestClient(app, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})


def test_a_report_is_stored_in_chunks_with_indexes_across_them(settings: Any, engine: Any) -> None:
    with _chunked_client(settings, engine, 10) as client:
        resp = post_report(client, "/v1/ingest/trivy", report("legacy_many_vulns.json"))
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["accepted"] == body["created"] == 93  # ten chunks, one transaction
        assert [item["index"] for item in body["results"]] == list(range(93))
        again = post_report(client, "/v1/ingest/trivy", report("legacy_many_vulns.json")).json()
        assert (again["created"], again["unchanged"]) == (0, 93)


def test_a_bad_entry_in_a_later_chunk_stores_nothing(settings: Any, engine: Any) -> None:
    from tests.integrations._trivy_docs import os_result, vuln
    from tests.integrations._trivy_docs import report as trivy_report

    vulns = [vuln(VulnerabilityID=f"CVE-2020-{i}", PkgName=f"p{i}") for i in range(25)]
    document = trivy_report(os_result(*vulns, {"PkgName": "no-id"}))
    with _chunked_client(settings, engine, 10) as client:
        resp = post_report(client, "/v1/ingest/trivy", json.dumps(document).encode())
        assert resp.status_code == 422, resp.text
        assert "Vulnerabilities[25]" in resp.text
        assert client.get("/v1/stats").json()["total"] == 0
