"""The OCSF parser against Prowler's OCSF samples and Security Hub's OCSF (V2) findings."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from app.pipeline.fingerprint import identity_of
from integrations import registry
from integrations.sources import asff, ocsf
from integrations.testing import NOT_A_DOCUMENT, assert_detect_conformance, assert_parser_conformance
from tests.samples import AWS, SCANNERS

# file -> (findings we produce, DefectDojo's expected count or None). Differences, each deliberate:
# * DefectDojo's "Prowler Scan" parser keeps FAIL and MANUAL results, drops PASS and merges items whose
#   description and title are equal: the Kubernetes sample lists one check twice, so it counts 3 of 4. We
#   keep both items (and every finding of Prowler's documentation samples carries the placeholder uid
#   `<finding_uid>`, so the pipeline would merge them all into one: a sample artifact, kept as given).
# * DefectDojo's "AWS Prowler V3" parser drops FAIL results muted by Prowler's mutelist (status
#   Suppressed): 2 of 3 in many_vuln.ocsf.json. We keep it, as a suppressed finding.
EXPECTED: dict[str, tuple[int, int | None]] = {
    "aws/securityhub/ocsf/prowler_example_output_aws.ocsf.json": (5, None),  # 2 FAIL, 3 MANUAL
    "scanners/prowler/example_output_aws.ocsf.json": (3, 3),  # 2 FAIL, 1 MANUAL
    "scanners/prowler/example_output_azure.ocsf.json": (3, 3),
    "scanners/prowler/example_output_kubernetes.ocsf.json": (4, 3),
    "scanners/prowler/prowler_zero_vul.json": (0, 0),  # an empty list
    "scanners/aws_prowler_v3plus/many_vuln.ocsf.json": (3, 2),
    "scanners/aws_prowler_v3plus/no_vuln.ocsf.json": (0, 0),
    "scanners/aws_prowler_v3plus/one_vuln.ocsf.json": (1, 1),
    "scanners/aws_prowler_v3plus/one_vuln_after_4_5_0.ocsf.json": (1, 1),
}
# Prowler v3's own JSON (CheckID, Status...), not OCSF; no_vuln.json is an empty list in that format.
NOT_OCSF = ("scanners/aws_prowler_v3plus/many_vuln.json", "scanners/aws_prowler_v3plus/one_vuln.json")
FOLDERS = ("aws/securityhub/ocsf", "scanners/prowler", "scanners/aws_prowler_v3plus")
PLACEHOLDER = {"<finding_uid>"}
V3PLUS = "scanners/aws_prowler_v3plus/many_vuln.ocsf.json"
GD_ARN = (
    "arn:aws:guardduty:us-east-1:111122223333:detector/12abc34d567e8fa901bc2d34e56789f0/finding/"
    "60baffd3f9042e38640f2300d5c5a631"
)


def path_of(relative: str) -> Path:
    root, rest = relative.split("/", 1)
    return (AWS if root == "aws" else SCANNERS) / rest


def load(relative: str) -> Any:
    return json.loads(path_of(relative).read_text(encoding="utf-8"))


def test_every_json_sample_in_the_folders_is_accounted_for() -> None:
    found = {f"{folder}/{p.name}" for folder in FOLDERS for p in path_of(folder).glob("*.json")}
    assert found == set(EXPECTED) | set(NOT_OCSF) | {"scanners/aws_prowler_v3plus/no_vuln.json"}


@pytest.mark.parametrize("relative", sorted(EXPECTED))
def test_sample_conforms_and_counts_match(relative: str) -> None:
    document = load(relative)
    findings = assert_parser_conformance(
        ocsf, document, expect_source="prowler", genuine_duplicates=PLACEHOLDER
    )
    ours, _defectdojo = EXPECTED[relative]
    assert len(findings) == ours
    if findings:
        assert ocsf.detect(document)
        assert registry.detect_all(document) == ["ocsf"]


@pytest.mark.parametrize("relative", NOT_OCSF)
def test_prowler_v3_json_is_not_ocsf(relative: str) -> None:
    document = load(relative)
    assert not ocsf.detect(document)
    with pytest.raises(ValueError, match=r"^not an OCSF finding: \$\[0\]\.class_uid is missing$"):
        ocsf.parse(document)


def test_detect_accepts_ocsf_and_rejects_other_formats() -> None:
    positives = [load(relative) for relative, (count, _) in EXPECTED.items() if count]
    positives += [
        v2_event(guardduty_detection()),
        {"Findings": [guardduty_detection()]},
        guardduty_detection(),
    ]
    negatives: list[Any] = [
        *NOT_A_DOCUMENT,
        *(load(relative) for relative in NOT_OCSF),
        *(json.loads(p.read_text(encoding="utf-8")) for p in (SCANNERS / "trivy").glob("*.json")),
        *(json.loads(p.read_text(encoding="utf-8")) for p in (AWS / "guardduty").glob("*.json")),
        *(json.loads(p.read_text(encoding="utf-8")) for p in (AWS / "eventbridge").glob("*.json")),
        *(json.loads(p.read_text(encoding="utf-8")) for p in (AWS / "securityhub").glob("*.json")),
        {**guardduty_detection(), "class_uid": 2005},
        {"findings": [{"source": "x", "type": "t", "title": "t", "severity": "low"}]},
    ]
    assert_detect_conformance(ocsf, positives=positives, negatives=negatives)
    for document in positives:
        assert not asff.detect(document)


def test_prowler_v4_detection_finding() -> None:
    first, _second, muted = ocsf.parse(load(V3PLUS))
    assert first.source == "prowler"
    assert first.source_id == (
        "prowler-aws-iam_role_administratoraccess_policy_permissive_trust_relationship-123456789012-us-east-1-"
        "myAdministratorExecutionRole"
    )
    assert first.aliases == []
    assert first.type == "iam_role_administratoraccess_policy_permissive_trust_relationship"
    assert first.title == (
        "Ensure IAM Roles with attached AdministratorAccess policy have a well defined trust relationship"
    )
    assert first.description == (
        "IAM Role myAdministratorExecutionRole has AdministratorAccess policy attached that has too permissive "
        "trust relationship."
    )
    assert first.severity_label == "high"
    assert first.status == "open"
    assert first.confidence is None
    assert first.resource.type == "AwsIamRole"
    assert first.resource.id == "arn:aws:iam::123456789012:role/myAdministratorExecutionRole"
    assert (first.resource.account_id, first.resource.region) == ("123456789012", "us-east-1")
    assert first.remediation is not None and first.remediation.startswith(
        "Apply the principle of least privilege."
    )
    assert first.references == [
        "https://docs.aws.amazon.com/IAM/latest/UserGuide/best-practices.html#grant-least-privilege",
        "https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies_job-functions.html#jf_administrator",
    ]
    assert (
        first.observed_at is not None and first.observed_at.isoformat() == "2024-06-03T14:15:19.382075+00:00"
    )
    assert first.first_observed_at == first.observed_at  # created_time as ISO text (Prowler 4.2)
    assert first.context["status_code"] == "FAIL" and first.context["class_uid"] == 2004
    assert first.context["categories"] == ["trustboundaries"]
    assert first.context["resources"][0]["group"] == "iam"
    assert muted.status == "suppressed"  # status Suppressed (status_id 3 is on the others too: ignored)


def test_prowler_v5_sample_with_manual_results_and_placeholders() -> None:
    findings = ocsf.parse(load("aws/securityhub/ocsf/prowler_example_output_aws.ocsf.json"))
    assert [(f.context["status_code"], f.status, f.confidence) for f in findings] == [
        ("FAIL", "open", None),
        ("MANUAL", "open", 25),
        ("FAIL", "open", None),
        ("MANUAL", "open", 25),
        ("MANUAL", "open", 25),
    ]
    first = findings[0]
    assert first.source_id == "<finding_uid>"  # placeholders kept as given
    assert first.resource.account_id == "<account_uid>" and first.resource.region == "<region>"
    assert first.title == "Check if IAM Access Analyzer is enabled"
    assert (
        first.description == "IAM Access Analyzer in account <account_uid> is not enabled."
    )  # desc == title
    assert first.severity_label == "low"
    assert first.context["remediation_notes"] == [
        "aws accessanalyzer create-analyzer --analyzer-name <NAME> --type <ACCOUNT|ORGANIZATION>"
    ]
    assert first.references == [
        "https://docs.aws.amazon.com/IAM/latest/UserGuide/what-is-access-analyzer.html"
    ]
    assert first.context["compliance"]["frameworks"]["CIS-1.4"] == ["1.20"]
    assert first.first_observed_at is not None and first.first_observed_at.isoformat().startswith(
        "2025-02-14T14:27:03"
    )


def test_kubernetes_labels_are_tags() -> None:
    finding = ocsf.parse(load("scanners/prowler/example_output_kubernetes.ocsf.json"))[0]
    assert finding.resource.type == "KubernetesAPIServer"
    assert finding.resource.tags == {"component": "kube-apiserver", "tier": "control-plane"}
    assert finding.resource.account_id is None and finding.resource.region is None
    assert finding.context["resources"][0]["namespace"] == "<namespace>"
    azure = ocsf.parse(load("scanners/prowler/example_output_azure.ocsf.json"))[0]
    assert (azure.resource.id, azure.resource.region, azure.context["cloud_provider"]) == (
        "AppInsights",
        "global",
        "azure",
    )


def guardduty_detection() -> dict[str, Any]:
    """A GuardDuty finding as Security Hub (V2, OCSF) sends it; built from the OCSF schema, no sample exists."""
    return {
        "class_uid": 2004,
        "class_name": "Detection Finding",
        "category_uid": 2,
        "activity_id": 1,
        "type_uid": 200401,
        "severity_id": 4,
        "severity": "High",
        "status_id": 1,
        "status": "New",
        "time": 1735689600000,
        "count": 3,
        "confidence_score": 80,
        "metadata": {
            "version": "1.1.0",
            "product": {
                "name": "GuardDuty",
                "vendor_name": "AWS",
                "uid": "arn:aws:securityhub:us-east-1::productv2/aws/guardduty",
            },
        },
        "finding_info": {
            "uid": GD_ARN,
            "title": "Unusual outbound communication on port 25 from EC2 instance i-99999999.",
            "desc": "EC2 instance i-99999999 is communicating with a remote host on port 25.",
            "types": ["Backdoor:EC2/Spambot"],
            "created_time": 1735603200000,
            "first_seen_time_dt": "2024-12-30T00:00:00Z",
        },
        "cloud": {"provider": "AWS", "region": "us-east-1", "account": {"uid": "111122223333"}},
        "resources": [
            {
                "type": "AWS::EC2::Instance",
                "uid": "arn:aws:ec2:us-east-1:111122223333:instance/i-99999999",
                "region": "us-east-1",
                "tags": [{"name": "env", "value": "prod"}],
            }
        ],
    }


def v2_event(*findings: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "CWE-event-id",
        "detail-type": "Findings Imported V2",
        "source": "aws.securityhub",
        "account": "111122223333",
        "time": "2025-01-01T00:00:00Z",
        "region": "us-east-1",
        "resources": ["e51603d1054aad9d9f498d82d6e81acf4cf6bc88140e8ad2273123c73b81084"],
        "detail": {"findings": list(findings)},
    }


def test_guardduty_through_security_hub_v2_has_the_native_key() -> None:
    finding = assert_parser_conformance(ocsf, v2_event(guardduty_detection()), expect_source="guardduty")[0]
    assert finding.source_id == "111122223333:us-east-1:60baffd3f9042e38640f2300d5c5a631"
    assert finding.aliases == [GD_ARN]
    assert finding.type == "Backdoor:EC2/Spambot"
    assert finding.severity_label == "high"
    assert (finding.occurrences, finding.confidence) == (3, 80)
    assert finding.resource.tags == {"env": "prod"}
    assert finding.observed_at is not None and finding.observed_at.isoformat() == "2025-01-01T00:00:00+00:00"
    assert finding.first_observed_at is not None and finding.first_observed_at.isoformat().startswith(
        "2024-12-30"
    )
    assert finding.context["finding_uid"] == GD_ARN
    through_asff = asff.parse(
        {
            "SchemaVersion": "2018-10-08",
            "Id": GD_ARN,
            "ProductArn": "arn:aws:securityhub:us-east-1::product/aws/guardduty",
            "GeneratorId": GD_ARN.split("/finding/")[0],
            "AwsAccountId": "111122223333",
            "Severity": {"Label": "HIGH"},
            "Title": "Unusual outbound communication on port 25 from EC2 instance i-99999999.",
        }
    )[0]
    assert identity_of(finding).fingerprint == identity_of(through_asff).fingerprint


def test_security_hub_compliance_and_vulnerability_findings() -> None:
    control = copy.deepcopy(guardduty_detection())
    control.update(
        class_uid=2003,
        class_name="Compliance Finding",
        compliance={
            "control": "S3.8",
            "standards": ["standards/aws-foundational-security-best-practices/v/1.0.0"],
            "status": "Pass",
        },
        metadata={"product": {"name": "Security Hub", "vendor_name": "AWS"}},
    )
    control["finding_info"]["uid"] = (
        "arn:aws:securityhub:us-east-1:111122223333:security-control/S3.8/finding/abc"
    )
    vulnerability = copy.deepcopy(guardduty_detection())
    vulnerability.update(
        class_uid=2002,
        metadata={"product": {"name": "Inspector", "vendor_name": "Amazon"}},
        vulnerabilities=[
            {
                "cve": {
                    "uid": "CVE-2023-2650",
                    "cvss": [{"version": "3.1", "base_score": 6.5, "vector_string": "CVSS:3.1/AV:N"}],
                },
                "affected_packages": [
                    {"name": "openssl", "version": "1.1.1n", "fixed_in_version": "1.1.1n-0+deb11u5"}
                ],
                "references": ["https://security-tracker.debian.org/tracker/CVE-2023-2650"],
                "fix_available": True,
            }
        ],
    )
    vulnerability["finding_info"]["uid"] = "arn:aws:inspector2:us-east-1:111122223333:finding/fbd353dd"
    compliance, vuln = ocsf.parse(v2_event(control, vulnerability))
    assert (compliance.source, compliance.type, compliance.status) == ("securityhub", "S3.8", "resolved")
    assert compliance.context["compliance"]["control"] == "S3.8"
    assert (vuln.source, vuln.type) == ("inspector", "CVE-2023-2650")
    assert vuln.source_id == "arn:aws:inspector2:us-east-1:111122223333:finding/fbd353dd"
    assert vuln.references[:2] == [
        "https://nvd.nist.gov/vuln/detail/CVE-2023-2650",
        "https://security-tracker.debian.org/tracker/CVE-2023-2650",
    ]
    assert vuln.context["vulnerabilities"][0]["packages"][0]["fixed_in"] == "1.1.1n-0+deb11u5"


@pytest.mark.parametrize(
    ("changes", "status"),
    [
        ({"status": "Resolved"}, "resolved"),
        ({"status": "Archived"}, "resolved"),
        ({"status": "In Progress", "status_code": "PASS"}, "resolved"),
        ({"status": None, "status_id": 3}, "suppressed"),
        ({"status": None, "status_id": 4}, "resolved"),
        ({"status": "New", "status_id": 4}, "open"),  # the text wins over a contradicting id
    ],
)
def test_status_rules(changes: dict[str, Any], status: str) -> None:
    document = guardduty_detection()
    document.update(changes)
    assert ocsf.parse(document)[0].status == status


@pytest.mark.parametrize(
    ("changes", "label"),
    [
        ({"severity_id": 6, "severity": "Fatal"}, "critical"),
        ({"severity_id": 1}, "informational"),
        ({"severity_id": 99, "severity": "Moderate"}, "medium"),
        ({"severity_id": 0, "severity": "Unknown"}, "low"),
        ({"severity_id": None, "severity": None}, "low"),
    ],
)
def test_severity_rules(changes: dict[str, Any], label: str) -> None:
    document = guardduty_detection()
    document.update(changes)
    assert ocsf.parse(document)[0].severity_label == label


def test_epoch_seconds_and_milliseconds() -> None:
    document = guardduty_detection()
    document["finding_info"] = {"uid": "x-1", "title": "t", "created_time": 1739539623}
    document["time"] = 1739539623000
    finding = ocsf.parse(document)[0]
    assert finding.first_observed_at == finding.observed_at
    assert finding.observed_at is not None and finding.observed_at.isoformat() == "2025-02-14T13:27:03+00:00"


def test_ocsf_1_0_security_finding() -> None:
    document = {
        "class_uid": 2001,
        "metadata": {"product": {"name": "Scanner", "vendor_name": "Acme"}},
        "finding": {"uid": "acme-1", "title": "Weak TLS", "desc": "TLS 1.0 is enabled."},
        "severity_id": 3,
        "state": "Resolved",
        "resources": [{"uid": "lb-1", "type": "LoadBalancer"}],
    }
    finding = assert_parser_conformance(ocsf, [document], expect_source="acme-scanner")[0]
    assert (finding.source_id, finding.title, finding.status) == ("acme-1", "Weak TLS", "resolved")


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (42, r"^not an OCSF document: expected a finding.*got int$"),
        ({"Findings": {}}, r"^not an OCSF document: \$\.Findings must be a list, got dict$"),
        ([{"uid": "x"}], r"^not an OCSF finding: \$\[0\]\.class_uid is missing$"),
        (
            [guardduty_detection(), {**guardduty_detection(), "finding_info": {"title": "t"}}],
            r"^not an OCSF finding: \$\[1\]\.finding_info\.uid is missing$",
        ),
        (
            [{**guardduty_detection(), "class_uid": 2005}],
            r"^\$\[0\]\.class_uid: 2005 is not an OCSF finding class we read",
        ),
        (v2_event("x"), r"^not an OCSF finding: \$\.detail\.findings\[0\] is a str, not an object$"),
        (
            {"detail-type": "Security Hub Findings - Imported", "detail": {"findings": []}},
            r"carries ASFF findings; use format asff$",
        ),
        (
            {"detail-type": "Macie Finding", "detail": {}},
            r"^not an OCSF document: EventBridge event 'Macie Finding'",
        ),
    ],
)
def test_documents_that_are_not_ocsf_name_the_path(document: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ocsf.parse(document)
