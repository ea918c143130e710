"""The TruffleHog parser: v3 JSON lines (a list of the decoded lines), v2, and trufflehog3's two layouts."""

from __future__ import annotations

import base64
import contextlib
import copy
import json
from pathlib import Path
from typing import Any

import pytest

from integrations.sources import trufflehog
from integrations.testing import (
    assert_detect_conformance,
    assert_no_secret,
    assert_parser_conformance,
    source_ids,
)
from tests.samples import AWS, SCANNERS

# (folder, file) -> (findings we produce, DefectDojo's expected count; samples/scanners/INDEX.md).
# * v3: 4 lines, one secret (URI) reported twice at the same place: one finding each, as DefectDojo.
# * v2 and trufflehog3 before 3.0 (same layout, several strings found per entry): DefectDojo keeps one finding
#   per (reason, path), hiding distinct secrets of one file; we keep one per (reason, path, string found),
#   the string without its diff marker (+/-), so a line added in one commit and removed in another is one.
#   v2: 18 (reason, path) pairs, one of them with two distinct strings -> 19. trufflehog3 legacy: 27 -> 48 and
#   7 -> 21 for the same reason.
# * trufflehog3 3.x: 4 entries, one secret in 2 commits -> 3, as DefectDojo.
EXPECTED = {
    ("trufflehog", "v2_many_vulns.json"): (19, 18),
    ("trufflehog", "v3_git.json"): (3, 3),
    ("trufflehog", "v3_github.json"): (3, 3),
    ("trufflehog3", "issue_6999.json"): (1, 1),
    ("trufflehog3", "many_vulns2_legacy.json"): (48, 27),
    ("trufflehog3", "many_vulns_current.json"): (3, 3),
    ("trufflehog3", "many_vulns_legacy.json"): (21, 7),
    ("trufflehog3", "zero_vulns.json"): (0, 0),
}

AWS_ID = "AKIAQYLPMN5HHHFPZAM2"
AWS_SECRET = "1tUm636uS1yOEcfP5pvfqJ/ml36mF7AkyHsEU0IU"


def load(folder: str, name: str) -> Any:
    """A sample as the endpoint hands it over: JSON as is, JSON lines as the list of decoded lines."""
    text = (SCANNERS / folder / name).read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def line_v3(**overrides: Any) -> dict[str, Any]:
    """A TruffleHog 3 JSON line of a recent release (Raw as text, filesystem source)."""
    base: dict[str, Any] = {
        "SourceMetadata": {"Data": {"Filesystem": {"file": "config/prod.env", "line": 3}}},
        "SourceID": 1,
        "SourceType": 15,
        "SourceName": "trufflehog - filesystem",
        "DetectorType": 2,
        "DetectorName": "AWS",
        "DetectorDescription": "AWS access key",
        "DecoderName": "PLAIN",
        "Verified": False,
        "Raw": AWS_ID,
        "RawV2": f"{AWS_ID}:{AWS_SECRET}",
        "Redacted": AWS_ID,
        "ExtraData": {"account": "052310077262", "resource_type": "Access key"},
        "StructuredData": None,
    }
    base.update(overrides)
    return base


def secrets_of(document: Any) -> set[str]:
    """Every value an entry reports as the secret, in every form it appears in (base64 Raw decoded too)."""
    values: set[str] = set()
    for item in document if isinstance(document, list) else [document]:
        for key in ("Raw", "RawV2", "Redacted", "secret"):
            value = item.get(key)
            if isinstance(value, str):
                values.add(value)
                with contextlib.suppress(ValueError):  # UnicodeDecodeError and binascii.Error included
                    values.add(base64.b64decode(value, validate=True).decode("utf-8"))
        values.update(s for s in item.get("stringsFound") or [] if isinstance(s, str))
    return {v for v in values if len(v) >= 4 and "*****" not in v}


def test_every_sample_file_has_an_expected_count() -> None:
    on_disk = {
        (folder, p.name) for folder in ("trufflehog", "trufflehog3") for p in (SCANNERS / folder).iterdir()
    }
    assert on_disk == set(EXPECTED)


