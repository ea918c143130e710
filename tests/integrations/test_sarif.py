"""The SARIF parser against every SARIF log in the shared samples (copied from DefectDojo), plus built logs."""

from __future__ import annotations

import copy
import json
from collections import Counter
from typing import Any

import pytest

from integrations.sources import sarif
from integrations.testing import (
    assert_detect_conformance,
    assert_no_secret,
    assert_parser_conformance,
    source_ids,
)
from tests.samples import AWS, SCANNERS

SAMPLES = SCANNERS / "sarif"

# file -> (findings we produce, DefectDojo's expected count or None, see samples/scanners/INDEX.md). Every
# result is a finding in both tools, except Gitleaks' log: it reports 4 secrets, each in 2 commits, and we keep
# one finding per (rule, file, secret) with the commits in context (as the Gitleaks JSON parser does with the
# same scan), while DefectDojo's SARIF parser keeps the 8 results. SpotBugs has no DefectDojo count.
EXPECTED: dict[str, tuple[int, int | None]] = {
    "bash-report.sarif": (27, 27),
    "codeQL-output.sarif": (72, 72),
    "cxf-3.4.6.sarif": (22, 22),
    "dependency_check.sarif": (13, 13),
    "gitleaks_7.5.0.sarif": (4, 8),
    "issue_10191.json": (77, 77),
    "spotbugs.sarif": (56, None),
}
SOURCES = {
    "bash-report.sarif": "shell-script-analysis",
    "codeQL-output.sarif": "codeql",
    "cxf-3.4.6.sarif": "grype",
    "dependency_check.sarif": "dependency-check",
    "gitleaks_7.5.0.sarif": "gitleaks",
    "issue_10191.json": "semgrep",
    "spotbugs.sarif": "spotbugs",
}


def sample(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text(encoding="utf-8"))


def log(*results: dict[str, Any], rules: list[dict[str, Any]] | None = None, **run: Any) -> dict[str, Any]:
    driver: dict[str, Any] = {"name": "Demo Scanner", "version": "1.2.3", "rules": rules or []}
    return {"version": "2.1.0", "runs": [{"tool": {"driver": driver}, "results": list(results), **run}]}


def result(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "ruleId": "demo/sql-injection",
        "message": {"text": "Query built from user input."},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": {"uri": "app/db.py"},
                    "region": {"startLine": 12, "snippet": {"text": "    cursor.execute('x' + name)\n"}},
                }
            }
        ],
    }
    base.update(overrides)
    return base


def test_every_sample_file_has_an_expected_count() -> None:
    assert sorted(p.name for p in SAMPLES.iterdir()) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_conforms_and_counts_are_explained(name: str) -> None:
    document = sample(name)
    findings = assert_parser_conformance(sarif, document, expect_source=SOURCES[name])
    ours, defectdojo = EXPECTED[name]
    assert len(findings) == ours
    raw_results = sum(len(run.get("results") or []) for run in document["runs"])
    assert defectdojo is None or defectdojo == raw_results
    assert sarif.detect(document)


def test_codeql_golden_fields() -> None:
    findings = sarif.parse(sample("codeQL-output.sarif"))
    first = findings[0]
    assert first.source == "codeql"
    assert first.type == "py/empty-except"
    assert first.title == "Empty except in good/db_init.py"
    assert first.description is not None and first.description.startswith("'except' clause does nothing")
    assert first.severity_label == "low"  # level absent, rule defaultConfiguration.level "note"
    assert first.location is not None
    assert (first.location.path, first.location.line) == ("good/db_init.py", 39)  # %SRCROOT% has no URI
    assert first.status == "open"
    assert first.context["identity"] == "partial:primaryLocationLineHash"
    assert first.context["cwe_ids"] == ["CWE-390"]
    assert first.context["tool_version"] == "2.5.4"
    assert first.source_id is not None and first.source_id.startswith("pfp:py/empty-except:")
    assert first.raw["ruleId"] == "py/empty-except"
    # Two results whose lines hash alike are told apart by their paths, not by their line numbers.
    hashes = Counter(f.raw["partialFingerprints"]["primaryLocationLineHash"] for f in findings)
    assert max(hashes.values()) == 2
    assert len(set(source_ids(findings))) == len(findings)


def test_semgrep_golden_fields_and_security_severity_labels() -> None:
    findings = sarif.parse(sample("issue_10191.json"))
    assert Counter(f.severity_label for f in findings) == {"medium": 42, "critical": 34, "high": 1}
    first = findings[0]
    assert first.source == "semgrep"
    assert (
        first.title
        == "Improper limitation of a pathname to a restricted directory ('Path Traversal') in Gruntfile.js"
    )
    assert first.context["identity"] == "fingerprint:matchBasedId/v1"
    assert first.location is not None and first.location.line == 75
    assert "CWE-22" in first.context["cwe_ids"]
    secret = next(f for f in findings if f.context.get("kind") == "secret")
    assert secret.type.endswith("rule-hardcoded-jwt-secret")
    assert secret.title == "Secret: Use of hard-coded credentials in lib/insecurity.ts"
    assert secret.context["secret"] == "expo…(107)"  # the snippet, masked whole: the log names no value


