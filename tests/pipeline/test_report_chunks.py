"""Repository scoping of path-only findings, and the lazy parser protocol the report endpoint relies on."""

from __future__ import annotations

from app.contracts import NormalizedFinding
from app.pipeline.fingerprint import identity_of
from app.pipeline.normalize import in_repository, scope_repository
from integrations.sources import gitleaks, trivy
from tests.integrations._trivy_docs import os_result, report, vuln


def _finding(**extra: object) -> NormalizedFinding:
    return NormalizedFinding.model_validate(
        {"source": "gitleaks", "type": "secret:aws", "title": "t", "severity": "high", **extra}
    )


def test_scope_repository_reads_repo_scopes_only() -> None:
    assert scope_repository("repo:acme/api@main") == "acme/api"
    assert scope_repository("repo:acme/api") == "acme/api"
    assert scope_repository("image:registry/app") is None
    assert scope_repository(None) is None
    assert scope_repository("repo:") is None


def test_a_path_in_two_repositories_is_two_findings() -> None:
    finding = _finding(source_id="secret:aws:1", aliases=["gitleaks:old"], location={"path": "a/.env"})
    in_a, in_b = in_repository(finding, "acme/a"), in_repository(finding, "acme/b")
    assert in_a.location is not None and in_a.location.repository == "acme/a"
    assert identity_of(in_a).fingerprint != identity_of(in_b).fingerprint
    assert not set(identity_of(in_a).alias_keys) & set(identity_of(in_b).alias_keys)
    assert identity_of(in_a) == identity_of(in_repository(finding, "acme/a"))  # stable across re-scans
    # Keyed by content (no source_id): the filled repository is part of the key.
    content = _finding(location={"path": "a/.env", "line": 3})
    assert identity_of(in_repository(content, "acme/a")) != identity_of(in_repository(content, "acme/b"))


def test_findings_that_name_their_repository_or_no_path_are_left_alone() -> None:
    named = _finding(source_id="x", location={"path": "f", "repository": "github.com/acme/c"})
    assert in_repository(named, "acme/a") is named
    pathless = _finding(source_id="x")
    assert in_repository(pathless, "acme/a") is pathless


def test_parsers_yield_lazily_and_fail_where_the_bad_entry_is() -> None:
    good = [vuln(VulnerabilityID=f"CVE-{i}", PkgName=f"p{i}") for i in range(3)]
    bad = {"PkgName": "no-id"}
    stream = trivy.iter_findings(report(os_result(*good, bad)))
    assert [next(stream).type for _ in range(3)] == ["CVE-0", "CVE-1", "CVE-2"]
    try:
        next(stream)
    except ValueError as exc:
        assert "VulnerabilityID" in str(exc)
    else:
        raise AssertionError("the bad entry was not refused")


AWS_KEY = "AKIAIOSFODNN7EXAMPLE"


def _leak() -> list[dict[str, object]]:
    return [
        {"RuleID": "aws-access-token", "Secret": AWS_KEY, "Match": AWS_KEY, "File": ".env", "StartLine": 1}
    ]


def test_the_secret_salt_keys_secret_findings() -> None:
    (default,) = gitleaks.parse(_leak())
    (salted,) = gitleaks.parse(_leak(), secret_salt="deployment-a")
    (again,) = gitleaks.parse(_leak(), secret_salt="deployment-a")
    (other,) = gitleaks.parse(_leak(), secret_salt="deployment-b")
    assert salted.source_id == again.source_id
    assert len({default.source_id, salted.source_id, other.source_id}) == 3
    assert gitleaks.parse(_leak(), secret_salt=None)[0].source_id == default.source_id
