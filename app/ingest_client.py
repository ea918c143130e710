"""``tocsin ingest``: send a scanner report from a pipeline, and gate the pipeline on what it found.

The report is parsed here with the same parsers the server uses (so ``--fail-on`` needs no round trip
and a large report can be split). A report up to ``--max-request-bytes`` goes to the server whole
(``/v1/ingest/{format}``); a larger one is sent as native batches carrying one scan id, the last batch
completing the scan when ``--complete`` is given.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from app.clock import new_id
from app.contracts import SEVERITY_MIN_SCORE, NormalizedFinding, Severity, SourceStatus
from app.reports import ReportDecodeError, decode_report
from integrations import registry

FAIL_ON_EXIT = 3


class IngestError(Exception):
    """A problem to report in one line; ``exit_code`` 2 for bad input, 1 when the server refused."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class Totals:
    accepted: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    resolved: int = 0
    failed: list[Any] = field(default_factory=list)

    def add(self, body: dict[str, Any]) -> None:
        for name in ("accepted", "created", "updated", "unchanged", "resolved"):
            setattr(self, name, getattr(self, name) + int(body.get(name, 0)))
        self.failed.extend(body.get("failed", []))


def decode(data: bytes) -> Any:
    try:
        return decode_report(data)
    except ReportDecodeError as exc:
        raise IngestError(f"the report {exc}", 2) from exc


def parse(document: Any, format_name: str | None) -> tuple[str, list[NormalizedFinding]]:
    chosen = format_name or registry.detect(document)
    if chosen is None:
        names = ", ".join(registry.parser_names())
        raise IngestError(f"could not recognise the report's format; pass --format (one of: {names})", 2)
    try:
        parser = registry.get_parser(chosen)
    except registry.UnknownFormatError as exc:
        raise IngestError(str(exc), 2) from exc
    try:
        return parser.name, parser.parse(document)
    except ValueError as exc:
        raise IngestError(f"not a valid {parser.name} report: {exc}", 2) from exc


def at_or_above(findings: list[NormalizedFinding], level: str) -> list[NormalizedFinding]:
    floor = SEVERITY_MIN_SCORE[Severity(level)]
    return [f for f in findings if f.severity >= floor and f.status in (None, SourceStatus.open)]


def _post(client: httpx.Client, path: str, content: bytes, params: dict[str, str]) -> dict[str, Any]:
    try:
        resp = client.post(path, content=content, params=params, headers={"content-type": "application/json"})
    except httpx.HTTPError as exc:
        raise IngestError(f"cannot reach the Tocsin server: {exc}", 1) from exc
    if resp.status_code >= 300:
        try:
            detail = resp.json().get("detail", resp.text)
        except ValueError:
            detail = resp.text[:300]
        raise IngestError(f"the server refused the upload ({resp.status_code}): {detail}", 1)
    body: dict[str, Any] = resp.json()
    return body


def send(
    client: httpx.Client,
    data: bytes,
    format_name: str,
    findings: list[NormalizedFinding],
    *,
    scope: str | None,
    complete: bool,
    batch_size: int,
    max_request_bytes: int,
    progress: Any = None,
) -> Totals:
    totals = Totals()
    params: dict[str, str] = {"scope": scope} if scope else {}
    if complete:
        params["complete"] = "true"
    if len(data) <= max_request_bytes or not findings:
        totals.add(_post(client, f"/v1/ingest/{format_name}", data, params))
        if progress:
            progress(f"sent the report whole: {len(findings)} findings")
        return totals
    scan = new_id()
    batches = [findings[i : i + batch_size] for i in range(0, len(findings), batch_size)]
    for number, batch in enumerate(batches, start=1):
        part = {"scope": scope, "scan": scan} if scope else {}
        if scope:
            part["report_format"] = format_name
        if complete and number == len(batches):
            part["complete"] = "true"
        payload = orjson.dumps({"findings": [f.model_dump(mode="json", exclude_none=True) for f in batch]})
        body = _post(client, "/v1/ingest/native", payload, part)
        totals.add(body)
        if progress:
            progress(
                f"batch {number}/{len(batches)}: {len(batch)} findings, created {body['created']}, "
                f"updated {body['updated']}, unchanged {body['unchanged']}"
            )
    return totals


def progress_to_stderr(line: str) -> None:
    print(f"tocsin ingest: {line}", file=sys.stderr, flush=True)
