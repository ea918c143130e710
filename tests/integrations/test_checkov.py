"""The Checkov parser against every Checkov report in the shared samples (copied from DefectDojo)."""

from __future__ import annotations

import copy
import json
from collections import Counter
from typing import Any

import pytest

from integrations.sources import checkov
from integrations.testing import (
    assert_detect_conformance,
    assert_no_secret,
    assert_parser_conformance,
    source_ids,
)
from tests.samples import AWS, SCANNERS

SAMPLES = SCANNERS / "checkov"

# file -> (findings we produce, of which open, DefectDojo's expected count; samples/scanners/INDEX.md).
# DefectDojo keeps failed checks only; we keep passed checks too, as resolved findings, so a re-scan where a
# check passes closes it. The open counts are DefectDojo's everywhere it has one. checkov-report-many-vuln.json
# lists 3 failed checks though its summary says 2 (a hand-edited fixture); DefectDojo has no count for it.
# checkov2-report-0-vuln.json is the bare summary Checkov 2 prints when it scanned nothing.
EXPECTED: dict[str, tuple[int, int, int | None]] = {
    "checkov-report-0-vuln.json": (0, 0, 0),
    "checkov-report-1-vuln.json": (1, 1, 1),
    "checkov-report-many-vuln.json": (3, 3, None),
    "checkov-report-multiple-check_type.json": (28, 13, 13),  # 11 + 2 failed, 14 + 1 passed
    "checkov-report-severity.json": (4, 4, 4),
    "checkov2-report-0-vuln.json": (0, 0, 0),
}


def sample(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text(encoding="utf-8"))


def report(
    *failed: dict[str, Any], passed: tuple[dict[str, Any], ...] = (), check_type: str = "terraform"
) -> Any:
    return {
        "check_type": check_type,
        "results": {"failed_checks": list(failed), "passed_checks": list(passed), "skipped_checks": []},
        "summary": {"failed": len(failed), "passed": len(passed), "checkov_version": "3.2.0"},
    }


def check(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "check_id": "CKV_AWS_20",
        "check_name": "S3 Bucket has an ACL defined which allows public READ access.",
        "check_result": {"result": "FAILED", "evaluated_keys": ["acl"]},
        "code_block": [[1, 'resource "aws_s3_bucket" "data" {\n'], [2, '  acl = "public-read"\n']],
        "file_path": "/s3.tf",
        "repo_file_path": "/infra/s3.tf",
        "file_line_range": [1, 8],
        "resource": "aws_s3_bucket.data",
        "check_class": "checkov.terraform.checks.resource.aws.S3PublicACLRead",
        "guideline": "https://docs.prismacloud.io/en/enterprise-edition/policy-reference/aws-policies/s3-1",
        "entity_tags": {"owner": "data-team", "env": "prod"},
    }
    base.update(overrides)
    return base


def test_every_sample_file_has_an_expected_count() -> None:
    assert sorted(p.name for p in SAMPLES.iterdir()) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_conforms_and_open_counts_match_defectdojo(name: str) -> None:
    document = sample(name)
    findings = assert_parser_conformance(checkov, document)
    ours, still_open, defectdojo = EXPECTED[name]
    assert len(findings) == ours
    assert sum(f.status == "open" for f in findings) == still_open
    assert defectdojo is None or defectdojo == still_open
    assert checkov.detect(document)


def test_severity_sample_golden_fields() -> None:
    findings = checkov.parse(sample("checkov-report-severity.json"))
    first = findings[0]
    assert first.source == "checkov"
    assert first.type == "CKV_GCP_29"
    assert first.title == (
        "CKV_GCP_29: Ensure that Cloud Storage buckets have uniform bucket-level access enabled "
        "(google_storage_bucket.terragoat_website)"
    )
    assert first.severity_label == "medium"  # the report's own severity
    assert first.status == "open"
    assert first.references == ["https://docs.bridgecrew.io/docs/bc_gcp_gcs_2"]
    assert first.resource.type == "terraform"
    assert first.resource.id == "google_storage_bucket.terragoat_website"
    assert first.location is not None and (first.location.path, first.location.line) == ("gcs.tf", 1)
    assert first.context["bc_check_id"] == "BC_GCP_GCS_2"
    assert first.context["benchmarks"] == ["CIS GCP V1.1"]
    assert first.context["end_line"] == 15
    assert "code_block" not in first.raw and "fixed_definition" not in first.raw
    assert Counter(f.severity_label for f in findings) == {"medium": 2, "low": 1, "high": 1}


def test_without_a_severity_the_check_is_medium() -> None:
    findings = checkov.parse(sample("checkov-report-multiple-check_type.json"))
    assert {f.severity_label for f in findings} == {"medium"}
    assert Counter((f.resource.type, f.status) for f in findings) == {
        ("terraform", "open"): 11,
        ("terraform", "resolved"): 14,
        ("dockerfile", "open"): 2,
        ("dockerfile", "resolved"): 1,
    }
    dockerfile = next(f for f in findings if f.resource.type == "dockerfile")
    # repo_file_path (/infra/terraform/...) rather than file_path (/aws/...): it does not move with `-d`.
    assert (
        dockerfile.location is not None
        and dockerfile.location.path == "infra/terraform/aws/resources/Dockerfile"
    )
    assert dockerfile.location.line == 0


