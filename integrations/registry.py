"""The explicit list of source parsers, looked up by format name and checked at start-up.

Explicit rather than discovered (entry points, module scanning): adding a format is a module plus one line
in ``PARSERS``, and what the service accepts is visible in one place. A parser is anything with
``name: str``, ``iter_findings(document, *, secret_salt=None)`` yielding ``NormalizedFinding`` objects and
``parse`` returning them as a list (``app.contracts.SourceParser``); a module satisfies it, so each parser is
a module of pure functions. A parser may also define
``detect(document) -> bool`` so ``POST /v1/ingest/auto`` can pick the format; detect must be cheap (look at
top-level keys only) and must never raise.

Contract for callers (``POST /v1/ingest/{format}``): ``get_parser(format).iter_findings(document)`` raises
``ValueError`` with a message that is safe to return to the client (a 422) when the document is not in
that format, possibly after yielding some findings (so a caller stores a report in one transaction); it
never performs I/O. Callers pass the deployment's ``TOCSIN_SECRETS_SALT`` as ``secret_salt``.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

from app.contracts import SourceParser
from integrations.sources import (
    asff,
    checkov,
    gitleaks,
    grype,
    guardduty,
    macie,
    native,
    nuclei,
    ocsf,
    prowler,
    sarif,
    trivy,
    trufflehog,
    zap,
)

PARSERS: tuple[SourceParser, ...] = (
    trivy,
    grype,
    prowler,
    zap,
    nuclei,
    guardduty,
    macie,
    asff,
    ocsf,
    sarif,
    checkov,
    gitleaks,
    trufflehog,
    native,
)
"""Every supported input format, in the order ``detect`` tries them (most specific first)."""

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


class UnknownFormatError(KeyError):
    """No parser has this name. A KeyError whose message lists the supported names."""

    def __init__(self, name: str, supported: list[str]) -> None:
        self.name = name
        self.supported = supported
        super().__init__(name)

    def __str__(self) -> str:
        return f"unknown format {self.name!r}; supported formats: {', '.join(self.supported)}"


class RegistryError(RuntimeError):
    """The parser list is malformed; raised by ``check_registry`` at start-up, listing every problem."""


def parser_names() -> list[str]:
    return [parser.name for parser in PARSERS]


def get_parser(name: str) -> SourceParser:
    """The parser for a format name (case-insensitive); raises UnknownFormatError listing the names."""
    wanted = name.strip().lower()
    for parser in PARSERS:
        if parser.name == wanted:
            return parser
    raise UnknownFormatError(name, parser_names())


def detect(document: Any) -> str | None:
    """The name of the first parser whose ``detect`` accepts the document, or None."""
    for parser in PARSERS:
        detector = _detector(parser)
        if detector is not None and detector(document):
            return parser.name
    return None


def detect_all(document: Any) -> list[str]:
    """Every parser that accepts the document: more than one means ``detect`` chose by list order."""
    return [p.name for p in PARSERS if (detector := _detector(p)) is not None and detector(document)]


def check_registry(parsers: tuple[SourceParser, ...] = PARSERS) -> None:
    """Verify each entry against the SourceParser protocol at run time (not only for mypy).

    Checks: ``name`` is a unique lower-case string usable as a URL segment and a finding ``source``;
    ``iter_findings`` and ``parse`` are callable with exactly one positional argument (the document) and a
    ``secret_salt`` keyword; ``detect``, if present, is callable with one argument. Raises RegistryError naming every entry at fault.
    """
    problems: list[str] = []
    seen: set[str] = set()
    for index, parser in enumerate(parsers):
        name = getattr(parser, "name", None)
        label = f"parser {index} ({getattr(parser, '__name__', None) or name or type(parser).__name__})"
        if not isinstance(name, str) or not _NAME.match(name):
            problems.append(
                f"{label}: name must be a lower-case string matching {_NAME.pattern}, got {name!r}"
            )
        elif name in seen:
            problems.append(f"{label}: duplicate name {name!r}")
        else:
            seen.add(name)
        for attribute, required in (("iter_findings", True), ("parse", True), ("detect", False)):
            function = getattr(parser, attribute, None)
            if function is None and not required:
                continue
            if not callable(function):
                problems.append(f"{label}: {attribute} must be a function of one document")
            elif not _takes_one_argument(function):
                problems.append(f"{label}: {attribute} must accept exactly one positional argument")
            elif attribute != "detect" and not _takes_salt(function):
                problems.append(f"{label}: {attribute} must accept a secret_salt keyword argument")
    if problems:
        raise RegistryError("source parser registry is invalid:\n  " + "\n  ".join(problems))


def _detector(parser: SourceParser) -> Callable[[Any], bool] | None:
    detector = getattr(parser, "detect", None)
    return detector if callable(detector) else None


def _takes_salt(function: Callable[..., Any]) -> bool:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return True
    try:
        signature.bind(object(), secret_salt=None)
    except TypeError:
        return False
    return True


def _takes_one_argument(function: Callable[..., Any]) -> bool:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # builtins without a signature: trust them
        return True
    try:
        signature.bind(object())
    except TypeError:
        return False
    return True
