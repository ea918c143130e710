"""Matchers: each field, globs, CODEOWNERS paths, repositories, tag operators, and the reasons given."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from app.contracts import NormalizedFinding
from app.pipeline.route_match import Facts, match_reasons, matches, mismatches
from app.pipeline.route_spec import Matchers

BASE = Facts(
    finding_id="f1",
    source="GuardDuty",
    type="UnauthorizedAccess:EC2/SSHBruteForce",
    severity=80.0,
    score=72.0,
    account_id="123456789012",
    region="eu-west-1",
    resource_type="AwsEc2Instance",
    resource_id="arn:aws:ec2:eu-west-1:123456789012:instance/i-0abc",
    repository=None,
    path=None,
    tags={"env": "prod", "owner": "Payments"},
)
CODE = replace(
    BASE,
    source="semgrep",
    type="python.lang.security.eval",
    resource_type=None,
    resource_id=None,
    repository="github.com/acme/payments-api",
    path="services/billing/app/views.py",
)


def m(**kwargs: Any) -> Matchers:
    return Matchers.model_validate(kwargs)


def test_empty_matchers_match_everything() -> None:
    assert matches(Matchers(), BASE)
    assert mismatches(Matchers(), BASE) == []
    assert match_reasons(Matchers(), BASE) == (True, ["no conditions: matches every finding"])


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("UnauthorizedAccess:*", True),
        ("UnauthorizedAccess:EC2/*", True),  # '*' crosses '/' outside path/repository
        ("*SSH*", True),
        ("UnauthorizedAccess:EC2/SSHBruteForc?", True),
        ("UnauthorizedAccess:EC2/SSHBruteForce", True),
        ("unauthorizedaccess:*", False),  # case-sensitive
        ("Recon:*", False),
        ("UnauthorizedAccess", False),  # full match, not prefix
    ],
)
def test_type_globs(pattern: str, expected: bool) -> None:
    assert matches(m(type=pattern), BASE) is expected


def test_list_means_any_of_and_reason_names_them() -> None:
    assert matches(m(type=["Recon:*", "UnauthorizedAccess:*"]), BASE)
    recon = replace(BASE, type="Recon:EC2/PortProbe")
    assert mismatches(m(type=["UnauthorizedAccess:*"]), recon) == [
        "type 'Recon:EC2/PortProbe' does not match 'UnauthorizedAccess:*'"
    ]
    assert mismatches(m(type=["UnauthorizedAccess:*", "S3/*"]), recon) == [
        "type 'Recon:EC2/PortProbe' matches none of ['UnauthorizedAccess:*', 'S3/*']"
    ]


def test_source_is_case_insensitive_other_fields_are_not() -> None:
    assert matches(m(source="guardduty"), BASE)
    assert matches(m(source=["trivy", "GUARD*"]), BASE)
    assert not matches(m(region="EU-WEST-1"), BASE)


def test_account_region_resource_fields() -> None:
    assert matches(m(account_id=["111111111111", "123456789012"]), BASE)
    assert not matches(m(account_id="111111111111"), BASE)
    assert matches(m(region="eu-*"), BASE)
    assert matches(m(resource_type="AwsEc2*"), BASE)
    assert matches(m(resource_id="arn:aws:ec2:*:123456789012:instance/*"), BASE)
    assert not matches(m(resource_id="arn:aws:s3:::*"), BASE)


def test_missing_field_never_matches_and_says_so() -> None:
    assert not matches(m(repository="acme/*"), BASE)
    assert mismatches(m(repository="acme/*"), BASE) == ["no repository (wanted 'acme/*')"]


def test_resource_id_regex_is_a_full_match() -> None:
    assert matches(m(resource_id_regex=r"arn:aws:ec2:[a-z0-9-]+:\d{12}:instance/i-[0-9a-f]+"), BASE)
    assert not matches(m(resource_id_regex="i-0abc"), BASE)
    assert mismatches(m(resource_id_regex="i-0abc"), BASE) == [
        f"resource_id {BASE.resource_id!r} does not match /i-0abc/"
    ]


def test_severity_and_score_floors() -> None:
    assert matches(m(severity_min="high"), BASE)
    medium = replace(BASE, severity=55.0, score=12.0)
    assert mismatches(m(severity_min="high"), medium) == ["severity 55 (medium) is below high"]
    assert mismatches(m(score_min=40), medium) == ["score 12 is below 40"]
    assert match_reasons(m(severity_min="high", score_min=70), BASE) == (
        True,
        ["severity 80 (high) is at least high", "score 72 is at least 70"],
    )


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        # No slash: a file or directory name at any depth.
        ("*.py", "views.py", True),
        ("*.py", "services/billing/app/views.py", True),
        ("*.py", "services/billing/app/views.pyc", False),
        ("billing", "services/billing/app/views.py", True),
        ("views.py", "services/billing/app/views.py", True),
        # Trailing slash: everything under a directory of that name, at any depth.
        ("billing/", "services/billing/app/views.py", True),
        ("app/", "services/billing/app/views.py", True),
        ("views.py/", "services/billing/app/views.py", False),
        # A slash inside or in front: relative to the repository root.
        ("services/billing/**", "services/billing/app/views.py", True),
        ("services/billing", "services/billing/app/views.py", True),
        ("billing/app", "services/billing/app/views.py", False),
        ("/services/", "services/billing/app/views.py", True),
        ("/billing/", "services/billing/app/views.py", False),
        # '*' stays in one segment, '**' crosses them.
        ("services/*", "services/billing/app/views.py", False),
        ("services/*", "services/README.md", True),
        ("services/*/app/*.py", "services/billing/app/views.py", True),
        ("services/**/*.py", "services/billing/app/views.py", True),
        ("**/app/*.py", "services/billing/app/views.py", True),
        ("services/**/views.py", "services/views.py", True),  # '**/' is zero or more directories
        ("services/billing/app/view?.py", "services/billing/app/views.py", True),
        ("*", "services/billing/app/views.py", True),
        # Paths given as ./x, /x or with backslashes are the same file.
        ("/src/main.py", "./src/main.py", True),
        ("/src/main.py", "/src/main.py", True),
        ("src/*.py", "src\\main.py", True),
    ],
)
def test_codeowners_paths(pattern: str, path: str, expected: bool) -> None:
    assert matches(m(path=pattern), replace(CODE, path=path)) is expected


@pytest.mark.parametrize(
    ("pattern", "repository", "expected"),
    [
        ("acme/payments-*", "github.com/acme/payments-api", True),
        ("acme/payments-*", "https://github.com/acme/payments-api.git", True),
        ("acme/payments-*", "git@github.com:acme/payments-api.git", True),
        ("payments-api", "github.com/acme/payments-api", True),
        ("acme/*", "github.com/acme/payments-api", True),
        ("acme", "github.com/acme/payments-api", False),
        ("cme/payments-api", "github.com/acme/payments-api", False),  # segment boundary
        ("*/payments-api", "github.com/acme/payments-api", True),
        ("/acme/*", "github.com/acme/payments-api", False),  # leading slash: the whole name
        ("/github.com/acme/*", "github.com/acme/payments-api", True),
        ("github.com/**", "github.com/acme/payments-api", True),
        ("Acme/*", "github.com/acme/payments-api", False),
    ],
)
def test_repository_globs(pattern: str, repository: str, expected: bool) -> None:
    assert matches(m(repository=pattern), replace(CODE, repository=repository)) is expected


@pytest.mark.parametrize(
    ("matcher", "tags", "expected"),
    [
        ("env=prod", {"env": "prod"}, True),
        ("env=prod", {"env": "dev"}, False),
        ("env=prod", {}, False),
        ("env!=prod", {"env": "dev"}, True),
        ("env!=prod", {"env": "prod"}, False),
        ("env!=prod", {}, True),  # a missing tag is "" for != and !~
        ("env=~prod|staging", {"env": "staging"}, True),
        ("env=~prod", {"env": "production"}, False),  # full match
        ("env=~.*", {}, False),  # =~ needs the tag
        ("env!~dev.*", {"env": "prod"}, True),
        ("env!~dev.*", {"env": "dev-1"}, False),
        ("env!~dev.*", {}, True),
        ("env!~.*", {}, False),  # "" matches .*
        ("Env=prod", {"env": "prod"}, False),  # keys are case-sensitive
    ],
)
def test_tag_operators(matcher: str, tags: dict[str, str], expected: bool) -> None:
    assert matches(m(tags=[matcher]), replace(BASE, tags=tags)) is expected


def test_tag_reasons_read_well() -> None:
    dev = replace(BASE, tags={"env": "dev"})
    assert mismatches(m(tags=["env=prod"]), dev) == ["tag env is 'dev', wanted env=prod"]
    assert mismatches(m(tags=["team=~pay.*"]), dev) == ["tag team is missing, wanted team=~pay.*"]
    assert match_reasons(m(type="UnauthorizedAccess:*", tags={"env": "prod"}), BASE) == (
        True,
        ["type matches 'UnauthorizedAccess:*'", "tag env=prod"],
    )


def test_all_conditions_must_hold_and_every_failure_is_listed() -> None:
    matcher = m(type="S3/*", region="us-*", tags=["env=prod"])
    assert not matches(matcher, BASE)
    assert mismatches(matcher, BASE) == [
        "type 'UnauthorizedAccess:EC2/SSHBruteForce' does not match 'S3/*'",
        "region 'eu-west-1' does not match 'us-*'",
    ]


def test_regex_metacharacters_in_globs_are_literal() -> None:
    assert matches(m(type="a.b+(c)"), replace(BASE, type="a.b+(c)"))
    assert not matches(m(type="a.b+(c)"), replace(BASE, type="axb+(c)"))


def test_facts_from_finding_and_row() -> None:
    finding = NormalizedFinding.model_validate(
        {
            "source": "semgrep",
            "type": "rule",
            "title": "t",
            "severity": "high",
            "location": {"repository": "github.com/acme/x", "path": "a/b.py"},
            "resource": {"tags": {"env": "prod"}, "account_id": "1"},
        }
    )
    facts = Facts.from_finding(finding, score=60.0, finding_id="abc")
    assert (facts.severity, facts.score, facts.repository, facts.path, facts.status) == (
        80.0,
        60.0,
        "github.com/acme/x",
        "a/b.py",
        "open",
    )
    row = {
        "id": "abc",
        "source": "semgrep",
        "type": "rule",
        "severity": 80.0,
        "score": 60.0,
        "account_id": "1",
        "region": None,
        "resource_type": None,
        "resource_id": None,
        "repository": "github.com/acme/x",
        "path": "a/b.py",
        "tags": {"env": "prod"},
        "status": "open",
    }
    assert Facts.from_row(row) == facts
