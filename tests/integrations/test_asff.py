"""The ASFF parser against every ASFF sample (AWS docs, ASR test data, DefectDojo) and its identity rules."""

from __future__ import annotations

import copy
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from app.contracts import NormalizedFinding
from app.pipeline.fingerprint import identity_of
from integrations import registry
from integrations.sources import asff
from integrations.sources.asff import products
from integrations.testing import NOT_A_DOCUMENT, assert_detect_conformance, assert_parser_conformance
from tests.samples import AWS, SCANNERS

# file -> (findings we produce, the source they carry, DefectDojo's expected count or None).
# DefectDojo agrees on every file it has a count for; it keeps PASSED control findings too (as inactive),
# which is why its config_many_findings count is 3 although all three passed: we keep them as resolved.
EXPECTED: dict[str, tuple[int, str, int | None]] = {
    "aws/securityhub/asr_afsbp-ec2.1.json": (1, "securityhub", None),
    "aws/securityhub/asr_afsbp-rds.1.json": (1, "securityhub", None),
    "aws/securityhub/asr_afsbp-s3.2.json": (1, "securityhub", None),
    "aws/securityhub/asr_cis15111.json": (1, "securityhub", None),
    "aws/securityhub/asr_pci-s3.1.json": (1, "securityhub", None),
    "aws/securityhub/awscli_batch-import-findings_input_custom-product.json": (
        1,
        "123456789012-default",
        None,
    ),
    "aws/securityhub/awsdocs_sample-control-finding_cis-1.2.0.json": (1, "securityhub", None),
    "aws/securityhub/awsdocs_sample-control-finding_cis-1.4.0.json": (1, "securityhub", None),
    "aws/securityhub/awsdocs_sample-control-finding_consolidated-across-standards.json": (
        1,
        "securityhub",
        None,
    ),
    "aws/securityhub/awsdocs_sample-control-finding_fsbp.json": (1, "securityhub", None),
    "aws/securityhub/awsdocs_sample-control-finding_nist-800-53-r5.json": (1, "securityhub", None),
    "aws/securityhub/awsdocs_sample-control-finding_pci-dss.json": (1, "securityhub", None),
    "aws/securityhub/awsdocs_sample-control-finding_service-managed-control-tower.json": (
        1,
        "securityhub",
        None,
    ),
    "aws/eventbridge/asr_CIS-1.3_findings-imported.json": (1, "securityhub", None),
    "aws/eventbridge/asr_CIS_1-6-multi-select_custom-action_2-findings.json": (2, "securityhub", None),
    "aws/eventbridge/asr_afsbp-ec2.7_findings-imported.json": (1, "securityhub", None),
    "scanners/asff/many_vulns.json": (5, "inspector", 5),
    "scanners/asff/one_vuln.json": (1, "inspector", 1),
    # Prowler 3.3 `-M json-asff`: 286 FAILED, 441 PASSED, 4 INFOED; DefectDojo's test has no count for it.
    "scanners/asff/prowler-output.asff.json": (731, "prowler", None),
    "scanners/asff/guardduty/Unusual Behaviors-User-Persistence IAMUser-NetworkPermissions.json": (
        1,
        "guardduty",
        None,
    ),
    "scanners/awssecurityhub/config_many_findings.json": (3, "securityhub", 3),  # all PASSED -> resolved
    "scanners/awssecurityhub/config_multiple_resources.json": (2, "securityhub", 2),
    "scanners/awssecurityhub/config_one_finding.json": (1, "securityhub", 1),
    "scanners/awssecurityhub/config_one_finding_active.json": (1, "securityhub", 1),
    "scanners/awssecurityhub/inspector_ec2_cve.json": (5, "inspector", 5),
    "scanners/awssecurityhub/inspector_ec2_cve_no_vulnerabilities.json": (1, "inspector", 1),
    "scanners/awssecurityhub/inspector_ec2_ghsa.json": (1, "inspector", 1),
    "scanners/awssecurityhub/inspector_ecr.json": (7, "inspector", 7),
    "scanners/awssecurityhub/issue_10956.json": (1, "inspector", 1),
    "scanners/awssecurityhub/missing_account_id.json": (1, "inspector", 1),
}
# JSON files in the same folders that are not ASFF, and what they are.
NOT_ASFF = {
    "aws/eventbridge/awsdocs_eventbridge_macie-finding-event_truncated.json": "native Macie event (macie)",
    "aws/eventbridge/guardduty-finding-event_Backdoor-EC2-Spambot_via-sns.json": "native GuardDuty event",
    # Amazon Inspector2's own ListFindings JSON (camelCase, findingArn): not ASFF, no parser yet.
    "scanners/aws_inspector2/aws_inspector2_many_vul.json": "Inspector2 JSON",
    "scanners/aws_inspector2/aws_inspector2_one_vul.json": "Inspector2 JSON",
    "scanners/aws_inspector2/aws_inspector2_package_vuln_metadata.json": "Inspector2 JSON",
    "scanners/aws_inspector2/aws_inspector2_package_vuln_metadata_multi_cwe_fabricated.json": "Inspector2 JSON",
    "scanners/aws_inspector2/aws_inspector2_zero_vul.json": "Inspector2 JSON, no findings",
    "scanners/aws_inspector2/empty_with_error.json": "an empty object",
}
FOLDERS = (
    "aws/securityhub",
    "aws/eventbridge",
    "scanners/asff",
    "scanners/awssecurityhub",
    "scanners/aws_inspector2",
)
# Prowler 3.3 gave two sub-checks of one user the same Id (one PASSED, one FAILED): genuinely one ASFF
# finding reported twice; Security Hub would keep whichever it imported last.
PROWLER_REPEATS = {
    "prowler-iam_disable_30_days_credentials-123456789012-eu-west-1-2bb0c5a32",
    "prowler-iam_disable_45_days_credentials-123456789012-eu-west-1-2bb0c5a32",
    "prowler-iam_disable_90_days_credentials-123456789012-eu-west-1-2bb0c5a32",
}
GUARDDUTY_SAMPLE = (
    "scanners/asff/guardduty/Unusual Behaviors-User-Persistence IAMUser-NetworkPermissions.json"
)


