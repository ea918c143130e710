"""Response (and PATCH) models of /v1/teams, /v1/channels, /v1/rules and /v1/silences.

Request bodies of POST and PUT are the config types themselves (``app.pipeline.route_spec``), the same
schema ``tocsin apply`` reads from YAML. A PATCH body holds any of a spec's top-level fields; the result
is validated as a whole spec, so a PATCH can never store what a PUT would refuse.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, TypeVar

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.pipeline.route_spec import (
    ChannelKind,
    ChannelSpec,
    Matchers,
    Name,
    Policy,
    PolicyOverride,
    QuietHours,
    RuleSpec,
    TeamSpec,
)

SpecT = TypeVar("SpecT", bound=BaseModel)


class Stamped(BaseModel):
    id: str = Field(description="Stable id; URLs use the name.")
    created_at: datetime
    updated_at: datetime


class TeamOut(TeamSpec, Stamped):
    pass


class ChannelOut(ChannelSpec, Stamped):
    secret_configured: bool = Field(
        description="Whether `secret_ref` resolves now (TOCSIN_SECRET_<NAME> or a file in "
        "TOCSIN_SECRETS_DIR). The secret itself is never returned."
    )


class RuleOut(RuleSpec, Stamped):
    position: int = Field(description="0 is tried first.")


class SilenceOut(BaseModel):
    id: str
    match: Matchers
    finding_id: str | None
    starts_at: datetime
    ends_at: datetime
    reason: str
    created_by: str
    state: Literal["pending", "active", "expired"] = Field(
        description="pending before starts_at, active until ends_at, expired after (or once deleted)."
    )
    created_at: datetime
    updated_at: datetime


class RuleOrder(BaseModel):
    model_config = ConfigDict(extra="forbid")

    names: list[Name] = Field(description="Every rule's name exactly once, in the order to try them.")


class TeamPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str | None = None
    timezone: str | None = None
    quiet_hours: QuietHours | None = None
    policy: Policy | None = None
    default: bool | None = None


class ChannelPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    team: Name | None = None
    kind: ChannelKind | None = None
    target: str | None = None
    secret_ref: str | None = None
    options: dict[str, Any] | None = None
    enabled: bool | None = None


class RulePatch(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    match: Matchers | None = None
    team: Name | None = None
    team_from_tag: str | None = None
    continue_: bool | None = Field(default=None, alias="continue")
    policy: PolicyOverride | None = None
    enabled: bool | None = None


def patched(spec_type: type[SpecT], current: BaseModel, patch: BaseModel) -> SpecT:
    """``current`` with the fields the PATCH body set (``null`` clears an optional field), validated whole."""
    data = current.model_dump(mode="json", by_alias=True)
    data.update(patch.model_dump(mode="json", by_alias=True, exclude_unset=True))
    try:
        return spec_type.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)]
        ) from None


TEAM_EXAMPLE: dict[str, Any] = {
    "name": "payments",
    "description": "Checkout, billing and the payment gateways",
    "timezone": "Europe/Paris",
    "quiet_hours": {"start": "20:00", "end": "08:00"},
    "policy": {"min_severity": "medium", "group_by": ["team", "type"], "group_wait": "30s"},
}
CHANNEL_EXAMPLE: dict[str, Any] = {
    "name": "payments-slack",
    "team": "payments",
    "kind": "slack",
    "target": "C0123PAYMT",
    "secret_ref": "SLACK_BOT",
    "options": {},
}
RULE_EXAMPLE: dict[str, Any] = {
    "name": "payments-accounts",
    "match": {"account_id": ["111111111111", "222222222222"], "severity_min": "medium"},
    "team": "payments",
    "continue": False,
}
SILENCE_EXAMPLE: dict[str, Any] = {
    "match": {"type": ["Recon:EC2/PortProbeUnprotectedPort"], "account_id": ["333333333333"]},
    "ends_at": "2030-01-31T18:00:00Z",
    "reason": "Pentest of the staging account (ticket SEC-142)",
}
