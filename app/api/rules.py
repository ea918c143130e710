"""/v1/rules: the ordered ownership rules. The first rule that matches a finding routes it, unless it
has ``continue: true``; findings no rule routes go to the default team."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Query, Response

from app.api.deps import AdminCaller, ReadCaller, ReadSessionDep, RequestIdDep, SessionDep
from app.api.docs import error_responses
from app.api.routing_schemas import RULE_EXAMPLE, RuleOrder, RuleOut, RulePatch, patched
from app.models import RoutingRule
from app.pipeline.route_spec import NAME_PATTERN, RuleSpec
from app.repositories import routing as repo
from app.routing_config import (
    Actor,
    create_rule,
    delete_rule,
    get_rule,
    reorder_rules,
    replace_rule,
    rule_spec,
)

router = APIRouter(prefix="/v1/rules", tags=["routing"])

RuleName = Annotated[str, Path(pattern=NAME_PATTERN, description="The rule's name.")]
RuleBody = Annotated[RuleSpec, Body(openapi_examples={"accounts": {"value": RULE_EXAMPLE}})]


def rule_out(row: RoutingRule) -> RuleOut:
    return RuleOut(
        **rule_spec(row).model_dump(),
        position=row.position,
        id=row.id,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


@router.get(
    "",
    summary="List rules in order",
    description="In the order they are tried (`position` 0 first). Needs `read`.",
    response_model=list[RuleOut],
    responses=error_responses(401, 403),
)
def list_rules(caller: ReadCaller, session: ReadSessionDep) -> list[RuleOut]:
    return [rule_out(row) for row in repo.rules(session)]


@router.put(
    "/order",
    summary="Reorder the rules",
    description="Give every rule's name once, in the new order; applied atomically. 409 when the list is "
    "not exactly the current set of rules (one was added or deleted meanwhile), 422 on a repeated name. "
    "Needs `admin`.",
    response_model=list[RuleOut],
    responses=error_responses(401, 403, 409, 422),
)
def put_order(
    body: Annotated[
        RuleOrder,
        Body(openapi_examples={"order": {"value": {"names": ["payments-accounts", "code-owners"]}}}),
    ],
    caller: AdminCaller,
    session: SessionDep,
    request_id: RequestIdDep,
) -> list[RuleOut]:
    return [rule_out(row) for row in reorder_rules(session, body.names, Actor(caller.name, request_id))]


@router.get(
    "/{name}",
    summary="Get a rule",
    description="Needs `read`.",
    response_model=RuleOut,
    responses=error_responses(401, 403, 404, 422),
)
def get_one(name: RuleName, caller: ReadCaller, session: ReadSessionDep) -> RuleOut:
    return rule_out(get_rule(session, name))


@router.post(
    "",
    summary="Create a rule",
    description="Appended after the existing rules, or inserted at `position` (0 = tried first). `team` "
    "must exist; `team_from_tag` takes the team from a resource tag (with `team` as the fallback). "
    "Needs `admin`.",
    response_model=RuleOut,
    status_code=201,
    responses=error_responses(401, 403, 409, 422),
)
def post_rule(
    body: RuleBody,
    caller: AdminCaller,
    session: SessionDep,
    request_id: RequestIdDep,
    position: Annotated[int | None, Query(ge=0, description="Insert here instead of appending.")] = None,
) -> RuleOut:
    return rule_out(create_rule(session, body, Actor(caller.name, request_id), position))


@router.put(
    "/{name}",
    summary="Replace a rule",
    description="The body is the whole rule; its `name` must be the URL's. The rule keeps its position. "
    "Needs `admin`.",
    response_model=RuleOut,
    responses=error_responses(401, 403, 404, 422),
)
def put_rule(
    name: RuleName, body: RuleBody, caller: AdminCaller, session: SessionDep, request_id: RequestIdDep
) -> RuleOut:
    return rule_out(replace_rule(session, name, body, Actor(caller.name, request_id)))


@router.patch(
    "/{name}",
    summary="Change some of a rule's fields",
    description="Top-level fields given replace the current ones (`match` and `policy` are replaced whole). "
    "Needs `admin`.",
    response_model=RuleOut,
    responses=error_responses(401, 403, 404, 422),
)
def patch_rule(
    name: RuleName,
    body: Annotated[RulePatch, Body(openapi_examples={"disable": {"value": {"enabled": False}}})],
    caller: AdminCaller,
    session: SessionDep,
    request_id: RequestIdDep,
) -> RuleOut:
    spec = patched(RuleSpec, rule_spec(get_rule(session, name)), body)
    return rule_out(replace_rule(session, name, spec, Actor(caller.name, request_id)))


@router.delete(
    "/{name}",
    summary="Delete a rule",
    description="Later rules move up one place. Needs `admin`.",
    status_code=204,
    response_class=Response,
    responses=error_responses(401, 403, 404, 422),
)
def delete_one(name: RuleName, caller: AdminCaller, session: SessionDep, request_id: RequestIdDep) -> None:
    delete_rule(session, name, Actor(caller.name, request_id))
