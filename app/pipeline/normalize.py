"""Validation of native findings, item by item, so one bad finding never sinks its batch.

Format parsers (integrations/sources) produce ``NormalizedFinding`` objects directly; this module turns
posted JSON items into them and reports what is wrong with each rejected one, by field path. It also places
findings that name a file but no repository in the repository an upload's scope declares.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError

from app.contracts import MAX_ID, NormalizedFinding

_ADAPTER: TypeAdapter[NormalizedFinding] = TypeAdapter(NormalizedFinding)
_LIST_ADAPTER: TypeAdapter[list[NormalizedFinding]] = TypeAdapter(list[NormalizedFinding])


@dataclass(slots=True)
class FieldError:
    field: str
    message: str


@dataclass(slots=True)
class ItemError:
    index: int
    errors: list[FieldError]


@dataclass(slots=True)
class ValidItem:
    index: int
    finding: NormalizedFinding
    raw: Any


def field_errors(exc: ValidationError) -> list[FieldError]:
    """Pydantic errors as ``field`` paths (``resource.id``, ``references.2``) and plain messages."""
    errors = []
    for err in exc.errors(include_url=False):
        path = ".".join(str(part) for part in err["loc"] if not str(part).startswith("function-"))
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown field; see the native finding schema at /docs"
        elif message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        errors.append(FieldError(field=path, message=message))
    return errors


def validate_items(items: list[Any]) -> tuple[list[ValidItem], list[ItemError]]:
    """Validate each posted item; the original item is kept as ``raw`` unless it carries its own."""
    try:
        # The common case, a batch without errors, validates in one call (about twice as fast).
        findings = _LIST_ADAPTER.validate_python(items)
    except ValidationError:
        pass
    else:
        return [
            ValidItem(index, finding, finding.raw if finding.raw is not None else item)
            for index, (finding, item) in enumerate(zip(findings, items, strict=True))
        ], []
    valid: list[ValidItem] = []
    failed: list[ItemError] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            failed.append(ItemError(index, [FieldError("", f"must be an object, got {type(item).__name__}")]))
            continue
        try:
            finding = _ADAPTER.validate_python(item)
        except ValidationError as exc:
            failed.append(ItemError(index, field_errors(exc)))
            continue
        valid.append(ValidItem(index, finding, finding.raw if finding.raw is not None else item))
    return valid, failed


REPOSITORY_SCOPE = "repo:"


def scope_repository(scope: str | None) -> str | None:
    """The repository of a ``repo:<owner/name>[@branch]`` scope (``owner/name``; the branch is not part of
    a finding's identity: a leak on two branches is one leak), else None."""
    if not scope or not scope.startswith(REPOSITORY_SCOPE):
        return None
    name = scope[len(REPOSITORY_SCOPE) :].split("@", 1)[0].strip("/")
    return name[:MAX_ID] or None


def in_repository(finding: NormalizedFinding, repository: str) -> NormalizedFinding:
    """A finding that names a file but no repository, placed in ``repository`` (from the upload's scope).

    Tools that scan a checkout (Gitleaks 8, TruffleHog filesystem, Checkov...) key a finding by its path
    alone, so the same path in two repositories would be one finding. Filling ``location.repository`` makes
    the content key differ; ``source_id`` and ``aliases`` (which the fingerprint prefers) get the repository
    too, as ``<key>|repo:<repository>``. A finding that names its repository, or no path, is returned as is.
    """
    location = finding.location
    if location is None or not location.path or location.repository:
        return finding
    update: dict[str, object] = {"location": location.model_copy(update={"repository": repository})}
    if finding.source_id:
        update["source_id"] = _in_repository_key(finding.source_id, repository)
    if finding.aliases:
        update["aliases"] = [_in_repository_key(alias, repository) for alias in finding.aliases]
    return finding.model_copy(update=update)


def _in_repository_key(key: str, repository: str) -> str:
    scoped = f"{key}|repo:{repository}"
    if len(scoped) <= MAX_ID:
        return scoped
    return f"{key[:64]}|repo-sha256:{hashlib.sha256(scoped.encode('utf-8', 'surrogatepass')).hexdigest()}"