def test_a_check_that_passes_on_a_rescan_resolves_the_same_finding() -> None:
    (failed,) = checkov.parse(report(check()))
    passed_check = check(check_result={"result": "PASSED"}, file_line_range=[3, 10])
    (passed,) = checkov.parse(report(passed=(passed_check,)))
    assert passed.source_id == failed.source_id
    assert (failed.status, passed.status) == ("open", "resolved")


def test_identity_ignores_lines_names_and_the_scan_directory() -> None:
    (base,) = checkov.parse(report(check()))
    moved = check(file_line_range=[20, 28], check_name="Reworded", file_path="/infra/s3.tf")
    (again,) = checkov.parse(report(moved))
    assert again.source_id == base.source_id
    (other,) = checkov.parse(report(check(resource="aws_s3_bucket.logs")))
    assert other.source_id != base.source_id
    assert base.resource.tags == {"owner": "data-team", "env": "prod"}


def test_skipped_checks_are_suppressed_with_their_comment() -> None:
    skipped = check(check_result={"result": "SKIPPED", "suppress_comment": "public website bucket"})
    document = report()
    document["results"]["skipped_checks"] = [skipped]
    (finding,) = checkov.parse(document)
    assert finding.status == "suppressed"
    assert finding.context["suppress_comment"] == "public website bucket"


def test_severity_labels_from_the_platform() -> None:
    labels = ["CRITICAL", "HIGH", "LOW", "INFO", "bogus", None]
    checks = [check(resource=f"aws_s3_bucket.b{i}", severity=label) for i, label in enumerate(labels)]
    findings = checkov.parse(report(*checks))
    assert [f.severity_label for f in findings] == [
        "critical",
        "high",
        "low",
        "informational",
        "medium",
        "medium",
    ]


def test_the_secrets_framework_masks_the_hash_of_the_secret() -> None:
    secret_hash = "25910f981e85ca04baf359199dd0bd4a3ae738b6"
    secret_check = check(
        check_id="CKV_SECRET_2",
        check_name="AWS Access Key",
        resource=secret_hash,
        code_block=[[3, 'aws_access_key_id = "AKIA************"\n']],
        file_path="/config.env",
        repo_file_path="/config.env",
    )
    (finding,) = checkov.parse(report(secret_check, check_type="secrets"))
    assert finding.resource.id == "2591…(40)"
    assert finding.title == "CKV_SECRET_2: AWS Access Key (2591…(40))"
    assert_no_secret(finding, secret_hash)
    assert "code_block" not in finding.raw


def test_rewording_names_and_descriptions_changes_no_source_id() -> None:
    for name in ("checkov-report-multiple-check_type.json", "checkov-report-severity.json"):
        document = sample(name)
        reworded = copy.deepcopy(document)
        for block in reworded if isinstance(reworded, list) else [reworded]:
            for items in block["results"].values():
                for item in items or []:
                    for key in ("check_name", "description", "short_description", "guideline"):
                        if isinstance(item.get(key), str):
                            item[key] = f"Reworded: {item[key]}"
                    item["details"] = ["Reworded detail"]
        assert reworded != document
        assert source_ids(checkov.parse(reworded)) == source_ids(checkov.parse(document))


def test_parsing_again_gives_identical_findings() -> None:
    document = sample("checkov-report-multiple-check_type.json")
    first = [f.model_dump(mode="json") for f in checkov.parse(document)]
    assert first == [f.model_dump(mode="json") for f in checkov.parse(copy.deepcopy(document))]


def test_repeated_keys_in_one_report_are_numbered_in_line_order() -> None:
    findings = checkov.parse(report(check(file_line_range=[30, 40]), check(file_line_range=[1, 8])))
    assert findings[0].source_id == f"{findings[1].source_id}#2"


def test_not_a_checkov_report_names_the_missing_field() -> None:
    with pytest.raises(ValueError, match=r"\$\.check_type is missing"):
        checkov.parse({"results": {}})
    with pytest.raises(ValueError, match=r"\$\[1\]\.results is missing"):
        checkov.parse([report(), {"check_type": "terraform"}])
    with pytest.raises(ValueError, match=r"\$\.results\.failed_checks\[0\]\.check_id is missing"):
        checkov.parse(report({"check_name": "x"}))
    with pytest.raises(ValueError, match=r"\$\.results\.passed_checks must be an array"):
        checkov.parse({"check_type": "terraform", "results": {"passed_checks": {}}})
    with pytest.raises(ValueError, match=r"\$ must be an object"):
        checkov.parse("checkov")


def test_detect_accepts_checkov_and_rejects_other_formats() -> None:
    trivy = json.loads((SCANNERS / "trivy" / "scheme_2_many_vulns.json").read_text(encoding="utf-8"))
    asff = json.loads((SCANNERS / "asff" / "one_vuln.json").read_text(encoding="utf-8"))
    guardduty = json.loads(next((AWS / "guardduty").glob("*.json")).read_text(encoding="utf-8"))
    native = {"findings": [{"source": "x", "type": "t", "title": "t", "severity": "low"}]}
    sarif = {"version": "2.1.0", "runs": []}
    assert_detect_conformance(
        checkov,
        positives=[*(sample(name) for name in EXPECTED), [report(check())]],
        negatives=[trivy, asff, guardduty, native, sarif, {"check_type": "terraform"}, None, []],
    )
