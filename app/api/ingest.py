"""/v1/ingest/{format}: whole reports in a source's own format (Trivy, ...), and format detection.

The document is parsed by the format's pure parser (integrations/sources) into native findings, which
then go through the same pipeline as ``POST /v1/findings``, in one transaction: a report is stored whole
or not at all, and re-posting it is harmless.

Memory stays at about one copy of the document: the body is read into one buffer and dropped once decoded
(the parsed tree is the copy kept); the parser yields findings lazily and they are stored
``max_batch_findings`` at a time, each chunk dropped before the next is built. A parser error in a later
chunk rolls the whole transaction back (422, nothing stored).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from sqlalchemy import Engine

from app.api.deps import EngineDep, IngestCaller, SettingsDep
from app.api.docs import error_responses
from app.api.findings import decode_batch, ingest_response
from app.api.schemas import IngestResponse, ReportIngestResponse
from app.auth import Principal, only_bound_sources, require_sources
from app.clock import new_id
from app.contracts import NormalizedFinding, SourceParser
from app.db import run_transaction
from app.errors import NotFoundError, ValidationFailed
from app.pipeline import ingest
from app.pipeline.normalize import ItemError, ValidItem, in_repository, scope_repository, validate_items
from app.reports import ReportDecodeError, decode_report, is_blank
from app.settings import Settings
from integrations import registry

router = APIRouter(prefix="/v1/ingest", tags=["ingest"])

NATIVE = "native"
JSON_LINES_FORMATS = frozenset({"trufflehog", "nuclei"})


class ReportBody:
    """The posted report, read into one buffer and handed over once (``take``), so that the bytes can be
    freed as soon as they are decoded: FastAPI keeps every dependency's value until the response is sent."""

    def __init__(self, data: bytearray) -> None:
        self._data = data

    def take(self) -> bytearray:
        data, self._data = self._data, bytearray()
        return data


async def read_report(request: Request) -> ReportBody:
    """The body in one buffer, sized from Content-Length when given (``request.body()`` would hold the
    chunks and their join at once, then keep the result for the whole request). The body-size middleware
    refuses one over the limit as it streams."""
    declared = request.headers.get("content-length", "")
    data = bytearray(int(declared)) if declared.isdigit() else bytearray()
    size = 0
    async for chunk in request.stream():
        data[size : size + len(chunk)] = chunk
        size += len(chunk)
    del data[size:]
    return ReportBody(data)


ReportBodyDep = Annotated[ReportBody, Depends(read_report)]


def _decode(body: bytes | bytearray) -> Any:
    """A JSON document, or JSON lines (TruffleHog, Nuclei) as the list of their objects."""
    try:
        return decode_report(body)
    except ReportDecodeError as exc:
        field = f"body.line[{exc.line}]" if exc.line else "body"
        raise ValidationFailed(f"the body {exc}", field=field) from exc


def _findings(parser: SourceParser, document: Any, secret_salt: str | None) -> Iterator[NormalizedFinding]:
    """The parser's findings, its ValueError (found at any point of the report) as a 422."""
    try:
        yield from parser.iter_findings(document, secret_salt=secret_salt)
    except ValueError as exc:
        raise ValidationFailed(f"not a valid {parser.name} document: {exc}", field="body") from exc


class _Chunks:
    """Findings in chunks of ``size`` ValidItems, indexed across the whole report and placed in the scope's
    repository; ``count`` is how many were read."""

    def __init__(self, findings: Iterable[NormalizedFinding], size: int, repository: str | None) -> None:
        self.findings = findings
        self.size = size
        self.repository = repository
        self.count = 0

    def __iter__(self) -> Iterator[list[ValidItem]]:
        chunk: list[ValidItem] = []
        for finding in self.findings:
            if self.repository:
                finding = in_repository(finding, self.repository)
            chunk.append(ValidItem(self.count, finding, finding.raw))
            self.count += 1
            if len(chunk) == self.size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk


