"""/v1/notifications: list with filters and pages, one with its delivery log, re-queue a dead one."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.delivery.dispatcher import Dispatcher
from app.main import create_app
from tests.conftest import ADMIN_TOKEN
from tests.delivery.conftest import World, delivery_settings, slack, world

__all__ = ["delivery_settings", "slack", "world"]  # the outbox fixtures, shared with tests/delivery


@pytest.fixture
def api(world: World) -> Iterator[TestClient]:
    app = create_app(world.settings, world.engine)  # dispatcher_embedded=False: the test drives it
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as client:
        yield client


def drain(world: World) -> None:
    async def go() -> None:
        dispatcher = Dispatcher(world.engine, world.settings, clock=world.clock, worker_id="api-test")
        await dispatcher.drain()
        await dispatcher.aclose()

    asyncio.run(go())


def test_a_dead_notification_shows_why_and_retry_requeues_it(api: TestClient, world: World) -> None:
    [fid] = world.add_findings(1)
    world.enqueue([fid], group_wait=0)
    world.slack.fail_next("channel_not_found")
    drain(world)
    page = api.get("/v1/notifications", params={"status": "dead"}).json()
    [item] = page["items"]
    assert item["finding_id"] == fid and item["channel"] == "payments-slack" and item["team"] == "payments"
    assert item["attempts"] == 1 and "channel_not_found" in item["last_error"]
    detail = api.get(f"/v1/notifications/{item['id']}").json()
    [attempt] = detail["deliveries"]
    assert attempt["ok"] is False and attempt["retryable"] is False and attempt["includes_this"] is True
    assert "channel_not_found" in attempt["detail"]

    resp = api.post(f"/v1/notifications/{item['id']}/retry")
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "pending" and resp.json()["attempts"] == 0
    again = api.post(f"/v1/notifications/{item['id']}/retry")
    assert again.status_code == 409 and "not dead" in again.json()["detail"]
    assert api.post("/v1/notifications/nope/retry").status_code == 404

    world.clock.now = world.clock.now.replace(year=2030)  # the API's "now" is the real clock
    drain(world)
    sent = api.get(f"/v1/notifications/{item['id']}").json()
    assert sent["status"] == "sent" and [d["ok"] for d in sent["deliveries"]] == [True, False]


def test_filters_and_keyset_pages(api: TestClient, world: World) -> None:
    ids = world.add_findings(7)
    world.enqueue(ids, group_wait=0)
    world.enqueue(ids[:2], event="escalated", group_wait=0, team="other")
    seen: list[Any] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = api.get("/v1/notifications", params=params).json()
        seen.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 9 and len({i["id"] for i in seen}) == 9
    assert [i["id"] for i in seen] == sorted((i["id"] for i in seen), reverse=True)
    assert len(api.get("/v1/notifications", params={"team": "other"}).json()["items"]) == 2
    assert len(api.get("/v1/notifications", params={"finding_id": ids[0]}).json()["items"]) == 2
    assert len(api.get("/v1/notifications", params={"channel": "payments-slack"}).json()["items"]) == 9
    assert api.get("/v1/notifications", params={"channel": "nope"}).json()["items"] == []
    assert api.get("/v1/notifications", params={"status": "bogus"}).status_code == 422
    assert api.get("/v1/notifications", params={"cursor": "!!"}).status_code == 422
    assert api.get("/v1/notifications/0123").status_code == 404
