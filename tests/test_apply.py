"""``tocsin apply``: whole-file validation with YAML paths, diff, idempotency, --prune, --dry-run, audit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from app import cli
from app.config_file import ConfigError, parse
from app.models import AuditRecord, NotificationChannel, RoutingRule, Silence, Team
from tests.helpers import finding

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "tocsin.yaml"

BASE = """
teams:
  - name: security-ops
    default: true
  - name: platform
    timezone: Europe/Dublin
    quiet_hours: {start: 22:00, end: 07:00}
    policy: {group_wait: 30s}
  - name: payments
channels:
  - {name: platform-slack, team: platform, kind: slack, target: C01PLATFRM, secret_ref: SLACK_BOT}
  - {name: payments-mail, team: payments, kind: email, target: pay@acme.example, options: {host: smtp.acme.example, from_address: tocsin@acme.example}}
rules:
  - name: payments-accounts
    match: {account_id: [111111111111, 012345678901]}
    team: payments
  - name: prod
    match: {tags: [env=prod]}
    team: platform
    continue: true
silences:
  - id: pentest
    match: {account_id: 444444444444}
    ends_at: 2099-01-01T00:00:00Z
    reason: pentest
"""


@pytest.fixture(autouse=True)
def empty_routing(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in ("silences", "routing_rules", "channels", "teams"):
            conn.execute(text(f"DELETE FROM {table}"))


@pytest.fixture
def apply(tmp_path: Path, database_url: str, capsys: pytest.CaptureFixture[str]) -> Any:
    """Run ``tocsin apply`` on YAML text; returns (exit code, stdout lines, stderr)."""

    def run(yaml_text: str | Path, *flags: str) -> tuple[int, list[str], str]:
        path = yaml_text if isinstance(yaml_text, Path) else tmp_path / "tocsin.yaml"
        if not isinstance(yaml_text, Path):
            path.write_text(yaml_text)
        code = cli.main(["apply", str(path), "--database-url", database_url, *flags])
        out, err = capsys.readouterr()
        return code, out.splitlines(), err

    return run


def counts(engine: Engine) -> dict[str, int]:
    with Session(engine) as session:
        return {
            model.__tablename__: session.execute(select(func.count()).select_from(model)).scalar_one()  # type: ignore[arg-type]
            for model in (Team, NotificationChannel, RoutingRule, Silence)
        }


def rule_order(engine: Engine) -> list[str]:
    with Session(engine) as session:
        stmt = select(RoutingRule.name).order_by(RoutingRule.position)  # type: ignore[call-overload]
        return list(session.execute(stmt).scalars())


def test_the_example_applies_cleanly_and_twice_changes_nothing(
    apply: Any, engine: Engine, client: Any
) -> None:
    code, _lines, err = apply(EXAMPLE)
    assert code == 0, err
    assert "applied" in err
    assert counts(engine) == {"teams": 6, "channels": 7, "routing_rules": 10, "silences": 1}
    teams = {team["name"]: team for team in client.get("/v1/teams").json()}
    assert [name for name, team in teams.items() if team["default"]] == ["security-ops"]
    assert teams["payments"]["quiet_hours"]["start"] == "20:00:00"
    rules = client.get("/v1/rules").json()
    assert rules[0]["name"] == "critical-to-secops" and rules[0]["continue"] is True
    assert rules[2]["match"]["account_id"] == ["111111111111", "222222222222"]
    assert client.get("/v1/silences/cfg-staging-pentest-2030").json()["state"] == "pending"

    assert apply(EXAMPLE) == (0, [], "no changes\n")
    assert apply(EXAMPLE, "--prune") == (0, [], "no changes\n")


def test_yaml_1_1_surprises_are_off(apply: Any, client: Any) -> None:
    assert apply(BASE)[0] == 0
    platform = client.get("/v1/teams/platform").json()
    assert (platform["quiet_hours"]["start"], platform["quiet_hours"]["end"]) == ("22:00:00", "07:00:00")
    match = client.get("/v1/rules/payments-accounts").json()["match"]
    assert match["account_id"] == ["111111111111", "012345678901"]


def test_dry_run_prints_the_diff_and_changes_nothing(apply: Any, engine: Engine) -> None:
    code, lines, err = apply(BASE, "--dry-run")
    assert code == 0
    assert lines[:3] == ["+ team security-ops", "+ team platform", "+ team payments"]
    assert "+ rule prod" in lines and "+ silence cfg-pentest: pentest" in lines
    assert "dry run: 8 change(s)" in err
    assert counts(engine) == {"teams": 0, "channels": 0, "routing_rules": 0, "silences": 0}

    apply(BASE)
    changed = BASE.replace("group_wait: 30s", "group_wait: 45s").replace("C01PLATFRM", "'#platform'")
    code, lines, err = apply(changed, "--dry-run")
    assert lines == [
        "~ team platform: policy.group_wait: '30s' -> '45s'",
        "~ channel platform-slack: target: 'C01PLATFRM' -> '#platform'",
    ], err
    assert apply(BASE) == (0, [], "no changes\n")


def test_updates_are_applied_and_audited_as_cli_apply(apply: Any, engine: Engine, client: Any) -> None:
    apply(BASE)
    changed = BASE.replace("continue: true", "continue: false").replace("reason: pentest", "reason: pentest")
    changed = changed.replace("ends_at: 2099-01-01T00:00:00Z", "ends_at: 2099-02-01T00:00:00Z")
    _code, lines, _ = apply(changed)
    assert lines == [
        "~ rule prod: continue: True -> False",
        "~ silence cfg-pentest: ends_at: '2099-01-01T00:00:00+00:00' -> '2099-02-01T00:00:00+00:00'",
    ]
    assert client.get("/v1/rules/prod").json()["continue"] is False
    with Session(engine) as session:
        records = session.execute(select(AuditRecord).order_by(AuditRecord.id)).scalars().all()  # type: ignore[arg-type]
    records = [r for r in records if not r.action.startswith("token.")]
    assert {r.actor for r in records} == {"cli:apply"}
    assert [r.action for r in records][-2:] == ["rule.updated", "silence.updated"]
    assert (records[-2].before, records[-2].after) == ({"continue": True}, {"continue": False})


def test_without_prune_what_the_file_drops_is_kept_with_prune_it_goes(
    apply: Any, engine: Engine, client: Any
) -> None:
    apply(BASE)
    manual = client.post(
        "/v1/silences",
        json={"match": {"type": "x"}, "ends_at": "2099-01-01T00:00:00Z", "reason": "made by hand"},
    ).json()
    smaller = """