def test_grype_security_severity_is_cvss_times_ten() -> None:
    findings = sarif.parse(sample("cxf-3.4.6.sarif"))
    first = findings[0]
    assert first.source == "grype"
    assert first.severity == 21.0  # security-severity "2.1"
    assert first.severity_label == "low"
    assert first.references == ["https://github.com/anchore/grype"]
    assert first.remediation is not None and first.remediation.startswith("Vulnerability CVE-2008-0732")
    assert first.context["identity"] == "line"  # no fingerprint, no snippet, no logical location
    assert Counter(f.severity_label for f in findings) == {"high": 11, "low": 6, "medium": 4, "critical": 1}


def test_spotbugs_messages_are_rendered_from_message_strings() -> None:
    findings = sarif.parse(sample("spotbugs.sarif"))
    first = findings[0]
    assert first.description == "Hard coded reference to an absolute pathname in Boot.main(String[])."
    assert first.title == "Code contains a hard coded reference to an absolute pathname in Boot.java"
    assert first.context["identity"] == "logical"
    assert first.context["logical_location"] == "Boot.main(String[])"
    assert not any(f.context.get("kind") == "secret" for f in findings)  # "hard coded filename" is no secret


def test_shell_script_analysis_repository_and_relative_paths() -> None:
    findings = sarif.parse(sample("bash-report.sarif"))
    first = findings[0]
    assert first.source == "shell-script-analysis"
    assert first.location is not None
    assert first.location.repository == "https://github.com/damiencarol/django-DefectDojo"
    assert first.location.path == "docker/setEnv.sh"  # file:///home/damien/dd/... under the working directory
    assert first.resource.type == "repository"
    assert first.context["branch"] == "dev"
    assert first.context["revision"] == "288c68d1ba1f35ebeff1d1bdb032186a23f0ea5b"
    assert first.observed_at is not None and first.observed_at.isoformat() == "2021-03-08T15:39:40+00:00"
    # scanFileHash changes with any edit of the file, so only scanPrimaryLocationHash is in the key.
    assert first.context["identity"] == "partial:scanPrimaryLocationHash"


def test_dependency_check_severity_label_properties_beat_the_level() -> None:
    findings = sarif.parse(sample("dependency_check.sarif"))
    assert {f.context["level"] for f in findings} == {"error"}
    # Every result is an "error" (high); its severity / cvssv3_baseSeverity labels say otherwise.
    assert Counter(f.severity_label for f in findings) == {"medium": 12, "low": 1}


def test_gitleaks_sarif_secrets_are_masked_and_merged_across_commits() -> None:
    document = sample("gitleaks_7.5.0.sarif")
    findings = sarif.parse(document)
    assert [f.type for f in findings] == [
        "AWS Access Key",  # no ruleId in the log: the rule whose name starts the message
        "Asymmetric Private Key",
        "AWS Access Key",
        "AWS Access Key",
    ]
    first = findings[0]
    assert first.source == "gitleaks"
    assert first.title.startswith("Secret: AWS Access Key in dojo/unittests/scans/")
    assert first.severity_label == "critical"
    assert first.context["secret"] == "AKIA…(20)"
    assert first.context["commits"] == [
        "6d127980966808f7413935678e079dcd7fedf9c2",
        "8bbcdfd743c5695bdd7d3bc21aa9417131a7ab12",
    ]
    assert first.raw["properties"]["offender"] == "AKIA…(20)"
    assert "AKIA…(20)" in first.raw["locations"][0]["physicalLocation"]["region"]["snippet"]["text"]
    secrets = {r["properties"]["offender"] for r in document["runs"][0]["results"]}
    snippets = {
        r["locations"][0]["physicalLocation"]["region"]["snippet"]["text"]
        for r in document["runs"][0]["results"]
    }
    dumped = [f.model_dump(mode="json") for f in findings]
    for secret in secrets | snippets:
        assert_no_secret(dumped, secret)


