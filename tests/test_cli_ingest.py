"""``tocsin ingest`` against a running server: whole and batched uploads, scopes, --fail-on, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from app.cli import main
from tests.conftest import ADMIN_TOKEN
from tests.integrations._trivy_docs import os_result, report, vuln
from tests.samples import SCANNERS


@pytest.fixture
def cli(live_server: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    monkeypatch.setenv("TOCSIN_URL", live_server)
    monkeypatch.setenv("TOCSIN_TOKEN", ADMIN_TOKEN)

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["ingest", *args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def trivy_file(tmp_path: Path, *cves: str, severity: str = "LOW") -> str:
    level = {"LOW": 1, "MEDIUM": 2, "HIGH": 3, "CRITICAL": 4}[severity]
    vulns = [
        vuln(VulnerabilityID=c, PkgName=f"p-{c}", Severity=severity, VendorSeverity={"nvd": level}, CVSS={})
        for c in cves
    ]
    doc = report(os_result(*vulns))
    path = tmp_path / f"report-{len(cves)}-{severity}.json"
    path.write_text(json.dumps(doc))
    return str(path)


def test_sends_a_sample_report_and_prints_counts(cli: Any) -> None:
    sample = str(SCANNERS / "trivy" / "legacy_many_vulns.json")
    code, out, err = cli(sample)
    assert code == 0, err
    assert "created 93" in out
    assert "trivy, 93 findings" in err
    code, out, _ = cli(sample, "--format", "trivy")
    assert code == 0 and "created 0" in out and "unchanged 93" in out


def test_large_reports_go_in_batches_with_the_same_result(cli: Any) -> None:
    sample = str(SCANNERS / "trivy" / "legacy_many_vulns.json")
    code, out, err = cli(sample, "--max-request-bytes", "1000", "--batch-size", "20")
    assert code == 0, err
    assert "batch 5/5" in err
    assert "created 93" in out


def test_complete_scans_resolve_in_batches_too(cli: Any, tmp_path: Path) -> None:
    scope = ["--scope", "image:shop/api", "--complete"]
    assert cli(trivy_file(tmp_path, "CVE-1", "CVE-2", "CVE-3"), *scope)[0] == 0
    code, out, err = cli(
        trivy_file(tmp_path, "CVE-1"), *scope, "--max-request-bytes", "10", "--batch-size", "1"
    )
    assert code == 0, err
    assert "resolved 2" in out


def test_fail_on_gates_the_pipeline(cli: Any, tmp_path: Path) -> None:
    low = trivy_file(tmp_path, "CVE-7", severity="LOW")
    assert cli(low, "--fail-on", "high")[0] == 0
    high = trivy_file(tmp_path, "CVE-8", severity="HIGH")
    code, _, err = cli(high, "--fail-on", "high")
    assert code == 3 and "at or above high" in err


def test_bad_input_and_refusals_have_distinct_exit_codes(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    garbage = tmp_path / "x.json"
    garbage.write_text('{"hello": 1}')
    code, _, err = cli(str(garbage))
    assert code == 2 and "pass --format" in err
    code, _, err = cli(str(garbage), "--format", "trivy")
    assert code == 2 and "not a valid trivy report" in err
    assert cli(str(tmp_path / "missing.json"))[0] == 2
    monkeypatch.setenv("TOCSIN_TOKEN", "tcn_not-a-real-token-000000000000")
    code, _, err = cli(str(SCANNERS / "trivy" / "scheme_2_many_vulns.json"))
    assert code == 1 and "401" in err
    monkeypatch.delenv("TOCSIN_TOKEN")
    assert cli(str(garbage))[0] == 2


def test_a_report_bad_in_a_late_entry_sends_no_batch(cli: Any, tmp_path: Path, client: Any) -> None:
    vulns = [vuln(VulnerabilityID=f"CVE-{i}", PkgName=f"p{i}") for i in range(30)]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(report(os_result(*vulns, {"PkgName": "no-id"}))))
    code, _, err = cli(str(path), "--max-request-bytes", "10", "--batch-size", "5")
    assert code == 2 and "Vulnerabilities[30]" in err
    assert "batch" not in err
    assert client.get("/v1/stats").json()["total"] == 0


def test_batches_and_whole_reports_scope_path_only_findings_alike(
    cli: Any, tmp_path: Path, client: Any
) -> None:
    leaks = [
        {"RuleID": "generic-api-key", "Secret": f"s3cr3t-value-{i:012d}", "File": f"f{i}.env", "StartLine": 1}
        for i in range(3)
    ]
    path = tmp_path / "gitleaks.json"
    path.write_text(json.dumps(leaks))
    scope = ["--format", "gitleaks", "--scope", "repo:acme/api@main"]
    code, out, err = cli(str(path), *scope, "--max-request-bytes", "10", "--batch-size", "2")
    assert code == 0 and "batch 2/2" in err and "created 3" in out, err
    code, out, err = cli(str(path), *scope)
    assert code == 0 and "created 0" in out and "unchanged 3" in out, err
    assert {
        client.get(f"/v1/findings/{item['id']}").json()["location"]["repository"]
        for item in client.get("/v1/findings").json()["items"]
    } == {"acme/api"}