def path_of(relative: str) -> Path:
    root, rest = relative.split("/", 1)
    return (AWS if root == "aws" else SCANNERS) / rest


def load(relative: str) -> Any:
    return json.loads(path_of(relative).read_text(encoding="utf-8"))


def one(relative: str, index: int = 0) -> NormalizedFinding:
    return asff.parse(load(relative))[index]


def test_every_json_sample_in_the_folders_is_accounted_for() -> None:
    found = {
        f"{folder}/{p.relative_to(path_of(folder)).as_posix()}"
        for folder in FOLDERS
        for p in path_of(folder).rglob("*.json")
        if "ocsf" not in p.relative_to(path_of(folder)).parts  # OCSF: see test_ocsf.py
    }
    assert found == set(EXPECTED) | set(NOT_ASFF)


@pytest.mark.parametrize("relative", sorted(EXPECTED))
def test_sample_conforms_and_counts_match(relative: str) -> None:
    document = load(relative)
    ours, source, defectdojo = EXPECTED[relative]
    findings = assert_parser_conformance(
        asff, document, expect_source=source, genuine_duplicates=PROWLER_REPEATS
    )
    assert len(findings) == ours
    assert defectdojo is None or defectdojo == ours
    assert asff.detect(document)
    assert registry.detect(document) == "asff"


@pytest.mark.parametrize("relative", sorted(NOT_ASFF))
def test_other_formats_in_the_folders_are_refused_or_empty(relative: str) -> None:
    document = load(relative)
    assert not asff.detect(document)
    if relative.endswith("zero_vul.json"):
        assert asff.parse(document) == []  # {"findings": []}: an empty list in any format
        return
    with pytest.raises(ValueError, match=r"not an ASFF (finding|document)"):
        asff.parse(document)


