"""Field mapping of the Trivy parser: layouts, resources, severity, references, secrets and bad input."""

from __future__ import annotations

from typing import Any

import pytest

from integrations.sources import trivy
from integrations.testing import assert_no_secret, assert_parser_conformance
from tests.integrations._trivy_docs import (
    config_result,
    kubernetes_report,
    misconf,
    os_result,
    report,
    secret,
    secret_result,
    vuln,
)

LEAKED = "AKIAIOSFODNN7EXAMPLE"


def one(document: Any) -> Any:
    findings = assert_parser_conformance(trivy, document)
    assert len(findings) == 1
    return findings[0]


def test_kubernetes_report_maps_workloads_to_resources() -> None:
    findings = assert_parser_conformance(trivy, kubernetes_report())
    assert trivy.detect(kubernetes_report())
    assert len(findings) == 4
    assert {f.resource.id for f in findings} == {
        "prod-eu/shop/Deployment/api",
        "prod-eu/staging/Deployment/api",
    }
    assert {f.resource.type for f in findings} == {"Deployment"}
    misconfig = next(f for f in findings if f.context["kind"] == "misconfiguration")
    assert misconfig.type == "AVD-KSV-0001"
    assert misconfig.location is not None
    assert (misconfig.location.path, misconfig.location.line) == ("Deployment/api", 132)
    assert misconfig.context["cluster"] == "prod-eu"
    assert misconfig.context["k8s_kind"] == "Deployment"
    vulnerability = next(f for f in findings if f.context["kind"] == "vulnerability")
    assert vulnerability.context["target"] == "registry.example.com/shop/api:1.4.2 (debian 12.5)"


def test_older_kubernetes_layout_split_by_scanner() -> None:
    resources = kubernetes_report()["Resources"]
    document = {"ClusterName": "prod-eu", "Vulnerabilities": resources[:1], "Misconfigurations": []}
    assert len(assert_parser_conformance(trivy, document)) == 2


def test_cluster_scoped_kubernetes_resource() -> None:
    node = {"Kind": "NodeInfo", "Name": "node-1", "Results": [config_result(misconf(), target="node-1")]}
    finding = one({"ClusterName": "prod-eu", "Resources": [node]})
    assert finding.resource.id == "prod-eu//NodeInfo/node-1"


def test_image_report() -> None:
    finding = one(report(os_result(vuln())))
    assert finding.resource.type == "container_image"
    assert finding.resource.id == "registry.example.com/shop/api:1.4.2"
    assert finding.location is None
    assert finding.title == "CVE-2024-3094 in xz-utils 5.6.0-0.2: xz: malicious code in distributed source"
    assert finding.severity_label == "critical"
    assert finding.observed_at is not None and finding.observed_at.utcoffset() is not None
    assert finding.context["os"] == "debian 12.5"


def test_language_package_in_an_image_points_at_its_file() -> None:
    jar = {"Target": "app/lib/log4j-core-2.14.1.jar", "Class": "lang-pkgs", "Type": "jar"}
    finding = one(report({**jar, "Vulnerabilities": [vuln(PkgName="org.apache.logging.log4j:log4j-core")]}))
    assert finding.location is not None and finding.location.path == "app/lib/log4j-core-2.14.1.jar"


def test_repository_report_location() -> None:
    document = report(
        {"Target": "poetry.lock", "Class": "lang-pkgs", "Type": "poetry", "Vulnerabilities": [vuln()]},
        ArtifactName="https://github.com/acme/shop",
        ArtifactType="repository",
    )
    finding = one(document)
    assert finding.resource.type == "repository"
    assert finding.location is not None
    assert finding.location.repository == "https://github.com/acme/shop"
    assert finding.location.path == "poetry.lock"


def test_title_is_truncated_and_references_filtered() -> None:
    refs = ["ftp://example.com/x", "https://example.com/" + "a" * 2100, "javascript:alert(1)"]
    refs += [f"https://example.com/{i}" for i in range(80)] + ["https://example.com/1"]
    finding = one(report(os_result(vuln(Title="t" * 900, References=refs))))
    assert len(finding.title) == 512
    assert len(finding.references) == 50
    assert finding.references[0] == "https://avd.aquasec.com/nvd/cve-2024-3094"
    assert all(r.startswith("https://") and len(r) <= 2048 for r in finding.references)
    assert len(set(finding.references)) == 50