@pytest.mark.parametrize(("folder", "name"), sorted(EXPECTED))
def test_sample_conforms_and_counts_are_explained(folder: str, name: str) -> None:
    document = load(folder, name)
    source = "trufflehog" if folder == "trufflehog" or "legacy" in name else "trufflehog3"
    findings = assert_parser_conformance(trufflehog, document, expect_source=source)
    ours, defectdojo = EXPECTED[(folder, name)]
    assert len(findings) == ours
    assert defectdojo <= ours <= len(document)
    assert trufflehog.detect(document) is bool(document)


@pytest.mark.parametrize(("folder", "name"), sorted(EXPECTED))
def test_no_secret_value_survives_anywhere(folder: str, name: str) -> None:
    document = load(folder, name)
    dumped = [f.model_dump(mode="json") for f in trufflehog.parse(document)]
    for secret in secrets_of(document):
        assert_no_secret(dumped, secret)


def test_v3_golden_fields() -> None:
    findings = trufflehog.parse(load("trufflehog", "v3_git.json"))
    aws = findings[0]
    assert aws.source == "trufflehog"
    assert aws.type == "AWS"
    assert aws.title == "Secret: AWS (verified) in keys"
    assert aws.description == (
        "TruffleHog found a secret (AKIA…(20)) in keys at line 4; detector: AWS. The value is not stored here."
    )
    assert aws.severity_label == "critical"  # verified: a live credential
    assert aws.location is not None
    assert (aws.location.repository, aws.location.path, aws.location.line) == (
        "https://github.com/trufflesecurity/test_keys",
        "keys",
        4,
    )
    assert aws.resource.type == "repository"
    assert aws.context["verified"] is True
    assert aws.context["source_kind"] == "Git"
    assert aws.context["extra_data"]["account"] == "595918472158"
    assert aws.raw["Raw"] == "QUtJ…(28)"  # base64 of the key id, masked as found
    assert aws.raw["Redacted"] == "AKIA…(20)"  # TruffleHog's "redacted" form is the key id in clear
    uri = findings[1]
    assert uri.context["occurrences_in_report"] == 2 and uri.context["lines"] == [3]


def test_git_and_github_sources_of_the_same_secret_share_keys() -> None:
    git = source_ids(trufflehog.parse(load("trufflehog", "v3_git.json")))
    github = source_ids(trufflehog.parse(load("trufflehog", "v3_github.json")))
    assert git == github  # repository ".git" suffix dropped; link and commit not in the key


def test_v3_plain_raw_unverified_and_a_single_line_object() -> None:
    (finding,) = trufflehog.parse(line_v3())
    assert finding.severity_label == "high"
    assert finding.title == "Secret: AWS access key (unverified) in config/prod.env"
    assert finding.location is not None and finding.location.repository is None
    assert finding.context["secret"] == "AKIA…(20)"
    assert finding.raw["RawV2"] == "AKIA…(61)"
    assert_no_secret(finding, AWS_ID)
    assert_no_secret(finding, AWS_SECRET)
    assert trufflehog.detect(line_v3())


def test_a_secret_in_many_commits_is_one_finding_verified_if_any_is() -> None:
    def in_commit(commit: str, line: int, verified: bool) -> dict[str, Any]:
        git = {
            "commit": commit,
            "file": "app.cfg",
            "repository": "https://github.com/acme/shop",
            "line": line,
        }
        return line_v3(SourceMetadata={"Data": {"Git": git}}, Verified=verified)

    findings = trufflehog.parse([in_commit("a" * 40, 3, False), in_commit("b" * 40, 9, True)])
    assert len(findings) == 1
    assert findings[0].severity_label == "critical"
    assert findings[0].context["commits"] == ["a" * 40, "b" * 40]
    assert findings[0].context["lines"] == [3, 9]
    rotated = in_commit("c" * 40, 3, False)
    rotated["Raw"] = "AKIAI44QH8DHBEXAMPLE"
    assert trufflehog.parse([rotated])[0].source_id != findings[0].source_id


