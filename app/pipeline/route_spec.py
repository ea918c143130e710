"""The routing configuration as validated types: teams, channels, ownership rules, policies, silences.

One schema for the three ways configuration arrives (the ``/v1/teams|channels|rules|silences`` API,
``tocsin apply tocsin.yaml``, rows loaded from the database for routing), so a rule that validates in the
YAML file behaves the same when posted to the API. Pure: no SQL, no I/O.
"""

from __future__ import annotations

import re
from datetime import datetime, time
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from app.contracts import NotificationEvent, Severity

NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
"""Names of teams, channels and rules: lowercase slugs, stable identifiers in config files and URLs."""

SECRET_REF_PATTERN = r"^[A-Z0-9_]{1,64}$"  # noqa: S105 (a pattern for names, not a secret)
"""A secret is named, never stored: ``TOCSIN_SECRET_<NAME>`` or the file ``<secrets dir>/<NAME>``."""

GROUP_BY_KEYS = (
    "team",
    "source",
    "type",
    "severity",
    "account_id",
    "region",
    "resource_type",
    "resource_id",
    "repository",
    "finding",
)
"""What findings can be grouped by; ``finding`` means one message per finding."""

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}


def parse_duration(value: object) -> float:
    """``30s``, ``5m``, ``24h``, ``7d`` or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like '30s', '5m', '24h' or a number of seconds")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        raise ValueError(f"expected a duration like '30s', '5m', '24h' or a number of seconds, got {value!r}")
    if seconds < 0 or seconds > 366 * 86400:
        raise ValueError("a duration must be between 0 and 366 days")
    return seconds


def format_duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    WithJsonSchema(
        {"type": "string", "examples": ["30s", "5m", "24h"], "pattern": r"^\d+(\.\d+)?(ms|s|m|h|d|w)?$"}
    ),
]


def _as_list(value: object) -> object:
    """Matchers accept one value or a list of them (any of)."""
    if isinstance(value, str | int | float):
        return [str(value)]
    return value


StrList = Annotated[list[Annotated[str, Field(min_length=1, max_length=2048)]], BeforeValidator(_as_list)]

_TAG_MATCHER = re.compile(r"^(?P<key>[^=!~]+?)\s*(?P<op>=~|!~|!=|=)\s*(?P<value>.*)$")


class TagMatcher(BaseModel):
    """``key=value``, ``key!=value``, ``key=~regex``, ``key!~regex`` (regex anchored, full match)."""

    model_config = ConfigDict(frozen=True)

    key: str
    op: Literal["=", "!=", "=~", "!~"]
    value: str

    @classmethod
    def parse(cls, text: str) -> TagMatcher:
        match = _TAG_MATCHER.match(text.strip())
        if match is None:
            raise ValueError(
                f"tag matcher {text!r} must look like key=value, key!=value, key=~regex or key!~regex"
            )
        matcher = cls(key=match.group("key").strip(), op=match.group("op"), value=match.group("value"))
        if matcher.op in ("=~", "!~"):
            _compile(matcher.value, f"tag matcher {text!r}")
        return matcher

    def __str__(self) -> str:
        return f"{self.key}{self.op}{self.value}"


def _compile(pattern: str, where: str) -> re.Pattern[str]:
    if len(pattern) > 1024:
        raise ValueError(f"{where}: regular expression longer than 1024 characters")
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{where}: invalid regular expression ({exc})") from None


def _tag_matchers(value: object) -> object:
    value = _as_list(value)
    if isinstance(value, dict):  # {"env": "prod"} is shorthand for ["env=prod"]
        value = [f"{k}={v}" for k, v in value.items()]
    if isinstance(value, list):
        return [TagMatcher.parse(v) if isinstance(v, str) else v for v in value]
    return value


TagMatchers = Annotated[
    list[Annotated[TagMatcher, PlainSerializer(str, return_type=str)]],
    BeforeValidator(_tag_matchers),
    WithJsonSchema({"type": "array", "items": {"type": "string"}, "examples": [["env=prod"]]}),
]


class Matchers(BaseModel):
    """Conditions on a finding; all given conditions must hold, a list means any of its values.

    Globs use ``*`` (within one path segment for ``path``/``repository``), ``**`` (any depth) and ``?``;
    ``resource_id_regex`` is a full-match regular expression for when a glob is not enough.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: StrList | None = None
    type: StrList | None = Field(default=None, description="Globs over the finding type, e.g. `Recon:EC2/*`.")
    account_id: StrList | None = None
    region: StrList | None = None
    resource_type: StrList | None = None
    resource_id: StrList | None = Field(default=None, description="Globs over the resource id / ARN.")
    resource_id_regex: str | None = Field(default=None, max_length=1024)
    tags: TagMatchers | None = Field(
        default=None,
        description="Resource tag conditions: `key=value`, `key!=value`, `key=~regex`, `key!~regex`.",
        json_schema_extra={"examples": [["env=prod", "team=~pay.*"]]},
    )
    repository: StrList | None = Field(default=None, description="Globs, e.g. `acme/payments-*`.")
    path: StrList | None = Field(
        default=None, description="CODEOWNERS-style globs, e.g. `services/billing/**`."
    )
    severity_min: Severity | None = None
    score_min: float | None = Field(default=None, ge=0, le=100)

    @field_validator("resource_id_regex")
    @classmethod
    def _valid_regex(cls, value: str | None) -> str | None:
        if value is not None:
            _compile(value, "resource_id_regex")
        return value

    def is_empty(self) -> bool:
        return not any(getattr(self, name) is not None for name in type(self).model_fields)