def _salt(settings: Settings) -> str | None:
    return settings.secrets_salt.get_secret_value() if settings.secrets_salt else None


def store_items(
    items: list[ValidItem],
    failed: list[ItemError],
    actor: str,
    engine: Engine,
    settings: Settings,
    scan: ingest.Scan | None = None,
) -> IngestResponse:
    """Store parsed findings in one transaction and shape the answer (also used by the AWS endpoints)."""
    outcome = run_transaction(
        engine,
        lambda session: ingest.ingest(session, items, actor, settings.scoring, scan=scan),
        settings.ingest_retry_attempts,
    )
    return ingest_response(len(items), outcome, failed)


class ScanParams:
    """``?scope=...&complete=true``: what the report covers, and whether it is the whole of it."""

    def __init__(
        self,
        scope: Annotated[
            str | None,
            Query(
                max_length=256,
                pattern=r"^\S+$",
                description="What the scan covered, e.g. `repo:acme/api@main`, `image:registry/app`, "
                "`aws-account:123456789012`. Findings remember the scope of the last report carrying them.",
                examples=["image:registry.example.com/shop/api"],
            ),
        ] = None,
        scan: Annotated[
            str | None,
            Query(
                pattern=r"^[A-Za-z0-9_-]{1,32}$",
                description="Your id for a scan sent in several requests: every part carries it, and the "
                "last one says `complete=true`; what none of the parts reported is resolved.",
                examples=["ci-run-4711"],
            ),
        ] = None,
        report_format: Annotated[
            str | None,
            Query(
                pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$",
                description="On `/v1/ingest/native` only: the format of the report these native findings "
                "were parsed from (what `tocsin ingest` sends when it splits a large report), so they "
                "belong to that format's scope.",
            ),
        ] = None,
        complete: Annotated[
            bool,
            Query(
                description="The report is a complete scan of `scope`: findings this format reported "
                "earlier for the scope and absent now are resolved (`resolved_by_rescan`). An empty "
                "complete report resolves them all."
            ),
        ] = False,
    ) -> None:
        if complete and not scope:
            raise ValidationFailed("complete=true needs a scope: say what the scan covered", field="complete")
        if scan and not scope:
            raise ValidationFailed("scan needs a scope: say what the scan covered", field="scan")
        self.scope = scope
        self.scan = scan
        self.report_format = report_format
        self.complete = complete

    def scan_for(self, format_name: str) -> ingest.Scan | None:
        if self.report_format and format_name != NATIVE:
            raise ValidationFailed("report_format is only for /v1/ingest/native", field="report_format")
        if not self.scope:
            return None
        format_name = self.report_format or format_name
        return ingest.Scan(
            scope=f"{format_name}|{self.scope}", id=self.scan or new_id(), complete=self.complete
        )


def _store_report(
    format_name: str,
    document: Any,
    caller: Principal,
    engine: Engine,
    settings: Settings,
    scan: ingest.Scan | None,
    repository: str | None,
) -> ReportIngestResponse:
    """Parse and store a report chunk by chunk in one transaction (retried whole: the parse starts over)."""
    parser = registry.get_parser(format_name)
    counted: list[_Chunks] = []

    def work(session: Any) -> ingest.IngestOutcome:
        findings = only_bound_sources(caller, _findings(parser, document, _salt(settings)))
        chunks = _Chunks(findings, settings.max_batch_findings, repository)
        counted[:] = [chunks]
        return ingest.ingest_chunks(session, chunks, caller.name, settings.scoring, scan=scan)

    outcome = run_transaction(engine, work, settings.ingest_retry_attempts)
    stored = ingest_response(counted[0].count, outcome, [])
    return ReportIngestResponse(format=format_name, **stored.model_dump())