def test_v2_entries_drop_the_diff_and_mask_every_string_found() -> None:
    document = load("trufflehog", "v2_many_vulns.json")
    findings = trufflehog.parse(document)
    first = findings[0]
    assert first.type == document[0]["reason"]
    assert "diff" not in first.raw and "printDiff" not in first.raw
    assert set(first.raw) == {"branch", "commit", "commitHash", "date", "path", "reason", "stringsFound"}
    assert first.context["commits"] == [document[0]["commitHash"]]
    by_reason = {f.type: f.severity_label for f in findings}
    assert by_reason["RSA private key"] == "critical"
    assert by_reason["Generic Secret"] == "high"


def test_trufflehog3_golden_fields() -> None:
    findings = trufflehog.parse(load("trufflehog3", "many_vulns_current.json"))
    first = findings[0]
    assert first.source == "trufflehog3"
    assert first.type == "high-entropy"
    assert first.title == "Secret: High Entropy in docker/Dockerfile"
    assert first.severity_label == "high"  # the tool's own rule.severity
    assert [f.severity_label for f in findings] == ["high", "medium", "low"]
    assert first.location is not None and (first.location.path, first.location.line) == (
        "docker/Dockerfile",
        3,
    )
    assert "id" not in first.raw  # trufflehog3's id is an unsalted hash of the content
    assert first.raw["context"]["3"].endswith("…(64)")
    assert findings[1].context["commits"] == [
        "999e1ae4a6ff2f2ae1f1dd25210aa19cb9af18b7",
        "0896d0ceea488036ff1ea3e301d1a77ceb9fe87f",
    ]


@pytest.mark.parametrize(("folder", "name"), sorted(key for key, (ours, _) in EXPECTED.items() if ours))
def test_rewording_descriptions_and_messages_changes_no_source_id(folder: str, name: str) -> None:
    document = load(folder, name)
    reworded = copy.deepcopy(document)
    for item in reworded:
        # v3 display names, descriptions and errors; v2's commit message ("commit"); trufflehog3's commit
        # message and rule text
        for key in ("SourceName", "DetectorDescription", "VerificationError", "commit", "message"):
            if isinstance(item.get(key), str):
                item[key] = f"Reworded: {item[key]}"
        if isinstance(item.get("rule"), dict):
            item["rule"]["message"] = "Reworded"
    assert reworded != document
    assert source_ids(trufflehog.parse(reworded)) == source_ids(trufflehog.parse(document))


def test_parsing_again_gives_identical_findings() -> None:
    document = load("trufflehog3", "many_vulns2_legacy.json")
    first = [f.model_dump(mode="json") for f in trufflehog.parse(document)]
    assert first == [f.model_dump(mode="json") for f in trufflehog.parse(copy.deepcopy(document))]


def test_not_a_trufflehog_report_names_the_path() -> None:
    with pytest.raises(ValueError, match=r"expected JSON lines \(an array of objects\), got str"):
        trufflehog.parse("{}")
    with pytest.raises(ValueError, match=r"\$\[1\] must be an object"):
        trufflehog.parse([line_v3(), 3])
    with pytest.raises(ValueError, match=r"\$\[0\]\.DetectorName is missing"):
        trufflehog.parse([{"SourceMetadata": {}}])
    with pytest.raises(ValueError, match=r"\$\.SourceMetadata\.Data is missing"):
        trufflehog.parse({"DetectorName": "AWS", "Raw": AWS_ID})
    with pytest.raises(ValueError, match=r"\$\[0\]\.stringsFound must be an array"):
        trufflehog.parse([{"reason": "High entropy", "stringsFound": "x"}])
    assert trufflehog.parse([]) == []


def test_detect_accepts_every_layout_and_rejects_other_formats() -> None:
    def read(path: Path) -> Any:
        return json.loads(path.read_text(encoding="utf-8"))

    trivy = read(SCANNERS / "trivy" / "scheme_2_many_vulns.json")
    asff = read(SCANNERS / "asff" / "one_vuln.json")
    guardduty = read(next((AWS / "guardduty").glob("*.json")))
    gitleaks = read(SCANNERS / "gitleaks" / "data_many.json")
    native = {"findings": [{"source": "x", "type": "t", "title": "t", "severity": "low"}]}
    positives = [doc for doc in (load(*key) for key in EXPECTED) if doc] + [line_v3(), [line_v3()]]
    assert_detect_conformance(
        trufflehog, positives=positives, negatives=[trivy, asff, guardduty, gitleaks, native, None, []]
    )