def test_detect_accepts_every_asff_sample_and_rejects_other_formats() -> None:
    negatives: list[Any] = [
        *NOT_A_DOCUMENT,
        *(load(relative) for relative in NOT_ASFF),
        *(json.loads(p.read_text(encoding="utf-8")) for p in (AWS / "guardduty").glob("*.json")),
        *(json.loads(p.read_text(encoding="utf-8")) for p in (AWS / "macie").glob("*.json")),
        *(json.loads(p.read_text(encoding="utf-8")) for p in (SCANNERS / "trivy").glob("*.json")),
        load("aws/securityhub/ocsf/prowler_example_output_aws.ocsf.json"),
        {"findings": [{"source": "x", "type": "t", "title": "t", "severity": "low"}]},
        {"Findings": []},
        {"detail-type": "Findings Imported V2", "detail": {"findings": [{"class_uid": 2004}]}},
    ]
    assert_detect_conformance(asff, positives=[load(relative) for relative in EXPECTED], negatives=negatives)


def test_guardduty_through_security_hub() -> None:
    finding = one(GUARDDUTY_SAMPLE)
    arn = (
        "arn:aws:guardduty:eu-west-1:123456789012:detector/cab6a714deb3b739eaddacbdfd5ef2f2/finding/"
        "d6badb90e557d4bd811488a53ca89895"
    )
    assert (finding.source, finding.source_id) == (
        "guardduty",
        "123456789012:eu-west-1:d6badb90e557d4bd811488a53ca89895",
    )
    assert finding.aliases == [arn, f"asff:arn:aws:securityhub:eu-west-1::product/aws/guardduty|{arn}"]
    assert finding.type == "Persistence:IAMUser/NetworkPermissions"
    assert finding.title == "Unusual changes to network permissions by GeneratedFindingUserName."
    assert finding.severity_label == "medium"
    assert finding.occurrences == 2  # ProductFields aws/guardduty/service/count
    assert finding.status == "open"
    assert finding.resource.type == "AwsEc2Instance"
    assert finding.resource.id == "arn:aws:ec2:eu-west-1:123456789012:instance/i-99999999"
    assert (finding.resource.account_id, finding.resource.region) == ("123456789012", "eu-west-1")
    assert len(finding.resource.tags) == 9
    assert finding.resource.public is False  # 198.51.100.0 is a documentation address, not a public one
    assert [r["type"] for r in finding.context["resources"]] == ["AwsEc2Instance", "AwsIamAccessKey"]
    assert finding.first_observed_at is not None and finding.first_observed_at.isoformat().startswith(
        "2020-11-11"
    )
    assert finding.observed_at is not None and finding.observed_at.isoformat().startswith(
        "2020-11-28T23:11:30"
    )
    fields = finding.context["product_fields"]
    assert fields["aws/guardduty/service/action/actionType"] == "AWS_API_CALL"
    assert "aws/guardduty/service/count" not in fields and "aws/guardduty/service/eventLastSeen" not in fields
    assert not any(key.startswith("aws/securityhub/") for key in fields)
    assert finding.references == [
        "https://eu-west-1.console.aws.amazon.com/guardduty/home?region=eu-west-1#/findings?macros=current"
        "&fId=d6badb90e557d4bd811488a53ca89895"
    ]


def _as_asff(native_detail: dict[str, Any]) -> dict[str, Any]:
    """The ASFF Security Hub makes of a GuardDuty finding: its ARN is the Id (fields we read only)."""
    region = native_detail["region"]
    return {
        "SchemaVersion": "2018-10-08",
        "Id": native_detail["arn"],
        "ProductArn": f"arn:aws:securityhub:{region}::product/aws/guardduty",
        "GeneratorId": native_detail["arn"].split("/finding/")[0],
        "AwsAccountId": native_detail["accountId"],
        "Types": ["TTPs/Command and Control/Backdoor:EC2-Spambot"],
        "Severity": {"Label": "MEDIUM", "Normalized": 50, "Product": native_detail["severity"]},
        "Title": native_detail["title"],
        "Description": native_detail["description"],
        "ProductFields": {"aws/guardduty/service/count": str(native_detail["service"]["count"])},
        "Resources": [{"Type": "AwsEc2Instance", "Id": "i-99999999", "Region": region}],
        "RecordState": "ACTIVE",
    }


