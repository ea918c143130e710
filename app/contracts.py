"""Types shared between the service and ``integrations/``: the native finding schema and the protocols.

Every parser produces ``NormalizedFinding`` objects and every client may post them directly to
``POST /v1/findings``. No SQL and no I/O here.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, Protocol, runtime_checkable

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

MAX_TITLE = 512
MAX_TEXT = 65_536
MAX_ID = 2048
MAX_TAGS = 100
MAX_JSON_DEPTH = 64
"""How deep ``context`` and ``raw`` may nest. Real reports stay under 12 levels; the JSON encoder that stores
and fingerprints findings gives up at 255, so a deeper document used to fail with a 500 when stored."""


class Severity(StrEnum):
    """Severity labels, with the ASFF bands on the 0-100 scale."""

    informational = "informational"
    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"


# Lower bound of each band: informational < 1 <= low < 40 <= medium < 70 <= high < 90 <= critical.
SEVERITY_BANDS: tuple[tuple[float, Severity], ...] = (
    (90.0, Severity.critical),
    (70.0, Severity.high),
    (40.0, Severity.medium),
    (1.0, Severity.low),
    (0.0, Severity.informational),
)
# The number a bare label stands for: a point inside its band.
SEVERITY_LABEL_SCORE: dict[Severity, float] = {
    Severity.informational: 0.0,
    Severity.low: 25.0,
    Severity.medium: 55.0,
    Severity.high: 80.0,
    Severity.critical: 95.0,
}
SEVERITY_MIN_SCORE: dict[Severity, float] = {label: bound for bound, label in SEVERITY_BANDS}
_LABEL_SYNONYMS = {"info": "informational", "information": "informational", "moderate": "medium"}


def severity_label(score: float) -> Severity:
    for bound, label in SEVERITY_BANDS:
        if score >= bound:
            return label
    return Severity.informational


def parse_severity(value: object) -> float:
    """A label (any case) or a number 0-100 -> the 0-100 score. Raises ValueError naming the problem."""
    if isinstance(value, bool):
        raise ValueError("severity must be a label or a number 0-100, not a boolean")
    if isinstance(value, int | float):
        number = float(value)
        if math.isnan(number) or not 0.0 <= number <= 100.0:
            raise ValueError(f"severity number must be between 0 and 100, got {value}")
        return number
    if isinstance(value, str):
        text = value.strip().lower()
        text = _LABEL_SYNONYMS.get(text, text)
        try:
            return SEVERITY_LABEL_SCORE[Severity(text)]
        except ValueError:
            pass
        try:
            return parse_severity(float(text))
        except ValueError:
            pass
    labels = ", ".join(s.value for s in Severity)
    raise ValueError(f"severity must be one of {labels} or a number 0-100, got {value!r}")


SeverityInput = Annotated[
    float,
    BeforeValidator(parse_severity),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "enum": [s.value for s in Severity]},
                {"type": "number", "minimum": 0, "maximum": 100},
            ],
            "examples": ["high", 75],
        }
    ),
]


class SourceStatus(StrEnum):
    """Status as the source reports it (not the triage status)."""

    open = "open"
    resolved = "resolved"
    suppressed = "suppressed"


class DataSensitivity(StrEnum):
    none = "none"
    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Resource(_Strict):
    """What the finding is about: a cloud resource, an image, a repository, a host."""

    type: str | None = Field(None, max_length=256, examples=["AwsEc2Instance"])
    id: str | None = Field(
        None, max_length=MAX_ID, examples=["arn:aws:ec2:eu-west-1:123456789012:instance/i-0abc"]
    )
    account_id: str | None = Field(None, max_length=128, examples=["123456789012"])
    region: str | None = Field(None, max_length=64, examples=["eu-west-1"])
    tags: dict[str, str] = Field(default_factory=dict, examples=[{"env": "prod", "owner": "payments"}])
    public: bool = Field(False, description="The resource is reachable from the internet (feeds the score).")

    @field_validator("tags")
    @classmethod
    def _bounded_tags(cls, tags: dict[str, str]) -> dict[str, str]:
        if len(tags) > MAX_TAGS:
            raise ValueError(f"at most {MAX_TAGS} tags, got {len(tags)}")
        for key, value in tags.items():
            if not key or len(key) > 256 or len(value) > 1024:
                raise ValueError(f"tag {key[:40]!r}: keys must be 1-256 characters and values at most 1024")
        return tags


class Location(_Strict):
    """Where in code the finding is (for code and dependency scanners)."""

    repository: str | None = Field(None, max_length=MAX_ID, examples=["github.com/acme/shop"])
    path: str | None = Field(None, max_length=MAX_ID, examples=["src/app/settings.py"])
    line: int | None = Field(None, ge=0, le=10_000_000, examples=[42])


def too_deep(value: Any, levels: int) -> bool:
    """``value`` nests more than ``levels`` arrays/objects deep. Visits containers only (a few
    microseconds for a typical finding's ``raw``)."""
    if levels <= 0:
        return type(value) is dict or type(value) is list
    if type(value) is dict:
        children: Any = value.values()
    elif type(value) is list:
        children = value
    else:
        return False
    for child in children:
        if (type(child) is dict or type(child) is list) and too_deep(child, levels - 1):
            return True
    return False


def _aware(value: datetime) -> datetime:
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:00-05:00 is in the year 10000 in UTC
        raise ValueError("time is out of range: it must fall between the years 1 and 9999 in UTC") from None


_TEXT_FIELDS = ("source_id", "type", "title", "description", "remediation")


class NormalizedFinding(_Strict):
    """The native finding: what every parser produces and what ``POST /v1/findings`` accepts."""

    source: str = Field(
        ..., min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/-]*$", examples=["trivy"]
    )
    source_id: str | None = Field(
        None, min_length=1, max_length=MAX_ID, description="The source's own stable id for this finding."
    )
    type: str = Field(..., min_length=1, max_length=512, examples=["CVE-2024-3094"])
    title: str = Field(..., min_length=1, max_length=MAX_TITLE, examples=["xz-utils backdoor"])
    description: str | None = Field(None, max_length=MAX_TEXT)
    severity: SeverityInput = Field(
        ..., description="A label (informational, low, medium, high, critical) or a number 0-100."
    )
    resource: Resource = Field(default_factory=Resource)
    location: Location | None = None
    observed_at: datetime | None = Field(
        None, description="When the source last observed it (UTC if no zone)."
    )
    first_observed_at: datetime | None = Field(
        None, description="When the source first observed it, if it says (e.g. GuardDuty eventFirstSeen)."
    )
    occurrences: int | None = Field(
        None,
        ge=1,
        le=2**31 - 1,
        description="The source's own count of occurrences (e.g. GuardDuty service.count). When given, the "
        "stored count follows it instead of adding one per report, so a finding that arrives by two paths "
        "(directly and through Security Hub) is not counted twice.",
    )
    confidence: int | None = Field(None, ge=0, le=100)
    references: list[str] = Field(default_factory=list, max_length=50)
    remediation: str | None = Field(None, max_length=MAX_TEXT)
    status: SourceStatus | None = Field(None, description="Status as the source reports it.")
    data_sensitivity: DataSensitivity | None = Field(
        None, description="Sensitivity of the data the resource holds (feeds the score)."
    )
    aliases: list[str] = Field(
        default_factory=list,
        max_length=20,
        description="Other keys this finding is known by (e.g. the GuardDuty id of an ASFF finding).",
    )
    context: dict[str, Any] = Field(
        default_factory=dict, description="Structured extras: CVE, CVSS, package, fixed version..."
    )
    raw: Any = Field(None, description="The original source document, kept verbatim.")

    @field_validator("observed_at", "first_observed_at")
    @classmethod
    def _observed_utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else _aware(value)

    @field_validator("context", "raw")
    @classmethod
    def _bounded_nesting(cls, value: Any) -> Any:
        if too_deep(value, MAX_JSON_DEPTH):
            raise ValueError(f"nests more than {MAX_JSON_DEPTH} levels deep; flatten it")
        return value

    @field_validator("references")
    @classmethod
    def _urls(cls, refs: list[str]) -> list[str]:
        for i, ref in enumerate(refs):
            if len(ref) > MAX_ID or not (
                ref.startswith(("https://", "http://")) or ref[:8].lower().startswith(("https://", "http://"))
            ):
                raise ValueError(f"reference {i} must be an http(s) URL of at most {MAX_ID} characters")
        return refs

    @field_validator("aliases")
    @classmethod
    def _aliases(cls, aliases: list[str]) -> list[str]:
        for i, alias in enumerate(aliases):
            if not alias or len(alias) > MAX_ID:
                raise ValueError(f"alias {i} must be 1-{MAX_ID} characters")
        return aliases

    @model_validator(mode="after")
    def _no_nul_characters(self) -> NormalizedFinding:
        """NUL can't be stored in PostgreSQL text (scanners copy it from binaries): drop it from every
        stored text field. ``raw`` and ``context`` are stored as JSON text, where an escaped NUL is fine."""
        for model, names in (
            (self, _TEXT_FIELDS),
            (self.resource, ("type", "id", "account_id", "region")),
            (self.location, ("repository", "path")),
        ):
            if model is None:
                continue
            for name in names:
                value = getattr(model, name)
                if value and "\x00" in value:
                    object.__setattr__(model, name, value.replace("\x00", ""))
        if any("\x00" in k or "\x00" in v for k, v in self.resource.tags.items()):
            self.resource.tags = {
                k.replace("\x00", ""): v.replace("\x00", "") for k, v in self.resource.tags.items()
            }
        if any("\x00" in item for item in (*self.references, *self.aliases)):
            self.references = [r.replace("\x00", "") for r in self.references]
            self.aliases = [a.replace("\x00", "") for a in self.aliases]
        return self

    @model_validator(mode="after")
    def _has_identity(self) -> NormalizedFinding:
        loc = self.location
        if not self.source_id and not self.resource.id and not (loc and (loc.path or loc.repository)):
            raise ValueError(
                "finding has no identity: give source_id, resource.id or location.path so repeats can be "
                "recognised"
            )
        return self

    @property
    def severity_label(self) -> Severity:
        return severity_label(self.severity)