class QuietHours(BaseModel):
    """Local time window (the team's timezone) in which everything below critical is held, then sent
    as one digest. ``start`` after ``end`` spans midnight (22:00-07:00)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: time
    end: time
    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] | None = Field(
        default=None, description="Days the window starts on; every day when omitted."
    )

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("quiet hours start and end must differ")
        return self


def _checked_group_by(keys: list[str]) -> list[str]:
    unknown = [k for k in keys if k not in GROUP_BY_KEYS]
    if unknown:
        raise ValueError(f"unknown group_by key(s) {unknown}; allowed: {', '.join(GROUP_BY_KEYS)}")
    return list(dict.fromkeys(keys))


def _default_events() -> list[NotificationEvent]:
    return ["new", "regressed", "escalated", "reminder"]


class Policy(BaseModel):
    """When and how a team is told. Defaults follow Alertmanager's timers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    events: list[NotificationEvent] = Field(
        default_factory=_default_events,
        description="Which events notify.",
    )
    min_severity: Severity = Severity.low
    min_score: float = Field(default=0.0, ge=0, le=100)
    group_by: list[str] = Field(default_factory=lambda: ["team", "type"])
    group_wait: Duration = 30.0
    group_interval: Duration = 300.0
    repeat_interval: Duration = 86400.0
    reminder_min_severity: Severity = Field(
        default=Severity.high, description="Reminders only for findings still open at or above this."
    )
    escalation_score: float = Field(
        default=70.0,
        ge=0,
        le=100,
        description="An `escalated` event fires when the score crosses this upwards.",
    )

    @field_validator("group_by")
    @classmethod
    def _known_group_keys(cls, keys: list[str]) -> list[str]:
        return _checked_group_by(keys)


class PolicyOverride(BaseModel):
    """A rule's changes to its team's policy; unset fields keep the team's value."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    events: list[NotificationEvent] | None = None
    min_severity: Severity | None = None
    min_score: float | None = Field(default=None, ge=0, le=100)
    group_by: list[str] | None = None
    group_wait: Duration | None = None
    group_interval: Duration | None = None
    repeat_interval: Duration | None = None
    reminder_min_severity: Severity | None = None
    escalation_score: float | None = Field(default=None, ge=0, le=100)

    @field_validator("group_by")
    @classmethod
    def _known_group_keys(cls, keys: list[str] | None) -> list[str] | None:
        return None if keys is None else _checked_group_by(keys)

    def apply_to(self, policy: Policy) -> Policy:
        changes = self.model_dump(exclude_none=True)
        return policy.model_copy(update=changes) if changes else policy


def _valid_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown timezone {name!r}; use an IANA name such as 'Europe/Paris' or 'UTC'"
        ) from None
    return name


Name = Annotated[str, Field(pattern=NAME_PATTERN, examples=["payments"])]


class TeamSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    description: str = Field(default="", max_length=2000)
    timezone: Annotated[str, BeforeValidator(str)] = "UTC"
    quiet_hours: QuietHours | None = None
    policy: Policy = Field(default_factory=Policy)
    default: bool = Field(default=False, description="Catches findings no rule routes (at most one team).")

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        return _valid_timezone(value)


ChannelKind = Literal["slack", "email", "jira", "github", "pagerduty", "webhook"]


class ChannelSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    team: Name
    kind: ChannelKind
    target: str = Field(
        min_length=1, max_length=2048, description="Slack channel id, address list, project..."
    )
    secret_ref: str | None = Field(
        default=None,
        pattern=SECRET_REF_PATTERN,
        description="Name of the credential: read from TOCSIN_SECRET_<NAME> or <secrets dir>/<NAME> at send time.",
    )
    options: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True


class RuleSpec(BaseModel):
    """One ownership rule. Rules are tried in order; the first match wins unless ``continue`` is set."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: Name
    match: Matchers = Field(default_factory=Matchers)
    team: Name | None = None
    team_from_tag: str | None = Field(
        default=None, min_length=1, max_length=128, description="Take the team from this resource tag."
    )
    continue_: bool = Field(default=False, alias="continue")
    policy: PolicyOverride | None = None
    enabled: bool = True

    @model_validator(mode="after")
    def _has_team(self) -> RuleSpec:
        if self.team is None and self.team_from_tag is None:
            raise ValueError("a rule needs `team` or `team_from_tag` (or both: team is then the fallback)")
        return self


class SilenceSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    match: Matchers = Field(default_factory=Matchers)
    finding_id: str | None = Field(default=None, max_length=64, description="Silence exactly one finding.")
    starts_at: datetime | None = None
    ends_at: datetime
    reason: str = Field(min_length=1, max_length=2000)
    created_by: str | None = Field(default=None, max_length=256)

    @model_validator(mode="after")
    def _bounded(self) -> SilenceSpec:
        if self.match.is_empty() and self.finding_id is None:
            raise ValueError(
                "a silence needs at least one matcher or a finding_id (it would silence everything)"
            )
        for field in ("starts_at", "ends_at"):
            value = getattr(self, field)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"{field} needs a timezone (e.g. 2026-12-01T09:00:00Z)")
        if self.starts_at is not None and self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self
