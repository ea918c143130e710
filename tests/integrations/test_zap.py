"""The ZAP parser against every ZAP report in the shared samples (copied from DefectDojo).

The samples are ZAP's traditional XML reports; ZAP's traditional JSON report is written from the same data
with the same names (``site[]`` with ``@name``/``@host``/``@port``/``@ssl``, ``alerts[]`` of ``pluginid``,
``alertRef``, ``riskcode``..., ``instances[]``, ``tags[]`` of ``{tag, link}``; numbers as strings; the
``-plus`` variant's ``request-header``... per instance). ``zap_json`` turns an XML sample into that JSON, so
the parser is checked against real ZAP output; the JSON-only details (numbers, ``created``) are checked on
a small hand-written report.
"""

from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ET
from collections import Counter
from typing import Any

import pytest

from integrations import registry
from integrations.sources import zap
from integrations.testing import (
    NOT_A_DOCUMENT,
    assert_detect_conformance,
    assert_no_secret,
    assert_parser_conformance,
)
from tests.samples import AWS, SCANNERS

SAMPLES = SCANNERS / "zap"
_HTTP_MESSAGE = {
    "requestheader": "request-header",
    "requestbody": "request-body",
    "responseheader": "response-header",
    "responsebody": "response-body",
}

# file -> (findings we produce, DefectDojo's count; see samples/scanners/INDEX.md). Both make one finding
# per alert of a site (instances inside it). The one difference: dvwa_baseline_dojo.xml lists plugin 10027
# (Information Disclosure - Suspicious Comments) twice for one site, its instances split by confidence
# (Medium, Low); one alert of one site is one finding here (the key is site + alertRef), so 18 where
# DefectDojo counts 19. zap-results-second-scan.xml has no DefectDojo count.
EXPECTED: dict[str, tuple[int, int | None]] = {
    "dvwa_baseline_dojo.xml": (18, 19),
    "juicy2.xml": (6, 6),
    "some_2.9.0.xml": (7, 7),
    "zap-results-first-scan.xml": (15, 15),
    "zap-results-second-scan.xml": (18, None),
    "zap_2.16.1_with_req_resp.xml": (4, 4),
}


def zap_json(name: str) -> dict[str, Any]:
    """A traditional XML report as the traditional JSON report ZAP writes for the same scan."""
    root = ET.parse(SAMPLES / name).getroot()
    report: dict[str, Any] = {f"@{key}": value for key, value in root.attrib.items()}
    report["site"] = []
    for site in root.findall("site"):
        alerts = [_alert(item) for item in site.findall("alerts/alertitem")]
        report["site"].append({**{f"@{k}": v for k, v in site.attrib.items()}, "alerts": alerts})
    return report


def _alert(item: ET.Element) -> dict[str, Any]:
    alert: dict[str, Any] = {}
    for child in item:
        if child.tag == "instances":
            alert["instances"] = [
                {_HTTP_MESSAGE.get(field.tag, field.tag): (field.text or "").strip() for field in instance}
                for instance in child.findall("instance")
            ]
        elif child.tag == "tags":
            alert["tags"] = [
                {"tag": tag.findtext("tag") or "", "link": tag.findtext("link") or ""}
                for tag in child.findall("tag")
            ]
        else:
            alert[child.tag] = child.text or ""
    return alert


def report(*alerts: dict[str, Any], site: str = "https://shop.example.com") -> dict[str, Any]:
    return {
        "@programName": "ZAP",
        "@version": "2.15.0",
        "@generated": "Mon, 6 Jan 2025 10:00:00",
        "created": "2025-01-06T10:00:00.123Z",
        "site": [
            {
                "@name": site,
                "@host": "shop.example.com",
                "@port": "443",
                "@ssl": "true",
                "alerts": list(alerts),
            }
        ],
    }


def alert(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "pluginid": "10038",
        "alertRef": "10038-1",
        "alert": "Content Security Policy (CSP) Header Not Set",
        "name": "Content Security Policy (CSP) Header Not Set",
        "riskcode": "2",
        "confidence": "3",
        "riskdesc": "Medium (High)",
        "desc": "<p>Content Security Policy (CSP) is an added layer of security.</p><p>It helps &amp; detects.</p>",
        "instances": [
            {
                "id": "7",
                "uri": "https://shop.example.com/b",
                "method": "GET",
                "param": "",
                "attack": "",
                "evidence": "",
            },
            {
                "id": "3",
                "uri": "https://shop.example.com/a",
                "method": "GET",
                "param": "",
                "attack": "",
                "evidence": "",
            },
        ],
        "count": "2",
        "systemic": True,
        "solution": "<p>Ensure that your web server sets the Content-Security-Policy header.</p>",
        "otherinfo": "",
        "reference": "<p>https://developer.mozilla.org/en-US/docs/Web/HTTP/CSP</p><p>https://www.w3.org/TR/CSP/</p>",
        "cweid": "693",
        "wascid": "15",
        "sourceid": "1",
        "tags": [
            {"tag": "OWASP_2021_A05", "link": "https://owasp.org/Top10/A05_2021-Security_Misconfiguration/"}
        ],
    }
    base.update(overrides)
    return base


