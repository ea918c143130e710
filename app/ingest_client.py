"""``tocsin ingest``: send a scanner report from a pipeline, and gate the pipeline on what it found.

The report is parsed here with the same parsers the server uses (so ``--fail-on`` needs no round trip
and a large report can be split). A report up to ``--max-request-bytes`` goes to the server whole
(``/v1/ingest/{format}``); a larger one is sent as native batches carrying one scan id, the last batch
completing the scan when ``--complete`` is given.

Memory: a first pass over the parser's findings checks the whole report (nothing is sent if it is bad),
counts it and applies ``--fail-on`` without keeping a finding; batches are then built, serialized and sent
one at a time from a second pass. The file's bytes are dropped once decoded when the report is batched.
Secret findings sent in batches are keyed here, with ``TOCSIN_SECRETS_SALT`` from this environment: a
server with a salt of its own needs the same value in the pipeline (or a report sent whole).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from app.clock import new_id
from app.contracts import SEVERITY_MIN_SCORE, NormalizedFinding, Severity, SourceParser, SourceStatus
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


def choose_parser(document: Any, format_name: str | None) -> SourceParser:
    chosen = format_name or registry.detect(document)
    if chosen is None:
        names = ", ".join(registry.parser_names())
        raise IngestError(f"could not recognise the report's format; pass --format (one of: {names})", 2)
    try:
        return registry.get_parser(chosen)
    except registry.UnknownFormatError as exc:
        raise IngestError(str(exc), 2) from exc


def findings_of(parser: SourceParser, document: Any, secret_salt: str | None) -> Iterator[NormalizedFinding]:
    """The parser's findings one at a time; a bad report is an IngestError (exit 2)."""
    try:
        yield from parser.iter_findings(document, secret_salt=secret_salt)
    except ValueError as exc:
        raise IngestError(f"not a valid {parser.name} report: {exc}", 2) from exc


@dataclass
class Survey:
    """What the first pass learned: how many findings, and how many block the pipeline (``--fail-on``)."""

    findings: int = 0
    blocking: int = 0


def survey(parser: SourceParser, document: Any, secret_salt: str | None, fail_on: str | None) -> Survey:
    """Read the whole report once, keeping no finding: it is valid (else IngestError), counted and gated."""
    result = Survey()
    floor = SEVERITY_MIN_SCORE[Severity(fail_on)] if fail_on else None
    for finding in findings_of(parser, document, secret_salt):
        result.findings += 1
        if floor is not None and _blocks(finding, floor):
            result.blocking += 1
    return result


def _blocks(finding: NormalizedFinding, floor: float) -> bool:
    return finding.severity >= floor and finding.status in (None, SourceStatus.open)


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


def send_whole(
    client: httpx.Client, data: bytes, format_name: str, *, scope: str | None, complete: bool
) -> Totals:
    """The report as it is, to ``/v1/ingest/{format}`` (parsed and stored by the server in one go)."""
    params: dict[str, str] = {"scope": scope} if scope else {}
    if complete:
        params["complete"] = "true"
    totals = Totals()
    totals.add(_post(client, f"/v1/ingest/{format_name}", data, params))
    return totals


def send_batches(
    client: httpx.Client,
    findings: Iterable[NormalizedFinding],
    format_name: str,
    *,
    total: int,
    scope: str | None,
    complete: bool,
    batch_size: int,
    progress: Any = None,
) -> Totals:
    """Native batches of ``batch_size`` findings under one scan id, built and sent one at a time; the last
    one (``total`` findings in all, from the survey) completes the scan when ``complete``."""
    totals = Totals()
    scan = new_id()
    count = max(1, -(-total // batch_size))
    batches = _batched(findings, batch_size)
    batch = next(batches, None)
    number = 0
    while batch is not None:
        # One batch ahead: the last one is known when it is sent (it completes the scan).
        following = next(batches, None)
        number += 1
        part = {"scope": scope, "scan": scan, "report_format": format_name} if scope else {}
        if complete and following is None:
            part["complete"] = "true"
        payload = orjson.dumps({"findings": [f.model_dump(mode="json", exclude_none=True) for f in batch]})
        body = _post(client, "/v1/ingest/native", payload, part)
        totals.add(body)
        if progress:
            progress(
                f"batch {number}/{count}: {len(batch)} findings, created {body['created']}, "
                f"updated {body['updated']}, unchanged {body['unchanged']}"
            )
        batch, payload = following, b""
    return totals


def _batched(findings: Iterable[NormalizedFinding], size: int) -> Iterator[tuple[NormalizedFinding, ...]]:
    batch: list[NormalizedFinding] = []
    for finding in findings:
        batch.append(finding)
        if len(batch) == size:
            yield tuple(batch)
            batch = []
    if batch:
        yield tuple(batch)


def progress_to_stderr(line: str) -> None:
    print(f"tocsin ingest: {line}", file=sys.stderr, flush=True)
