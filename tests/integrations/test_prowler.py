"""The Prowler parser: Prowler 2 JSON lines, Prowler 3 JSON and (through the ocsf parser) Prowler 4+ OCSF."""

from __future__ import annotations

import copy
import json
from collections import Counter
from typing import Any

import pytest

from integrations import registry
from integrations.sources import ocsf, prowler
from integrations.testing import NOT_A_DOCUMENT, assert_detect_conformance, assert_parser_conformance
from tests.samples import AWS, SCANNERS

# file -> (findings we produce, DefectDojo's count; see samples/scanners/INDEX.md). We keep every result:
# FAIL open, PASS resolved (so a re-scan closes what an earlier one found), INFO open with confidence 25
# (Prowler 4 renamed it MANUAL, which the ocsf parser keeps the same way); DefectDojo keeps FAIL only.
# * aws_prowler/many_vuln.json: 6 JSON lines, 4 FAIL + 1 Pass + 1 Info -> 6 findings; DefectDojo 4.
# * The .ocsf.json files and the empty lists go through the ocsf parser; their counts and the reasons they
#   differ from DefectDojo's are in test_ocsf.py.
EXPECTED: dict[str, tuple[int, int]] = {
    "aws_prowler/many_vuln.json": (6, 4),  # JSON lines
    "aws_prowler/one_vuln.json": (1, 1),  # one JSON object
    "aws_prowler_v3plus/many_vuln.json": (3, 3),
    "aws_prowler_v3plus/one_vuln.json": (1, 1),
    "aws_prowler_v3plus/no_vuln.json": (0, 0),
}
OCSF = (
    "aws_prowler_v3plus/many_vuln.ocsf.json",
    "aws_prowler_v3plus/no_vuln.ocsf.json",
    "aws_prowler_v3plus/one_vuln.ocsf.json",
    "aws_prowler_v3plus/one_vuln_after_4_5_0.ocsf.json",
    "prowler/example_output_aws.ocsf.json",
    "prowler/example_output_azure.ocsf.json",
    "prowler/example_output_kubernetes.ocsf.json",
    "prowler/prowler_zero_vul.json",
)
FOLDERS = ("aws_prowler", "aws_prowler_v3plus", "prowler")
PLACEHOLDER = {"<finding_uid>"}  # Prowler's documentation samples (see test_ocsf.py)


def load(relative: str) -> Any:
    """A sample as the endpoint hands it over: JSON, or JSON lines as the list of their objects."""
    body = (SCANNERS / relative).read_text(encoding="utf-8")
    try:
        return json.loads(body)
    except json.JSONDecodeError:
        return [json.loads(line) for line in body.splitlines() if line.strip()]


def v3(**overrides: Any) -> dict[str, Any]:
    item: dict[str, Any] = copy.deepcopy(load("aws_prowler_v3plus/one_vuln.json")[0])
    item.update(overrides)
    return item


def v2(**overrides: Any) -> dict[str, Any]:
    item: dict[str, Any] = load("aws_prowler/one_vuln.json")
    item.update(overrides)
    return item


def test_every_json_sample_in_the_folders_is_accounted_for() -> None:
    found = {f"{folder}/{p.name}" for folder in FOLDERS for p in (SCANNERS / folder).glob("*.json")}
    assert found == set(EXPECTED) | set(OCSF)


@pytest.mark.parametrize("relative", sorted(EXPECTED))
def test_sample_conforms_and_counts_match(relative: str) -> None:
    document = load(relative)
    findings = assert_parser_conformance(prowler, document)
    ours, defectdojo = EXPECTED[relative]
    assert len(findings) == ours
    assert sum(f.status == "open" and f.confidence is None for f in findings) == defectdojo  # the FAILs
    if findings:
        assert registry.detect_all(document) == ["prowler"]
    assert [f.source_id for f in prowler.parse(document)] == [f.source_id for f in findings]


@pytest.mark.parametrize("relative", OCSF)
def test_ocsf_documents_are_read_by_the_ocsf_parser(relative: str) -> None:
    document = load(relative)
    findings = assert_parser_conformance(prowler, document, genuine_duplicates=PLACEHOLDER)
    assert [f.model_dump() for f in findings] == [f.model_dump() for f in ocsf.parse(document)]
    assert not prowler.detect(document)  # detected as ocsf, which gives the same findings


