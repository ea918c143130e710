"""The Macie parser against the shared samples: identity, severity, the bucket, and no data locations kept."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from integrations import registry
from integrations.sources import asff, macie
from integrations.testing import NOT_A_DOCUMENT, assert_detect_conformance, assert_parser_conformance
from tests.samples import AWS, SCANNERS

SAMPLES = AWS / "macie"
EVENT = AWS / "eventbridge" / "awsdocs_eventbridge_macie-finding-event_truncated.json"
CSV = "aws-samples_macie-reveal_csv.json"
POLICY = "awscli_macie2_get-findings_output_1.json"
PARTIAL = "awscli_macie2_get-findings_output_2.json"

# file -> findings it holds (read from the files). The second AWS CLI example is an excerpt with no id,
# account, region or resource: nothing could recognise it when it is reported again, so it is refused.
EXPECTED: dict[str, int | str] = {
    "aws-samples_macie-reveal_avro.json": 1,
    CSV: 1,
    "aws-samples_macie-reveal_json.json": 1,
    "aws-samples_macie-reveal_parquet.json": 1,
    "aws-samples_macie-reveal_path-with-spaces.json": 1,
    POLICY: 1,
    PARTIAL: r"not a Macie finding: \$\.findings\[0\]: missing 'id'",
}
# What the occurrences of a detection hold: where the sensitive values are. None may reach the output.
LOCATION_KEYS = (
    "cellReference",
    "columnName",
    "jsonPath",
    "recordIndex",
    "lineRanges",
    "offsetRanges",
    "pageNumber",
)


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def sample(name: str) -> Any:
    return load(SAMPLES / name)


def test_every_sample_file_has_an_expected_outcome() -> None:
    assert sorted(p.name for p in SAMPLES.glob("*.json")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_conforms_and_counts(name: str) -> None:
    document = sample(name)
    assert macie.detect(document)
    assert registry.detect(document) == "macie"
    expected = EXPECTED[name]
    if isinstance(expected, str):
        with pytest.raises(ValueError, match=expected):
            macie.parse(document)
        return
    findings = assert_parser_conformance(macie, document)
    assert len(findings) == expected


def test_eventbridge_sample_conforms() -> None:
    document = load(EVENT)
    (finding,) = assert_parser_conformance(macie, document)
    assert finding.source_id == "123456789012:us-east-1:64b917aa-3843-014c-91d8-937ffexample"
    assert finding.aliases == [
        "arn:aws:macie2:us-east-1:123456789012:finding/64b917aa-3843-014c-91d8-937ffexample"
    ]
    assert finding.severity_label == "low"
    assert finding.occurrences == 2
    assert (
        finding.first_observed_at is not None
        and finding.first_observed_at.isoformat() == "2021-04-29T15:46:02+00:00"
    )
    assert finding.observed_at is not None and finding.observed_at.isoformat() == "2021-04-29T23:12:15+00:00"
    assert finding.raw == document["detail"]
    assert registry.detect(document) == "macie"


def test_golden_sensitive_data_finding() -> None:
    (finding,) = macie.parse(sample(CSV))
    assert finding.source == "macie"
    assert finding.source_id == "555555555555:us-east-1:00000000000000000000000000000001"
    assert finding.aliases == [
        "arn:aws:macie2:us-east-1:555555555555:finding/00000000000000000000000000000001"
    ]
    assert finding.type == "SensitiveData:S3Object/Multiple"
    assert finding.severity_label == "high"
    assert finding.data_sensitivity == "high"
    resource = finding.resource
    assert resource.type == "AwsS3Bucket"
    assert resource.id == "arn:aws:s3:::DOC-EXAMPLE-BUCKET1"  # the bucket, so bucket ownership routes it
    assert resource.tags == {}
    assert resource.public is False
    assert (resource.account_id, resource.region) == ("555555555555", "us-east-1")
    assert finding.occurrences == 1
    assert finding.status == "open"
    assert finding.location is None
    assert finding.context["object_key"] == "macie-workshop/sample-data.csv"
    assert finding.context["sensitive_data"][:2] == [
        {"category": "FINANCIAL_INFORMATION", "type": "CREDIT_CARD_NUMBER", "count": 30},
        {"category": "PERSONAL_INFORMATION", "type": "USA_SOCIAL_SECURITY_NUMBER", "count": 30},
    ]
    assert finding.context["sensitive_data_total"] == 166
    assert finding.description is not None
    assert "Object: s3://DOC-EXAMPLE-BUCKET1/macie-workshop/sample-data.csv" in finding.description
    assert "FINANCIAL_INFORMATION: CREDIT_CARD_NUMBER \u00d730" in finding.description
    assert (
        "PERSONAL_INFORMATION: USA_SOCIAL_SECURITY_NUMBER \u00d730, PHONE_NUMBER \u00d728"
        in finding.description
    )


def test_golden_policy_finding_reads_the_label_before_an_out_of_range_score() -> None:
    (finding,) = macie.parse(sample(POLICY))
    assert finding.source_id == "123456789012:us-east-1:64ed80b084b5b7b985b12345"
    assert finding.type == "Policy:IAMUser/S3BucketPublicReadAccess"
    assert finding.severity_label == "high"  # description High; the score 7.4 is outside Macie's 1-3
    assert finding.context["macie_severity"] == {"description": "High", "score": 7.4}
    assert finding.resource.id == "arn:aws:s3:::amzn-s3-demo-bucket"
    assert finding.resource.public is True  # effectivePermission PUBLIC
    assert finding.occurrences == 2
    assert finding.data_sensitivity is None  # about the bucket's configuration, not its data


@pytest.mark.parametrize("name", [n for n, expected in EXPECTED.items() if isinstance(expected, int)])
def test_no_data_location_reaches_the_output(name: str) -> None:
    document = sample(name)
    before = json.dumps(document)
    for finding in macie.parse(document):
        text = finding.model_dump_json()
        for key in LOCATION_KEYS:
            assert key not in text
    assert json.dumps(document) == before


def test_raw_keeps_everything_but_the_occurrences() -> None:
    document = sample(CSV)
    (finding,) = macie.parse(document)
    expected = copy.deepcopy(document)
    for group in expected["classificationDetails"]["result"]["sensitiveData"]:
        for detection in group["detections"]:
            del detection["occurrences"]
    expected["classificationDetails"]["result"]["customDataIdentifiers"]["detections"] = []
    assert finding.raw == expected


def with_detections(*groups: tuple[str, str], custom: int = 0) -> dict[str, Any]:
    finding = copy.deepcopy(sample(CSV))
    result = finding["classificationDetails"]["result"]
    result["sensitiveData"] = [
        {"category": category, "detections": [{"type": kind, "count": 2, "occurrences": {}}], "totalCount": 2}
        for category, kind in groups
    ]
    detections = [{"name": "employee-id", "arn": "arn:x", "count": custom, "occurrences": {"lineRanges": []}}]
    result["customDataIdentifiers"] = {"detections": detections if custom else [], "totalCount": custom}
    return finding


@pytest.mark.parametrize(
    ("finding", "expected"),
    [
        (with_detections(("CREDENTIALS", "AWS_CREDENTIALS")), "high"),
        (with_detections(("FINANCIAL_INFORMATION", "CREDIT_CARD_NUMBER")), "high"),
        (with_detections(("PERSONAL_INFORMATION", "NAME")), "high"),
        (with_detections(custom=4), "medium"),
        (with_detections(("PERSONAL_INFORMATION", "NAME"), custom=4), "high"),
        ({**with_detections(), "type": "SensitiveData:S3Object/Credentials"}, "high"),
        ({**with_detections(), "type": "SensitiveData:S3Object/CustomIdentifier"}, "medium"),
        ({**with_detections(), "type": "Policy:IAMUser/S3BucketSharedExternally"}, None),
    ],
)
def test_data_sensitivity(finding: dict[str, Any], expected: str | None) -> None:
    (parsed,) = assert_parser_conformance(macie, finding)
    assert parsed.data_sensitivity == expected


def test_custom_identifiers_are_counted_by_name() -> None:
    (parsed,) = macie.parse(with_detections(custom=4))
    assert parsed.context["sensitive_data"] == [
        {"category": "CUSTOM_IDENTIFIER", "type": "employee-id", "count": 4}
    ]
    assert parsed.description is not None and "CUSTOM_IDENTIFIER: employee-id \u00d74" in parsed.description


@pytest.mark.parametrize(
    ("severity", "label", "score"),
    [
        ({"description": "Low", "score": 3}, "low", 25.0),  # the label wins
        ({"description": "MEDIUM"}, "medium", 55.0),
        ({"score": 1}, "low", 25.0),
        ({"score": 2}, "medium", 55.0),
        ({"score": 3}, "high", 80.0),
        ({"score": 8.1}, "high", 81.0),  # out of Macie's range: read on a 0-10 scale
        ("High", "high", 80.0),
    ],
)
def test_severity(severity: Any, label: str, score: float) -> None:
    (parsed,) = macie.parse({**sample(CSV), "severity": severity})
    assert parsed.severity_label == label
    assert parsed.severity == score


@pytest.mark.parametrize("severity", [{"score": 40}, {"description": "Severe"}, {}, 3, None])
def test_unreadable_severity_is_refused(severity: Any) -> None:
    document = {**sample(CSV), "severity": severity}
    with pytest.raises(
        ValueError, match=r"not a Macie finding: \$(\.severity: expected|: missing 'severity')"
    ):
        macie.parse(document)


def test_public_object_and_bucket_tags() -> None:
    finding = copy.deepcopy(sample(CSV))
    finding["resourcesAffected"]["s3Object"]["publicAccess"] = True
    finding["resourcesAffected"]["s3Bucket"]["tags"] = [{"key": "owner", "value": "data-team"}]
    (parsed,) = macie.parse(finding)
    assert parsed.resource.public is True
    assert parsed.resource.tags == {"owner": "data-team"}


def test_archived_is_resolved_and_layouts_agree() -> None:
    finding = {**sample(CSV), "archived": True}
    (parsed,) = macie.parse(finding)
    assert parsed.status == "resolved"
    event = {"detail-type": "Macie Finding", "account": "1", "region": "x", "detail": finding}
    layouts = [[finding], {"findings": [finding]}, event, {"detail": finding}]
    for document in layouts:
        assert macie.detect(document)
        assert [f.model_dump() for f in assert_parser_conformance(macie, document)] == [parsed.model_dump()]


def test_envelope_fills_a_missing_account_and_region() -> None:
    finding = {k: v for k, v in sample(CSV).items() if k not in ("accountId", "region")}
    event = {
        "detail-type": "Macie Finding",
        "account": "210987654321",
        "region": "eu-west-1",
        "detail": finding,
    }
    (parsed,) = macie.parse(event)
    assert parsed.source_id == "210987654321:eu-west-1:00000000000000000000000000000001"
    assert parsed.aliases == [
        "arn:aws:macie2:eu-west-1:210987654321:finding/00000000000000000000000000000001"
    ]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            {"findings": [sample(CSV), {"type": "Policy:IAMUser/X", "severity": {"score": 1}}]},
            r"\$\.findings\[1\]: missing 'id'",
        ),
        ([{"id": "x", "severity": {"score": 1}}], r"\$\[0\]: missing 'type'"),
        ({"findings": [1]}, r"\$\.findings\[0\]: expected an object, got int"),
        ({"detail-type": "GuardDuty Finding", "detail": {}}, r"\$\.detail-type is 'GuardDuty Finding'"),
        ({"detail-type": "Macie Finding"}, r"\$\.detail: expected an object, got NoneType"),
        (42, "expected a finding object"),
    ],
)
def test_errors_name_the_format_and_the_path(document: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        macie.parse(document)
    assert str(error.value).startswith("not a Macie finding")


def test_detect() -> None:
    positives = [sample(name) for name in EXPECTED] + [load(EVENT)]
    others = [load(path) for path in sorted((AWS / "guardduty").glob("*.json"))]
    others += [load(path) for path in sorted((AWS / "securityhub").glob("*.json"))]
    others += [load(path) for path in sorted((AWS / "eventbridge").glob("*.json")) if path != EVENT]
    others += [load(path) for path in sorted((SCANNERS / "asff").rglob("*.json"))]
    others.append(load(SCANNERS / "trivy" / "scheme_2_many_vulns.json"))
    others.append({"findings": [{"source": "x", "type": "Policy:x", "title": "t", "severity": "high"}]})
    assert_detect_conformance(macie, positives, [*NOT_A_DOCUMENT, *others])


def test_registry_puts_macie_before_native() -> None:
    """``{"findings": [...]}`` is also the native batch's shape: Macie must be tried first."""
    document = sample(POLICY)
    assert registry.detect_all(document) == ["macie", "native"]
    assert registry.detect(document) == "macie"
    assert registry.get_parser("macie") is macie


