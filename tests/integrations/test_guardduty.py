"""The GuardDuty parser against the shared samples, in both casings and every accepted layout."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from app.contracts import NormalizedFinding
from integrations import registry
from integrations.sources import asff, guardduty
from integrations.testing import NOT_A_DOCUMENT, assert_detect_conformance, assert_parser_conformance
from tests.samples import AWS, SCANNERS

SAMPLES = AWS / "guardduty"
EVENT = AWS / "eventbridge" / "guardduty-finding-event_Backdoor-EC2-Spambot_via-sns.json"
CANARY = "aws-samples_gd-automated-response_ec2_Canary-EC2-Stateless.IntegTest.json"
RECON = "aws-samples_gd-automated-response_iam_Recon-IAMUser-MaliciousIPCaller.Custom.json"
PENTEST = "aws-samples_gd-automated-response_s3_PenTest-S3-ParrotLinux.json"
BRUTE_FORCE = "aws-samples_gd-waf-acl_test-event_SSHBruteForce.json"

# file -> findings it holds (read from the files: each is one finding, bare or in an event's detail).
EXPECTED = {CANARY: 1, RECON: 1, PENTEST: 1, BRUTE_FORCE: 1}


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def sample(name: str) -> Any:
    return load(SAMPLES / name)


def bare(name: str) -> dict[str, Any]:
    """The finding of a sample, out of its event envelope if it has one."""
    document = sample(name)
    found: dict[str, Any] = document.get("detail", document)
    return found


def pascal(node: Any) -> Any:
    """The boto3/CLI spelling of a REST document: every key with an upper-case first letter."""
    if isinstance(node, dict):
        return {key[:1].upper() + key[1:]: pascal(value) for key, value in node.items()}
    if isinstance(node, list):
        return [pascal(value) for value in node]
    return node


def dump(findings: list[NormalizedFinding]) -> list[dict[str, Any]]:
    return [finding.model_dump(mode="json", exclude={"raw"}) for finding in findings]


def test_every_sample_file_has_an_expected_count() -> None:
    assert sorted(p.name for p in SAMPLES.glob("*.json")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_conforms_and_counts(name: str) -> None:
    document = sample(name)
    findings = assert_parser_conformance(guardduty, document)
    assert len(findings) == EXPECTED[name]
    assert guardduty.detect(document)
    assert registry.detect(document) == "guardduty"


def test_eventbridge_sample_conforms() -> None:
    document = load(EVENT)
    findings = assert_parser_conformance(guardduty, document)
    assert [f.source_id for f in findings] == ["303697492861:ca-central-1:7ebc050b71c556086b524045c9067feb"]
    assert findings[0].raw == document["detail"]
    assert registry.detect(document) == "guardduty"


def test_golden_instance_finding() -> None:
    (finding,) = guardduty.parse(sample(CANARY))
    assert finding.source == "guardduty"
    assert finding.source_id == "123456789012:us-east-1:16afba5c5c43e07c9e3e5e2e544e95df"
    assert finding.aliases == [
        "arn:aws:guardduty:us-east-1:123456789012:detector/123456789012/finding/16afba5c5c43e07c9e3e5e2e544e95df"
    ]
    assert finding.type == "Canary:EC2/Stateless.IntegTest"
    assert finding.severity == 50.0
    assert finding.severity_label == "medium"
    assert finding.context["guardduty_severity"] == 5.0
    resource = finding.resource
    assert resource.type == "AwsEc2Instance"
    assert resource.id == "arn:aws:ec2:us-east-1:123456789012:instance/i-05746eb48123455e0"
    assert resource.tags == {"Name": "ssh-22-open"}
    assert resource.public is True  # publicIp 11.111.111.1 is globally routable
    assert (resource.account_id, resource.region) == ("123456789012", "us-east-1")
    assert finding.occurrences == 1
    assert finding.status == "open"
    assert finding.first_observed_at is not None and finding.observed_at is not None
    assert finding.first_observed_at.isoformat() == "2017-10-31T23:16:23+00:00"
    assert finding.context["action_type"] == "NETWORK_CONNECTION"
    assert finding.context["remote_port"] == 22
    assert finding.references[0] == (
        "https://docs.aws.amazon.com/guardduty/latest/ug/guardduty_finding-types-ec2.html"
        "#canary-ec2-statelessintegtest"
    )


def test_golden_access_key_finding_is_archived_so_resolved() -> None:
    (finding,) = guardduty.parse(sample(RECON))
    assert finding.source_id == "123456789012:us-east-1:30bf285e52a1e405084ff6ec28e06e17"
    assert finding.resource.type == "AwsIamAccessKey"
    assert finding.resource.id == "arn:aws:iam::123456789012:user/GeneratedFindingUserName"
    assert finding.resource.tags == {}
    assert finding.resource.public is False
    assert finding.status == "resolved"
    assert finding.context["user_type"] == "IAMUser"
    assert finding.context["remote_ip"] == "198.51.100.0"
    assert finding.context["api"] == "GeneratedFindingAPIName"
    assert finding.context["threat_lists"] == ["GeneratedFindingThreatListName"]
    assert finding.context["sample"] is True


def test_golden_bucket_finding() -> None:
    (finding,) = guardduty.parse(sample(PENTEST))
    assert finding.resource.type == "AwsS3Bucket"
    assert finding.resource.id == "arn:aws:s3:::bucketName"
    assert finding.resource.tags == {"foo": "bar"}
    assert finding.resource.public is False  # effectivePermission NOT_PUBLIC
    assert finding.context["s3_buckets"] == ["arn:aws:s3:::bucketName"]
    assert finding.status == "resolved"


def test_golden_stripped_event_takes_region_from_the_envelope() -> None:
    (finding,) = guardduty.parse(sample(BRUTE_FORCE))
    # No accountId nor ARN anywhere in this test event: the account part of the key stays empty.
    assert finding.source_id == ":us-east-1:02be5693b63eea1d67e6f321c6aee4f3"
    assert finding.aliases == []
    assert finding.severity == 20.0 and finding.severity_label == "low"
    assert finding.resource.region == "us-east-1"
    assert finding.resource.account_id is None
    assert finding.resource.id == "i-99999999"  # no account to build the ARN with
    assert finding.resource.public is False  # 198.51.100.0 is a documentation address
    assert finding.title == "198.51.100.0 is performing SSH brute force attacks against i-99999999."


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_pascal_case_gives_the_same_finding(name: str) -> None:
    """boto3 and the CLI spell the finding in PascalCase; the mapping must not depend on the casing."""
    finding = bare(name)
    camel = guardduty.parse(finding)
    for document in ({"Findings": [pascal(finding)]}, pascal(finding), [pascal(finding)]):
        assert guardduty.detect(document)
        parsed = assert_parser_conformance(guardduty, document)
        assert dump(parsed) == dump(camel)
        assert parsed[0].source_id == camel[0].source_id


def test_every_layout_gives_the_same_findings() -> None:
    findings = [bare(CANARY), bare(RECON), bare(PENTEST)]
    expected = dump(guardduty.parse(findings))
    assert len(expected) == 3
    event = load(EVENT)
    layouts: list[Any] = [
        {"findings": findings},
        {"Findings": findings},
        {"detail": {"findings": findings}, "region": "us-east-1"},
        {"detail-type": "GuardDuty Finding", "account": "1", "region": "x", "detail": {"findings": findings}},
    ]
    for document in layouts:
        assert dump(assert_parser_conformance(guardduty, document)) == expected
        assert guardduty.detect(document)
    assert guardduty.parse(event["detail"])[0].source_id == guardduty.parse(event)[0].source_id


def test_envelope_account_fills_a_missing_account() -> None:
    finding = copy.deepcopy(bare(CANARY))
    del finding["accountId"], finding["arn"], finding["region"]
    event = {"detail-type": "GuardDuty Finding", "account": "210987654321", "region": "eu-west-1"}
    (parsed,) = guardduty.parse({**event, "detail": finding})
    assert parsed.source_id == "210987654321:eu-west-1:16afba5c5c43e07c9e3e5e2e544e95df"
    assert parsed.resource.id == "arn:aws:ec2:eu-west-1:210987654321:instance/i-05746eb48123455e0"


def test_the_finding_arn_decides_account_and_region() -> None:
    finding = copy.deepcopy(bare(CANARY))
    finding["accountId"], finding["region"] = "999999999999", "ap-south-1"
    (parsed,) = guardduty.parse(finding)
    assert parsed.source_id == "123456789012:us-east-1:16afba5c5c43e07c9e3e5e2e544e95df"


@pytest.mark.parametrize(
    ("number", "score", "label"),
    [
        (1.0, 10.0, "low"),
        (2, 20.0, "low"),
        (3.9, 39.0, "low"),
        (4.0, 40.0, "medium"),
        (6.9, 69.0, "medium"),
        (7.0, 70.0, "high"),
        (8.9, 89.0, "high"),
        (9.0, 90.0, "critical"),
        (10, 100.0, "critical"),
        ("8.0", 80.0, "high"),
    ],
)
def test_severity_bands_match_guardduty(number: Any, score: float, label: str) -> None:
    (finding,) = guardduty.parse({**bare(CANARY), "severity": number})
    assert finding.severity == score
    assert finding.severity_label == label
    assert finding.context["guardduty_severity"] == float(number)


def minimal(resource: dict[str, Any], **service: Any) -> dict[str, Any]:
    return {
        "accountId": "123456789012",
        "region": "eu-west-1",
        "partition": "aws",
        "id": "f" * 32,
        "type": "Discovery:S3/AnomalousBehavior",
        "severity": 8,
        "title": "t",
        "resource": resource,
        "service": {"count": 7, "archived": False, **service},
    }


@pytest.mark.parametrize(
    ("resource", "kind", "resource_id"),
    [
        (
            {
                "resourceType": "EKSCluster",
                "eksClusterDetails": {"name": "prod", "tags": [{"key": "a", "value": "b"}]},
            },
            "AwsEksCluster",
            "arn:aws:eks:eu-west-1:123456789012:cluster/prod",
        ),
        (
            {"resourceType": "ECSCluster", "ecsClusterDetails": {"arn": "arn:aws:ecs:eu-west-1:1:cluster/c"}},
            "AwsEcsCluster",
            "arn:aws:ecs:eu-west-1:1:cluster/c",
        ),
        (
            {"resourceType": "RDSDBInstance", "rdsDbInstanceDetails": {"dbInstanceIdentifier": "orders"}},
            "AwsRdsDbInstance",
            "arn:aws:rds:eu-west-1:123456789012:db:orders",
        ),
        (
            {"resourceType": "Lambda", "lambdaDetails": {"functionName": "resize"}},
            "AwsLambdaFunction",
            "arn:aws:lambda:eu-west-1:123456789012:function:resize",
        ),
        (
            {"resourceType": "Container", "containerDetails": {"id": "abc", "image": "nginx:1.25"}},
            "Container",
            "nginx:1.25",
        ),
        (
            {
                "resourceType": "S3Object",
                "s3BucketDetails": [{"name": "uploads", "s3ObjectDetails": [{"key": "k"}]}],
            },
            "AwsS3Bucket",
            "arn:aws:s3:::uploads",
        ),
        ({"resourceType": "SomethingNew"}, "SomethingNew", None),
    ],
)
def test_resource_types(resource: dict[str, Any], kind: str, resource_id: str | None) -> None:
    (finding,) = assert_parser_conformance(guardduty, [minimal(resource)])
    assert finding.resource.type == kind
    assert finding.resource.id == resource_id
    assert finding.occurrences == 7
    assert finding.source_id == "123456789012:eu-west-1:" + "f" * 32


def test_eks_tags_and_workload() -> None:
    resource = {
        "resourceType": "EKSCluster",
        "eksClusterDetails": {"name": "prod", "tags": [{"key": "team", "value": "payments"}]},
        "kubernetesDetails": {"kubernetesWorkloadDetails": {"name": "api", "namespace": "shop"}},
    }
    (finding,) = guardduty.parse(minimal(resource))
    assert finding.resource.tags == {"team": "payments"}
    assert finding.context["kubernetes_namespace"] == "shop"
    assert finding.context["kubernetes_workload"] == "api"


def test_public_bucket_and_every_bucket_in_context() -> None:
    buckets = [
        {"arn": "arn:aws:s3:::a", "publicAccess": {"effectivePermission": "NOT_PUBLIC"}},
        {"arn": "arn:aws:s3:::b", "publicAccess": {"effectivePermission": "PUBLIC"}},
    ]
    (finding,) = guardduty.parse(minimal({"resourceType": "S3Bucket", "s3BucketDetails": buckets}))
    assert finding.resource.id == "arn:aws:s3:::a"
    assert finding.resource.public is True
    assert finding.context["s3_buckets"] == ["arn:aws:s3:::a", "arn:aws:s3:::b"]


def test_access_key_without_a_user_is_named_like_security_hub() -> None:
    details = {"accessKeyId": "ASIAEXAMPLE", "principalId": "AROAEXAMPLE:session", "userType": "AssumedRole"}
    (finding,) = guardduty.parse(minimal({"resourceType": "AccessKey", "accessKeyDetails": details}))
    assert finding.resource.id == "AWS::IAM::AccessKey:ASIAEXAMPLE"
    root = {"accessKeyId": "AKIAEXAMPLE", "userType": "Root"}
    (finding,) = guardduty.parse(minimal({"resourceType": "AccessKey", "accessKeyDetails": root}))
    assert finding.resource.id == "arn:aws:iam::123456789012:root"


def test_lifecycle_fields() -> None:
    finding = minimal({"resourceType": "Instance"}, archived=True, count=12)
    finding["service"].update(eventFirstSeen="2024-01-01T00:00:00Z", eventLastSeen="2024-02-01T00:00:00Z")
    finding["createdAt"], finding["updatedAt"] = "2023-12-31T00:00:00Z", "2024-02-02T00:00:00Z"
    (parsed,) = guardduty.parse(finding)
    assert parsed.status == "resolved"
    assert parsed.occurrences == 12
    assert parsed.first_observed_at is not None and parsed.first_observed_at.isoformat().startswith(
        "2024-01-01"
    )
    assert parsed.observed_at is not None and parsed.observed_at.isoformat().startswith("2024-02-01")
    del finding["service"]["eventFirstSeen"], finding["service"]["eventLastSeen"]
    (parsed,) = guardduty.parse(finding)
    assert parsed.first_observed_at is not None and parsed.first_observed_at.isoformat().startswith(
        "2023-12-31"
    )
    assert parsed.observed_at is not None and parsed.observed_at.isoformat().startswith("2024-02-02")


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            {"Findings": [pascal(minimal({})), pascal(minimal({})), {"Type": "x:y", "Severity": 5}]},
            r"\$\.Findings\[2\]: missing 'Id'",
        ),
        ([minimal({}), {"id": "x", "severity": 5}], r"\$\[1\]: missing 'type'"),
        ({"findings": ["text"]}, r"\$\.findings\[0\]: expected an object, got str"),
        ({**minimal({}), "severity": 11}, r"\$\.severity: expected a number from 0 to 10, got 11"),
        ({**minimal({}), "severity": {"score": 3}}, r"\$\.severity: expected a number from 0 to 10"),
        ({k: v for k, v in minimal({}).items() if k != "severity"}, r"\$: missing 'severity'"),
        ({"detail-type": "Macie Finding", "detail": {}}, r"\$\.detail-type is 'Macie Finding'"),
        ({"detail-type": "GuardDuty Finding", "detail": None}, r"\$\.detail: missing or not an object"),
        ({"Findings": [{"SchemaVersion": "2018-10-08", "Id": "x", "ProductArn": "arn"}]}, "ASFF"),
        ("text", "expected a finding object"),
        ({"SchemaVersion": 2, "Results": []}, r"\$: missing 'Id'"),  # spelt as the document would
        ({"schemaVersion": "2.0", "resource": {}}, r"\$: missing 'id'"),
    ],
)
def test_errors_name_the_format_and_the_path(document: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        guardduty.parse(document)
    assert str(error.value).startswith("not a GuardDuty finding")


def test_detect() -> None:
    positives = [sample(name) for name in EXPECTED] + [load(EVENT), {"Findings": [pascal(bare(CANARY))]}]
    asff = [load(path) for path in sorted((AWS / "securityhub").glob("*.json"))]
    asff += [load(path) for path in sorted((SCANNERS / "asff").rglob("*.json"))]
    others = [load(path) for path in sorted((AWS / "macie").glob("*.json"))]
    others += [load(path) for path in sorted((AWS / "eventbridge").glob("*.json")) if path != EVENT]
    others.append(load(SCANNERS / "trivy" / "scheme_2_many_vulns.json"))
    others.append({"findings": [{"source": "x", "type": "a:b", "title": "t", "severity": 5, "resource": {}}]})
    assert asff and others
    assert_detect_conformance(guardduty, positives, [*NOT_A_DOCUMENT, *asff, *others])


def test_registry_routes_guardduty_documents_and_keeps_native_batches_native() -> None:
    assert registry.get_parser("guardduty") is guardduty
    assert registry.detect({"Findings": [pascal(bare(CANARY))]}) == "guardduty"
    assert registry.detect_all(load(EVENT)) == ["guardduty"]
    assert registry.detect({"findings": []}) == "native"


def test_the_same_finding_through_security_hub_has_the_same_key() -> None:
    """The ASFF sample is a GuardDuty finding as Security Hub relays it; the direct finding must meet it."""
    (relayed,) = asff.parse(
        load(
            SCANNERS
            / "asff"
            / "guardduty"
            / "Unusual Behaviors-User-Persistence IAMUser-NetworkPermissions.json"
        )
    )
    arn = "arn:aws:guardduty:eu-west-1:123456789012:detector/cab6a714deb3b739eaddacbdfd5ef2f2/finding/d6badb90e557d4bd811488a53ca89895"
    direct = {
        "accountId": "123456789012",
        "region": "eu-west-1",
        "partition": "aws",
        "id": "d6badb90e557d4bd811488a53ca89895",
        "arn": arn,
        "type": "Persistence:IAMUser/NetworkPermissions",
        "severity": 5,
        "resource": {"resourceType": "Instance", "instanceDetails": {"instanceId": "i-99999999"}},
        "service": {"count": 2, "archived": False},
    }
    (parsed,) = guardduty.parse(direct)
    assert (parsed.source, parsed.source_id) == (relayed.source, relayed.source_id)
    assert arn in parsed.aliases and arn in relayed.aliases
    assert parsed.occurrences == relayed.occurrences == 2
    assert parsed.resource.id == relayed.resource.id