def test_guardduty_identity_equals_the_native_key_of_the_same_finding() -> None:
    detail = load("aws/eventbridge/guardduty-finding-event_Backdoor-EC2-Spambot_via-sns.json")["detail"]
    finding = asff.parse(_as_asff(detail))[0]
    native_key = f"{detail['accountId']}:{detail['region']}:{detail['id']}"
    assert finding.source_id == native_key == "303697492861:ca-central-1:7ebc050b71c556086b524045c9067feb"
    native = NormalizedFinding(
        source="guardduty", source_id=native_key, type=detail["type"], title="t", severity=50
    )
    assert identity_of(finding).fingerprint == identity_of(native).fingerprint
    assert detail["arn"] in identity_of(finding).alias_keys
    assert finding.type == detail["type"] == "Backdoor:EC2/Spambot"
    assert finding.occurrences == 1


def test_guardduty_without_a_count_says_one_so_relays_do_not_inflate_the_count() -> None:
    """Security Hub relays a GuardDuty finding on every update; without GuardDuty's own count the copy
    says 1, which the pipeline's max rule treats as "add nothing" to what the direct path counted."""
    document = _as_asff(
        load("aws/eventbridge/guardduty-finding-event_Backdoor-EC2-Spambot_via-sns.json")["detail"]
    )
    del document["ProductFields"]
    assert asff.parse(document)[0].occurrences == 1


def test_guardduty_with_a_bare_id_uses_account_and_finding_region() -> None:
    document = _as_asff(
        load("aws/eventbridge/guardduty-finding-event_Backdoor-EC2-Spambot_via-sns.json")["detail"]
    )
    document["Id"] = "7ebc050b71c556086b524045c9067feb"
    finding = asff.parse(document)[0]
    assert finding.source_id == "303697492861:ca-central-1:7ebc050b71c556086b524045c9067feb"
    assert finding.aliases == [f"asff:{document['ProductArn']}|7ebc050b71c556086b524045c9067feb"]


def macie_asff(finding_id: str) -> dict[str, Any]:
    """A Macie finding as Security Hub shows it (no real sample exists; fields from the Macie user guide)."""
    return {
        "SchemaVersion": "2018-10-08",
        "Id": finding_id,
        "ProductArn": "arn:aws:securityhub:us-east-1::product/aws/macie",
        "ProductName": "Macie",
        "CompanyName": "Amazon",
        "Region": "us-east-1",
        "GeneratorId": "aws/macie",
        "AwsAccountId": "111122223333",
        "Types": ["Sensitive Data Identifications/PII/SensitiveData:S3Object-Personal"],
        "Severity": {"Label": "HIGH", "Normalized": 70},
        "Title": "The S3 object contains personal information.",
        "Description": "The object contains personal information such as names or addresses.",
        "ProductFields": {"S3Bucket.effectivePermission": "PUBLIC", "S3Object.PublicAccess": "true"},
        "Resources": [
            {"Type": "AwsS3Bucket", "Id": "arn:aws:s3:::doc-example-bucket", "Region": "us-east-1"},
            {"Type": "AwsS3Object", "Id": "arn:aws:s3:::doc-example-bucket/sales.csv", "Region": "us-east-1"},
        ],
        "RecordState": "ACTIVE",
        "Workflow": {"Status": "NEW"},
    }


@pytest.mark.parametrize(
    "finding_id",
    [
        "5be50fce24526e670df0d7bf3d9f5bd3",
        "arn:aws:macie2:us-east-1:111122223333:finding/5be50fce24526e670df0d7bf3d9f5bd3",
    ],
)
def test_macie_through_security_hub(finding_id: str) -> None:
    finding = assert_parser_conformance(asff, macie_asff(finding_id), expect_source="macie")[0]
    assert finding.source_id == "111122223333:us-east-1:5be50fce24526e670df0d7bf3d9f5bd3"
    assert f"asff:arn:aws:securityhub:us-east-1::product/aws/macie|{finding_id}" in finding.aliases
    assert finding.type == "SensitiveData:S3Object/Personal"
    assert finding.resource.public is True
    assert finding.context["public_reason"] == "S3Bucket.effectivePermission is PUBLIC"
    assert finding.occurrences == 1  # a relayed copy never adds to the direct path's count