def ids(document: Any) -> list[str | None]:
    return [finding.source_id for finding in zap.parse(document)]


def test_every_sample_file_has_an_expected_count() -> None:
    assert sorted(p.name for p in SAMPLES.iterdir()) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_conforms_and_counts_match_defectdojo(name: str) -> None:
    document = zap_json(name)
    findings = assert_parser_conformance(zap, document)
    ours, _defectdojo = EXPECTED[name]
    assert len(findings) == ours
    assert registry.detect_all(document) == ["zap"]
    assert ids(document) == ids(zap_json(name))


def test_detect_accepts_zap_and_rejects_other_formats() -> None:
    negatives: list[Any] = [
        *NOT_A_DOCUMENT,
        *(json.loads(p.read_text(encoding="utf-8")) for p in (SCANNERS / "trivy").glob("*.json")),
        *(json.loads(p.read_text(encoding="utf-8")) for p in (SCANNERS / "asff").glob("*.json")),
        *(json.loads(p.read_text(encoding="utf-8")) for p in (AWS / "guardduty").glob("*.json")),
        json.loads((SCANNERS / "prowler" / "example_output_aws.ocsf.json").read_text(encoding="utf-8")),
        {"findings": [{"source": "x", "type": "t", "title": "t", "severity": "low"}]},
        {"site": []},
    ]
    positives = [zap_json(name) for name in EXPECTED] + [report(alert()), report()]
    assert_detect_conformance(zap, positives=positives, negatives=negatives)


def test_golden_fields_of_a_json_report() -> None:
    (finding,) = assert_parser_conformance(zap, report(alert()))
    assert finding.source == "zap"
    assert finding.source_id == "https://shop.example.com|10038-1"
    assert finding.type == "10038-1"
    assert finding.title == "Content Security Policy (CSP) Header Not Set on https://shop.example.com"
    assert finding.description == (
        "Content Security Policy (CSP) is an added layer of security.\n\nIt helps & detects."
    )
    assert finding.remediation == "Ensure that your web server sets the Content-Security-Policy header."
    assert finding.severity_label == "medium"
    assert finding.confidence == 90
    assert finding.status == "open"
    assert finding.resource.type == "web_application"
    assert finding.resource.id == "https://shop.example.com"
    assert finding.references == [
        "https://developer.mozilla.org/en-US/docs/Web/HTTP/CSP",
        "https://www.w3.org/TR/CSP/",
        "https://owasp.org/Top10/A05_2021-Security_Misconfiguration/",
    ]
    assert (
        finding.observed_at is not None
        and finding.observed_at.isoformat() == "2025-01-06T10:00:00.123000+00:00"
    )
    assert finding.context["cwe"] == "CWE-693"
    assert finding.context["wasc"] == "WASC-15"
    assert finding.context["instance_count"] == 2
    # sorted by URI: the same list whatever order the spider found the pages in
    assert [i["uri"] for i in finding.context["instances"]] == [
        "https://shop.example.com/a",
        "https://shop.example.com/b",
    ]
    assert finding.context["systemic"] is True


def test_golden_fields_of_a_zap_2_9_sample() -> None:
    findings = zap.parse(zap_json("some_2.9.0.xml"))
    cookie = findings[0]
    assert cookie.source_id == "https://mainsite.com|10011"  # no alertRef before ZAP 2.10: the plugin id
    assert cookie.title == "Cookie Without Secure Flag on https://mainsite.com"
    assert cookie.severity_label == "low"
    assert cookie.confidence == 60
    assert cookie.references == [
        "http://www.owasp.org/index.php/Testing_for_cookies_attributes_(OWASP-SM-002)"
    ]
    assert cookie.context["instances"] == [
        {"uri": "https://mainsite.com", "method": "GET", "param": "dmid", "evidence": "Set-Cookie: dmid"},
        {"uri": "https://mainsite.com", "method": "GET", "param": "opvc", "evidence": "Set-Cookie: opvc"},
        {
            "uri": "https://mainsite.com",
            "method": "GET",
            "param": "sitevisitscookie",
            "evidence": "Set-Cookie: sitevisitscookie",
        },
    ]
    assert cookie.observed_at is None  # only @generated, local time without a zone


