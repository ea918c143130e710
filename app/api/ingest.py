"""/v1/ingest/{format}: whole reports in a source's own format (Trivy, ...), and format detection.

The document is parsed by the format's pure parser (integrations/sources) into native findings, which
then go through the same pipeline as ``POST /v1/findings``, in one transaction: a report is stored whole
or not at all, and re-posting it is harmless.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from sqlalchemy import Engine

from app.api.deps import EngineDep, IngestCaller, RawBody, SettingsDep
from app.api.docs import error_responses
from app.api.findings import decode_batch, ingest_response
from app.api.schemas import IngestResponse, ReportIngestResponse
from app.auth import Principal
from app.clock import new_id
from app.db import run_transaction
from app.errors import NotFoundError, ValidationFailed
from app.pipeline import ingest
from app.pipeline.normalize import ItemError, ValidItem, validate_items
from app.reports import ReportDecodeError, decode_report
from app.settings import Settings
from integrations import registry

router = APIRouter(prefix="/v1/ingest", tags=["ingest"])

NATIVE = "native"
JSON_LINES_FORMATS = frozenset({"trufflehog", "nuclei"})


def _decode(body: bytes) -> Any:
    """A JSON document, or JSON lines (TruffleHog, Nuclei) as the list of their objects."""
    try:
        return decode_report(body)
    except ReportDecodeError as exc:
        field = f"body.line[{exc.line}]" if exc.line else "body"
        raise ValidationFailed(f"the body {exc}", field=field) from exc


def _parse(format_name: str, document: Any) -> list[ValidItem]:
    parser = registry.get_parser(format_name)
    try:
        findings = parser.parse(document)
    except ValueError as exc:
        raise ValidationFailed(f"not a valid {parser.name} document: {exc}", field="body") from exc
    return [ValidItem(index, finding, finding.raw) for index, finding in enumerate(findings)]


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


def _store(
    format_name: str,
    items: list[ValidItem],
    failed: list[ItemError],
    caller: Principal,
    engine: Engine,
    settings: Settings,
    scan: ingest.Scan | None,
) -> ReportIngestResponse:
    stored = store_items(items, failed, caller.name, engine, settings, scan)
    return ReportIngestResponse(format=format_name, **stored.model_dump())


def _ingest_document(
    format_name: str,
    document: Any,
    body: bytes,
    caller: Principal,
    engine: Engine,
    settings: Settings,
    scan: ScanParams | None = None,
) -> ReportIngestResponse:
    report_scan = scan.scan_for(format_name) if scan else None
    if format_name == NATIVE:
        # Same item-by-item validation as POST /v1/findings: valid findings stored, others reported.
        valid, failed = validate_items(decode_batch(body, settings.max_batch_findings))
        return _store(NATIVE, valid, failed, caller, engine, settings, report_scan)
    return _store(format_name, _parse(format_name, document), [], caller, engine, settings, report_scan)


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
    body: RawBody,
    caller: IngestCaller,
    engine: EngineDep,
    settings: SettingsDep,
    scan: Annotated[ScanParams, Depends()],
) -> ReportIngestResponse:
    document = _decode(body)
    format_name = registry.detect(document)
    if format_name is None:
        raise ValidationFailed(
            f"could not recognise the document's format; supported formats: {FORMATS_TEXT}. "
            "Post it to /v1/ingest/{format} to name the format yourself.",
            field="body",
        )
    return _ingest_document(format_name, document, body, caller, engine, settings, scan)


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
    body: RawBody,
    caller: IngestCaller,
    engine: EngineDep,
    settings: SettingsDep,
    scan: Annotated[ScanParams | None, Depends(ScanParams)] = None,
) -> ReportIngestResponse:
    try:
        registry.get_parser(format_name)
    except registry.UnknownFormatError as exc:
        raise NotFoundError(str(exc)) from exc
    name = format_name.lower()
    # Line-oriented tools print nothing when they find nothing: an empty body is an empty scan.
    document = [] if name in JSON_LINES_FORMATS and not body.strip() else _decode(body)
    return _ingest_document(name, document, body, caller, engine, settings, scan)
