"""``tocsin tokens create|revoke|list``: API tokens from the command line, audited like the API."""

from __future__ import annotations

import argparse
import sys

from app.settings import Settings

CLI_ACTOR = "cli"  # the audit log's actor for changes made with this command


def create(args: argparse.Namespace, settings: Settings) -> int:
    from app.auth import audit_created, create_token
    from app.db import create_db_engine, unit_of_work
    from app.errors import AppError

    engine = create_db_engine(settings)
    try:
        with unit_of_work(engine) as session:
            token, secret = create_token(session, args.name, args.scope, args.expires_at, sources=args.source)
            audit_created(session, token, CLI_ACTOR, None)
    except AppError as exc:
        print(f"tocsin: {exc.message}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    print(secret)  # alone on stdout, so that `TOKEN=$(tocsin tokens create ...)` works
    return 0


def revoke(args: argparse.Namespace, settings: Settings) -> int:
    from app.auth import audit_revoked, revoke_token
    from app.db import create_db_engine, unit_of_work
    from app.errors import AppError

    engine = create_db_engine(settings)
    try:
        with unit_of_work(engine) as session:
            _, was_active = revoke_token(session, args.name)
            if was_active:
                audit_revoked(session, args.name, CLI_ACTOR, None)
    except AppError as exc:
        print(f"tocsin: {exc.message}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    print(f"revoked {args.name}" if was_active else f"{args.name} was already revoked", file=sys.stderr)
    return 0


def listing(args: argparse.Namespace, settings: Settings) -> int:
    from app.clock import utcnow
    from app.db import create_db_engine, unit_of_work
    from app.repositories import tokens as repo

    engine = create_db_engine(settings)
    now = utcnow()
    try:
        with unit_of_work(engine) as session:
            for token in repo.all_tokens(session):
                if token.revoked_at:
                    state = "revoked"
                elif token.expires_at and token.expires_at <= now:
                    state = "expired"
                else:
                    state = "active"
                print(
                    f"{token.name}\t{','.join(token.scopes)}\t{state}\tlast used {token.last_used_at or 'never'}"
                )
    finally:
        engine.dispose()
    return 0
