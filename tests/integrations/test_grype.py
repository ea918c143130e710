"""The Grype parser against every Grype report in the shared samples (copied from DefectDojo)."""

from __future__ import annotations

import copy
import json
from collections import Counter
from typing import Any

import pytest

from app.pipeline.fingerprint import identity_of, primary_key
from integrations import registry
from integrations.sources import grype
from integrations.testing import NOT_A_DOCUMENT, assert_detect_conformance, assert_parser_conformance
from tests.samples import AWS, SCANNERS

SAMPLES = SCANNERS / "anchore_grype"

# file -> (findings we produce, DefectDojo's count; see samples/scanners/INDEX.md). One finding per match:
# * check_all_fields.json holds 6 matches, two of them the same (Django 3.2.9, GHSA-v6rh-hp5x-86rv, found
#   twice by Grype); both tools fold them: 5.
# * many_vulns_with_epss_values.json has no DefectDojo unit test with a count; 15 matches, 15 findings.
EXPECTED: dict[str, tuple[int, int | None]] = {
    "check_all_fields.json": (5, 5),
    "fix_available.json": (1, 1),
    "issue_9618.json": (35, 35),
    "many_vulns3.json": (327, 327),
    "many_vulns4.json": (9, 9),
    "many_vulns_with_epss_values.json": (15, None),
}


def sample(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text(encoding="utf-8"))


def ids(document: Any) -> list[str | None]:
    return [finding.source_id for finding in grype.parse(document)]


def match(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "vulnerability": {
            "id": "GHSA-v6rh-hp5x-86rv",
            "dataSource": "https://github.com/advisories/GHSA-v6rh-hp5x-86rv",
            "namespace": "github:python",
            "severity": "High",
            "urls": ["https://github.com/advisories/GHSA-v6rh-hp5x-86rv"],
            "description": "Potential bypass of an upstream access control based on URL paths in Django",
            "cvss": [],
            "fix": {"versions": ["3.2.10"], "state": "fixed"},
            "advisories": [],
        },
        "relatedVulnerabilities": [
            {"id": "CVE-2021-44420", "dataSource": "https://nvd.nist.gov/vuln/detail/CVE-2021-44420"}
        ],
        "matchDetails": [{"type": "exact-direct-match", "matcher": "python-matcher"}],
        "artifact": {
            "name": "Django",
            "version": "3.2.9",
            "type": "python",
            "locations": [{"path": "/usr/lib/python3/site-packages/Django-3.2.9.dist-info/METADATA"}],
            "purl": "pkg:pypi/Django@3.2.9",
        },
    }
    base.update(overrides)
    return base


def report(
    *matches: dict[str, Any], user_input: str = "registry.example.com/shop/api:1.4.2"
) -> dict[str, Any]:
    return {
        "matches": list(matches),
        "source": {"type": "image", "target": {"userInput": user_input, "imageID": "sha256:abc", "tags": []}},
        "distro": {"name": "debian", "version": "12"},
        "descriptor": {"name": "grype", "version": "0.80.0", "timestamp": "2025-01-02T03:04:05.123456789Z"},
    }