def test_detect_accepts_prowler_json_and_rejects_other_formats() -> None:
    positives = [load(relative) for relative, (count, _) in EXPECTED.items() if count]
    positives += [v2(), [v2()], v3()]
    negatives: list[Any] = [
        *NOT_A_DOCUMENT,
        *(load(relative) for relative in OCSF),
        *(json.loads(p.read_text(encoding="utf-8")) for p in (SCANNERS / "trivy").glob("*.json")),
        *(json.loads(p.read_text(encoding="utf-8")) for p in (SCANNERS / "asff").glob("*.json")),
        *(json.loads(p.read_text(encoding="utf-8")) for p in (AWS / "guardduty").glob("*.json")),
        {"findings": [{"source": "x", "type": "t", "title": "t", "severity": "low"}]},
        [{"CheckID": "x"}],
    ]
    assert_detect_conformance(prowler, positives=positives, negatives=negatives)


def test_prowler_2_golden_fields() -> None:
    findings = prowler.parse(load("aws_prowler/many_vuln.json"))
    statuses = Counter((f.type, f.status.value, f.confidence) for f in findings)
    assert statuses == {
        ("check11", "resolved", None): 1,  # Pass
        ("check114", "open", None): 1,
        ("extra796", "open", None): 1,
        ("extra794", "open", None): 1,
        ("check116", "open", None): 1,
        ("check117", "open", 25): 1,  # Info: a manual check
    }
    mfa = findings[1]
    assert mfa.source == "prowler"
    assert mfa.source_id == "prowler-aws-check114-012345678912-eu-central-1-MFA"
    assert mfa.title == "Ensure hardware MFA is enabled for the root account"
    assert mfa.description == "eu-central-1: Only Virtual MFA is enabled for root"
    assert mfa.severity_label == "critical"
    assert (mfa.resource.id, mfa.resource.account_id, mfa.resource.region) == (
        "MFA",
        "012345678912",
        "eu-central-1",
    )
    assert mfa.references == [
        "https://docs.aws.amazon.com/IAM/latest/UserGuide/id_root-user.html#id_root-user_manage_mfa"
    ]
    assert (
        mfa.remediation
        == "Using IAM console navigate to Dashboard and expand Activate MFA on your root account."
    )
    assert mfa.observed_at is not None and mfa.observed_at.isoformat() == "2021-08-23T06:38:46+00:00"
    assert mfa.context["control_id"] == "1.14"
    assert mfa.context["service"] == "iam"
    assert mfa.context["status_code"] == "FAIL"
    assert mfa.context["risk"].startswith("The root account is the most privileged user")


def test_prowler_3_golden_fields() -> None:
    (acm,) = prowler.parse(load("aws_prowler_v3plus/one_vuln.json"))
    assert acm.source_id == (
        "prowler-aws-acm_certificates_expiration_check-999999999999-us-east-1-api.sandbox.partner.teste.com"
    )
    assert acm.type == "acm_certificates_expiration_check"
    assert acm.title == "Check if ACM Certificates are about to expire in specific days or less"
    assert acm.description is not None
    assert acm.description.startswith("ACM Certificate for api.sandbox.partner.teste.com is about to expire")
    assert acm.severity_label == "high"
    assert acm.status == "open"
    assert acm.resource.type == "AwsCertificateManagerCertificate"
    assert (
        acm.resource.id
        == "arn:aws:acm:us-east-1:999999999999:certificate/ffffffff-0000-0000-0000-000000000000"
    )
    assert (acm.resource.account_id, acm.resource.region) == ("999999999999", "us-east-1")
    assert acm.references == [
        "https://docs.aws.amazon.com/config/latest/developerguide/acm-certificate-expiration-check.html"
    ]
    assert acm.remediation is not None and acm.remediation.startswith("Monitor certificate expiration")
    assert acm.context["compliance"]["frameworks"]["GDPR"] == ["article_32"]
    assert acm.context["event_code"] == "acm_certificates_expiration_check"
    assert acm.observed_at is not None and acm.observed_at.isoformat() == "2023-04-25T23:49:42.744599+00:00"


def test_v3_json_and_ocsf_give_a_check_on_a_resource_the_same_key() -> None:
    """Prowler 4's OCSF uid is Prowler 3's FindingUniqueId formula: an upgrade keeps the findings."""
    ocsf_finding = ocsf.parse(load("aws_prowler_v3plus/many_vuln.ocsf.json"))[0]
    as_v3 = v3(
        FindingUniqueId="",
        CheckID="iam_role_administratoraccess_policy_permissive_trust_relationship",
        AccountId="123456789012",
        Region="us-east-1",
        ResourceId="myAdministratorExecutionRole",
    )
    (v3_finding,) = prowler.parse([as_v3])
    assert (v3_finding.source, v3_finding.source_id) == (ocsf_finding.source, ocsf_finding.source_id)