def test_unrecognised_guardduty_id_keeps_the_asff_identity() -> None:
    document = copy.deepcopy(load(GUARDDUTY_SAMPLE))[0]
    document["Id"] = "guardduty/some/other/shape"
    finding = asff.parse(document)[0]
    assert (finding.source, finding.source_id) == ("guardduty", "guardduty/some/other/shape")


def test_control_finding() -> None:
    finding = one("aws/securityhub/awsdocs_sample-control-finding_fsbp.json")
    assert finding.source == "securityhub"
    assert finding.source_id == (
        "arn:aws:securityhub:us-east-2:123456789012:subscription/aws-foundational-security-best-practices/v/1.0.0/"
        "CloudTrail.2/finding/a1b2c3d4-5678-90ab-cdef-EXAMPLE11111"
    )
    assert finding.aliases == [
        f"asff:arn:aws:securityhub:us-east-2::product/aws/securityhub|{finding.source_id}"
    ]
    assert finding.type == "CloudTrail.2"
    assert finding.title == "CloudTrail.2 CloudTrail should have encryption at-rest enabled"
    assert finding.severity_label == "medium"
    assert finding.status == "open"
    assert finding.remediation == (
        "For directions on how to correct this issue, consult the AWS Security Hub controls documentation."
    )
    assert finding.references == ["https://docs.aws.amazon.com/console/securityhub/CloudTrail.2/remediation"]
    assert finding.resource.type == "AwsCloudTrailTrail"
    assert finding.resource.account_id == "123456789012" and finding.resource.region == "us-east-2"
    assert finding.context["compliance"] == {
        "status": "FAILED",
        "security_control_id": "CloudTrail.2",
        "associated_standards": ["standards/aws-foundation-best-practices/v/1.0.0"],
    }
    assert finding.context["product"] == "Security Hub" and finding.context["company"] == "AWS"
    assert finding.context["workflow_status"] == "NEW" and finding.context["record_state"] == "ACTIVE"
    assert finding.context["product_fields"]["ControlId"] == "CloudTrail.2"


def test_consolidated_control_finding_keeps_its_own_id_and_lists_standards() -> None:
    per_standard = one("aws/securityhub/awsdocs_sample-control-finding_fsbp.json")
    consolidated = one("aws/securityhub/awsdocs_sample-control-finding_consolidated-across-standards.json")
    assert consolidated.type == per_standard.type == "CloudTrail.2"
    assert consolidated.source_id != per_standard.source_id  # Security Hub gives them different Ids
    assert ":security-control/CloudTrail.2/finding/" in (consolidated.source_id or "")
    assert consolidated.severity_label == "medium"  # from "Normalized": "40" as well as the label
    assert len(consolidated.context["compliance"]["associated_standards"]) == 5
    assert consolidated.context["compliance"]["related_requirements"][0] == "PCI DSS v3.2.1/3.4"


def test_statuses_of_the_samples() -> None:
    assert one("aws/securityhub/asr_afsbp-s3.2.json").status == "resolved"  # PASSED
    warning = one("aws/securityhub/asr_cis15111.json")
    assert warning.status == "open"
    assert warning.context["compliance"]["status_reasons"] == ["CONFIG_ACCESS_DENIED"]
    assert warning.type == "arn:aws:securityhub:::ruleset/cis-aws-foundations-benchmark/v/1.2.0/rule/1.6"
    event = asff.parse(load("aws/eventbridge/asr_CIS_1-6-multi-select_custom-action_2-findings.json"))
    assert [f.status for f in event] == ["open", "resolved"]
    prowler = Counter(
        f.status.value for f in asff.parse(load("scanners/asff/prowler-output.asff.json")) if f.status
    )
    assert prowler == {"resolved": 441, "open": 290}  # 286 FAILED + 4 INFOED open


