"""Risk score 0-100 with its breakdown (pure, table-driven).

raw = severity x exposure x environment x data sensitivity x confidence x recurrence; the score is raw up
to 70 and above it approaches 100 smoothly (70 + 30 x (1 - e^-((raw-70)/30))), so a critical public
production finding still outranks a high one in production instead of both saturating at 100.
Every factor is reported, neutral ones included, with the reason it has its value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from app.contracts import NormalizedFinding
from app.settings import ScoringWeights


@dataclass(frozen=True, slots=True)
class Factor:
    name: str
    value: float
    reason: str


def _first_tag(tags: dict[str, str], names: list[str]) -> tuple[str, str] | None:
    lowered = {key.lower(): value for key, value in tags.items()}
    for name in names:
        if name in lowered:
            return name, lowered[name]
    return None


def exposure_factor(finding: NormalizedFinding, weights: ScoringWeights) -> Factor:
    if finding.resource.public:
        return Factor("exposure", weights.public_exposure, "resource is public / internet-facing")
    return Factor("exposure", 1.0, "resource not marked public")


def environment_factor(finding: NormalizedFinding, weights: ScoringWeights) -> Factor:
    tag = _first_tag(finding.resource.tags, weights.environment_tags)
    if tag is None:
        return Factor("environment", 1.0, "no environment tag")
    name, value = tag
    factor = weights.environment_factors.get(value.strip().lower())
    if factor is None:
        return Factor("environment", 1.0, f"tag {name}={value} has no configured factor")
    return Factor("environment", factor, f"tag {name}={value}")


def sensitivity_factor(finding: NormalizedFinding, weights: ScoringWeights) -> Factor:
    level: str | None = finding.data_sensitivity.value if finding.data_sensitivity else None
    reason = f"data sensitivity {level} reported by the source" if level else ""
    if level is None:
        tag = _first_tag(finding.resource.tags, weights.sensitivity_tags)
        if tag is not None:
            level = weights.sensitivity_tag_values.get(tag[1].strip().lower())
            reason = f"tag {tag[0]}={tag[1]}"
    if level is None:
        return Factor("data_sensitivity", 1.0, "no data sensitivity known")
    return Factor("data_sensitivity", weights.sensitivity_factors.get(level, 1.0), reason)


def confidence_factor(finding: NormalizedFinding, weights: ScoringWeights) -> Factor:
    if finding.confidence is None:
        return Factor("confidence", 1.0, "no confidence reported")
    floor = weights.confidence_floor
    value = floor + (1.0 - floor) * finding.confidence / 100.0
    return Factor("confidence", round(value, 4), f"confidence {finding.confidence}/100")


def recurrence_factor(occurrences: int, weights: ScoringWeights) -> Factor:
    """Grows per whole doubling (2, 4, 8, 16 occurrences), so most repeats leave the score, and with it
    every index on the row, untouched: PostgreSQL can then update the row in place (HOT)."""
    doublings = min(4, max(1, occurrences).bit_length() - 1)
    value = 1.0 + weights.recurrence_step * doublings
    return Factor("recurrence", round(value, 4), f"seen {occurrences} time{'s' if occurrences != 1 else ''}")


KNEE = 70.0


def compress(raw: float) -> float:
    """Identity below the knee; above it, approach 100 without reaching it (keeps the ranking)."""
    if raw <= KNEE:
        return max(0.0, raw)
    span = 100.0 - KNEE
    return KNEE + span * (1.0 - math.exp(-(raw - KNEE) / span))


FACTOR_NAMES = ("exposure", "environment", "data_sensitivity", "confidence", "recurrence")
FORMULA = (
    f"raw = severity x {' x '.join(FACTOR_NAMES)}; score = raw below {KNEE:g}, "
    f"else {KNEE:g} + {100 - KNEE:g} x (1 - e^-((raw - {KNEE:g}) / {100 - KNEE:g}))"
)
_CACHE_LIMIT = 50_000

# Context factors depend on a handful of inputs that repeat across a batch (same tags, exposure,
# confidence): computed once per distinct combination, per weights object.
_context_cache: dict[int, tuple[ScoringWeights, dict[tuple[Any, ...], list[dict[str, Any]]]]] = {}


def _context_factors(finding: NormalizedFinding, weights: ScoringWeights) -> list[dict[str, Any]]:
    key = (
        finding.resource.public,
        tuple(finding.resource.tags.items()),
        finding.data_sensitivity,
        finding.confidence,
    )
    entry = _context_cache.get(id(weights))
    if entry is None or entry[0] is not weights:
        entry = _context_cache[id(weights)] = (weights, {})
    cache = entry[1]
    factors = cache.get(key)
    if factors is None:
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        factors = cache[key] = [
            {"name": f.name, "value": f.value, "reason": f.reason}
            for f in (
                exposure_factor(finding, weights),
                environment_factor(finding, weights),
                sensitivity_factor(finding, weights),
                confidence_factor(finding, weights),
            )
        ]
    return factors


def score_finding(
    finding: NormalizedFinding, occurrences: int, weights: ScoringWeights
) -> tuple[float, dict[str, Any]]:
    """The score and its breakdown ``{"severity", "factors": [{name, value, reason}], "raw", "score"}``."""
    recurrence = recurrence_factor(occurrences, weights)
    factors = [
        *_context_factors(finding, weights),
        {"name": recurrence.name, "value": recurrence.value, "reason": recurrence.reason},
    ]
    product = finding.severity
    for factor in factors:
        product *= factor["value"]
    score = round(compress(product), 2)
    breakdown = {
        "severity": finding.severity,
        "severity_label": finding.severity_label.value,
        "factors": factors,
        "raw": round(product, 2),
        "score": score,
        "formula": FORMULA,
    }
    return score, breakdown