def test_severity_and_confidence_codes() -> None:
    risks = Counter(f.severity_label.value for f in zap.parse(zap_json("zap-results-first-scan.xml")))
    assert risks == {"informational": 4, "low": 4, "high": 4, "medium": 3}
    for code, label in (("0", "informational"), ("1", "low"), ("2", "medium"), ("3", "high"), (3, "high")):
        assert zap.parse(report(alert(riskcode=code)))[0].severity_label == label
    for code, confidence in (("1", 30), ("2", 60), ("3", 90), ("4", 100), (2, 60)):
        assert zap.parse(report(alert(confidence=code)))[0].confidence == confidence
    false_positive = zap.parse(report(alert(confidence="0")))[0]
    assert (false_positive.confidence, false_positive.status) == (0, "suppressed")


def test_one_alert_split_by_confidence_is_one_finding() -> None:
    findings = zap.parse(zap_json("dvwa_baseline_dojo.xml"))
    (comments,) = [f for f in findings if f.type == "10027"]
    assert comments.confidence == 60  # the higher of Medium and Low
    assert comments.context["instance_count"] == 3
    assert len(comments.raw) == 2  # both alerts kept


def test_alert_variants_of_one_plugin_are_distinct() -> None:
    document = report(
        alert(), alert(alertRef="10038-2", alert="CSP: Wildcard Directive", name="CSP: Wildcard Directive")
    )
    assert ids(document) == ["https://shop.example.com|10038-1", "https://shop.example.com|10038-2"]


def test_the_same_alert_on_two_sites_is_two_findings() -> None:
    document = report(alert())
    document["site"].append({**document["site"][0], "@name": "https://api.example.com"})
    assert ids(document) == ["https://shop.example.com|10038-1", "https://api.example.com|10038-1"]


def test_rewording_every_description_changes_no_source_id() -> None:
    for name in EXPECTED:
        document = zap_json(name)
        reworded = copy.deepcopy(document)
        for site in reworded["site"]:
            for item in site["alerts"]:
                for key in ("alert", "name", "desc", "solution", "otherinfo", "reference", "riskdesc"):
                    item[key] = f"<p>Reworded {key}.</p>"
                item["riskcode"], item["confidence"] = "3", "1"
                item["instances"] = list(reversed(item.get("instances", [])))
        assert ids(reworded) == ids(document), name


def test_request_and_response_are_never_stored() -> None:
    document = zap_json("zap_2.16.1_with_req_resp.xml")
    findings = zap.parse(document)
    # the -plus report carries each request's headers (an Authorization header here) and body
    first = document["site"][0]["alerts"][0]["instances"][0]
    for secret in ("authorization: Bearer", '"client_id":"string"'):
        assert secret in first["request-header"] + first["request-body"]
        assert_no_secret(findings, secret)
    for finding in findings:
        for instance in finding.raw["instances"]:
            assert set(instance) <= {
                "id",
                "uri",
                "nodeName",
                "method",
                "param",
                "attack",
                "evidence",
                "otherinfo",
            }


def test_instances_are_capped() -> None:
    many = [
        {"uri": f"https://shop.example.com/{i:04}", "method": "GET", "evidence": "x" * 500}
        for i in range(600)
    ]
    (finding,) = zap.parse(report(alert(instances=many, count="600")))
    assert finding.context["instance_count"] == 600
    assert len(finding.context["instances"]) == zap.MAX_INSTANCES
    assert len(finding.context["instances"][0]["evidence"]) == zap.MAX_EVIDENCE
    assert len(finding.raw["instances"]) == zap.MAX_RAW_INSTANCES
    assert finding.raw["instances_omitted"] == 100


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"@version": "2.15.0"}, r"^not a ZAP JSON report \(traditional-json\): \$\.site is missing$"),
        ([], r"^not a ZAP JSON report: expected an object with site, got list$"),
        ({"site": [{"alerts": []}]}, r"^not a ZAP JSON report: \$\.site\[0\]\.@name is missing$"),
        (
            report(alert(), {"alert": "x"}),
            r"^not a ZAP alert: \$\.site\[0\]\.alerts\[1\]\.pluginid is missing$",
        ),
        ({"site": {}}, r"^\$\.site: expected a list, got dict$"),
    ],
)
def test_errors_name_the_json_path(document: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        zap.parse(document)