def _store_native(
    items: list[Any],
    caller: Principal,
    engine: Engine,
    settings: Settings,
    scan: ingest.Scan | None,
    repository: str | None,
) -> ReportIngestResponse:
    # Same item-by-item validation as POST /v1/findings: valid findings stored, others reported.
    valid, failed = validate_items(items)
    require_sources(caller, (item.finding for item in valid))
    if repository:
        valid = [ValidItem(v.index, in_repository(v.finding, repository), v.raw) for v in valid]
    stored = store_items(valid, failed, caller.name, engine, settings, scan)
    return ReportIngestResponse(format=NATIVE, **stored.model_dump())


def _native_items(document: Any, limit: int) -> list[Any]:
    """The findings of a native batch detected by /auto (the envelope is what ``native.detect`` checked)."""
    items: list[Any] = document["findings"]
    if not 1 <= len(items) <= limit:
        raise ValidationFailed(
            f"findings must hold 1 to {limit} findings per request, got {len(items)}; split the batch",
            field="findings",
        )
    return items


def _ingest_document(
    format_name: str,
    document: Any,
    caller: Principal,
    engine: Engine,
    settings: Settings,
    scan: ScanParams | None = None,
) -> ReportIngestResponse:
    report_scan = scan.scan_for(format_name) if scan else None
    repository = scope_repository(scan.scope) if scan else None
    if format_name == NATIVE:
        items = _native_items(document, settings.max_batch_findings)
        return _store_native(items, caller, engine, settings, report_scan, repository)
    return _store_report(format_name, document, caller, engine, settings, report_scan, repository)


FORMATS_TEXT = ", ".join(registry.parser_names())


@router.post(
    "/auto",
    summary="Ingest a report, detecting its format",
    description=f"Detects the format from the document ({FORMATS_TEXT}) and says which it chose in "
    "`format`. An undetectable document answers 422 listing the supported formats. Needs `ingest`.",
    response_model=ReportIngestResponse,
    responses=error_responses(401, 403, 413, 422, 503),
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {}}}}},
)
def ingest_auto(
    caller: IngestCaller,
    body: ReportBodyDep,
    engine: EngineDep,
    settings: SettingsDep,
    scan: Annotated[ScanParams, Depends()],
) -> ReportIngestResponse:
    document = _decode(body.take())
    format_name = registry.detect(document)
    if format_name is None:
        raise ValidationFailed(
            f"could not recognise the document's format; supported formats: {FORMATS_TEXT}. "
            "Post it to /v1/ingest/{format} to name the format yourself.",
            field="body",
        )
    return _ingest_document(format_name, document, caller, engine, settings, scan)


@router.post(
    "/{format_name}",
    summary="Ingest a report in a named format",
    description=f"Formats: {FORMATS_TEXT}. The report is parsed into native findings and stored in one "
    "transaction (whole or not at all); repeats of known findings update them. Needs `ingest`.",
    response_model=ReportIngestResponse,
    responses=error_responses(401, 403, 404, 413, 422, 503),
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {}}}}},
)
def ingest_format(
    format_name: Annotated[str, Path(max_length=64, description=f"One of: {FORMATS_TEXT}.")],
    caller: IngestCaller,
    body: ReportBodyDep,
    engine: EngineDep,
    settings: SettingsDep,
    scan: Annotated[ScanParams | None, Depends(ScanParams)] = None,
) -> ReportIngestResponse:
    try:
        registry.get_parser(format_name)
    except registry.UnknownFormatError as exc:
        raise NotFoundError(str(exc)) from exc
    name = format_name.lower()
    if name == NATIVE:
        report_scan = scan.scan_for(NATIVE) if scan else None
        repository = scope_repository(scan.scope) if scan else None
        items = decode_batch(bytes(body.take()), settings.max_batch_findings)
        return _store_native(items, caller, engine, settings, report_scan, repository)
    data = body.take()
    # Line-oriented tools print nothing when they find nothing: an empty body is an empty scan.
    document = [] if name in JSON_LINES_FORMATS and is_blank(data) else _decode(data)
    del data  # the parsed document is the one copy kept from here on
    return _ingest_document(name, document, caller, engine, settings, scan)
