"""Concurrent clients posting the same findings produce exactly one row per fingerprint."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from sqlalchemy import Engine, text

from tests.conftest import ADMIN_TOKEN
from tests.helpers import finding


def test_eight_clients_same_findings_one_row_each(live_server: str, engine: Engine) -> None:
    batch = {"findings": [finding(type=f"CVE-{i}", resource={"id": f"img:{i % 40}"}) for i in range(300)]}

    def send(_: int) -> list[dict[str, Any]]:
        bodies = []
        with httpx.Client(
            base_url=live_server, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=60
        ) as c:
            for _round in range(3):
                resp = c.post("/v1/findings", json=batch)
                assert resp.status_code == 200, resp.text
                bodies.append(resp.json())
        return bodies

    with ThreadPoolExecutor(8) as pool:
        results = [body for bodies in pool.map(send, range(8)) for body in bodies]

    assert sum(body["created"] for body in results) == 300
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT count(*), sum(occurrences) FROM findings")).one()
        aliases = conn.execute(text("SELECT count(*) FROM finding_aliases")).scalar_one()
    assert rows[0] == 300
    assert rows[1] == 300 * 8 * 3  # every accepted copy counted once
    assert aliases == 0  # each primary key lives on its finding (fingerprint); no other keys were sent
    ids_per_index = {tuple(r["id"] for r in body["results"]) for body in results}
    assert len(ids_per_index) == 1  # every client got the same ids back