@pytest.mark.parametrize(
    ("changes", "status"),
    [
        ({"Workflow": {"Status": "SUPPRESSED"}}, "suppressed"),
        ({"Workflow": {"Status": "NOTIFIED"}}, "open"),
        ({"Workflow": {"Status": "RESOLVED"}}, "resolved"),
        ({"RecordState": "ARCHIVED"}, "resolved"),
        ({"Compliance": {"Status": "PASSED"}, "Workflow": {"Status": "SUPPRESSED"}}, "resolved"),
        ({"Compliance": {"Status": "NOT_AVAILABLE"}}, "open"),
        ({"Workflow": None, "WorkflowState": "RESOLVED"}, "resolved"),
    ],
)
def test_status_rules(changes: dict[str, Any], status: str) -> None:
    document = load("aws/securityhub/awsdocs_sample-control-finding_fsbp.json")
    document.update(changes)
    assert asff.parse(document)[0].status == status


def test_inspector_vulnerability() -> None:
    finding = one("scanners/asff/one_vuln.json")
    assert finding.source == "inspector"
    assert (
        finding.source_id
        == "arn:aws:inspector2:eu-west-1:123456789123:finding/e7dd7a6979b7ce39de463533b1e6cd44"
    )
    assert finding.type == "CVE-2017-9735"
    assert finding.severity_label == "high"
    assert finding.references[0] == "https://nvd.nist.gov/vuln/detail/CVE-2017-9735"
    assert len(finding.references) == 12
    assert finding.context["cve"] == "CVE-2017-9735"
    assert (finding.context["cvss_score"], finding.context["cvss_version"]) == (7.5, "3.1")
    assert finding.context["fix_available"] == "YES" and finding.context["exploit_available"] == "YES"
    vulnerability = finding.context["vulnerabilities"][0]
    assert len(vulnerability["cvss"]) == 2  # the repeated NVD 3.1 entry is folded
    assert [p["name"] for p in vulnerability["packages"]] == [
        "org.eclipse.jetty:jetty-server",
        "org.eclipse.jetty:jetty-util",
    ]
    assert vulnerability["packages"][0]["fixed_in"] == "9.4.6.v20170531"
    assert finding.resource.public is True
    assert finding.context["public_reason"] == "AwsEc2Instance has the public address 123.123.123.123"
    assert finding.resource.tags == {"Name": "MyWebServer"}


def test_inspector_ghsa_ecr_and_missing_account() -> None:
    ghsa = one("scanners/awssecurityhub/inspector_ec2_ghsa.json")
    assert ghsa.type == "GHSA-p98r-538v-jgw5"
    assert ghsa.context["cve"] == "CVE-2023-34256"  # from RelatedVulnerabilities
    assert ghsa.references[:2] == [
        "https://github.com/advisories/GHSA-p98r-538v-jgw5",
        "https://nvd.nist.gov/vuln/detail/CVE-2023-34256",
    ]
    ecr = one("scanners/awssecurityhub/inspector_ecr.json")
    assert ecr.resource.type == "AwsEcrContainerImage" and ecr.resource.region == "eu-central-1"
    no_account = one("scanners/awssecurityhub/missing_account_id.json")
    assert no_account.resource.account_id == "1234567"  # from the finding ARN in Id
    assert no_account.resource.public is False  # 0.0.0.0 is not a public address
    assert no_account.context["cvss_score"] == 7.5  # "BaseScore": "7.5", a string
    bare = one("scanners/awssecurityhub/inspector_ec2_cve_no_vulnerabilities.json")
    assert bare.type == "AWSInspector" and "cve" not in bare.context


def test_third_party_and_custom_products() -> None:
    prowler = asff.parse(load("scanners/asff/prowler-output.asff.json"))
    first = prowler[0]
    assert (first.source, first.source_id) == (
        "prowler",
        "prowler-accessanalyzer_enabled-123456789012-ap-northeast-1-fb33278bd",
    )
    assert first.type == "prowler-accessanalyzer_enabled"
    assert first.severity_label == "low"
    assert first.context["compliance"]["associated_standards"] == ["CIS-1.5", "CIS-1.4"]
    assert first.context["product_fields"] == {
        "ProviderName": "Prowler",
        "ProviderVersion": "3.3.0",
        "ProwlerResourceName": "123456789012",
    }
    assert first.first_observed_at is not None and first.observed_at is not None
    custom = one("aws/securityhub/awscli_batch-import-findings_input_custom-product.json")
    assert (custom.source, custom.source_id) == ("123456789012-default", "Id1")
    assert custom.severity_label == "low"  # FindingProviderFields.Severity.Label, no top-level Severity
    assert custom.type == "TestGeneratorId"
    assert custom.context["types"] == ["Software and Configuration Checks/Vulnerabilities/CVE"]
    assert custom.context["severity_original"] == "10"


