"""Realistic traffic from the shared generator (bench/generator.py): counts add up, nothing is lost."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, text

from bench.generator import findings, with_repeats


def test_generated_batches_with_repeats_add_up(client: Any, engine: Engine) -> None:
    sent = with_repeats(1500, 0.3, seed=11)
    distinct = len({id(f) for f in sent})
    created = unchanged = 0
    for start in range(0, len(sent), 500):
        body = client.post("/v1/findings", json={"findings": sent[start : start + 500]}).json()
        assert body["failed"] == [], body["failed"][:3]
        created += body["created"]
        unchanged += body["unchanged"]
    assert created == distinct
    assert created + unchanged == len(sent)
    assert client.get("/v1/stats").json()["total"] == distinct
    with engine.connect() as conn:
        assert conn.execute(text("SELECT sum(occurrences) FROM findings")).scalar_one() == len(sent)


def test_generator_is_deterministic_and_valid(client: Any) -> None:
    first = list(findings(50, seed=3))
    assert first == list(findings(50, seed=3))
    body = client.post("/v1/findings", json={"findings": first}).json()
    assert (body["accepted"], body["created"]) == (50, 50)
    sources = set(client.get("/v1/stats").json()["by_source"])
    assert sources <= {"guardduty", "securityhub", "trivy", "semgrep"} and len(sources) >= 3