teams:
  - name: security-ops
    default: true
  - name: platform
    timezone: Europe/Dublin
    quiet_hours: {start: 22:00, end: 07:00}
    policy: {group_wait: 30s}
channels:
  - {name: platform-slack, team: platform, kind: slack, target: C01PLATFRM, secret_ref: SLACK_BOT}
rules:
  - name: prod
    match: {tags: [env=prod]}
    team: platform
    continue: true
"""
    kept = apply(smaller)
    assert kept[:2] == (0, ["~ rules order: payments-accounts, prod -> prod, payments-accounts"])
    code, lines, err = apply(smaller, "--prune")
    assert code == 0, err
    assert lines == [
        "- rule payments-accounts",
        "- channel payments-mail",
        "- team payments",
        "- silence cfg-pentest: expire",
    ]
    assert counts(engine)["teams"] == 2 and rule_order(engine) == ["prod"]
    assert client.get("/v1/silences/cfg-pentest").json()["state"] == "expired"
    assert client.get(f"/v1/silences/{manual['id']}").json()["state"] == "active"
    assert apply(smaller, "--prune") == (0, [], "no changes\n")


def test_rules_follow_the_file_order(apply: Any, engine: Engine) -> None:
    apply(BASE)
    first, second = BASE.split("rules:")[1].split("silences:")[0].split("  - name: prod\n")
    swapped = BASE.replace(
        first + "  - name: prod\n" + second, "\n  - name: prod\n" + second + first.strip("\n") + "\n"
    )
    _code, lines, _ = apply(swapped)
    assert lines == ["~ rules order: payments-accounts, prod -> prod, payments-accounts"]
    assert rule_order(engine) == ["prod", "payments-accounts"]


def test_errors_name_the_yaml_path_and_line_and_nothing_changes(apply: Any, engine: Engine) -> None:
    bad = """teams:
  - name: ok
  - name: Bad Name
    timezone: Mars/Base
rules:
  - name: r
    team: ok
    match:
      tags: [env=prod, env]
      colour: red
