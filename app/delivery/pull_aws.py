"""``tocsin pull aws`` and its schedule: Security Hub, GuardDuty and Macie findings into the ingest pipeline.

A *stream* is one service in one account and region. Streams are pulled one after the other; each page
goes through the service's registered parser (``asff``, ``guardduty``, ``macie``) and the same ingest as
every other source, and is stored in one transaction together with the stream's cursor, so a crash
repeats at most a page and never skips one. The cursor is the last ``UpdatedAt`` stored plus the ids
stored at exactly that time: the next pull asks for ``updatedAt >= cursor`` and drops those ids, so
findings updated in the same millisecond across a page boundary are neither lost nor counted twice.

A stream is leased while it is pulled (``source_cursors.lease_*``), so the CLI and the schedule of any
number of replicas never pull the same stream at once. A failing stream (access denied, throttled after
retries, service not enabled) is reported in one line naming what to grant, and the others go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.aws import pull as aws
from app.clock import utcnow
from app.db import run_transaction
from app.pipeline.ingest import IngestOutcome, ingest
from app.pipeline.normalize import ValidItem
from app.repositories import cursors
from app.repositories.cursors import CursorKey, CursorState
from app.settings import Settings
from integrations import registry

log = logging.getLogger("tocsin.pull.aws")
LEASE = timedelta(minutes=15)


@dataclass(slots=True)
class PageReport:
    key: CursorKey
    number: int
    fetched: int
    already_stored: int
    rejected: list[str]
    outcome: IngestOutcome

    def line(self) -> str:
        k = self.key
        text = (
            f"{k.service} {k.account} {k.region} page {self.number}: {self.fetched} findings, "
            f"{self.outcome.created} created, {self.outcome.updated} updated, {self.outcome.unchanged} unchanged"
        )
        if self.already_stored:
            text += f", {self.already_stored} already stored"
        if self.rejected:
            text += f", {len(self.rejected)} rejected ({self.rejected[0]})"
        return text


@dataclass(slots=True)
class StreamResult:
    key: CursorKey
    pages: int = 0
    findings: int = 0
    created: int = 0
    updated: int = 0
    rejected: int = 0
    error: str | None = None
    note: str | None = None  # why nothing was pulled (no detector, leased elsewhere)
    position: datetime | None = None

    def line(self) -> str:
        k = self.key
        head = f"{k.service} {k.account} {k.region}"
        if self.error:
            return f"FAILED {head}: {self.error}"
        if self.note:
            return f"{head}: {self.note}"
        cursor = aws.iso(self.position) if self.position else "none"
        return (
            f"{head} done: {self.pages} page(s), {self.findings} findings, {self.created} created, "
            f"{self.updated} updated, {self.rejected} rejected; cursor {cursor}"
        )


@dataclass(slots=True)
class PullReport:
    streams: list[StreamResult] = field(default_factory=list)

    @property
    def failed(self) -> list[StreamResult]:
        return [stream for stream in self.streams if stream.error]


PageCallback = Callable[[PageReport], None]
StreamCallback = Callable[[StreamResult], None]


def pull(
    engine: Engine,
    settings: Settings,
    *,
    services: Iterable[str] | None = None,
    regions: Iterable[str] | None = None,
    on_page: PageCallback | None = None,
    on_stream: StreamCallback | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> PullReport:
    """Pull every configured stream (accounts x regions x services); never raises for an AWS failure."""
    report = PullReport()
    wanted = [aws.SERVICES[name] for name in (services or settings.aws_pull_services)]
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def finish(result: StreamResult) -> None:
        report.streams.append(result)
        if on_stream is not None:
            on_stream(result)
        else:  # the schedule: the log is the record
            (log.warning if result.error else log.info)("%s", result.line())

    try:
        region_list = list(regions) if regions else aws.default_regions(settings)
    except aws.AwsPullError as exc:
        finish(StreamResult(CursorKey("aws", "-", "-"), error=str(exc)))
        return report
    roles: list[str | None] = [*settings.aws_role_arns] or [None]
    for role_arn in roles:
        try:
            account = aws.open_account(settings, role_arn, region_list[0])
        except aws.AwsPullError as exc:
            finish(StreamResult(CursorKey("sts", role_arn or "default", region_list[0]), error=str(exc)))
            continue
        for region in region_list:
            for service in wanted:
                if should_stop():
                    return report
                finish(_pull_stream(engine, settings, account, region, service, owner, on_page, should_stop))
    return report


def _pull_stream(
    engine: Engine,
    settings: Settings,
    account: aws.Account,
    region: str,
    service: aws.Service,
    owner: str,
    on_page: PageCallback | None,
    should_stop: Callable[[], bool],
) -> StreamResult:
    key = CursorKey(service.name, account.id, region)
    result = StreamResult(key)
    attempts = settings.ingest_retry_attempts
    started = utcnow()
    state = run_transaction(
        engine, lambda session: cursors.claim(session, key, owner, started, started + LEASE), attempts
    )
    if state.lease_owner != owner:
        until = aws.iso(state.lease_until) if state.lease_until else "?"
        result.note = f"skipped: another pull ({state.lease_owner}) holds this stream until {until}"
        return result
    result.position = state.position
    try:
        client = aws.make_client(account, service, region, settings)
        tracker = _Cursor(service, state)
        for number, page in enumerate(aws.pages(service, client, state.position, started), 1):
            page_report = _store_page(engine, settings, key, service, owner, tracker, number, page)
            result.pages += 1
            result.findings += page_report.fetched
            result.created += page_report.outcome.created
            result.updated += page_report.outcome.updated
            result.rejected += len(page_report.rejected)
            result.position = tracker.position
            if on_page is not None:
                on_page(page_report)
            if should_stop():
                break
        if service is aws.GUARDDUTY and result.pages == 0 and not _has_detector(client):
            result.note = "no GuardDuty detector in this region (GuardDuty is not enabled here)"
    except Exception as exc:
        if not _is_aws_error(exc):
            raise
        result.error = aws.describe_error(exc, service, account, region)
    finally:
        with contextlib.suppress(Exception):  # an unreleased lease expires by itself
            run_transaction(engine, lambda session: cursors.release(session, key, owner), attempts)
    return result


def _is_aws_error(exc: Exception) -> bool:
    from botocore.exceptions import BotoCoreError, ClientError

    return isinstance(exc, BotoCoreError | ClientError)


def _has_detector(client: Any) -> bool:
    return bool(client.list_detectors(MaxResults=1).get("DetectorIds"))


class _Cursor:
    """The stream's position as pages are stored: what to drop as already stored, what to write next."""

    def __init__(self, service: aws.Service, start: CursorState) -> None:
        self.service = service
        self.start = start.position
        self.start_ids = frozenset(start.boundary_ids)
        self.position = start.position
        self.boundary: list[str] = list(start.boundary_ids)

    def is_new(self, document: aws.Document) -> bool:
        updated = aws.updated_at(self.service, document)
        if self.start is None or updated is None or updated > self.start:
            return True
        # Servers filter on updatedAt >= cursor; one that cannot filter (moto) is filtered here as well.
        return updated == self.start and aws.finding_id(self.service, document) not in self.start_ids

    def after(self, documents: list[aws.Document]) -> tuple[datetime | None, list[str]]:
        """Position and boundary ids once ``documents`` are stored (not applied until the commit)."""
        position, boundary = self.position, list(self.boundary)
        for document in documents:
            updated = aws.updated_at(self.service, document)
            ident = aws.finding_id(self.service, document)
            if updated is None or ident is None:
                continue
            if position is None or updated > position:
                position, boundary = updated, [ident]
            elif updated == position and ident not in boundary:
                boundary.append(ident)
        return position, boundary