def test_product_name_is_display_text_and_the_arn_names_the_source() -> None:
    findings = asff.parse(load("scanners/awssecurityhub/config_multiple_resources.json"))
    assert [f.source for f in findings] == ["securityhub", "securityhub"]
    assert [f.context["product"] for f in findings] == ["Security Hub", "Config"]
    assert [len(f.context["resources"]) for f in findings] == [3, 2]
    assert findings[1].resource.id == "arn:aws:s3:::zeta-reports-bucket"


@pytest.mark.parametrize(
    ("product_arn", "source"),
    [
        ("arn:aws:securityhub:us-east-1::product/aws/securityhub", "securityhub"),
        ("arn:aws:securityhub:us-east-1::product/aws/config", "config"),
        ("arn:aws:securityhub:us-east-1::product/aws/firewall-manager", "firewall-manager"),
        ("arn:aws-us-gov:securityhub:us-gov-west-1::product/aws/inspector", "inspector"),
        ("arn:aws:securityhub:us-east-1::product/prowler/prowler", "prowler"),
        (
            "arn:aws:securityhub:us-east-1::product/crowdstrike/crowdstrike-falcon",
            "crowdstrike-crowdstrike-falcon",
        ),
        ("arn:aws:securityhub:us-east-1::product/Palo Alto/Prisma Cloud", "palo-alto-prisma-cloud"),
        ("arn:aws:securityhub:us-east-1:111122223333:product/111122223333/default", "111122223333-default"),
        ("arn:aws:securityhub:us-east-1::productv2/aws/guardduty", "guardduty"),
        ("not-an-arn", None),
    ],
)
def test_product_source_names(product_arn: str, source: str | None) -> None:
    assert products.source_from_product_arn(product_arn) == source


def test_source_of_a_malformed_product_arn_falls_back_to_the_names() -> None:
    document = load("aws/securityhub/awsdocs_sample-control-finding_fsbp.json")
    document["ProductArn"] = "securityhub"
    document["ProductName"], document["CompanyName"] = "Acme Scanner", "Acme Corp"
    finding = asff.parse(document)[0]
    assert finding.source == "acme-corp-acme-scanner"
    assert finding.aliases == [f"asff:securityhub|{finding.source_id}"]


@pytest.mark.parametrize(
    ("severity", "label"),
    [
        ({"Severity": {"Label": "CRITICAL", "Normalized": 10}}, "critical"),
        ({"Severity": {"Normalized": "72"}}, "high"),
        ({"Severity": {"Product": 5}, "FindingProviderFields": {"Severity": {"Label": "HIGH"}}}, "high"),
        ({"Severity": {"Product": 30}}, "low"),
        ({"Severity": {"Label": "bogus", "Normalized": 95}}, "critical"),
    ],
)
def test_severity_order(severity: dict[str, Any], label: str) -> None:
    document = load("aws/securityhub/awsdocs_sample-control-finding_fsbp.json")
    del document["FindingProviderFields"]
    document.update(severity)
    assert asff.parse(document)[0].severity_label == label


@pytest.mark.parametrize(
    ("kind", "detail", "public"),
    [
        ("AwsRdsDbInstance", {"PubliclyAccessible": True}, True),
        ("AwsRdsDbInstance", {"PubliclyAccessible": False}, False),
        ("AwsElbv2LoadBalancer", {"Scheme": "internet-facing"}, True),
        ("AwsElbv2LoadBalancer", {"Scheme": "internal"}, False),
        ("AwsEc2NetworkInterface", {"PrivateIpAddresses": [{"Association": {"PublicIp": "8.8.8.8"}}]}, True),
        ("AwsEc2Instance", {"IpV6Addresses": ["2a00:1450:4001:80b::200e"]}, True),
        ("AwsEc2Instance", {"IpV4Addresses": ["10.0.0.1", "not-an-ip"]}, False),
    ],
)
def test_public_exposure_from_resource_details(kind: str, detail: dict[str, Any], public: bool) -> None:
    document = load("aws/securityhub/awsdocs_sample-control-finding_fsbp.json")
    document["Resources"][0]["Details"] = {kind: detail}
    assert asff.parse(document)[0].resource.public is public