"""
    code, lines, err = apply(bad)
    assert code == 2 and lines == []
    assert "tocsin.yaml:3: teams[1].name: String should match pattern" in err
    assert "tocsin.yaml:4: teams[1].timezone: unknown timezone 'Mars/Base'" in err
    assert "tocsin.yaml:9: rules[0].match.tags[1]: tag matcher 'env' must look like key=value" in err
    assert "tocsin.yaml:10: rules[0].match.colour: unknown field" in err
    assert "4 problem(s)" in err and "nothing changed" in err
    assert counts(engine)["teams"] == 0


def test_references_and_channel_options_are_checked_before_any_change(apply: Any, engine: Engine) -> None:
    bad = """teams:
  - {name: a, default: true}
  - {name: b, default: true}
  - {name: a}
channels:
  - {name: c, team: nobody, kind: slack, target: C01PLATFRM, options: {colour: red}}
rules:
  - {name: order, team: a}
  - {name: r, team: ghost}
"""
    code, _, err = apply(bad)
    assert code == 2
    assert "tocsin.yaml:4: teams[2].name: 'a' is also teams[0]" in err
    assert "tocsin.yaml:3: teams[1].default: only one team can be the default" in err
    assert "tocsin.yaml:6: channels[0].team: no team named 'nobody'" in err
    assert "channels[0].options.colour: invalid slack channel" in err
    assert "tocsin.yaml:8: rules[0].name: 'order' is reserved" in err
    assert "tocsin.yaml:9: rules[1].team: no team named 'ghost'" in err
    assert counts(engine)["teams"] == 0


def test_a_team_only_in_the_database_can_be_referenced_without_prune(apply: Any, client: Any) -> None:
    client.post("/v1/teams", json={"name": "legacy"})
    rules_only = "rules:\n  - {name: r, team: legacy}\n"
    assert apply(rules_only, "--prune")[0] == 2
    assert apply(rules_only)[1] == ["+ rule r"]


def test_the_default_flag_moves_to_the_file_s_default_team(apply: Any, client: Any) -> None:
    client.post("/v1/teams", json={"name": "old-default", "default": True})
    _code, lines, _ = apply(BASE)
    assert "~ team old-default: default: True -> False (moves to security-ops)" in lines
    assert client.get("/v1/teams/old-default").json()["default"] is False
    assert apply(BASE) == (0, [], "no changes\n")


def test_invalid_yaml_and_unreadable_files(apply: Any, tmp_path: Path) -> None:
    code, _, err = apply("teams: [\n")
    assert code == 2 and "tocsin.yaml:2:1: not valid YAML" in err
    code, _, err = apply(tmp_path / "missing.yaml")
    assert code == 2 and "cannot read" in err
    code, _, err = apply("- just\n- a list\n")
    assert code == 2 and "expected a mapping" in err
    assert apply("")[:2] == (0, [])


def test_duplicate_yaml_keys_are_refused() -> None:
    with pytest.raises(ConfigError) as info:
        parse("teams:\n  - name: a\n    name: b\n")
    assert info.value.problems == ["tocsin.yaml:2: teams[0].name: duplicate key 'name' (line 3)"]


def test_ended_silences_in_the_file_are_not_created(apply: Any, engine: Engine) -> None:
    ended = "silences:\n  - {id: old, match: {type: x}, ends_at: 2020-01-01T00:00:00Z, reason: over}\n"
    assert apply(ended) == (0, [], "no changes\n")
    assert counts(engine)["silences"] == 0


def test_silences_without_id_are_keyed_by_content(apply: Any, engine: Engine) -> None:
    file = "silences:\n  - {match: {type: x}, ends_at: 2099-01-01T00:00:00Z, reason: noisy}\n"
    _code, lines, _ = apply(file)
    assert len(lines) == 1 and lines[0].startswith("+ silence cfg-")
    assert apply(file) == (0, [], "no changes\n")


def test_the_example_routes_findings_to_their_owners(apply: Any, client: Any) -> None:
    """The applied example, read back by the routing engine (explain): the file means what it says."""
    assert apply(EXAMPLE)[0] == 0

    def team_of(**overrides: Any) -> Any:
        resp = client.post("/v1/routing/explain", json={"finding": finding(**overrides)})
        assert resp.status_code == 200, resp.text
        return resp.json()["owner"]

    tagged = {"type": "container_image", "id": "img", "tags": {"owner": "data"}}
    assert team_of(resource=tagged) == "data"
    account = {"type": "AwsEc2Instance", "id": "i-1", "account_id": "222222222222"}
    assert team_of(resource=account) == "payments"
    assert team_of() == "security-ops"