def _reword(node: Any, parent: str = "") -> Any:
    """Every message and description string prefixed (snippets, which are code, left alone)."""
    if isinstance(node, dict):
        return {
            key: (
                f"Reworded: {value}"
                if key in ("text", "markdown") and isinstance(value, str) and parent != "snippet"
                else _reword(value, key)
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_reword(item, parent) for item in node]
    return node


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_rewording_messages_and_descriptions_changes_no_source_id(name: str) -> None:
    document = sample(name)
    reworded = _reword(document)
    assert reworded != document
    before, after = sarif.parse(document), sarif.parse(reworded)
    assert source_ids(after) == source_ids(before)
    assert [f.title for f in after] != [f.title for f in before]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_parsing_again_gives_identical_findings(name: str) -> None:
    first = [f.model_dump(mode="json") for f in sarif.parse(sample(name))]
    again = [f.model_dump(mode="json") for f in sarif.parse(sample(name))]
    assert first == again


def test_identity_ignores_the_line_when_there_is_a_snippet() -> None:
    moved = result()
    moved["locations"][0]["physicalLocation"]["region"]["startLine"] = 40
    reindented = result()
    reindented["locations"][0]["physicalLocation"]["region"]["snippet"]["text"] = (
        "cursor.execute('x'  +  name)"
    )
    keys = {sarif.parse(log(doc))[0].source_id for doc in (result(), moved, reindented)}
    assert len(keys) == 1
    changed = result()
    changed["locations"][0]["physicalLocation"]["region"]["snippet"]["text"] = "cursor.execute('y' + name)"
    assert sarif.parse(log(changed))[0].source_id not in keys


def test_identity_prefers_fingerprints_then_partial_fingerprints_then_the_line() -> None:
    with_fp = result(
        fingerprints={"b/v1": "B", "a/v1": "A"}, partialFingerprints={"primaryLocationLineHash": "h"}
    )
    finding = sarif.parse(log(with_fp))[0]
    assert finding.context["identity"] == "fingerprint:a/v1"
    same = result(fingerprints={"a/v1": "A"})
    same["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] = "moved/db.py"
    assert sarif.parse(log(same))[0].source_id == finding.source_id  # the tool's own identity wins
    partial = result(
        partialFingerprints={"primaryLocationLineHash": "h:1", "primaryLocationStartColumnFingerprint": "4"}
    )
    assert sarif.parse(log(partial))[0].context["identity"] == "partial:primaryLocationLineHash"
    bare = result()
    del bare["locations"][0]["physicalLocation"]["region"]["snippet"]
    assert sarif.parse(log(bare))[0].context["identity"] == "line"


def test_repeated_keys_in_one_log_are_numbered_in_line_order() -> None:
    later = result()
    later["locations"][0]["physicalLocation"]["region"]["startLine"] = 50
    findings = sarif.parse(log(later, result()))
    first_key = findings[1].source_id
    assert first_key is not None and findings[0].source_id == f"{first_key}#2"


def test_severity_sources_in_order() -> None:
    rules: list[dict[str, Any]] = [
        {"id": "r1", "properties": {"security-severity": "9.1"}, "defaultConfiguration": {"level": "note"}},
        {"id": "r2", "defaultConfiguration": {"level": "error"}},
        {"id": "r3"},
    ]
    results = [
        result(ruleId="r1", ruleIndex=0),
        result(ruleId="r1", ruleIndex=0, properties={"security-severity": 4.0}),
        result(ruleId="r2", ruleIndex=1),
        result(ruleId="r2", ruleIndex=1, level="none"),
        result(ruleId="r3", ruleIndex=2),
        result(ruleId="r3", ruleIndex=2, level="note"),
    ]
    for index, item in enumerate(results):
        item["locations"][0]["physicalLocation"]["region"]["startLine"] = index  # distinct, ranked keys
    labels = [f.severity_label for f in sarif.parse(log(*results, rules=rules))]
    assert labels == ["critical", "medium", "high", "informational", "medium", "low"]


def test_status_from_suppressions_kind_and_baseline() -> None:
    items = [
        result(suppressions=[{"kind": "inSource", "justification": "test fixture"}]),
        result(suppressions=[{"kind": "external", "status": "underReview"}]),
        result(kind="pass"),
        result(baselineState="absent"),
        result(baselineState="unchanged"),
    ]
    for index, item in enumerate(items):
        item["locations"][0]["physicalLocation"]["region"]["snippet"]["text"] = f"line {index}"
    findings = sarif.parse(log(*items))
    assert [f.status for f in findings] == ["suppressed", "open", "resolved", "resolved", "open"]
    assert findings[0].context["suppression_justification"] == "test fixture"


def test_uri_base_ids_and_artifact_indexes() -> None:
    relative = result()
    relative["locations"][0]["physicalLocation"]["artifactLocation"] = {"uri": "db.py", "uriBaseId": "APP"}
    absolute = result()
    absolute["locations"][0]["physicalLocation"]["artifactLocation"] = {"uri": "db.py", "uriBaseId": "ROOT"}
    indexed = result()
    indexed["locations"][0]["physicalLocation"]["artifactLocation"] = {"index": 0}
    document = log(
        relative,
        absolute,
        indexed,
        originalUriBaseIds={
            "ROOT": {"uri": "file:///home/runner/work/shop/"},
            "APP": {"uri": "app/", "uriBaseId": "SRC"},
            "SRC": {"uri": "src/"},
        },
        artifacts=[{"location": {"uri": "lib/util%20s.py"}}],
    )
    relative_finding, absolute_finding, indexed_finding = sarif.parse(document)
    assert relative_finding.location is not None and relative_finding.location.path == "src/app/db.py"
    assert absolute_finding.location is not None and absolute_finding.location.path == "db.py"
    assert absolute_finding.context["artifact_uri"] == "file:///home/runner/work/shop/db.py"
    assert indexed_finding.location is not None and indexed_finding.location.path == "lib/util s.py"


def test_extension_rules_and_source_slugs() -> None:
    document = log(result(ruleId=None, rule={"id": "ext/r", "index": 0, "toolComponent": {"index": 0}}))
    document["runs"][0]["tool"]["driver"]["name"] = "Semgrep Pro Engine"
    document["runs"][0]["tool"]["extensions"] = [
        {"name": "pack", "rules": [{"id": "ext/r", "shortDescription": {"text": "From the pack"}}]}
    ]
    finding = sarif.parse(document)[0]
    assert finding.source == "semgrep"
    assert finding.type == "ext/r"
    assert finding.title == "From the pack in app/db.py"
    document["runs"][0]["tool"]["driver"]["name"] = "Shell Script Analysis!"
    assert sarif.parse(document)[0].source == "shell-script-analysis"


def test_a_secret_rule_masks_the_value_everywhere_including_other_results() -> None:
    leak = "ghp_0123456789abcdefghijklmnopqrstuvwxyz"
    line = f'TOKEN = "{leak}"'
    secret_result = result(ruleId="generic-api-key", properties={"secret": leak})
    secret_result["locations"][0]["physicalLocation"]["region"]["snippet"]["text"] = line
    other = result(ruleId="style/long-line", message={"text": f"Line too long: {line}"})
    other["locations"][0]["physicalLocation"]["region"]["snippet"]["text"] = line
    findings = sarif.parse(log(secret_result, other))
    assert findings[0].context["kind"] == "secret"
    assert findings[0].context["secret"] == "ghp_…(40)"
    assert (
        findings[0].raw["locations"][0]["physicalLocation"]["region"]["snippet"]["text"]
        == 'TOKEN = "ghp_…(40)"'
    )
    assert "kind" not in findings[1].context
    assert_no_secret([f.model_dump(mode="json") for f in findings], leak)
    rotated = copy.deepcopy(secret_result)
    rotated["properties"]["secret"] = leak[::-1]
    assert sarif.parse(log(rotated))[0].source_id != findings[0].source_id


def test_other_versions_and_shapes_are_refused_with_the_json_path() -> None:
    with pytest.raises(ValueError, match=r"^SARIF version 2\.0\.0 is not supported; expected 2\.1\.0$"):
        sarif.parse({"version": "2.0.0", "runs": []})
    with pytest.raises(ValueError, match=r"\$\.runs is missing"):
        sarif.parse({"version": "2.1.0"})
    with pytest.raises(ValueError, match=r"\$\.version is missing"):
        sarif.parse({"runs": []})
    with pytest.raises(ValueError, match=r"\$\.runs\[0\]\.tool must be an object"):
        sarif.parse({"version": "2.1.0", "runs": [{}]})
    with pytest.raises(ValueError, match=r"\$\.runs\[0\]\.results\[0\] must be an object"):
        sarif.parse(log("not a result"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a SARIF log"):
        sarif.parse([])
    assert sarif.parse({"$schema": "https://json.schemastore.org/sarif-2.1.0.json", "runs": []}) == []


def test_detect_accepts_sarif_and_rejects_other_formats() -> None:
    trivy = json.loads((SCANNERS / "trivy" / "scheme_2_many_vulns.json").read_text(encoding="utf-8"))
    asff = json.loads((SCANNERS / "asff" / "one_vuln.json").read_text(encoding="utf-8"))
    guardduty_dir = AWS / "guardduty"
    guardduty = json.loads(next(guardduty_dir.glob("*.json")).read_text(encoding="utf-8"))
    native = {"findings": [{"source": "x", "type": "t", "title": "t", "severity": "low"}]}
    assert_detect_conformance(
        sarif,
        positives=[*(sample(name) for name in EXPECTED), {"version": "2.0.0", "runs": []}],
        negatives=[trivy, asff, guardduty, native, {"runs": []}, {"version": "2.1.0", "runs": {}}, None, []],
    )