class SourceParser(Protocol):
    """A source format: a pure function from a parsed document to native findings.

    ``iter_findings`` is the primary form: it yields findings one at a time, so a caller can store a large
    report batch by batch and never hold all its findings at once. It raises ``ValueError`` (a message safe
    to show a client) when the document is not in the format, possibly after some findings were yielded: a
    caller that must not half-store a report consumes it inside one transaction. ``parse`` is the same as a
    list, for small documents. ``secret_salt`` keys the digests of secret values (``TOCSIN_SECRET_SALT``;
    None for the built-in default); formats without secrets ignore it.
    """

    name: str

    def iter_findings(
        self, document: Any, *, secret_salt: str | None = None
    ) -> Iterator[NormalizedFinding]: ...

    def parse(self, document: Any, *, secret_salt: str | None = None) -> list[NormalizedFinding]: ...


NotificationEvent = Literal["new", "regressed", "escalated", "resolved", "reminder", "acknowledged"]
"""Why a finding is in a message: first seen, back after resolution, score crossed a threshold upwards,
resolved, still open after ``repeat_interval``, or acknowledged by a person (sent to incident channels, so
a PagerDuty incident is acknowledged with its finding)."""


class NotifiedFinding(BaseModel):
    """What a channel may show of one finding. Built by delivery/ from the stored row; never holds secrets
    (secret values were masked at ingest)."""

    model_config = ConfigDict(frozen=True)

    id: str
    event: NotificationEvent
    title: str
    severity: Severity
    severity_score: float
    score: float
    score_reasons: list[str] = Field(default_factory=list)
    status: str
    source: str
    type: str
    resource_type: str | None = None
    resource_id: str | None = None
    account_id: str | None = None
    region: str | None = None
    repository: str | None = None
    path: str | None = None
    line: int | None = None
    remediation: str | None = None
    occurrences: int = 1
    first_seen: datetime
    last_seen: datetime
    url: str | None = None
    """Link back to the finding in Tocsin (``TOCSIN_PUBLIC_URL`` + ``/v1/findings/<id>``), when configured."""


