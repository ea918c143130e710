"""The ``tocsin`` command: serve, worker, migrate, tokens, apply, ingest, pull."""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from app import cli_tokens
from app.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

BOOTSTRAP_ATTEMPTS = 3


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        print(f"tocsin: invalid configuration: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc


def _migrate(settings: Settings) -> None:
    from app import migrations
    from app.db import create_db_engine

    engine = create_db_engine(settings)
    try:
        migrations.upgrade(engine)
    finally:
        engine.dispose()


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = _settings()
    _migrate(settings)
    print("migrations applied", file=sys.stderr)
    return 0


def _ensure_admin(settings: Settings) -> None:
    """Create the first admin token (or the TOCSIN_BOOTSTRAP_TOKEN one) and print a new secret once.

    Replicas starting together on one PostgreSQL database can race to create the same token: the loser
    gets a conflict, and its second look finds the winner's token and does nothing.
    """
    from app.auth import ensure_bootstrap
    from app.db import create_db_engine, unit_of_work
    from app.errors import ConflictError

    value = settings.bootstrap_token.get_secret_value() if settings.bootstrap_token else None
    engine = create_db_engine(settings)
    try:
        for attempt in range(1, BOOTSTRAP_ATTEMPTS + 1):
            try:
                with unit_of_work(engine) as session:
                    secret = ensure_bootstrap(session, value)
                break
            except ConflictError:
                if attempt == BOOTSTRAP_ATTEMPTS:
                    raise
    finally:
        engine.dispose()
    if secret:
        bar = "=" * 72
        print(
            f"\n{bar}\nCreated an admin token (shown once, store it now):\n\n    {secret}\n\n"
            f"Use it as:  Authorization: Bearer {secret}\n{bar}\n",
            file=sys.stderr,
            flush=True,
        )


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.logs import configure_logging
    from app.main import create_app

    settings = _settings()
    configure_logging(settings.log_level, settings.log_json)
    _migrate(settings)
    _ensure_admin(settings)
    print(
        f"Tocsin on http://{args.host}:{args.port}  (API docs: http://{args.host}:{args.port}/docs)",
        file=sys.stderr,
    )
    config = uvicorn.Config(
        create_app(settings),
        host=args.host,
        port=args.port,
        log_config=None,
        timeout_graceful_shutdown=30,
        proxy_headers=False,
        server_header=False,  # no "server: uvicorn" advertising the stack
    )
    server = uvicorn.Server(config)
    _exit_zero_on_stop_signal()
    if args.reuse_port:
        # Several `tocsin serve --reuse-port` processes share one port; the kernel spreads connections.
        server.run(sockets=[_reuse_port_socket(args.host, args.port)])
    else:
        server.run()
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """Deliver the outbox until SIGTERM/SIGINT (graceful: the groups being sent finish), or with --once
    until nothing is due."""
    import asyncio

    from app.db import create_db_engine
    from app.logs import configure_logging

    settings = _settings()
    configure_logging(settings.log_level, settings.log_json)
    engine = create_db_engine(settings)
    try:
        return asyncio.run(_work(engine, settings, args.concurrency, args.once))
    finally:
        engine.dispose()


async def _work(engine: Engine, settings: Settings, concurrency: int | None, once: bool) -> int:
    import asyncio
    import time

    from app.delivery.dispatcher import Dispatcher

    dispatcher = Dispatcher(engine, settings, concurrency=concurrency)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, dispatcher.request_stop)
    mode = "until nothing is due" if once else "until stopped (SIGTERM: graceful)"
    print(
        f"tocsin worker {dispatcher.worker_id}: delivering {mode}, {dispatcher.concurrency} at once",
        file=sys.stderr,
        flush=True,
    )
    started = time.monotonic()

    async def progress() -> None:
        shown = ""
        while True:
            await asyncio.sleep(10)
            line = dispatcher.totals.line()
            if line != shown:
                print(f"tocsin worker: {line}", file=sys.stderr, flush=True)
                shown = line

    reporter = asyncio.create_task(progress())
    try:
        if once:
            await dispatcher.drain()
        else:
            await dispatcher.run_forever()
    finally:
        reporter.cancel()
        await dispatcher.aclose()
    elapsed = time.monotonic() - started
    totals = dispatcher.totals
    rate = totals.sent / elapsed if elapsed > 0 else 0.0
    print(
        f"tocsin worker: done in {elapsed:.1f}s: {totals.line()} ({rate:.0f} notifications/s)",
        file=sys.stderr,
        flush=True,
    )
    return 0


