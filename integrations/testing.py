"""The conformance kit every parser test reuses, so all formats are held to the same rules.

A parser test calls ``assert_parser_conformance(parser, document)`` on each fixture and then asserts what is
specific to its format (counts, fields). The kit checks what the pipeline relies on and a single format's
tests would forget: every output is a valid ``NormalizedFinding`` (re-validated from its dump, so a parser
that builds models with ``model_construct`` or mutates them cannot slip past the contract), parsing is
deterministic and leaves the input untouched, and ``source_id`` is unique within a report unless a
duplicate is genuine (the pipeline would silently merge the copies). ``assert_no_secret`` searches any
output (findings, raw, error messages) for a secret and reports where it was found without printing it.

Lives in ``integrations/`` rather than ``tests/`` so a parser can be checked from anywhere (a bench script,
a new format's first draft); failures are ``AssertionError`` subclasses, so pytest reports them as such,
and it needs nothing from the app beyond the contracts.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Collection, Iterator
from typing import Any

from pydantic import BaseModel

from app.contracts import MAX_TITLE, NormalizedFinding, SourceParser

NOT_A_DOCUMENT: tuple[Any, ...] = (None, "", "text", 0, 1.5, True, [], {}, [1, 2], {"a": 1}, [{"a": 1}])
"""Documents no real format should ``detect``; every detector must return False for them, not raise."""


class ConformanceError(AssertionError):
    """A parser broke a rule of the kit; the message says which rule and which finding."""


def assert_parser_conformance(
    parser: SourceParser,
    document: Any,
    *,
    expect_source: str | None = "",
    require_source_id: bool = True,
    genuine_duplicates: Collection[str] = (),
) -> list[NormalizedFinding]:
    """Parse ``document`` with every check of the kit; returns the findings for format-specific asserts.

    ``expect_source``: the ``source`` every finding must carry (default: the parser's name; None to skip,
    for formats whose items carry their own). ``genuine_duplicates``: source_ids allowed to repeat
    because the report really lists the same finding twice.
    """
    before = _canonical(document)
    findings = parser.parse(document)
    if _canonical(document) != before:
        raise ConformanceError(f"{parser.name}: parse() modified its input document")
    if not isinstance(findings, list):
        raise ConformanceError(f"{parser.name}: parse() must return a list, got {type(findings).__name__}")
    source = parser.name if expect_source == "" else expect_source
    for index, finding in enumerate(findings):
        _check_finding(parser.name, index, finding, source, require_source_id)
    _check_unique(parser.name, findings, genuine_duplicates)
    again = parser.parse(copy.deepcopy(document))
    if _dump_all(again) != _dump_all(findings):
        raise ConformanceError(f"{parser.name}: parsing the same document twice gave different findings")
    stream = parser.iter_findings(copy.deepcopy(document))
    if not isinstance(stream, Iterator):
        raise ConformanceError(
            f"{parser.name}: iter_findings() must return an iterator, got {type(stream).__name__}"
        )
    if _dump_all(list(stream)) != _dump_all(findings):
        raise ConformanceError(f"{parser.name}: iter_findings() and parse() gave different findings")
    return findings


def assert_detect_conformance(
    parser: SourceParser, positives: Collection[Any], negatives: Collection[Any] = NOT_A_DOCUMENT
) -> None:
    """``detect`` accepts every positive, rejects every negative, and returns a real bool without raising."""
    detect = getattr(parser, "detect", None)
    if detect is None:
        raise ConformanceError(f"{parser.name}: has no detect(document) function")
    for expected, documents in ((True, positives), (False, negatives)):
        for index, document in enumerate(documents):
            try:
                answer = detect(document)
            except Exception as exc:
                raise ConformanceError(f"{parser.name}: detect raised {exc!r} on document {index}") from exc
            if answer is not expected:
                raise ConformanceError(
                    f"{parser.name}: detect returned {answer!r} for {'positive' if expected else 'negative'} "
                    f"document {index}"
                )


def assert_no_secret(obj: Any, secret: str) -> None:
    """Fail if ``secret`` occurs anywhere in ``obj`` (models, dicts, lists, strings, exceptions).

    Looks at every string and key, and at the JSON text of the whole object (escaped forms included). The
    failure message gives the path where it was found and a masked form, never the secret itself.
    """
    if len(secret) < 4:
        raise ValueError("assert_no_secret needs a secret of at least 4 characters to be meaningful")
    masked = f"{secret[:2]}…({len(secret)} chars)"
    for path, text in _strings(_plain(obj), "$"):
        if secret in text:
            raise ConformanceError(f"secret {masked} found at {path}")
    serialized = json.dumps(_plain(obj), default=str)
    escaped = json.dumps(secret)[1:-1]
    if secret in serialized or escaped in serialized:
        raise ConformanceError(f"secret {masked} found in the serialized output")


def source_ids(findings: list[NormalizedFinding]) -> list[str | None]:
    return [finding.source_id for finding in findings]


def _check_finding(parser: str, index: int, finding: Any, source: str | None, require_id: bool) -> None:
    where = f"{parser}: finding {index}"
    if not isinstance(finding, NormalizedFinding):
        raise ConformanceError(f"{where} is a {type(finding).__name__}, not a NormalizedFinding")
    dumped = finding.model_dump()
    try:
        revalidated = NormalizedFinding.model_validate(dumped)
    except Exception as exc:
        raise ConformanceError(f"{where} does not pass the contract's validation: {exc}") from exc
    if revalidated.model_dump() != dumped:
        raise ConformanceError(f"{where} changes when re-validated: it was not built through the contract")
    if len(finding.title) > MAX_TITLE:
        raise ConformanceError(f"{where}: title longer than {MAX_TITLE} characters")
    if source is not None and finding.source != source:
        raise ConformanceError(f"{where}: source is {finding.source!r}, expected {source!r}")
    if require_id and not finding.source_id:
        raise ConformanceError(f"{where}: no source_id, so re-scans cannot be matched to it")
    try:
        finding.model_dump_json()
    except Exception as exc:
        raise ConformanceError(f"{where}: not JSON-serialisable ({exc})") from exc


def _check_unique(parser: str, findings: list[NormalizedFinding], genuine: Collection[str]) -> None:
    counts = Counter(f.source_id for f in findings if f.source_id)
    repeated = sorted(key for key, count in counts.items() if count > 1 and key not in genuine)
    if repeated:
        shown = ", ".join(repeated[:5])
        raise ConformanceError(
            f"{parser}: {len(repeated)} source_id(s) repeat within one document ({shown}); the pipeline "
            "would merge them. Make the key more specific or pass them as genuine_duplicates."
        )


def _dump_all(findings: list[NormalizedFinding]) -> list[dict[str, Any]]:
    return [finding.model_dump(mode="json") for finding in findings]


def _canonical(document: Any) -> str:
    return json.dumps(document, sort_keys=True, default=repr)


def _plain(obj: Any) -> Any:
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    if isinstance(obj, BaseException):
        return [repr(obj), str(obj), *[_plain(arg) for arg in obj.args]]
    if isinstance(obj, dict):
        return {str(key): _plain(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [_plain(value) for value in obj]
    return obj


def _strings(obj: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(obj, str):
        yield path, obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield f"{path}.<key>", key
            yield from _strings(value, f"{path}.{key}")
    elif isinstance(obj, list):
        for index, value in enumerate(obj):
            yield from _strings(value, f"{path}[{index}]")
    elif obj is not None and not isinstance(obj, bool | int | float):
        yield path, repr(obj)