def test_every_sample_file_has_an_expected_count() -> None:
    assert sorted(p.name for p in SAMPLES.glob("*.json")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_conforms_and_counts_match_defectdojo(name: str) -> None:
    document = sample(name)
    findings = assert_parser_conformance(grype, document)
    ours, defectdojo = EXPECTED[name]
    assert len(findings) == ours
    assert defectdojo in (None, ours)
    assert registry.detect_all(document) == ["grype"]
    assert ids(document) == ids(sample(name))  # re-parse: identical keys


def test_detect_accepts_grype_and_rejects_other_formats() -> None:
    negatives: list[Any] = [
        *NOT_A_DOCUMENT,
        *(json.loads(p.read_text(encoding="utf-8")) for p in (SCANNERS / "trivy").glob("*.json")),
        *(json.loads(p.read_text(encoding="utf-8")) for p in (SCANNERS / "asff").glob("*.json")),
        *(json.loads(p.read_text(encoding="utf-8")) for p in (AWS / "guardduty").glob("*.json")),
        json.loads((SCANNERS / "prowler" / "example_output_aws.ocsf.json").read_text(encoding="utf-8")),
        {"findings": [{"source": "x", "type": "t", "title": "t", "severity": "low"}]},
        {"matches": "not a list", "source": {}},
        {"matches": []},
    ]
    assert_detect_conformance(grype, positives=[sample(n) for n in EXPECTED], negatives=negatives)


def test_golden_fields_of_a_python_package_match() -> None:
    findings = grype.parse(sample("check_all_fields.json"))
    django = next(f for f in findings if f.context["pkg_name"] == "Django")
    assert django.source == "grype"
    assert django.type == "GHSA-v6rh-hp5x-86rv"
    assert django.title == "GHSA-v6rh-hp5x-86rv in Django 3.2.9"
    assert django.severity_label == "high"
    assert django.resource.type == "container_image"
    assert django.resource.id == "vulnerable-image:latest"
    assert django.location is not None and django.location.repository is None
    assert django.location.path == "/usr/local/lib/python3.8/site-packages/Django-3.2.9.dist-info/METADATA"
    assert django.remediation == "Upgrade Django to 3.2.10."
    assert django.status == "open"
    assert django.references[0] == "https://github.com/advisories/GHSA-v6rh-hp5x-86rv"
    assert "https://nvd.nist.gov/vuln/detail/CVE-2021-44420" in django.references
    assert django.context["purl"] == "pkg:pypi/Django@3.2.9"
    assert django.context["fixed_version"] == "3.2.10"
    assert django.context["fix_state"] == "fixed"
    assert django.context["related_vulnerabilities"] == ["CVE-2021-44420"]
    assert django.context["os"] == "debian 10"
    assert django.context["matchers"] == ["python-matcher"]
    assert len(django.context["locations"]) == 3
    # the key under the related CVE, so Grype switching to the NVD id keeps the finding
    (alias,) = django.aliases
    assert alias.startswith("grype:vuln:CVE-2021-44420:")


def test_severity_choices() -> None:
    labels = Counter(f.severity_label.value for f in grype.parse(sample("many_vulns3.json")))
    # Negligible (106) -> informational; Unknown (10, no CVSS in Grype 0.7 output) -> low beside 27 Low
    assert labels == {"medium": 155, "informational": 106, "low": 37, "high": 24, "critical": 5}
    unscored = report(match(vulnerability={"id": "CVE-1", "severity": "Unknown", "cvss": []}))
    assert grype.parse(unscored)[0].severity_label == "low"
    scored = {
        "id": "CVE-1",
        "severity": "Unknown",
        "cvss": [
            {"version": "2.0", "metrics": {"baseScore": 9.3}},
            {"version": "3.1", "vector": "CVSS:3.1/AV:N", "metrics": {"baseScore": 7.5}},
        ],
    }
    finding = grype.parse(report(match(vulnerability=scored)))[0]
    assert finding.severity == 75.0  # v3 preferred over v2
    assert finding.context["cvss_v3_score"] == 7.5


def test_severity_missing_falls_back_to_the_related_advisory_cvss() -> None:
    findings = grype.parse(sample("issue_9618.json"))
    compress = next(f for f in findings if f.type == "CVE-2024-26308")
    assert "grype_severity" not in compress.context
    assert compress.severity == 75.0  # GHSA-4265-ccf5-phj5's CVSS 3.1 base score 7.5


def test_grype_0_7_layout() -> None:
    bash = grype.parse(sample("many_vulns3.json"))[0]
    assert bash.type == "CVE-2019-18276"
    assert bash.severity_label == "informational"  # Negligible
    assert bash.references == ["https://security-tracker.debian.org/tracker/CVE-2019-18276"]
    assert bash.context["cvss"] == [{"version": "2.0", "vector": "AV:L/AC:L/Au:N/C:C/I:C/A:C", "score": 7.2}]
    assert bash.context["matchers"] == ["dpkg-matcher"]
    fixed = next(f for f in grype.parse(sample("many_vulns3.json")) if f.type == "CVE-2021-24031")
    assert fixed.remediation == f"Upgrade {fixed.context['pkg_name']} to 1.3.8+dfsg-3+deb10u1."


def test_directory_scan_is_a_repository_with_file_locations() -> None:
    finding = grype.parse(sample("many_vulns4.json"))[0]
    assert finding.resource.type == "repository"
    assert finding.resource.id == "."
    assert finding.location is not None
    assert (finding.location.repository, finding.location.path) == (".", "components/yarn.lock")


def test_nul_characters_are_dropped_from_what_is_stored_as_text() -> None:
    java = grype.parse(sample("fix_available.json"))[0]
    assert java.title == "CVE-2009-3882 in java 17.0.10+7-J-ms8m"
    assert "\x00" not in json.dumps(java.context)
    assert java.observed_at is not None and java.observed_at.isoformat() == "2024-04-10T11:05:22.636338+00:00"


def test_epss_and_risk_go_to_context() -> None:
    finding = grype.parse(sample("many_vulns_with_epss_values.json"))[0]
    assert finding.context["epss"] == {"score": 0.0719, "percentile": 0.91123, "date": "2025-06-18"}
    assert finding.context["risk"] == pytest.approx(5.62, abs=0.01)


def test_rewording_every_description_changes_no_source_id() -> None:
    for name in EXPECTED:
        document = sample(name)
        reworded = copy.deepcopy(document)
        for entry in reworded["matches"]:
            vulnerability = entry["vulnerability"]
            vulnerability["description"] = "Reworded by the advisory database."
            vulnerability["severity"] = "Low"
            vulnerability["urls"] = ["https://example.com/advisory"]
            vulnerability["cvss"] = []
            for related in entry.get("relatedVulnerabilities") or []:
                related["description"] = "Reworded too."
            entry["matchDetails"] = []
        reworded["descriptor"]["timestamp"] = "2031-01-01T00:00:00Z"
        assert ids(reworded) == ids(document), name


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("registry.example.com/shop/api:1.4.2", "registry.example.com/shop/api:1.5.0"),
        ("shop/api:1.4.2", "docker.io/shop/api@sha256:0123456789abcdef"),
        ("nginx:1.25", "docker.io/library/nginx:latest"),
        ("docker:localhost:5000/app:dev", "localhost:5000/app"),
    ],
)
def test_a_new_tag_of_the_same_image_keeps_its_findings(first: str, second: str) -> None:
    assert ids(report(match(), user_input=first)) == ids(report(match(), user_input=second))
    later = grype.parse(report(match(), user_input=second))[0]
    assert later.resource.id == second  # the full reference stays visible