def _exit_zero_on_stop_signal() -> None:
    """uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal to the handler it found
    at start. This handler turns that into a normal exit (status 0, no KeyboardInterrupt traceback), and
    also stops the process if the signal comes before uvicorn has installed its own."""

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(0)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)


def _reuse_port_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def cmd_pull_aws(args: argparse.Namespace) -> int:
    """Pull Security Hub, GuardDuty and Macie findings since each stream's cursor; one line per page."""
    from app.db import create_db_engine
    from app.delivery import pull_aws

    settings = _settings()
    engine = create_db_engine(settings)

    def page_line(page: pull_aws.PageReport) -> None:
        print(page.line(), file=sys.stderr, flush=True)

    def stream_line(stream: pull_aws.StreamResult) -> None:
        print(stream.line(), file=sys.stderr, flush=True)

    try:
        report = pull_aws.pull(
            engine,
            settings,
            services=args.service,
            regions=args.region,
            on_page=page_line,
            on_stream=stream_line,
        )
    finally:
        engine.dispose()
    failed = report.failed
    total = sum(stream.findings for stream in report.streams)
    created = sum(stream.created for stream in report.streams)
    updated = sum(stream.updated for stream in report.streams)
    print(
        f"pulled {total} findings ({created} created, {updated} updated) from {len(report.streams)} stream(s)"
        + (f"; {len(failed)} failed" if failed else ""),
        file=sys.stderr,
    )
    return 1 if failed else 0


def _datetime(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {value!r}") from exc


def _aws_region(value: str) -> str:
    if not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-[0-9]{1,2}", value):
        raise argparse.ArgumentTypeError(f"not an AWS region name such as eu-west-1: {value!r}")
    return value


def cmd_ingest(args: argparse.Namespace) -> int:
    import httpx

    from app import ingest_client as client_mod

    token = os.environ.get("TOCSIN_TOKEN")
    if not token:
        print("tocsin ingest: set TOCSIN_TOKEN to a token with the ingest scope", file=sys.stderr)
        return 2
    url = args.url or os.environ.get("TOCSIN_URL") or "http://127.0.0.1:8000"
    if args.complete and not args.scope:
        print("tocsin ingest: --complete needs --scope (what the scan covered)", file=sys.stderr)
        return 2
    try:
        data: bytes | None = sys.stdin.buffer.read() if args.report == "-" else Path(args.report).read_bytes()
    except OSError as exc:
        print(f"tocsin ingest: cannot read {args.report}: {exc.strerror}", file=sys.stderr)
        return 2
    salt = os.environ.get("TOCSIN_SECRETS_SALT") or None
    try:
        assert data is not None
        document = client_mod.decode(data)
        parser = client_mod.choose_parser(document, args.format)
        survey = client_mod.survey(parser, document, salt, args.fail_on)
        client_mod.progress_to_stderr(f"{args.report}: {parser.name}, {survey.findings} findings")
        if len(data) > args.max_request_bytes and survey.findings:
            data = None  # batches are built from the parsed document: keep one copy of the report
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=300) as http:
            if data is not None:
                totals = client_mod.send_whole(
                    http, data, parser.name, scope=args.scope, complete=args.complete
                )
                client_mod.progress_to_stderr(f"sent the report whole: {survey.findings} findings")
            else:
                totals = client_mod.send_batches(
                    http,
                    client_mod.findings_of(parser, document, salt),
                    parser.name,
                    total=survey.findings,
                    scope=args.scope,
                    complete=args.complete,
                    batch_size=args.batch_size,
                    progress=client_mod.progress_to_stderr,
                )
    except client_mod.IngestError as exc:
        print(f"tocsin ingest: {exc}", file=sys.stderr)
        return exc.exit_code
    print(
        f"accepted {totals.accepted}, created {totals.created}, updated {totals.updated}, "
        f"unchanged {totals.unchanged}, resolved {totals.resolved}, failed {len(totals.failed)}"
    )
    if totals.failed:
        print(
            f"tocsin ingest: the server rejected {len(totals.failed)} finding(s): {totals.failed[:3]}",
            file=sys.stderr,
        )
        return 1
    if args.fail_on and survey.blocking:
        print(f"tocsin ingest: {survey.blocking} open finding(s) at or above {args.fail_on}", file=sys.stderr)
        return client_mod.FAIL_ON_EXIT
    return 0


