"""The Trivy parser against every real Trivy report in the shared samples (copied from DefectDojo)."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from integrations.sources import trivy
from integrations.testing import assert_detect_conformance, assert_no_secret, assert_parser_conformance
from tests.integrations._trivy_docs import SAMPLES, sample

# file -> (findings we produce, findings DefectDojo's unit test expects; see samples/scanners/INDEX.md).
# They agree on every file: DefectDojo drops PASS misconfigurations and we keep them as resolved findings,
# but no sample holds a PASS; license findings are only in reports made with `--scanners license`, where
# both tools report one finding per (package or file, license).
EXPECTED = {
    "all_statuses.json": (8, 8),  # one is `not_affected`: we keep it, as resolved
    "cvss_severity_source.json": (2, 2),
    "cvssv4_severity_source.json": (3, 3),
    "legacy_many_vulns.json": (93, 93),
    "license_scheme.json": (19, 19),
    "misconfigurations_and_secrets.json": (5, 5),  # 2 vulnerabilities, 1 misconfiguration, 2 secrets
    "scheme_2_many_vulns.json": (5, 5),
}


def test_every_sample_file_has_an_expected_count() -> None:
    assert SAMPLES.is_dir(), f"Trivy samples not found at {SAMPLES}; set TOCSIN_SAMPLES"
    assert sorted(p.name for p in SAMPLES.glob("*.json")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_conforms_and_counts_match_defectdojo(name: str) -> None:
    document = sample(name)
    findings = assert_parser_conformance(trivy, document)
    ours, defectdojo = EXPECTED[name]
    assert len(findings) == ours
    assert ours == defectdojo
    assert trivy.detect(document)


def test_detect_accepts_every_sample_and_rejects_other_documents() -> None:
    native_batch = {"findings": [{"source": "x", "type": "t", "title": "t", "severity": "low"}]}
    sarif = {"version": "2.1.0", "runs": []}
    asff = {"Findings": [{"SchemaVersion": "2018-10-08", "Id": "x"}]}
    assert_detect_conformance(
        trivy,
        positives=[sample(name) for name in EXPECTED],
        negatives=[None, [], {}, "text", native_batch, sarif, asff, [{"Id": "x"}], {"SchemaVersion": 2}],
    )


def test_misconfigurations_and_secrets_sample() -> None:
    findings = trivy.parse(sample("misconfigurations_and_secrets.json"))
    kinds = Counter(f.context["kind"] for f in findings)
    assert kinds == {"vulnerability": 2, "misconfiguration": 1, "secret": 2}
    misconfig = next(f for f in findings if f.context["kind"] == "misconfiguration")
    assert misconfig.type == "DS002"
    assert misconfig.title == "DS002: Image user should not be 'root' in Dockerfile"
    assert misconfig.severity_label == "high"
    assert misconfig.status == "open"
    assert misconfig.remediation == "Add 'USER <non root user name>' line to the Dockerfile"
    assert misconfig.resource.type == "repository"
    assert misconfig.location is not None and misconfig.location.path == "Dockerfile"
    secrets = [f for f in findings if f.context["kind"] == "secret"]
    assert [(s.location.path, s.location.line) for s in secrets if s.location] == [
        ("Dockerfile", 24),
        ("secret.txt", 1),
    ]
    assert {s.severity_label for s in secrets} == {"critical"}
    assert {s.type for s in secrets} == {"secret:github-pat"}


def test_no_secret_match_text_anywhere_in_the_output() -> None:
    document = sample("misconfigurations_and_secrets.json")
    matches = [
        item["Match"] for result in document["Results"] for item in result.get("Secrets", []) if item["Match"]
    ]
    assert matches == ["ENV GITHUB_PAT=*****", "GITHUB_PAT=*****"]
    findings = trivy.parse(document)
    serialized = json.dumps([f.model_dump(mode="json") for f in findings])
    for match in matches:
        assert_no_secret(findings, match)
        assert match not in serialized
    assert "GITHUB_PAT" not in serialized
    for finding in findings:
        if finding.context["kind"] == "secret":
            assert finding.raw["Match"] == "[redacted by tocsin]"
            assert "Code" not in finding.raw


def test_vulnerability_fields_from_the_schema_2_filesystem_sample() -> None:
    findings = trivy.parse(sample("misconfigurations_and_secrets.json"))
    first = findings[0]
    assert first.source == "trivy"
    assert first.type == "CVE-2021-33503"
    assert first.title == (
        "CVE-2021-33503 in urllib3 1.26.3: python-urllib3: ReDoS in the parsing of authority part of URL"
    )
    assert first.severity_label == "high"
    assert first.references[0] == "https://avd.aquasec.com/nvd/cve-2021-33503"
    assert len(first.references) == 14
    assert first.remediation == "Upgrade urllib3 to 1.26.5."
    assert first.resource.type == "repository" and first.resource.id == "."
    assert first.location is not None
    assert (first.location.repository, first.location.path) == (".", "requirements.txt")
    assert first.context["installed_version"] == "1.26.3"
    assert first.context["fixed_version"] == "1.26.5"
    assert first.context["cvss_v3_score"] == 7.5
    assert first.context["cvss_v3_source"] == "nvd"
    assert first.raw == sample("misconfigurations_and_secrets.json")["Results"][0]["Vulnerabilities"][0]


def test_image_named_from_its_os_target_when_artifact_name_is_empty() -> None:
    findings = trivy.parse(sample("all_statuses.json"))
    assert {f.resource.type for f in findings} == {"container_image"}
    assert {f.resource.id for f in findings} == {"noppaknopsta/example-app:main-159"}
    assert {f.location for f in findings} == {None}  # OS packages are not files
    assert findings[0].observed_at is not None and findings[0].observed_at.isoformat().startswith(
        "2024-01-15T08:58:29.827537"
    )


def test_trivy_statuses_go_to_context_and_not_affected_resolves() -> None:
    findings = trivy.parse(sample("all_statuses.json"))
    statuses = {f.context["trivy_status"]: f.status for f in findings}
    assert set(statuses) == {
        "unknown",
        "not_affected",
        "affected",
        "fixed",
        "under_investigation",
        "will_not_fix",
        "fix_deferred",
        "end_of_life",
    }
    assert statuses.pop("not_affected") == "resolved"
    assert set(statuses.values()) == {"open"}


def test_severity_source_vendor_and_cvss_choice() -> None:
    findings = {f.type: f for f in trivy.parse(sample("cvss_severity_source.json"))}
    curl = findings["CVE-2023-46218"]
    assert curl.severity_label == "medium"  # VendorSeverity.ubuntu == 2
    assert curl.context["severity_source"] == "ubuntu"
    assert curl.context["cvss_v3_source"] == "nvd"  # ubuntu gives no CVSS: NVD comes next
    assert curl.context["purl"].startswith("pkg:deb/ubuntu/curl@7.81.0-1ubuntu1.14")
    assert curl.context["trivy_status"] == "fixed"
    certifi = findings["CVE-2023-37920"]
    assert certifi.severity_label == "high"
    assert (certifi.context["cvss_v3_score"], certifi.context["cvss_v3_source"]) == (7.5, "ghsa")
    assert certifi.context["purl"] == "pkg:pypi/certifi@2022.5.18.1"  # from the older `Ref` field


def test_cvss_v4_is_kept_next_to_v3() -> None:
    findings = {f.type: f for f in trivy.parse(sample("cvssv4_severity_source.json"))}
    tomcat = findings["CVE-2025-66614"]
    assert tomcat.severity_label == "medium"
    assert tomcat.context["cvss_v4_score"] == 6.3
    assert tomcat.context["cvss_v4_source"] == "ghsa"
    assert tomcat.context["cvss_v3_score"] == 5.3  # ghsa has no v3 and there is no nvd: the next vendor
    assert tomcat.context["pkg_path"] == "catalina.jar"
    assert tomcat.location is not None and tomcat.location.path == "catalina.jar"
    low = findings["CVE-2025-61795"]
    assert low.severity_label == "low"  # VendorSeverity.ghsa == 1 although other vendors say 2 or 3


def test_licenses_are_findings_per_package_and_license() -> None:
    findings = trivy.parse(sample("license_scheme.json"))
    gpl = [f for f in findings if f.type == "license:GPL-2.0"]
    assert len(gpl) == 7
    assert {f.severity_label for f in gpl} == {"high"}
    musl = sorted(f.context["license"] for f in findings if f.context.get("pkg_name") == "musl-utils")
    assert musl == ["BSD-3-Clause", "GPL-2.0", "MIT"]
    loose = [f for f in findings if f.context.get("file_path")]
    assert [f.location.path for f in loose if f.location] == ["/etc/ssl/misc/CA.pl", "/etc/ssl/misc/tsget.pl"]
    assert loose[0].references == ["https://spdx.org/licenses/OpenSSL.html"]


def test_legacy_list_report() -> None:
    findings = trivy.parse(sample("legacy_many_vulns.json"))
    assert {f.resource.id for f in findings} == {"debian"}
    assert {f.context["class"] for f in findings} == {"os-pkgs"}
    assert Counter(f.severity_label for f in findings) == {"low": 66, "high": 18, "medium": 9}