class Notification(BaseModel):
    """One message to one destination: every finding of one group that is due now.

    ``findings`` is ordered most severe first and may be shorter than ``total`` (a channel shows what fits
    and says how many more there are). ``thread_ref`` is what an earlier message of the same group returned
    in ``DeliveryResult.thread_ref`` (a Slack ``ts``, an email Message-ID, a ticket key), so a channel can
    reply in the thread / comment on the ticket instead of starting over.
    """

    model_config = ConfigDict(frozen=True)

    id: str
    """Unique per message; channels that support it pass it as an idempotency key."""
    team: str
    channel: str
    """The channel's name in Tocsin (not the Slack channel id: that is the channel's ``target``)."""
    group_key: str
    group_labels: dict[str, str] = Field(default_factory=dict)
    """The values the group is keyed by, e.g. ``{"team": "payments", "type": "S3/PublicRead"}``."""
    findings: list[NotifiedFinding]
    total: int
    digest: bool = False
    """True when the message collects what quiet hours held back."""
    thread_ref: str | None = None
    still_open_in_group: int = 0
    """Findings of this group (sent before or now) that are still open or acknowledged. A ticket or
    incident channel closes the group's ticket only when this is 0, so one resolved finding cannot close a
    ticket that also tracks open ones."""


class DeliveryResult(BaseModel):
    """What a channel reports after one send attempt; retry policy lives in delivery/, not here.

    ``retryable`` is true for failures a later attempt may fix (429, 5xx, timeouts, connection errors,
    Slack's ``ratelimited``); false for those it will not (bad token, unknown channel, 4xx). ``detail`` is a
    short, secret-free description of what happened (kept in the notification log, shown in the API).
    """

    ok: bool
    retryable: bool = False
    status_code: int | None = None
    detail: str = ""
    retry_after_seconds: float | None = None
    thread_ref: str | None = None
    """Reference to the message just sent, for later messages of the same group (Slack ``ts``...)."""


@dataclass(frozen=True, slots=True)
class OutboundPolicy:
    """Where channels may connect: the deployment's allow-list of hosts that skip the public-address
    check (``TOCSIN_OUTBOUND_ALLOW_HOSTS``, lowercase names). Everything else must resolve to public
    addresses, checked at connect time (``integrations.channels._net``)."""

    allow_hosts: frozenset[str] = frozenset()


@runtime_checkable
class Channel(Protocol):
    """A destination built from its validated config (and its secret, resolved by delivery/ at send
    time). ``endpoint`` is the base URL it contacts, so delivery/ can refuse addresses a user should not
    reach before anything is sent. ``send`` never raises for a delivery failure: it returns a result."""

    kind: str
    endpoint: str

    async def send(self, notification: Notification) -> DeliveryResult: ...

    async def aclose(self) -> None: ...


ScopeName = Literal["ingest", "read", "triage", "admin"]