def cmd_apply(args: argparse.Namespace) -> int:
    """Make the routing configuration (teams, channels, rules, silences) what a YAML file says."""
    from app.config_file import ConfigError, parse
    from app.db import create_db_engine, read_only, unit_of_work
    from app.delivery import apply as config_apply
    from app.errors import AppError

    try:
        text = Path(args.file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"tocsin apply: cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    try:
        settings = load_settings(database_url=args.database_url) if args.database_url else load_settings()
    except SettingsError as exc:
        print(f"tocsin: invalid configuration: {exc}", file=sys.stderr)
        return 2
    engine = create_db_engine(settings)
    try:
        document = parse(text, args.file)
        with unit_of_work(read_only(engine) if args.dry_run else engine) as session:
            changes = config_apply.apply(session, document, prune=args.prune, dry_run=args.dry_run)
    except ConfigError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        print(
            f"tocsin apply: {len(exc.problems)} problem(s) in {args.file}; nothing changed", file=sys.stderr
        )
        return 2
    except AppError as exc:
        print(f"tocsin apply: {exc.message}; nothing changed", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    for change in changes:
        print(change.line())
    if not changes:
        print("no changes", file=sys.stderr)
    elif args.dry_run:
        print(f"dry run: {len(changes)} change(s) to apply; nothing changed", file=sys.stderr)
    else:
        print(f"applied {len(changes)} change(s)", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tocsin", description="Tocsin security findings hub")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="apply migrations and run the API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--reuse-port",
        action="store_true",
        help="bind with SO_REUSEPORT so several serve processes share the port (scale across cores)",
    )
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser(
        "worker",
        help="deliver queued notifications (any number of workers may run against PostgreSQL)",
        description="Claims due notification groups, sends them and records every attempt. SIGTERM or "
        "SIGINT stops gracefully: groups being sent finish, the rest are given back.",
    )
    worker.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="groups sent at once (default TOCSIN_DELIVERY_CONCURRENCY)",
    )
    worker.add_argument("--once", action="store_true", help="deliver what is due now, then exit")
    worker.set_defaults(func=cmd_worker)

    migrate = sub.add_parser("migrate", help="apply pending database migrations")
    migrate.set_defaults(func=cmd_migrate)

    tokens = sub.add_parser("tokens", help="manage API tokens")
    tsub = tokens.add_subparsers(dest="tokens_command", required=True)
    create = tsub.add_parser("create", help="create a token and print it (alone) on stdout")
    create.add_argument("--name", required=True)
    create.add_argument(
        "--scope",
        action="append",
        required=True,
        choices=["ingest", "read", "triage", "admin"],
        help="repeatable",
    )
    create.add_argument("--expires-at", type=_datetime, default=None, help="ISO 8601 time")
    create.add_argument(
        "--source",
        action="append",
        default=None,
        help="bind an ingest token to this finding source, e.g. trivy (repeatable; default: any source)",
    )
    create.set_defaults(func=lambda a: cli_tokens.create(a, _settings()))
    revoke = tsub.add_parser("revoke", help="revoke a token by name")
    revoke.add_argument("name")
    revoke.set_defaults(func=lambda a: cli_tokens.revoke(a, _settings()))
    listing = tsub.add_parser("list", help="list tokens (never the secrets)")
    listing.set_defaults(func=lambda a: cli_tokens.listing(a, _settings()))

    ingest = sub.add_parser(
        "ingest",
        help="send a scanner report to a Tocsin server (TOCSIN_URL, TOCSIN_TOKEN)",
        description="Exit codes: 0 sent, 1 the server refused it, 2 bad input, 3 --fail-on matched.",
    )
    ingest.add_argument("report", help="the report file, or - for standard input")
    ingest.add_argument("--format", default=None, help="the report's format (default: detect it)")
    ingest.add_argument("--scope", default=None, help="what the scan covered, e.g. image:registry/app")
    ingest.add_argument(
        "--complete", action="store_true", help="a complete scan: resolve what it no longer reports"
    )
    ingest.add_argument(
        "--fail-on",
        choices=["low", "medium", "high", "critical"],
        default=None,
        help="exit 3 when the report holds an open finding at or above this severity",
    )
    ingest.add_argument(
        "--url", default=None, help="server URL (default TOCSIN_URL or http://127.0.0.1:8000)"
    )
    ingest.add_argument("--batch-size", type=int, default=1000, help="findings per request for large reports")
    ingest.add_argument(
        "--max-request-bytes",
        type=int,
        default=16 * 1024 * 1024,
        help="reports up to this size are sent whole; larger ones in batches",
    )
    ingest.set_defaults(func=cmd_ingest)

    pull = sub.add_parser("pull", help="pull findings from polled sources")
    psub = pull.add_subparsers(dest="pull_command", required=True)
    pull_aws = psub.add_parser(
        "aws",
        help="pull Security Hub, GuardDuty and Macie findings updated since the last pull",
        description="Accounts, regions and services come from TOCSIN_AWS_ROLE_ARNS, TOCSIN_AWS_REGIONS and "
        "TOCSIN_AWS_PULL_SERVICES; credentials from the standard AWS chain. Exits 1 when any stream failed.",
    )
    pull_aws.add_argument(
        "--service",
        action="append",
        choices=["securityhub", "guardduty", "macie"],
        help="repeatable; default TOCSIN_AWS_PULL_SERVICES",
    )
    pull_aws.add_argument(
        "--region", action="append", type=_aws_region, help="repeatable; default TOCSIN_AWS_REGIONS"
    )
    pull_aws.set_defaults(func=cmd_pull_aws)
    apply = sub.add_parser(
        "apply",
        help="make teams, channels, rules and silences what a YAML file says",
        description="Checks the whole file first and applies it in one transaction. Prints the changes "
        "(+ create, ~ update, - delete). Exit codes: 0 applied (or no changes), 1 refused, 2 invalid file.",
    )
    apply.add_argument("file", help="the configuration file, e.g. tocsin.yaml")
    apply.add_argument(
        "--prune",
        action="store_true",
        help="delete teams, channels and rules the file no longer has; expire its silences it no longer has",
    )
    apply.add_argument("--dry-run", action="store_true", help="print the changes and change nothing")
    apply.add_argument("--database-url", default=None, help="default: TOCSIN_DATABASE_URL")
    apply.set_defaults(func=cmd_apply)
    return parser


def _database_error(exc: Exception) -> str:
    """One line for a database failure; never the SQL or its parameters (they can hold token hashes)."""
    orig = getattr(exc, "orig", None) or exc
    first_line = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
    sqlstate = getattr(orig, "sqlstate", None)
    hint = ""
    if sqlstate == "42P01" or "no such table" in first_line:
        hint = " (is the schema there? run `tocsin migrate` first)"
    return f"tocsin: database error: {first_line}{hint}"


def main(argv: Sequence[str] | None = None) -> int:
    from sqlalchemy.exc import DBAPIError

    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except DBAPIError as exc:
        print(_database_error(exc), file=sys.stderr)
        return 1
    return result


if __name__ == "__main__":
    raise SystemExit(main())
