"""API tokens: creation (shown once), hashing, authentication and scopes.

Tokens are 256-bit random values; only their SHA-256 is stored, so a stolen database holds no usable
secret. A high-entropy token needs no slow hash, and the lookup is by hash, so no comparison leaks timing.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.clock import new_id, utcnow
from app.contracts import NormalizedFinding
from app.errors import ConflictError, Forbidden, NotFoundError, Unauthorized, ValidationFailed
from app.models import ApiToken
from app.repositories import audit
from app.repositories import tokens as repo

SCOPES = ("ingest", "read", "triage", "admin")
TOKEN_PREFIX = "tcn_"  # noqa: S105 (a prefix, not a secret)
BOOTSTRAP_NAME = "bootstrap-admin"
# Names travel in URLs (DELETE /v1/tokens/{name}) and logs: keep them to one safe path segment.
TOKEN_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
# What NormalizedFinding.source accepts; bindings are kept in lower case and compared so.
SOURCE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,63}$")
MAX_BOUND_SOURCES = 50


@dataclass(frozen=True, slots=True)
class Principal:
    token_id: str
    name: str
    scopes: frozenset[str]
    # The finding sources this token may post (lower case); None: any.
    sources: frozenset[str] | None = None

    def allows(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def generate_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def create_token(
    session: Session,
    name: str,
    scopes: list[str],
    expires_at: datetime | None = None,
    value: str | None = None,
    sources: list[str] | None = None,
) -> tuple[ApiToken, str]:
    """Create a token; return the row and the secret, which is never retrievable again.

    A naive ``expires_at`` is taken as UTC. ``sources`` binds an ingest token to those finding sources.
    """
    if not TOKEN_NAME_PATTERN.match(name):
        raise ValidationFailed(
            f"token name {name!r} must be 1 to 128 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit",
            field="name",
        )
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise ValidationFailed(
            f"unknown scope(s) {', '.join(unknown)}; choose from {', '.join(SCOPES)}", field="scopes"
        )
    if not scopes:
        raise ValidationFailed(f"give at least one scope ({', '.join(SCOPES)})", field="scopes")
    bound = _valid_sources(sources, scopes)
    taken = ConflictError(f"a token named {name!r} already exists; revoke it or pick another name")
    if repo.by_name(session, name) is not None:
        raise taken
    secret = value or generate_token()
    token = ApiToken(
        id=new_id(),
        name=name,
        token_hash=hash_token(secret),
        scopes=sorted(set(scopes)),
        created_at=utcnow(),
        expires_at=_as_utc(expires_at),
        sources=bound,
    )
    try:
        # A concurrent request may take the name between the check above and this insert.
        with session.begin_nested():
            repo.add(session, token)
    except IntegrityError as exc:
        raise taken from exc
    return token, secret


def _valid_sources(sources: list[str] | None, scopes: list[str]) -> list[str] | None:
    if sources is None:
        return None
    if not {"ingest", "admin"} & set(scopes):
        raise ValidationFailed(
            "sources bind what a token may ingest: give it the ingest scope", field="sources"
        )
    if not 1 <= len(sources) <= MAX_BOUND_SOURCES:
        raise ValidationFailed(
            f"give 1 to {MAX_BOUND_SOURCES} sources, or none for a token that may post any source",
            field="sources",
        )
    bad = [source for source in sources if not SOURCE_PATTERN.match(source)]
    if bad:
        raise ValidationFailed(
            f"{bad[0]!r} is not a source name (letters, digits, '_', '.', ':', '/', '-'; at most 64)",
            field="sources",
        )
    return sorted({source.lower() for source in sources})


def _as_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def revoke_token(session: Session, name: str) -> tuple[ApiToken, bool]:
    """Revoke a token by name (idempotent); also return whether it was active until now."""
    token = repo.by_name(session, name)
    if token is None:
        raise NotFoundError(f"no token named {name!r}")
    if token.revoked_at is not None:
        return token, False
    token.revoked_at = utcnow()
    session.flush()
    return token, True


def audit_created(session: Session, token: ApiToken, actor: str, request_id: str | None) -> None:
    """The audit record of a token creation, the same whether the API or the CLI made it."""
    audit.record(
        session,
        actor=actor,
        action="token.create",
        target_type="token",
        target_id=token.name,
        before=None,
        after={
            "scopes": token.scopes,
            "expires_at": token.expires_at.isoformat() if token.expires_at else None,
            "sources": token.sources,
        },
        request_id=request_id,
        at=utcnow(),
    )


def audit_revoked(session: Session, name: str, actor: str, request_id: str | None) -> None:
    audit.record(
        session,
        actor=actor,
        action="token.revoke",
        target_type="token",
        target_id=name,
        before={"revoked": False},
        after={"revoked": True},
        request_id=request_id,
        at=utcnow(),
    )


def ensure_bootstrap(session: Session, bootstrap_value: str | None) -> str | None:
    """Make sure an admin can log in. Returns a newly created secret to print, or None.

    With ``TOCSIN_BOOTSTRAP_TOKEN`` set, a token with that value is ensured (created or re-activated).
    Without it, an admin token is created only when no active admin token exists.
    """
    now = utcnow()
    if bootstrap_value:
        digest = hash_token(bootstrap_value)
        existing = repo.by_hash(session, digest)
        if existing is not None:
            if (
                existing.revoked_at
                or existing.expires_at
                or existing.sources is not None
                or "admin" not in existing.scopes
            ):
                existing.revoked_at = None
                existing.expires_at = None
                existing.sources = None
                existing.scopes = sorted(set(existing.scopes) | {"admin"})
                session.flush()
            return None
        name = BOOTSTRAP_NAME
        previous = repo.by_name(session, name)
        if previous is not None:
            previous.name = f"{name}-replaced-{previous.id[-8:]}"
            previous.revoked_at = previous.revoked_at or now
            session.flush()
        create_token(session, name, ["admin"], value=bootstrap_value)
        return None
    if repo.has_active_admin(session, now):
        return None
    name = "admin" if repo.by_name(session, "admin") is None else f"admin-{new_id()[-8:]}"
    _, secret = create_token(session, name, ["admin"])
    return secret


def authenticate(session: Session, presented: str | None, touch_after: timedelta) -> tuple[Principal, bool]:
    """The caller of a request, and whether its ``last_used_at`` is stale enough to be written."""
    if not presented:
        raise Unauthorized("missing bearer token: send 'Authorization: Bearer <token>'")
    digest = hash_token(presented)
    token = repo.by_hash(session, digest)
    now = utcnow()
    if token is None or not hmac.compare_digest(token.token_hash, digest):
        raise Unauthorized("unknown token")
    if token.revoked_at is not None:
        raise Unauthorized(f"token {token.name!r} was revoked")
    if token.expires_at is not None and token.expires_at <= now:
        raise Unauthorized(f"token {token.name!r} expired at {token.expires_at.isoformat()}")
    stale = token.last_used_at is None or now - token.last_used_at >= touch_after
    sources = frozenset(token.sources) if token.sources is not None else None
    return Principal(
        token_id=token.id, name=token.name, scopes=frozenset(token.scopes), sources=sources
    ), stale


def touch_token(session: Session, principal: Principal) -> None:
    repo.touch(session, principal.token_id, utcnow())


def require_scope(principal: Principal, scope: str) -> None:
    if not principal.allows(scope):
        held = ", ".join(sorted(principal.scopes))
        raise Forbidden(f"token {principal.name!r} lacks the {scope!r} scope (it has: {held})")


def _refuse_source(principal: Principal, source: str, index: int) -> Forbidden:
    allowed = ", ".join(sorted(principal.sources or ()))
    return Forbidden(
        f"token {principal.name!r} may only post findings from source(s) {allowed}; finding {index} of "
        f"this request has source {source!r}. Nothing was stored."
    )


def require_sources(principal: Principal, findings: Iterable[NormalizedFinding]) -> None:
    """Refuse (403) a request carrying a finding whose ``source`` the token is not bound to.

    The finding's ``source`` is what is checked, whatever the endpoint or report format: it is what is
    stored and routed, and a container format (SARIF, ASFF, OCSF, EventBridge) can carry many tools.
    """
    if principal.sources is None:
        return
    for index, finding in enumerate(findings):
        if finding.source.lower() not in principal.sources:
            raise _refuse_source(principal, finding.source, index)


def only_bound_sources(
    principal: Principal, findings: Iterable[NormalizedFinding]
) -> Iterator[NormalizedFinding]:
    """``require_sources`` over a lazily parsed report: raises at the first finding out of bounds (the
    transaction storing the earlier ones then rolls back)."""
    if principal.sources is None:
        yield from findings
        return
    for index, finding in enumerate(findings):
        if finding.source.lower() not in principal.sources:
            raise _refuse_source(principal, finding.source, index)
        yield finding
