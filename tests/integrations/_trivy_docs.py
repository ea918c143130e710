"""Builders of small Trivy reports for the tests: one vulnerability, misconfiguration or secret at a time."""

from __future__ import annotations

import copy
import json
from typing import Any

from tests.samples import SCANNERS

SAMPLES = SCANNERS / "trivy"


def sample(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text(encoding="utf-8"))


def vuln(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "VulnerabilityID": "CVE-2024-3094",
        "PkgID": "xz-utils@5.6.0-0.2",
        "PkgName": "xz-utils",
        "PkgIdentifier": {"PURL": "pkg:deb/debian/xz-utils@5.6.0-0.2?arch=amd64&distro=debian-12.5"},
        "InstalledVersion": "5.6.0-0.2",
        "FixedVersion": "5.6.1+really5.4.5-1",
        "Status": "fixed",
        "SeveritySource": "nvd",
        "PrimaryURL": "https://avd.aquasec.com/nvd/cve-2024-3094",
        "Title": "xz: malicious code in distributed source",
        "Description": "Malicious code was discovered in the upstream tarballs of xz.",
        "Severity": "CRITICAL",
        "VendorSeverity": {"nvd": 4, "redhat": 4},
        "CVSS": {"nvd": {"V3Vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", "V3Score": 10}},
        "References": ["https://www.openwall.com/lists/oss-security/2024/03/29/4"],
        "PublishedDate": "2024-03-29T17:15:21.15Z",
        "LastModifiedDate": "2024-04-01T00:00:00Z",
    }
    base.update(overrides)
    return base


def misconf(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "Type": "Terraform Security Check",
        "ID": "AVD-AWS-0086",
        "AVDID": "AVD-AWS-0086",
        "Title": "S3 Access block should block public ACL",
        "Description": "S3 buckets should block public ACLs on buckets and any objects they contain.",
        "Message": "No public access block so not blocking public acls",
        "Resolution": "Enable blocking any PUT calls with a public ACL specified",
        "Severity": "HIGH",
        "PrimaryURL": "https://avd.aquasec.com/misconfig/avd-aws-0086",
        "References": ["https://avd.aquasec.com/misconfig/avd-aws-0086"],
        "Status": "FAIL",
        "CauseMetadata": {
            "Resource": "aws_s3_bucket.logs",
            "Provider": "AWS",
            "Service": "s3",
            "StartLine": 12,
            "EndLine": 20,
            "Code": {"Lines": [{"Number": 12, "Content": 'resource "aws_s3_bucket" "logs" {'}]},
        },
    }
    base.update(overrides)
    return base


def secret(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "RuleID": "aws-access-key-id",
        "Category": "AWS",
        "Severity": "CRITICAL",
        "Title": "AWS Access Key ID",
        "StartLine": 3,
        "EndLine": 3,
        "Match": "AWS_ACCESS_KEY_ID=********************",
        "Code": {
            "Lines": [{"Number": 3, "Content": "AWS_ACCESS_KEY_ID=********************", "IsCause": True}]
        },
    }
    base.update(overrides)
    return base


def report(*results: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "SchemaVersion": 2,
        "CreatedAt": "2026-03-01T10:00:00.123456789Z",
        "ArtifactName": "registry.example.com/shop/api:1.4.2",
        "ArtifactType": "container_image",
        "Metadata": {"OS": {"Family": "debian", "Name": "12.5"}},
        "Results": list(results),
    }
    base.update(overrides)
    return base


def os_result(
    *vulns: dict[str, Any], target: str = "registry.example.com/shop/api:1.4.2 (debian 12.5)"
) -> dict[str, Any]:
    return {"Target": target, "Class": "os-pkgs", "Type": "debian", "Vulnerabilities": list(vulns)}


def config_result(*misconfs: dict[str, Any], target: str = "infra/s3.tf") -> dict[str, Any]:
    return {"Target": target, "Class": "config", "Type": "terraform", "Misconfigurations": list(misconfs)}


def secret_result(*secrets: dict[str, Any], target: str = "deploy/.env") -> dict[str, Any]:
    return {"Target": target, "Class": "secret", "Secrets": list(secrets)}


def kubernetes_report() -> dict[str, Any]:
    """A ``trivy k8s --report all --format json`` report: a Deployment with a vulnerable image and a
    misconfiguration, and the same Deployment name in another namespace."""
    workload = {
        "Namespace": "shop",
        "Kind": "Deployment",
        "Name": "api",
        "Metadata": {},
        "Results": [
            os_result(vuln(), target="registry.example.com/shop/api:1.4.2 (debian 12.5)"),
            {
                "Target": "Deployment/api",
                "Class": "config",
                "Type": "kubernetes",
                "Misconfigurations": [
                    misconf(
                        Type="Kubernetes Security Check",
                        ID="KSV001",
                        AVDID="AVD-KSV-0001",
                        Title="Process can elevate its own privileges",
                        CauseMetadata={"Provider": "Kubernetes", "Service": "general", "StartLine": 132},
                    )
                ],
            },
        ],
    }
    other = copy.deepcopy(workload)
    other["Namespace"] = "staging"
    return {"ClusterName": "prod-eu", "Resources": [workload, other]}