@pytest.mark.parametrize(
    ("fields", "label"),
    [
        ({"Severity": "LOW", "SeveritySource": "ghsa", "VendorSeverity": {"ghsa": 4, "nvd": 1}}, "critical"),
        ({"Severity": "HIGH", "SeveritySource": "ghsa", "VendorSeverity": {"nvd": 1}}, "high"),
        ({"Severity": "MEDIUM", "SeveritySource": "", "VendorSeverity": {"nvd": 4}}, "medium"),
        ({"Severity": "UNKNOWN", "VendorSeverity": {}}, "critical"),  # CVSS 10 from NVD
        ({"Severity": "UNKNOWN", "VendorSeverity": {}, "CVSS": {}}, "low"),
        ({"Severity": None, "VendorSeverity": None, "CVSS": None}, "low"),
    ],
)
def test_severity_precedence(fields: dict[str, Any], label: str) -> None:
    assert one(report(os_result(vuln(**fields)))).severity_label == label


def test_unknown_severity_uses_the_cvss_score() -> None:
    cvss = {"nvd": {"V3Score": 7.5}}
    finding = one(report(os_result(vuln(Severity="UNKNOWN", VendorSeverity={}, CVSS=cvss))))
    assert finding.severity == 75.0


def test_secret_value_never_reaches_the_output() -> None:
    leaking = secret(
        Match=f"AWS_ACCESS_KEY_ID={LEAKED}",
        Code={"Lines": [{"Number": 3, "Content": f"AWS_ACCESS_KEY_ID={LEAKED}", "Highlighted": LEAKED}]},
        Layer={"DiffID": "sha256:abc"},
        Offset=120,
    )
    findings = assert_parser_conformance(trivy, report(secret_result(leaking)))
    assert_no_secret(findings, LEAKED)
    assert_no_secret([f.model_dump_json() for f in findings], LEAKED)
    raw = findings[0].raw
    assert set(raw) == {"RuleID", "Category", "Severity", "Title", "StartLine", "EndLine", "Target", "Match"}
    assert findings[0].title == "Secret: AWS Access Key ID (aws-access-key-id) in deploy/.env"


def test_suppressed_secret_is_redacted_too() -> None:
    modified = {
        "Type": "secret",
        "Status": "ignored",
        "Statement": "rotated",
        "Source": ".trivyignore",
        "Finding": secret(Match=f"KEY={LEAKED}"),
    }
    finding = one(report({"Target": ".env", "Class": "secret", "ExperimentalModifiedFindings": [modified]}))
    assert finding.status == "suppressed"
    assert finding.context["suppression_source"] == ".trivyignore"
    assert_no_secret(finding, LEAKED)


def test_misconfiguration_raw_drops_quoted_code() -> None:
    quoted = misconf()
    quoted["CauseMetadata"]["Code"]["Lines"][0]["Content"] = f'password = "{LEAKED}"'
    finding = one(report(config_result(quoted)))
    assert_no_secret(finding, LEAKED)
    assert finding.raw["CauseMetadata"]["Resource"] == "aws_s3_bucket.logs"
    assert finding.location is not None and finding.location.line == 12


def test_suppressed_vulnerability() -> None:
    modified = {
        "Type": "vulnerability",
        "Status": "not_affected",
        "Source": "openvex.json",
        "Finding": vuln(),
    }
    suppressed = one(report({**os_result(), "ExperimentalModifiedFindings": [modified]}))
    assert suppressed.status == "suppressed"
    assert suppressed.source_id == one(report(os_result(vuln()))).source_id


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("not json", "not a Trivy JSON report"),
        ({"runs": []}, "not a Trivy JSON report"),
        ([{"Id": 1}], "not a Trivy JSON report"),
        ({"SchemaVersion": 3, "Results": []}, "unsupported Trivy SchemaVersion 3"),
        ({"SchemaVersion": 2, "Results": {"a": 1}}, "$.Results: expected a list"),
        (report(os_result(vuln(VulnerabilityID=""))), "has no VulnerabilityID"),
        (report(os_result("oops")), "Vulnerabilities[0]: expected an object"),  # type: ignore[arg-type]
        (report(config_result(misconf(ID="", AVDID=""))), "neither ID nor AVDID"),
    ],
)
def test_bad_documents_raise_value_error_with_a_path(document: Any, message: str) -> None:
    with pytest.raises(ValueError) as error:
        trivy.parse(document)
    assert message in str(error.value)


def test_empty_reports() -> None:
    assert trivy.parse([]) == []
    assert (
        trivy.parse({"SchemaVersion": 2, "ArtifactName": "alpine:3.19", "ArtifactType": "container_image"})
        == []
    )
    assert trivy.parse(report({"Target": "x", "Class": "os-pkgs", "Vulnerabilities": None})) == []
