"""The conformance kit catches what it promises to catch."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from app.contracts import NormalizedFinding, Resource
from integrations.testing import (
    ConformanceError,
    assert_detect_conformance,
    assert_no_secret,
    assert_parser_conformance,
)

SECRET = "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB"


def make(source_id: str, title: str = "t", **extra: Any) -> NormalizedFinding:
    return NormalizedFinding.model_validate(
        {"source": "fake", "source_id": source_id, "type": "x", "title": title, "severity": "low", **extra}
    )


class Fake:
    name = "fake"

    def __init__(self, build: Any) -> None:
        self.build = build

    def iter_findings(self, document: Any, *, secret_salt: str | None = None) -> Iterator[NormalizedFinding]:
        yield from self.build(document)

    def parse(self, document: Any, *, secret_salt: str | None = None) -> list[NormalizedFinding]:
        return list(self.iter_findings(document))

    def detect(self, document: Any) -> bool:
        return isinstance(document, dict) and "fake" in document


def test_a_good_parser_passes() -> None:
    parser = Fake(lambda doc: [make("a"), make("b")])
    assert len(assert_parser_conformance(parser, {"fake": 1})) == 2


def test_duplicate_source_ids_fail_unless_declared_genuine() -> None:
    parser = Fake(lambda doc: [make("a"), make("a")])
    with pytest.raises(ConformanceError, match="repeat within one document"):
        assert_parser_conformance(parser, {})
    assert_parser_conformance(parser, {}, genuine_duplicates={"a"})


def test_nondeterministic_parser_fails() -> None:
    counter = iter(range(100))
    parser = Fake(lambda doc: [make("a", title=f"t{next(counter)}")])
    with pytest.raises(ConformanceError, match="twice gave different findings"):
        assert_parser_conformance(parser, {})


def test_a_stream_that_differs_from_the_list_fails() -> None:
    class Lazy(Fake):
        def iter_findings(
            self, document: Any, *, secret_salt: str | None = None
        ) -> Iterator[NormalizedFinding]:
            yield make("a")

        def parse(self, document: Any, *, secret_salt: str | None = None) -> list[NormalizedFinding]:
            return list(self.build(document))

    with pytest.raises(ConformanceError, match="iter_findings\\(\\) and parse\\(\\) gave different"):
        assert_parser_conformance(Lazy(lambda doc: [make("a"), make("b")]), {})


def test_parser_that_mutates_its_input_fails() -> None:
    def build(doc: dict[str, Any]) -> list[NormalizedFinding]:
        doc["seen"] = True
        return []

    with pytest.raises(ConformanceError, match="modified its input"):
        assert_parser_conformance(Fake(build), {})


def test_constructed_models_that_break_the_contract_fail() -> None:
    long_title = NormalizedFinding.model_construct(
        source="fake", source_id="a", type="x", title="t" * 600, severity=10.0
    )
    with pytest.raises(ConformanceError, match="does not pass the contract"):
        assert_parser_conformance(Fake(lambda doc: [long_title]), {})


def test_wrong_source_and_missing_source_id_fail() -> None:
    other = NormalizedFinding.model_validate(
        {"source": "other", "source_id": "a", "type": "x", "title": "t", "severity": 1}
    )
    with pytest.raises(ConformanceError, match="source is 'other'"):
        assert_parser_conformance(Fake(lambda doc: [other]), {})
    no_id = make("a").model_copy(update={"source_id": None, "resource": Resource(id="r")})
    with pytest.raises(ConformanceError, match="no source_id"):
        assert_parser_conformance(Fake(lambda doc: [no_id]), {})


def test_assert_no_secret_finds_it_anywhere_without_printing_it() -> None:
    assert_no_secret([make("a")], SECRET)
    for leaked in (
        make("a", raw={"Code": {"Lines": [{"Content": f"TOKEN={SECRET}"}]}}),
        make("a", context={SECRET: "as a key"}),
        {"nested": [("tuple", ValueError(f"bad token {SECRET}"))]},
        f"prefix {SECRET} suffix",
    ):
        with pytest.raises(ConformanceError) as error:
            assert_no_secret(leaked, SECRET)
        assert SECRET not in str(error.value)
    with pytest.raises(ValueError):
        assert_no_secret("x", "abc")


def test_detect_conformance() -> None:
    assert_detect_conformance(Fake(lambda doc: []), positives=[{"fake": 1}])
    with pytest.raises(ConformanceError, match="negative document"):
        assert_detect_conformance(Fake(lambda doc: []), positives=[], negatives=[{"fake": 2}])
