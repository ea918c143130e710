"""The risk score: each factor moves it the documented way, and the breakdown explains it."""

from __future__ import annotations

from typing import Any

from app.contracts import NormalizedFinding
from app.pipeline.score import compress, score_finding
from app.settings import ScoringWeights

WEIGHTS = ScoringWeights()


def make(**overrides: Any) -> NormalizedFinding:
    data: dict[str, Any] = {
        "source": "x",
        "type": "t",
        "title": "t",
        "severity": "medium",
        "resource": {"id": "r"},
    }
    data.update(overrides)
    return NormalizedFinding.model_validate(data)


def score(**overrides: Any) -> float:
    return score_finding(make(**overrides), 1, WEIGHTS)[0]


def test_plain_finding_scores_its_severity() -> None:
    assert score() == 55.0
    assert score(severity=30) == 30.0
    assert score(severity="informational") == 0.0


def test_context_raises_or_lowers_the_score() -> None:
    base = score()
    assert score(resource={"id": "r", "public": True}) > base
    assert score(resource={"id": "r", "tags": {"env": "prod"}}) > base
    assert score(resource={"id": "r", "tags": {"Environment": "Production"}}) > base
    assert score(resource={"id": "r", "tags": {"env": "dev"}}) < base
    assert score(data_sensitivity="high") > base
    assert score(resource={"id": "r", "tags": {"data-classification": "restricted"}}) > base
    assert score(confidence=20) < base
    assert score_finding(make(), 16, WEIGHTS)[0] > base


def test_ranking_survives_the_top_of_the_scale() -> None:
    high_prod = score(severity="high", resource={"id": "r", "tags": {"env": "prod"}})
    critical_public_prod = score(
        severity="critical", resource={"id": "r", "public": True, "tags": {"env": "prod"}}
    )
    assert high_prod < critical_public_prod < 100
    assert compress(10) == 10 and compress(70) == 70 and compress(1000) < 100


def test_weights_are_configurable() -> None:
    weights = ScoringWeights(public_exposure=3.0, environment_factors={"prod": 2.0})
    finding = make(severity=20, resource={"id": "r", "public": True, "tags": {"env": "prod"}})
    value, breakdown = score_finding(finding, 1, weights)
    assert value == round(compress(20 * 3.0 * 2.0), 2)
    factors = {f["name"]: f["value"] for f in breakdown["factors"]}
    assert factors["exposure"] == 3.0 and factors["environment"] == 2.0
    assert value > score(severity=20, resource={"id": "r", "public": True, "tags": {"env": "prod"}})


def test_breakdown_explains_every_factor() -> None:
    _, breakdown = score_finding(make(confidence=50), 4, WEIGHTS)
    reasons = {f["name"]: f["reason"] for f in breakdown["factors"]}
    assert reasons["confidence"] == "confidence 50/100"
    assert reasons["recurrence"] == "seen 4 times"
    assert reasons["exposure"] == "resource not marked public"
    assert "severity" in breakdown["formula"]
