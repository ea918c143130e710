"""The Gitleaks parser (both report layouts) and the shared secret masking helpers it relies on."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

import pytest

from integrations.sources import gitleaks
from integrations.sources.secrets import REDACTED_TEXT, Redactor, mask, secret_digest, secret_severity
from integrations.testing import (
    assert_detect_conformance,
    assert_no_secret,
    assert_parser_conformance,
    source_ids,
)
from tests.samples import AWS, SCANNERS

SAMPLES = SCANNERS / "gitleaks"

# file -> (findings we produce, DefectDojo's expected count; samples/scanners/INDEX.md). All are Gitleaks 7
# reports. version_7.5.0.json holds 8 leaks: 4 secrets, each found in 2 commits; one finding per (rule, file,
# secret) gives 4, as DefectDojo's dedup does. redacted_data_many.json was made with --redact: the values are
# gone, so its 6 leaks are told apart by their redacted lines (4 of them share a file and a rule).
EXPECTED = {
    "data_many.json": (2, 2),
    "data_one.json": (1, 1),
    "issue4336.json": (1, 1),
    "no_findings.json": (0, 0),  # the report is `null`
    "redacted_data_many.json": (6, 6),
    "version_7.5.0.json": (4, 4),
}

AWS_KEY = "AKIAIOSFODNN7EXAMPLE"


def sample(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text(encoding="utf-8"))


def leak_v8(**overrides: Any) -> dict[str, Any]:
    """A Gitleaks 8 leak as `gitleaks detect --report-format json` writes it."""
    base: dict[str, Any] = {
        "RuleID": "aws-access-token",
        "Description": "AWS Access Key",
        "StartLine": 12,
        "EndLine": 12,
        "StartColumn": 18,
        "EndColumn": 37,
        "Match": f'aws_access_key_id = "{AWS_KEY}"',
        "Secret": AWS_KEY,
        "File": "deploy/settings.ini",
        "SymlinkFile": "",
        "Commit": "4a1f0c2d9e8b7a6f5e4d3c2b1a0f9e8d7c6b5a49",
        "Link": "https://github.com/acme/shop/blob/4a1f0c2/deploy/settings.ini#L12",
        "Entropy": 3.68,
        "Author": "Jane Dev",
        "Email": "jane@example.com",
        "Date": "2024-03-01T10:00:00Z",
        "Message": f"add deploy settings with {AWS_KEY}",
        "Tags": [],
        "Fingerprint": "4a1f0c2d9e8b7a6f5e4d3c2b1a0f9e8d7c6b5a49:deploy/settings.ini:aws-access-token:12",
    }
    base.update(overrides)
    return base


def secrets_of(document: list[dict[str, Any]]) -> set[str]:
    """Every value a leak reports as the secret (the redaction marker and tiny values aside)."""
    values = {item.get(key) for item in document for key in ("Secret", "Match", "offender")}
    return {v for v in values if isinstance(v, str) and len(v) >= 4 and v != "REDACTED"}


def test_every_sample_file_has_an_expected_count() -> None:
    assert sorted(p.name for p in SAMPLES.iterdir()) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_conforms_and_counts_match_defectdojo(name: str) -> None:
    document = sample(name)
    findings = assert_parser_conformance(gitleaks, document)
    ours, defectdojo = EXPECTED[name]
    assert len(findings) == ours == defectdojo
    assert gitleaks.detect(document) is bool(document)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_no_secret_value_survives_anywhere(name: str) -> None:
    document = sample(name) or []
    dumped = [f.model_dump(mode="json") for f in gitleaks.parse(document)]
    for secret in secrets_of(document):
        assert_no_secret(dumped, secret)


def test_gitleaks7_golden_fields() -> None:
    findings = gitleaks.parse(sample("version_7.5.0.json"))
    first = findings[0]
    assert first.source == "gitleaks"
    assert first.type == "AWS Access Key"
    assert first.title == (
        "Secret: AWS Access Key in dojo/unittests/scans/gitlab_secret_detection_report/"
        "gitlab_secret_detection_report_1_vuln.json"
    )
    assert first.severity_label == "critical"  # a cloud-provider key
    assert first.status == "open"
    assert first.location is not None and first.location.line == 13
    assert first.context["secret"] == "AKIA…(20)"
    assert first.context["commits"] == [
        "6d127980966808f7413935678e079dcd7fedf9c2",
        "8bbcdfd743c5695bdd7d3bc21aa9417131a7ab12",
    ]
    assert first.context["occurrences_in_report"] == 2
    assert first.raw["offender"] == "AKIA…(20)"
    assert first.raw["line"] == '      "raw_source_code_extract": "AKIA…(20)",'
    assert first.observed_at is None  # the date is the commit's, kept in context
    assert first.context["commit_date"] == "2021-07-15T22:00:32+07:00"
    assert first.source_id is not None and first.source_id.startswith("secret:AWS Access Key:")
    private_key = findings[1]
    assert private_key.type == "Asymmetric Private Key"
    assert private_key.severity_label == "critical"


def test_gitleaks8_golden_fields() -> None:
    (finding,) = gitleaks.parse([leak_v8()])
    assert finding.type == "aws-access-token"
    assert finding.title == "Secret: AWS Access Key in deploy/settings.ini"
    assert finding.description == (
        "Gitleaks found a secret (AKIA…(20)) in deploy/settings.ini at line 12; rule: AWS Access Key. "
        "The value is not stored here."
    )
    assert finding.severity_label == "critical"
    assert finding.location is not None and (finding.location.path, finding.location.line) == (
        "deploy/settings.ini",
        12,
    )
    assert finding.references == ["https://github.com/acme/shop/blob/4a1f0c2/deploy/settings.ini#L12"]
    assert finding.remediation == gitleaks.REMEDIATION
    assert finding.context["gitleaks_fingerprint"].endswith(":deploy/settings.ini:aws-access-token:12")
    assert finding.context["entropy"] == 3.68
    assert finding.raw["Secret"] == "AKIA…(20)"
    assert finding.raw["Match"] == 'aws_access_key_id = "AKIA…(20)"'  # the text around the secret stays
    assert finding.raw["Message"] == "add deploy settings with AKIA…(20)"
    assert_no_secret(finding, AWS_KEY)


def test_one_finding_per_secret_and_file_whatever_the_commit_or_line() -> None:
    other_commit = leak_v8(Commit="b" * 40, StartLine=30, Fingerprint="b:deploy/settings.ini:aws:30")
    other_file = leak_v8(File="deploy/prod.ini")
    other_secret = leak_v8(Secret="AKIAI44QH8DHBEXAMPLE", Match='aws_access_key_id = "AKIAI44QH8DHBEXAMPLE"')
    findings = gitleaks.parse([leak_v8(), other_commit, other_file, other_secret])
    assert len(findings) == 3
    merged = findings[0]
    assert merged.context["commits"] == ["4a1f0c2d9e8b7a6f5e4d3c2b1a0f9e8d7c6b5a49", "b" * 40]
    assert merged.context["lines"] == [12, 30]
    # A re-scan that only sees the later commit still finds the same finding.
    assert gitleaks.parse([other_commit])[0].source_id == merged.source_id


def test_rewording_descriptions_and_messages_changes_no_source_id() -> None:
    document = [*sample("version_7.5.0.json"), leak_v8()]
    reworded = copy.deepcopy(document)
    for item in reworded:
        for key in ("Description", "Message", "commitMessage"):
            if isinstance(item.get(key), str):
                item[key] = f"Reworded: {item[key]}"
    assert source_ids(gitleaks.parse(reworded)) == source_ids(gitleaks.parse(document))


def test_parsing_again_gives_identical_findings() -> None:
    document = sample("redacted_data_many.json")
    first = [f.model_dump(mode="json") for f in gitleaks.parse(document)]
    assert first == [f.model_dump(mode="json") for f in gitleaks.parse(copy.deepcopy(document))]


def test_redacted_reports_are_keyed_by_the_redacted_line() -> None:
    findings = gitleaks.parse(sample("redacted_data_many.json"))
    assert {f.context["secret"] for f in findings} == {"REDACTED"}
    assert {f.context["redacted_by_gitleaks"] for f in findings} == {True}
    redacted = leak_v8(Secret="REDACTED", Match='aws_access_key_id = "REDACTED"')
    (finding,) = gitleaks.parse([redacted])
    assert finding.context["secret"] == "REDACTED"


def test_severity_is_high_for_secrets_other_than_cloud_and_private_keys() -> None:
    findings = gitleaks.parse(sample("data_many.json"))
    assert [(f.type, f.severity_label) for f in findings] == [
        ("Github", "high"),
        ("MailChimp API key", "high"),
    ]
    assert findings[0].context["secret"] == "GITH…(55)"  # Gitleaks 7's offender is the whole match
    assert findings[0].raw["line"] == "export JEKYLL_GITH…(55)"


def test_a_secret_quoted_by_another_leak_is_masked_there_too() -> None:
    quoting = leak_v8(
        RuleID="generic-api-key",
        Secret="zq8Xv2Lm9Pt4Rw7Ks1Nd",
        Match="token=zq8Xv2Lm9Pt4Rw7Ks1Nd",
        File="notes.md",
        Message=f"rotate {AWS_KEY} soon",
    )
    dumped = [f.model_dump(mode="json") for f in gitleaks.parse([leak_v8(), quoting])]
    assert_no_secret(dumped, AWS_KEY)
    assert_no_secret(dumped, "zq8Xv2Lm9Pt4Rw7Ks1Nd")


def test_not_a_gitleaks_report_names_the_path() -> None:
    with pytest.raises(ValueError, match=r"expected an array of leaks, got dict"):
        gitleaks.parse({"findings": []})
    with pytest.raises(ValueError, match=r"\$\[1\] must be an object"):
        gitleaks.parse([leak_v8(), "x"])
    with pytest.raises(ValueError, match=r"\$\[0\]\.RuleID is missing"):
        gitleaks.parse([{"Secret": "x", "File": "a"}])
    with pytest.raises(ValueError, match=r"\$\[0\]\.rule is missing"):
        gitleaks.parse([{"offender": "x", "file": "a"}])
    assert gitleaks.parse(None) == []
    assert gitleaks.parse([]) == []


def test_detect_accepts_both_layouts_and_rejects_other_formats() -> None:
    trivy = json.loads((SCANNERS / "trivy" / "scheme_2_many_vulns.json").read_text(encoding="utf-8"))
    asff = json.loads((SCANNERS / "asff" / "one_vuln.json").read_text(encoding="utf-8"))
    guardduty = json.loads(next((AWS / "guardduty").glob("*.json")).read_text(encoding="utf-8"))
    native = {"findings": [{"source": "x", "type": "t", "title": "t", "severity": "low"}]}
    trufflehog3 = [{"rule": {"id": "high-entropy"}, "path": "a", "secret": "x"}]
    positives = [doc for doc in (sample(name) for name in EXPECTED) if doc] + [[leak_v8()]]
    assert_detect_conformance(
        gitleaks, positives=positives, negatives=[trivy, asff, guardduty, native, trufflehog3, None, []]
    )


# The shared masking helpers (integrations/sources/secrets.py), used by every secret-bearing parser.


def test_mask_shows_four_characters_and_the_length_only_for_long_values() -> None:
    assert mask(AWS_KEY) == "AKIA…(20)"
    assert mask("ghp_0123456789") == "ghp_…(14)"
    assert mask("hunter2") == "…(7)"  # four characters of a short password are most of it
    assert mask("a" * 12) == "aaaa…(12)"


def test_secret_digest_is_salted_stable_and_not_a_plain_hash() -> None:
    assert secret_digest(AWS_KEY) == secret_digest(AWS_KEY)
    assert len(secret_digest(AWS_KEY)) == 32
    assert secret_digest(AWS_KEY) != hashlib.sha256(AWS_KEY.encode()).hexdigest()[:32]
    assert secret_digest(AWS_KEY, salt="deployment-salt") != secret_digest(AWS_KEY)


def test_redactor_masks_nested_values_keys_and_longest_first() -> None:
    match = f'key="{AWS_KEY}"'
    redactor = Redactor([AWS_KEY, None, "", match])
    original: dict[str, Any] = {"a": [match, {AWS_KEY: f"x {AWS_KEY} y"}], "n": 3, "t": (AWS_KEY,)}
    redacted = redactor.value(original)
    assert redacted == {
        "a": ["key=…(26)", {"AKIA…(20)": "x AKIA…(20) y"}],
        "n": 3,
        "t": ["AKIA…(20)"],
    }
    assert original["a"][0] == match  # a copy: the input is untouched
    assert not redactor.leaks(redacted) and redactor.leaks(original)
    assert Redactor([]).value(original) is original
    assert not Redactor([None, ""])


def test_redactor_masks_a_mask_that_contains_another_secret() -> None:
    redactor = Redactor(["abcdefghijkl", "…(12)"])  # the first one's mask contains the second
    assert redactor.text("abcdefghijkl") == "abcd…(5)"
    assert not redactor.leaks(redactor.value(["abcdefghijkl", "x …(12) y"]))
    assert REDACTED_TEXT == "[redacted by tocsin]"


def test_secret_severity() -> None:
    assert secret_severity("aws-access-token") == 95.0
    assert secret_severity("Generic API Key", "private-key") == 95.0
    assert secret_severity("slack-webhook-url") == 80.0


def test_redactor_with_many_secrets_masks_exactly_as_with_few() -> None:
    many = [f"tok{index:02d}-{'x' * index}" for index in range(40)]
    text = " | ".join(many[::3]) + " and tok05-xxxxx-suffix"
    indexed = Redactor(many)
    assert len(many) > Redactor._INDEX_FROM
    expected = text
    for secret in sorted(many, key=len, reverse=True):
        expected = expected.replace(secret, mask(secret))
    assert indexed.text(text) == expected
    assert not indexed.leaks(indexed.value({"k": [text]}))
    assert indexed.text("short") == "short"