def test_what_the_finding_is_changes_identity() -> None:
    base = ids(report(match()))
    upgraded = match(artifact={**match()["artifact"], "version": "3.2.10"})
    other_package = match(artifact={**match()["artifact"], "name": "django-extensions"})
    other_vuln = match(vulnerability={**match()["vulnerability"], "id": "GHSA-xxxx-yyyy-zzzz"})
    assert ids(report(upgraded)) != base
    assert ids(report(other_package)) != base
    assert ids(report(other_vuln)) != base
    assert ids(report(match(), user_input="registry.example.com/shop/web:1.4.2")) != base


def test_switching_from_ghsa_to_cve_keeps_the_finding_through_the_alias() -> None:
    as_ghsa = grype.parse(report(match()))[0]
    as_cve = grype.parse(report(match(vulnerability={"id": "CVE-2021-44420", "severity": "High"})))[0]
    assert primary_key(as_cve) in identity_of(as_ghsa).alias_keys


def test_an_alias_that_is_another_match_of_the_report_is_left_out() -> None:
    cve = match(vulnerability={"id": "CVE-2021-44420", "severity": "High"}, relatedVulnerabilities=[])
    ghsa, plain = grype.parse(report(match(), cve))
    assert ghsa.aliases == [] and plain.aliases == []


def test_repeated_match_folds_locations_and_matchers() -> None:
    copy_two = match(
        artifact={
            **match()["artifact"],
            "locations": [{"path": "/opt/venv/Django-3.2.9.dist-info/METADATA"}],
        },
        matchDetails=[{"matcher": "stock-matcher"}],
    )
    (finding,) = assert_parser_conformance(grype, report(match(), copy_two))
    assert finding.context["locations"] == [
        "/usr/lib/python3/site-packages/Django-3.2.9.dist-info/METADATA",
        "/opt/venv/Django-3.2.9.dist-info/METADATA",
    ]
    assert finding.context["matchers"] == ["python-matcher", "stock-matcher"]


def test_ignored_matches_are_suppressed_findings() -> None:
    ignored = {**match(), "appliedIgnoreRules": [{"vulnerability": "GHSA-v6rh-hp5x-86rv", "reason": "n/a"}]}
    document = {**report(), "ignoredMatches": [ignored]}
    (finding,) = assert_parser_conformance(grype, document)
    assert finding.status == "suppressed"
    assert finding.context["ignore_rules"] == [{"vulnerability": "GHSA-v6rh-hp5x-86rv", "reason": "n/a"}]
    assert finding.source_id == grype.parse(report(match()))[0].source_id


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"source": {}}, r"^not a Grype JSON report \(grype -o json\): \$\.matches is missing$"),
        ([1], r"^not a Grype JSON report: expected an object with matches, got list$"),
        (
            report({"artifact": {"name": "x"}}),
            r"^\$\.matches\[0\]\.vulnerability: expected an object, got NoneType$",
        ),
        (
            report(match(vulnerability={"severity": "High"})),
            r"^\$\.matches\[0\]\.vulnerability\.id is missing$",
        ),
        (report(match(artifact={"version": "1"})), r"^\$\.matches\[0\]\.artifact\.name is missing$"),
        ({**report(), "matches": {}}, r"^\$\.matches: expected a list, got dict$"),
    ],
)
def test_errors_name_the_json_path(document: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        grype.parse(document)