def _store_page(
    engine: Engine,
    settings: Settings,
    key: CursorKey,
    service: aws.Service,
    owner: str,
    tracker: _Cursor,
    number: int,
    page: list[aws.Document],
) -> PageReport:
    fresh = [document for document in page if tracker.is_new(document)]
    items, rejected = _parse(service, fresh)
    position, boundary = tracker.after(fresh)
    actor = f"pull:{key.service}:{key.account}:{key.region}"

    def work(session: Session) -> IngestOutcome:
        now = utcnow()
        outcome = ingest(session, items, actor, settings.scoring, now)
        if position is not None:
            cursors.set(session, key, position, boundary, now)
        cursors.extend(session, key, owner, now + LEASE)
        return outcome

    outcome = run_transaction(engine, work, settings.ingest_retry_attempts) if fresh else IngestOutcome()
    tracker.position, tracker.boundary = position, boundary
    for message in rejected:
        log.warning("%s %s %s: finding rejected: %s", key.service, key.account, key.region, message)
    return PageReport(key, number, len(page), len(page) - len(fresh), rejected, outcome)


def _parse(service: aws.Service, documents: list[aws.Document]) -> tuple[list[ValidItem], list[str]]:
    """The page through the service's parser; when it refuses the page, finding by finding."""
    if not documents:
        return [], []
    parser = registry.get_parser(service.format)
    try:
        findings = parser.parse({service.list_key: documents})
    except ValueError:
        findings, rejected = [], []
        for document in documents:
            try:
                findings.extend(parser.parse({service.list_key: [document]}))
            except ValueError as exc:
                ident = aws.finding_id(service, document) or "?"
                rejected.append(f"{ident}: {exc}")
    else:
        rejected = []
    return [ValidItem(index, finding, finding.raw) for index, finding in enumerate(findings)], rejected


class ScheduledPull:
    """``TOCSIN_AWS_PULL_INTERVAL``: a pull every interval in the service process, stopped with it."""

    def __init__(self, engine: Engine, settings: Settings, interval: float) -> None:
        self.engine = engine
        self.settings = settings
        self.interval = interval
        self._stop = threading.Event()
        self._task: asyncio.Task[None] | None = None
        self._pulling = False

    @classmethod
    def start(cls, engine: Engine, settings: Settings) -> ScheduledPull | None:
        if settings.aws_pull_interval is None:
            return None
        scheduled = cls(engine, settings, settings.aws_pull_interval)
        scheduled._task = asyncio.create_task(scheduled._run())
        return scheduled

    async def _run(self) -> None:
        while not self._stop.is_set():
            self._pulling = True
            try:
                report = await asyncio.to_thread(
                    pull, self.engine, self.settings, should_stop=self._stop.is_set
                )
                if report.failed:
                    log.warning("scheduled AWS pull: %d stream(s) failed", len(report.failed))
            except Exception as exc:  # the database may be down: say so in one line, try next time
                log.warning(
                    "scheduled AWS pull failed (%s: %s); retrying in %ss",
                    type(exc).__name__,
                    str(exc).splitlines()[0][:200] if str(exc) else "",
                    self.interval,
                )
            finally:
                self._pulling = False
            if self._stop.is_set():
                return
            await asyncio.sleep(self.interval)

    async def stop(self, grace_seconds: float = 30.0) -> None:
        """Let a running pull finish its page (committed with its cursor, or not at all), then stop."""
        self._stop.set()
        if self._task is None:
            return
        if self._pulling:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._task), grace_seconds)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