def test_network_reachability_is_public() -> None:
    document = load("scanners/asff/one_vuln.json")[0]
    document.update(
        Title="Port 22 is reachable from an Internet Gateway - TCP",
        Types=["Software and Configuration Checks/AWS Security Best Practices/Network Reachability"],
        Resources=[{"Type": "AwsEc2Instance", "Id": "i-1", "Region": "eu-west-1"}],
    )
    del document["Vulnerabilities"]
    finding = asff.parse(document)[0]
    assert finding.resource.public is True
    assert finding.context["public_reason"] == "network reachability: reachable from the internet"


def test_layouts_give_the_same_findings() -> None:
    single = load("aws/securityhub/awsdocs_sample-control-finding_fsbp.json")
    expected = asff.parse(single)
    event = {"version": "0", "detail-type": "Security Hub Findings - Imported", "source": "aws.securityhub"}
    for document in (
        [single],
        {"Findings": [single]},
        {"findings": [single]},
        {**event, "detail": {"findings": [single]}},
    ):
        assert asff.detect(document)
        assert asff.parse(document) == expected
    assert asff.parse([]) == [] and asff.parse({"Findings": []}) == []


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("text", r"^not an ASFF document: expected a finding.*got str$"),
        ({"SchemaVersion": 2, "Results": []}, r"^not an ASFF finding: \$\.Id is missing$"),
        ([{"Id": "x"}], r"^not an ASFF finding: \$\[0\]\.ProductArn is missing$"),
        ({"Findings": "x"}, r"^not an ASFF document: \$\.Findings must be a list, got str$"),
        (
            {"detail-type": "Findings Imported V2", "detail": {"findings": []}},
            r"carries OCSF findings; use format ocsf$",
        ),
        (
            {"detail-type": "GuardDuty Finding", "source": "aws.guardduty", "detail": {"id": "x"}},
            r"^not an ASFF document: EventBridge event 'GuardDuty Finding' has no \$\.detail\.findings list",
        ),
    ],
)
def test_documents_that_are_not_asff_name_the_path(document: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        asff.parse(document)


def test_a_bad_finding_in_a_batch_names_its_index() -> None:
    good = load("aws/securityhub/awsdocs_sample-control-finding_fsbp.json")
    no_severity = {
        key: value for key, value in good.items() if key not in ("Severity", "FindingProviderFields")
    }
    cases = [
        (
            {"Findings": [good, {**good, "ProductArn": ""}]},
            r"^not an ASFF finding: \$\.Findings\[1\]\.ProductArn is missing$",
        ),
        (
            {"Findings": [good, good, "x"]},
            r"^not an ASFF finding: \$\.Findings\[2\] is a str, not an object$",
        ),
        (
            [good, no_severity],
            r"^\$\[1\]\.Severity: no Label, Normalized or FindingProviderFields\.Severity\.Label$",
        ),
        ([{**good, "Resources": {"Id": "x"}}], r"^\$\[0\]\.Resources: expected a list, got dict$"),
    ]
    for document, message in cases:
        with pytest.raises(ValueError, match=message):
            asff.parse(document)


def test_hostile_values_stay_within_the_contract() -> None:
    document = load("aws/securityhub/awsdocs_sample-control-finding_fsbp.json")
    document["Title"] = "t" * 5000
    document["Resources"][0]["Tags"] = {f"k{i}": "v" * 2000 for i in range(150)} | {"": "empty", "n": None}
    document["SourceUrl"] = "javascript:alert(1)"
    document["Confidence"] = 300
    finding = assert_parser_conformance(asff, document, expect_source="securityhub")[0]
    assert len(finding.title) == 512
    assert len(finding.resource.tags) == 100 and {len(v) for v in finding.resource.tags.values()} == {1024}
    assert "javascript:alert(1)" not in finding.references
    assert finding.confidence is None