def test_the_same_finding_through_security_hub_has_the_same_key() -> None:
    """Security Hub keys a Macie finding by its macie2 ARN: both paths must give one finding."""
    arn = "arn:aws:macie2:us-east-1:555555555555:finding/00000000000000000000000000000001"
    relayed_document = {
        "SchemaVersion": "2018-10-08",
        "Id": arn,
        "ProductArn": "arn:aws:securityhub:us-east-1::product/aws/macie",
        "GeneratorId": "aws/macie",
        "AwsAccountId": "555555555555",
        "Types": ["Sensitive Data Identifications/PII/SensitiveData:S3Object-Multiple"],
        "CreatedAt": "2021-10-25T23:25:04.250Z",
        "UpdatedAt": "2021-10-25T23:25:04.250Z",
        "Severity": {"Label": "HIGH"},
        "Title": "The S3 object contains multiple types of sensitive information.",
        "Description": "The object contains more than one type of sensitive information.",
        "Resources": [
            {"Type": "AwsS3Bucket", "Id": "arn:aws:s3:::DOC-EXAMPLE-BUCKET1", "Region": "us-east-1"}
        ],
    }
    (relayed,) = asff.parse(relayed_document)
    (direct,) = macie.parse(sample(CSV))
    assert (direct.source, direct.source_id) == (relayed.source, relayed.source_id)
    assert direct.aliases == [arn] and arn in relayed.aliases
    assert direct.resource.id == relayed.resource.id
    assert direct.severity_label == relayed.severity_label
