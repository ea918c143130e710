"""The native format: the body of ``POST /v1/findings`` (``{"findings": [NormalizedFinding, ...]}``).

Registered so ``POST /v1/ingest/auto`` can recognise a native batch and ``/v1/ingest/native`` works like
any other format. It is all-or-nothing: the first invalid item raises ``ValueError`` naming its index and
fields. ``POST /v1/findings`` keeps its item-by-item validation (``app.pipeline.normalize``), which stores
the valid findings and reports the others; route native batches there when partial success is wanted.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import ValidationError

from app.contracts import NormalizedFinding

name = "native"


def detect(document: Any) -> bool:
    return isinstance(document, dict) and isinstance(document.get("findings"), list) and len(document) == 1


def iter_findings(document: Any, *, secret_salt: str | None = None) -> Iterator[NormalizedFinding]:
    if not detect(document):
        raise ValueError('not a native batch: expected {"findings": [...]} and no other keys')
    for index, item in enumerate(document["findings"]):
        if not isinstance(item, dict):
            raise ValueError(f"findings[{index}]: must be an object, got {type(item).__name__}")
        try:
            finding = NormalizedFinding.model_validate(item)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or '(item)'}: {error['msg']}"
                for error in exc.errors(include_url=False, include_input=False)
            )
            raise ValueError(f"findings[{index}]: {problems}") from None
        if finding.raw is None:
            finding = finding.model_copy(update={"raw": item})
        yield finding


def parse(document: Any, *, secret_salt: str | None = None) -> list[NormalizedFinding]:
    """``iter_findings`` as a list, for small documents."""
    return list(iter_findings(document, secret_salt=secret_salt))
