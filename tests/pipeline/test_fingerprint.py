"""Identity is what a finding is, never volatile text."""

from __future__ import annotations

from typing import Any

from app.contracts import NormalizedFinding
from app.pipeline.fingerprint import content_hash, identity_of


def make(**overrides: Any) -> NormalizedFinding:
    data: dict[str, Any] = {
        "source": "x",
        "type": "t",
        "title": "t",
        "severity": "low",
        "resource": {"id": "r"},
    }
    data.update(overrides)
    return NormalizedFinding.model_validate(data)


def test_volatile_fields_do_not_change_the_fingerprint() -> None:
    a = identity_of(make(description="a", observed_at="2026-01-01T00:00:00Z", title="one", severity=10))
    b = identity_of(make(description="b", observed_at="2026-03-01T00:00:00Z", title="two", severity=90))
    assert a.fingerprint == b.fingerprint


def test_type_resource_and_location_do() -> None:
    base = identity_of(make()).fingerprint
    assert identity_of(make(type="u")).fingerprint != base
    assert identity_of(make(resource={"id": "other"})).fingerprint != base
    assert identity_of(make(location={"path": "a.py"})).fingerprint != base


def test_source_id_wins_and_source_case_is_ignored() -> None:
    a = identity_of(make(source="GuardDuty", source_id="1", type="a"))
    b = identity_of(make(source="guardduty", source_id="1", type="b", resource={"id": "elsewhere"}))
    assert a.fingerprint == b.fingerprint
    assert a.primary_key == "guardduty:1"


def test_aliases_are_kept_as_extra_keys() -> None:
    identity = identity_of(make(source_id="hub-1", aliases=["guardduty:abc", "guardduty:abc"]))
    assert identity.alias_keys == ("x:hub-1", "guardduty:abc")


def test_content_hash_tracks_what_users_see() -> None:
    assert content_hash(make(description="a")) != content_hash(make(description="b"))
    assert content_hash(make(observed_at="2026-01-01T00:00:00Z")) == content_hash(make())
