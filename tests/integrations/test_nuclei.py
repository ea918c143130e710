"""The Nuclei parser against every Nuclei output in the shared samples (copied from DefectDojo)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from integrations import registry
from integrations.sources import nuclei
from integrations.testing import (
    NOT_A_DOCUMENT,
    assert_detect_conformance,
    assert_no_secret,
    assert_parser_conformance,
)
from tests.samples import AWS, SCANNERS

SAMPLES = SCANNERS / "nuclei"

# file -> (findings we produce, DefectDojo's count; see samples/scanners/INDEX.md). One finding per
# template, place (matched-at) and matcher:
# * many_findings.json (Nuclei 2 JSON lines, 18 results): DefectDojo keys on template, matcher and the
#   *hostname*, so tech-detect's bootstrap and font-awesome on WebGoat (127.0.0.1:8080) and WebWolf
#   (127.0.0.1:9090) merge: 16. We key on the place, port included: two applications, 18 findings.
# * multiple_v3.json (a JSON array export, 6 results): tls-version matched www.asdf.de:443 twice (tls12 and
#   tls13, told apart only by extracted results); both tools fold them: 5.
EXPECTED: dict[str, tuple[int, int]] = {
    "issue_14071.json": (27, 27),  # Nuclei 3 JSON lines
    "many_findings.json": (18, 16),
    "many_findings_new.json": (2, 2),
    "multiple_v3.json": (5, 5),
}


def load(name: str) -> Any:
    """A sample as the endpoint hands it over: JSON, or JSON lines as the list of their objects."""
    body = (SAMPLES / name).read_text(encoding="utf-8")
    try:
        return json.loads(body)
    except json.JSONDecodeError:
        return [json.loads(line) for line in body.splitlines() if line.strip()]


def ids(document: Any) -> list[str | None]:
    return [finding.source_id for finding in nuclei.parse(document)]


def result(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "template": "http/exposures/configs/git-config.yaml",
        "template-id": "git-config",
        "template-url": "https://cloud.projectdiscovery.io/public/git-config",
        "info": {
            "name": "Git Configuration - Detect",
            "author": ["pdteam"],
            "tags": ["config", "git", "exposure"],
            "description": "Git configuration was detected.",
            "reference": ["https://git-scm.com/docs/git-config"],
            "severity": "medium",
            "classification": {"cve-id": None, "cwe-id": ["cwe-200"], "cvss-score": 5.3},
            "remediation": "Block access to .git.",
        },
        "type": "http",
        "host": "https://shop.example.com",
        "matched-at": "https://shop.example.com/.git/config",
        "ip": "203.0.113.7",
        "timestamp": "2025-01-06T10:00:00.123456789Z",
        "request": "GET /.git/config HTTP/1.1\r\nHost: shop.example.com\r\nAuthorization: Bearer s3cr3t-t0ken\r\n",
        "response": "HTTP/1.1 200 OK\r\nSet-Cookie: session=abcdef0123456789\r\n\r\n[core]",
        "curl-command": "curl -H 'Authorization: Bearer s3cr3t-t0ken' https://shop.example.com/.git/config",
        "matcher-status": True,
    }
    base.update(overrides)
    return base


def test_every_sample_file_has_an_expected_count() -> None:
    assert sorted(p.name for p in SAMPLES.glob("*.json")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_conforms_and_counts_match_defectdojo(name: str) -> None:
    document = load(name)
    findings = assert_parser_conformance(nuclei, document)
    ours, _defectdojo = EXPECTED[name]
    assert len(findings) == ours
    assert registry.detect_all(document) == ["nuclei"]
    assert ids(document) == ids(load(name))


def test_detect_accepts_nuclei_and_rejects_other_formats() -> None:
    negatives: list[Any] = [
        *NOT_A_DOCUMENT,
        *(json.loads(p.read_text(encoding="utf-8")) for p in (SCANNERS / "trivy").glob("*.json")),
        *(json.loads(p.read_text(encoding="utf-8")) for p in (SCANNERS / "asff").glob("*.json")),
        *(json.loads(p.read_text(encoding="utf-8")) for p in (AWS / "guardduty").glob("*.json")),
        json.loads((SCANNERS / "prowler" / "example_output_aws.ocsf.json").read_text(encoding="utf-8")),
        {"findings": [{"source": "x", "type": "t", "title": "t", "severity": "low"}]},
        [{"template-id": "x", "info": "not an object", "host": "h"}],
    ]
    positives = [load(name) for name in EXPECTED] + [result(), [result()]]
    assert_detect_conformance(nuclei, positives=positives, negatives=negatives)


def test_golden_fields() -> None:
    (finding,) = assert_parser_conformance(nuclei, [result()])
    assert finding.source == "nuclei"
    assert finding.source_id is not None and finding.source_id.startswith("git-config:")
    assert finding.type == "git-config"
    assert finding.title == "Git Configuration - Detect at https://shop.example.com/.git/config"
    assert finding.description == "Git configuration was detected."
    assert finding.remediation == "Block access to .git."
    assert finding.severity_label == "medium"
    assert finding.status == "open"
    assert (finding.resource.type, finding.resource.id) == ("web_application", "https://shop.example.com")
    assert finding.references == [
        "https://git-scm.com/docs/git-config",
        "https://cloud.projectdiscovery.io/public/git-config",
    ]
    assert (
        finding.observed_at is not None
        and finding.observed_at.isoformat() == "2025-01-06T10:00:00.123456+00:00"
    )
    assert finding.context["cwe_ids"] == ["CWE-200"]
    assert finding.context["cvss_score"] == 5.3
    assert finding.context["matched_at"] == "https://shop.example.com/.git/config"
    assert finding.context["ip"] == "203.0.113.7"


def test_nuclei_2_field_names() -> None:
    findings = nuclei.parse(load("many_findings.json"))
    ssh = findings[0]
    assert ssh.type == "openssh5.3-detect"
    assert ssh.title == "OpenSSH 5.3 Detection at nuclei-example.com:22"
    assert ssh.severity_label == "low"
    assert ssh.references == [  # Nuclei 2 wrote references as "- url" lines
        "http://seclists.org/fulldisclosure/2016/Jul/51",
        "https://security-tracker.debian.org/tracker/CVE-2016-6210",
        "http://openwall.com/lists/oss-security/2016/08/01/2",
    ]
    assert ssh.context["tags"] == ["network", "openssh"]
    nginx = findings[1]
    assert nginx.context["extracted_results"] == ["nginx/1.14.2"]
    tech = [f.title for f in findings if f.type == "tech-detect"]
    assert tech[0] == "Wappalyzer Technology Detection (animate.css) at http://127.0.0.1:8080/WebGoat"


def test_a_matcher_is_its_own_finding() -> None:
    findings = nuclei.parse(load("issue_14071.json"))
    headers = [f for f in findings if f.type == "http-missing-security-headers"]
    assert len(headers) == 11
    assert len({f.source_id for f in headers}) == 11
    assert (
        headers[0].title == "HTTP Missing Security Headers (strict-transport-security) at http://dvwa_dvwa_1/"
    )


def test_results_without_a_host_take_it_from_where_they_matched() -> None:
    findings = nuclei.parse(load("issue_14071.json"))
    cookies = next(f for f in findings if f.type == "cookies-without-httponly")
    assert cookies.resource.id == "http://dvwa_dvwa_1"
    assert cookies.context["matched_at"] == "http://dvwa_dvwa_1/"  # Nuclei wrote the url as /http://...
    dns = next(f for f in findings if f.type == "nameserver-fingerprint")
    assert dns.resource.id is None  # the sample's DNS result names no target at all
    assert dns.context["extracted_results"][0] == "j.root-servers.net."


def test_repeats_fold_their_extracted_results() -> None:
    findings = nuclei.parse(load("multiple_v3.json"))
    tls = next(f for f in findings if f.type == "tls-version")
    assert tls.context["extracted_results"] == ["tls12", "tls13"]
    assert isinstance(tls.raw, list) and len(tls.raw) == 2


@pytest.mark.parametrize(
    ("severity", "cvss", "expected"),
    [
        ("info", None, 0.0),
        ("low", None, 25.0),
        ("critical", None, 95.0),
        ("unknown", 7.5, 75.0),
        ("unknown", None, 25.0),
        (None, None, 25.0),
    ],
)
def test_severity(severity: str | None, cvss: float | None, expected: float) -> None:
    info = {**result()["info"], "severity": severity, "classification": {"cvss-score": cvss}}
    assert nuclei.parse(result(info=info))[0].severity == expected


def test_rewording_every_description_changes_no_source_id() -> None:
    for name in EXPECTED:
        document = load(name)
        reworded = copy.deepcopy(document)
        for item in reworded if isinstance(reworded, list) else [reworded]:
            info = item["info"]
            for key in ("name", "description", "impact", "remediation", "reference"):
                info[key] = f"Reworded {key}."
            info["severity"] = "high"
            item["timestamp"] = "2031-01-01T00:00:00Z"
            item.pop("extracted-results", None)
            item.pop("extracted_results", None)
            if "ip" in item and ("matched-at" in item or "host" in item):
                item["ip"] = "192.0.2.1"  # a load balancer's address moves; the place stays
        assert ids(reworded) == ids(document), name


def test_what_the_finding_is_changes_identity() -> None:
    base = ids([result()])
    assert ids([result(**{"matched-at": "https://shop.example.com/app/.git/config"})]) != base
    assert ids([result(**{"template-id": "git-config-nginxoffbyslash"})]) != base
    assert ids([result(**{"matcher-name": "other"})]) != base
    # Nuclei 2 names, same result: same key
    legacy = {k: v for k, v in result().items() if k not in ("template-id", "matched-at")}
    legacy.update(templateID="git-config", matched="https://shop.example.com/.git/config")
    assert ids([legacy]) == base


def test_requests_responses_and_credentials_are_never_stored() -> None:
    findings = nuclei.parse([result()])
    assert_no_secret(findings, "s3cr3t-t0ken")
    assert_no_secret(findings, "abcdef0123456789")
    default_login = next(f for f in nuclei.parse(load("issue_14071.json")) if f.type == "dvwa-default-login")
    assert default_login.raw["meta"] == {"username": "admin", "password": "[redacted by tocsin]"}
    token = result(
        info={**result()["info"], "tags": ["exposure", "token"]},
        **{"extracted-results": ["AKIAIOSFODNN7EXAMPLE"], "matched-line": "key=AKIAIOSFODNN7EXAMPLE"},
    )
    (finding,) = nuclei.parse([token])
    assert_no_secret(finding, "AKIAIOSFODNN7EXAMPLE")
    assert finding.context["extracted_count"] == 1


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("text", r"^not Nuclei results: expected JSON lines .* got str$"),
        ([result(), {"info": {}}], r"^not a Nuclei result: \$\[1\]\.template-id is missing$"),
        ({"template-id": "x"}, r"^not a Nuclei result: \$\.info is missing$"),
        ([result(), "line"], r"^not a Nuclei result: \$\[1\] is a str, not an object$"),
    ],
)
def test_errors_name_the_json_path(document: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        nuclei.parse(document)
