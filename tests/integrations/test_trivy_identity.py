"""Identity of Trivy findings: what must keep a re-scan on the same finding, and what must not."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from app.pipeline.fingerprint import identity_of
from integrations.sources import trivy
from integrations.testing import assert_parser_conformance
from tests.integrations._trivy_docs import (
    config_result,
    misconf,
    os_result,
    report,
    sample,
    secret,
    secret_result,
    vuln,
)


def one(document: dict[str, Any]) -> Any:
    findings = assert_parser_conformance(trivy, document)
    assert len(findings) == 1
    return findings[0]


def ids(document: Any) -> list[str | None]:
    return [f.source_id for f in trivy.parse(document)]


@pytest.mark.parametrize(
    "name",
    [
        "all_statuses.json",
        "legacy_many_vulns.json",
        "misconfigurations_and_secrets.json",
        "license_scheme.json",
    ],
)
def test_reparsing_a_sample_gives_the_same_source_ids(name: str) -> None:
    assert ids(sample(name)) == ids(sample(name))


def test_rewording_a_sample_does_not_change_its_source_ids() -> None:
    document = sample("all_statuses.json")
    reworded = copy.deepcopy(document)
    for item in reworded["Results"][0]["Vulnerabilities"]:
        item["Title"] = "Reworded: " + item.get("Title", "")
        item["Description"] = "A new description from the advisory database."
        item["References"] = ["https://example.com/advisory"]
        item["LastModifiedDate"] = "2030-01-01T00:00:00Z"
        item["Severity"] = "CRITICAL"
        item["VendorSeverity"] = {"debian": 4}
        item["CVSS"] = {}
    reworded["CreatedAt"] = "2030-01-01T00:00:00Z"
    assert ids(reworded) == ids(document)
    assert [f.title for f in trivy.parse(reworded)] != [f.title for f in trivy.parse(document)]


@pytest.mark.parametrize(
    "change",
    [
        {"Title": "another title", "Description": "another text", "PrimaryURL": "https://example.org/x"},
        {"Severity": "LOW", "VendorSeverity": {"nvd": 1}, "CVSS": {}},
        {"FixedVersion": "", "Status": "affected", "LastModifiedDate": "2031-01-01T00:00:00Z"},
        {"PkgIdentifier": {"PURL": "pkg:deb/debian/xz-utils@5.6.0-0.2?arch=amd64&distro=debian-12.6"}},
        {"Layer": {"DiffID": "sha256:another-layer"}},
    ],
)
def test_volatile_vulnerability_fields_do_not_change_identity(change: dict[str, Any]) -> None:
    assert one(report(os_result(vuln(**change)))).source_id == one(report(os_result(vuln()))).source_id


@pytest.mark.parametrize(
    "change",
    [
        {"VulnerabilityID": "CVE-2024-0001"},
        {"InstalledVersion": "5.6.1"},
        {"PkgName": "liblzma5"},
        {"PkgPath": "usr/lib/app.jar"},
        {"PkgIdentifier": {"PURL": "pkg:deb/debian/xz-utils@5.6.0-0.2?arch=i386&distro=debian-12.5"}},
    ],
)
def test_what_the_finding_is_does_change_identity(change: dict[str, Any]) -> None:
    assert one(report(os_result(vuln(**change)))).source_id != one(report(os_result(vuln()))).source_id


def test_same_vulnerability_in_two_images_is_two_findings() -> None:
    first = one(report(os_result(vuln()), ArtifactName="shop/api:1"))
    second = one(report(os_result(vuln()), ArtifactName="shop/web:1"))
    assert first.source_id != second.source_id


def test_distro_point_release_keeps_os_package_findings() -> None:
    before = report(os_result(vuln(), target="shop/api:1 (debian 12.5)"), ArtifactName="shop/api:1")
    after = report(os_result(vuln(), target="shop/api:1 (debian 12.6)"), ArtifactName="shop/api:1")
    assert one(before).source_id == one(after).source_id
    assert one(after).context["target"] == "shop/api:1 (debian 12.6)"


def test_finding_stored_by_an_older_trivy_without_purl_is_matched_through_its_alias() -> None:
    old = one(report(os_result(vuln(PkgIdentifier=None))))
    new = one(report(os_result(vuln())))
    assert old.source_id != new.source_id
    assert new.aliases == [identity_of(old).primary_key]
    assert identity_of(old).primary_key in identity_of(new).alias_keys


def test_misconfiguration_identity_ignores_lines_and_id_spelling() -> None:
    base = one(report(config_result(misconf()), ArtifactType="filesystem", ArtifactName="acme/infra"))
    moved = misconf(CauseMetadata={**misconf()["CauseMetadata"], "StartLine": 40, "EndLine": 48})
    renamed = misconf(ID="AWS-0086", AVDID="")
    for variant in (moved, renamed, misconf(Title="New title", Message="new message")):
        document = report(config_result(variant), ArtifactType="filesystem", ArtifactName="acme/infra")
        assert one(document).source_id == base.source_id
    other = misconf(CauseMetadata={**misconf()["CauseMetadata"], "Resource": "aws_s3_bucket.assets"})
    document = report(config_result(other), ArtifactType="filesystem", ArtifactName="acme/infra")
    assert one(document).source_id != base.source_id


def test_old_and_new_check_id_spellings_are_one_check() -> None:
    spellings = [{"ID": "DS002"}, {"ID": "DS-0002"}, {"ID": "DS002", "AVDID": "AVD-DS-0002"}]
    keys = {
        one(
            report(config_result(misconf(CauseMetadata={}, **s, **({} if "AVDID" in s else {"AVDID": ""}))))
        ).source_id
        for s in spellings
    }
    assert len(keys) == 1


def test_pass_closes_the_fail_of_the_same_check() -> None:
    dockerfile = {"Provider": "Dockerfile", "Service": "general", "StartLine": 1, "EndLine": 1}
    failing = misconf(ID="DS001", AVDID="AVD-DS-0001", CauseMetadata=dockerfile)
    passing = misconf(
        ID="DS001", AVDID="AVD-DS-0001", Status="PASS", CauseMetadata={"Provider": "Dockerfile"}
    )
    fail = one(report(config_result(failing, target="Dockerfile")))
    passed = one(report(config_result(passing, target="Dockerfile")))
    assert fail.status == "open"
    assert passed.status == "resolved"
    assert passed.source_id == fail.source_id
    exception = one(report(config_result(misconf(Status="EXCEPTION"))))
    assert exception.status == "suppressed"


def test_repeated_hits_without_a_resource_are_numbered_in_line_order() -> None:
    def hit(line: int) -> dict[str, Any]:
        return misconf(ID="DS017", AVDID="", CauseMetadata={"StartLine": line, "EndLine": line})

    first = trivy.parse(report(config_result(hit(30), hit(5), target="Dockerfile")))
    shifted = trivy.parse(report(config_result(hit(9), hit(34), target="Dockerfile")))
    assert len({f.source_id for f in first}) == 2
    by_line = {f.location.line: f.source_id for f in first if f.location}
    assert by_line[30] == f"{by_line[5]}#2"
    assert sorted(f.source_id or "" for f in shifted) == sorted(f.source_id or "" for f in first)


def test_secret_identity_follows_the_match_not_the_line() -> None:
    at_line_3 = one(report(secret_result(secret())))
    at_line_9 = one(report(secret_result(secret(StartLine=9, EndLine=9))))
    assert at_line_3.source_id == at_line_9.source_id
    assert at_line_9.location is not None and at_line_9.location.line == 9
    other_rule = one(report(secret_result(secret(RuleID="aws-secret-access-key"))))
    other_file = one(report(secret_result(secret(), target="deploy/prod.env")))
    assert len({at_line_3.source_id, other_rule.source_id, other_file.source_id}) == 3


def test_identical_secret_lines_in_one_file_stay_two_findings() -> None:
    findings = assert_parser_conformance(
        trivy, report(secret_result(secret(StartLine=3, EndLine=3), secret(StartLine=8, EndLine=8)))
    )
    assert len({f.source_id for f in findings}) == 2


def test_secret_without_match_falls_back_to_its_line() -> None:
    findings = trivy.parse(report(secret_result(secret(Match=""), secret(Match="", StartLine=9))))
    assert len({f.source_id for f in findings}) == 2


def test_source_id_is_bounded_and_readable() -> None:
    finding = one(report(os_result(vuln(VulnerabilityID="GHSA-" + "x" * 600))))
    assert finding.source_id is not None and len(finding.source_id) < 300
    assert str(one(report(os_result(vuln()))).source_id).startswith("vuln:CVE-2024-3094:")


def test_jar_moved_from_its_own_target_to_the_java_target_keeps_its_identity() -> None:
    old_layout = {"Target": "app/lib/commons-text-1.9.jar", "Class": "lang-pkgs", "Type": "jar"}
    new_layout = {"Target": "Java", "Class": "lang-pkgs", "Type": "jar"}
    jar = {"PkgName": "org.apache.commons:commons-text", "InstalledVersion": "1.9", "PkgIdentifier": None}
    old = one(report({**old_layout, "Vulnerabilities": [vuln(**jar)]}))
    new = one(
        report({**new_layout, "Vulnerabilities": [vuln(**jar, PkgPath="app/lib/commons-text-1.9.jar")]})
    )
    assert old.source_id == new.source_id