@pytest.mark.parametrize(
    ("status", "expected", "confidence"),
    [
        ("FAIL", "open", None),
        ("PASS", "resolved", None),
        ("WARNING", "suppressed", None),  # Prowler 3's allowlist
        ("INFO", "open", 25),
        ("MANUAL", "open", 25),
    ],
)
def test_status(status: str, expected: str, confidence: int | None) -> None:
    (finding,) = prowler.parse([v3(Status=status)])
    assert (finding.status, finding.confidence) == (expected, confidence)
    (legacy,) = prowler.parse(v2(Status=status.capitalize()))
    assert (legacy.status, legacy.confidence) == (expected, confidence)


def test_muted_result_is_suppressed() -> None:
    (finding,) = prowler.parse([v3(Muted=True)])
    assert finding.status == "suppressed"


def test_a_pass_closes_the_earlier_fail_of_the_same_check_and_resource() -> None:
    (failed,) = prowler.parse([v3(Status="FAIL")])
    (passed,) = prowler.parse([v3(Status="PASS", StatusExtended="ACM Certificate is fine.")])
    assert passed.source_id == failed.source_id
    assert (failed.status, passed.status) == ("open", "resolved")


def test_missing_unique_id_is_built_with_prowlers_formula() -> None:
    item = v3()
    (given,) = prowler.parse([item])
    (built,) = prowler.parse([v3(FindingUniqueId="", ResourceId="api.sandbox.partner.teste.com")])
    assert built.source_id == given.source_id
    azure = v3(Provider="azure", FindingUniqueId="", AccountId="", Region="", Subscription="sub-1")
    assert prowler.parse([azure])[0].source_id == (
        "prowler-azure-acm_certificates_expiration_check-sub-1-api.teste.teste.com"
    )


def test_results_sharing_a_key_are_one_finding_and_a_fail_wins() -> None:
    items = [v2(Status="PASS", Message="a"), v2(Status="FAIL", Message="b"), v2(Status="PASS", Message="c")]
    (finding,) = assert_parser_conformance(prowler, items)
    assert finding.status == "open"
    assert finding.description == "b"
    assert finding.context["results"] == 3


def test_rewording_every_description_changes_no_source_id() -> None:
    for relative in EXPECTED:
        document = load(relative)
        reworded = copy.deepcopy(document)
        for item in reworded if isinstance(reworded, list) else [reworded]:
            for key in (
                "Message",
                "Risk",
                "Remediation",
                "StatusExtended",
                "Description",
                "CheckTitle",
                "Notes",
            ):
                if isinstance(item.get(key), str):
                    item[key] = f"Reworded {key}."
            if isinstance(item.get("Remediation"), dict):
                item["Remediation"] = {
                    "Recommendation": {"Text": "Reworded.", "Url": "https://example.com/x"}
                }
            item["Severity"] = "low"
        before = [f.source_id for f in prowler.parse(document)]
        assert [f.source_id for f in prowler.parse(reworded)] == before, relative


def test_remediation_code_urls_are_references_and_commands_notes() -> None:
    code = {
        "CLI": "aws acm renew-certificate --certificate-arn x",
        "Other": "https://hub.prowler.com/x",
        "Terraform": "",
    }
    item = v3(
        Remediation={"Code": code, "Recommendation": {"Text": "Renew.", "Url": "https://docs.example.com/r"}}
    )
    (finding,) = prowler.parse([item])
    assert finding.references == [
        "https://docs.aws.amazon.com/config/latest/developerguide/acm-certificate-expiration-check.html",
        "https://docs.example.com/r",
        "https://hub.prowler.com/x",
    ]
    assert finding.context["remediation_notes"] == ["CLI: aws acm renew-certificate --certificate-arn x"]


def test_resource_tags_in_either_shape() -> None:
    listed = v3(ResourceTags=[{"Key": "env", "Value": "prod"}])
    mapped = v3(ResourceTags={"env": "prod"})
    assert prowler.parse([listed])[0].resource.tags == {"env": "prod"}
    assert prowler.parse([mapped])[0].resource.tags == {"env": "prod"}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("text", r"^not a Prowler JSON document: expected a list .* got str$"),
        (
            [{"a": 1}],
            r"^not a Prowler JSON result: \$\[0\]\.CheckID \(Prowler 3\) or \$\[0\]\.Control \(Prowler 2\) is missing",
        ),
        (
            {"a": 1},
            r"^not a Prowler JSON result: \$\.CheckID \(Prowler 3\) or \$\.Control \(Prowler 2\) is missing",
        ),
        ([{"CheckID": "x"}], r"^not a Prowler 3 JSON result: \$\[0\]\.Status is missing$"),
        ([v2(), {"Control": "[check1] x"}], r"^not a Prowler 2 JSON result: \$\[1\]\.Status is missing$"),
        ([v2(), 3], r"^not a Prowler result: \$\[1\] is a int, not an object$"),
    ],
)
def test_errors_name_the_format_and_the_json_path(document: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        prowler.parse(document)
