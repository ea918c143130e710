"""The parser registry: lookup by name, auto-detection, and the start-up check of each entry."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from app.contracts import NormalizedFinding
from integrations import registry
from integrations.registry import RegistryError, UnknownFormatError
from integrations.sources import native, trivy
from tests.integrations._trivy_docs import kubernetes_report, sample


def test_the_shipped_registry_is_valid() -> None:
    registry.check_registry()


def test_parser_names() -> None:
    assert registry.parser_names() == [
        "trivy",
        "grype",
        "prowler",
        "zap",
        "nuclei",
        "guardduty",
        "macie",
        "asff",
        "ocsf",
        "sarif",
        "checkov",
        "gitleaks",
        "trufflehog",
        "native",
    ]


def test_get_parser_by_name() -> None:
    assert registry.get_parser("trivy") is trivy
    assert registry.get_parser(" Trivy ") is trivy
    assert registry.get_parser("native") is native


def test_unknown_format_lists_the_supported_names() -> None:
    with pytest.raises(KeyError) as error:
        registry.get_parser("burp")
    assert isinstance(error.value, UnknownFormatError)
    assert str(error.value) == (
        "unknown format 'burp'; supported formats: trivy, grype, prowler, zap, nuclei, guardduty, macie, asff, "
        "ocsf, sarif, checkov, gitleaks, trufflehog, native"
    )
    assert error.value.supported == [
        "trivy",
        "grype",
        "prowler",
        "zap",
        "nuclei",
        "guardduty",
        "macie",
        "asff",
        "ocsf",
        "sarif",
        "checkov",
        "gitleaks",
        "trufflehog",
        "native",
    ]


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (sample("scheme_2_many_vulns.json"), "trivy"),
        (sample("legacy_many_vulns.json"), "trivy"),
        (kubernetes_report(), "trivy"),
        ({"findings": [{"source": "x", "type": "t", "title": "t", "severity": 5}]}, "native"),
        ({"findings": []}, "native"),
        ({"version": "2.1.0", "runs": []}, "sarif"),
        ({"check_type": "terraform", "results": {"failed_checks": []}}, "checkov"),
        ([{"RuleID": "aws-access-token", "File": "a.env", "Secret": "x"}], "gitleaks"),
        ([{"SourceMetadata": {"Data": {}}, "DetectorName": "AWS", "Raw": "x"}], "trufflehog"),
        ({"runs": []}, None),
        ([], None),
        (None, None),
        ("text", None),
    ],
)
def test_detect(document: Any, expected: str | None) -> None:
    assert registry.detect(document) == expected
    assert registry.detect_all(document) == ([expected] if expected else [])


def _parse(document: Any, *, secret_salt: str | None = None) -> list[NormalizedFinding]:
    return []


def _iter(document: Any, *, secret_salt: str | None = None) -> Iterator[NormalizedFinding]:
    yield from ()


def test_check_registry_reports_every_problem() -> None:
    good = SimpleNamespace(name="good", iter_findings=_iter, parse=_parse)
    broken = (
        good,
        SimpleNamespace(name="good", iter_findings=_iter, parse=_parse),  # duplicate
        SimpleNamespace(name="Bad Name", iter_findings=_iter, parse=_parse),
        SimpleNamespace(name="noparse", iter_findings=_iter),
        SimpleNamespace(name="twoargs", iter_findings=_iter, parse=lambda document, options: []),
        SimpleNamespace(name="baddetect", iter_findings=_iter, parse=_parse, detect="yes"),
        SimpleNamespace(name="nosalt", iter_findings=lambda document: iter(()), parse=_parse),
        SimpleNamespace(name="noiter", parse=_parse),
        SimpleNamespace(iter_findings=_iter, parse=_parse),
    )
    with pytest.raises(RegistryError) as error:
        registry.check_registry(broken)
    message = str(error.value)
    assert "duplicate name 'good'" in message
    assert "'Bad Name'" in message
    assert "noparse" in message and "parse must be a function" in message
    assert "twoargs" in message and "exactly one positional argument" in message
    assert "detect must be a function" in message
    assert "nosalt" in message and "iter_findings must accept a secret_salt keyword" in message
    assert "noiter" in message and "iter_findings must be a function" in message
    assert "got None" in message
    registry.check_registry((good,))
