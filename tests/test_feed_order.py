"""The change feed under bench P7's load: two server processes on one PostgreSQL database,
many concurrent `POST /v1/claims`, and feed readers resuming after their cursor. Every
acknowledged claim's `claim.created` event must reach every reader: event ids come from a
sequence before commit, and only the feed's lock (locks.lock_event_feed) makes them
visible in id order, so a transaction that committed a lower id late would be skipped.

Readers: one per server over HTTP (`/v1/events?action=claim.created`, polling without
pause) and one reading the event table directly, the route's own query, as fast as it
can. A reader stops only after an empty page it asked for once the writers had finished.
"""

import asyncio
import threading
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from app.config import Settings
from app.db import WRITE_LOCK_ID
from tests.conftest import mint_role_keys
from tests.live_server import run_live_server

WRITE_SECONDS = 8.0
CLIENTS = 24  # per the bench's 16+; half on each server


async def _feed_end(http: httpx.AsyncClient) -> str | None:
    cursor = None
    while True:
        page = await _page(http, {"limit": 200, **({"cursor": cursor} if cursor else {})})
        cursor = page["next_cursor"]
        if not page["items"]:
            return cursor


async def _page(http: httpx.AsyncClient, params: dict) -> dict:
    response = await http.get("/v1/events", params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def _http_reader(http: httpx.AsyncClient, cursor: str | None, done: asyncio.Event,
                       seen: list[int], ids: dict[int, str]) -> None:
    while True:
        finished = done.is_set()  # before asking: the answer then includes every write
        params = {"limit": 200, "action": "claim.created", **({"cursor": cursor} if cursor else {})}
        page = await _page(http, params)
        for event in page["items"]:
            seen.append(event["id"])
            ids[event["id"]] = event["entity_id"]
        assert page["next_cursor"], page
        cursor = page["next_cursor"]
        if not page["items"]:
            if finished:
                return
            await asyncio.sleep(0)


def _sql_reader(url: str, stop: threading.Event, seen: list[int]) -> None:
    engine = sa.create_engine(url)
    query = sa.text("SELECT id FROM event WHERE id > :after AND action = 'claim.created' "
                    "ORDER BY id LIMIT 200")
    after = 0
    try:
        with engine.connect() as conn:
            while True:
                finished = stop.is_set()
                rows = [row[0] for row in conn.execute(query, {"after": after})]
                conn.rollback()
                seen += rows
                if rows:
                    after = rows[-1]
                elif finished:
                    return
    finally:
        engine.dispose()


def test_feed_readers_see_every_acknowledged_claim_under_two_servers(
        settings: Settings, tmp_path: Path):
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only: SQLite has one writer, so event ids commit in order")
    headers = {"Authorization": f"Bearer {mint_role_keys(settings, 'feed')['admin']}"}
    with run_live_server(settings, tmp_path / "a.log") as one, \
            run_live_server(settings, tmp_path / "b.log") as two:
        made = httpx.post(f"{one.url}/v1/sources", headers=headers, json={
            "name": "Institute for the Study of War", "kind": "think_tank"})
        assert made.status_code == 201, made.text
        outcome = asyncio.run(_run(settings.database_url, [one.url, two.url], headers,
                                   made.json()["id"]))
        for server in (one, two):
            assert server.process is not None and server.process.poll() is None, \
                server.log_tail()
    acked, failures, http_seen, http_ids, sql_seen = outcome
    engine = sa.create_engine(settings.database_url)
    with engine.connect() as conn:
        stored = dict(conn.execute(sa.text(
            "SELECT entity_id, id FROM event WHERE action = 'claim.created'")).all())
    engine.dispose()
    print(f"{len(acked)} acknowledged, {len(stored)} claim.created events stored, readers saw "
          f"{[len(s) for s in http_seen]} (HTTP) and {len(sql_seen)} (SQL); "
          f"failed requests: {failures or 'none'}")
    assert not failures
    assert len(acked) > 200, "too few writes to mean anything"
    assert set(acked) <= set(stored), "an acknowledged claim has no claim.created event"
    for n, seen in enumerate([*http_seen, sql_seen]):
        assert seen == sorted(set(seen)), f"reader {n}: ids out of order or repeated"
        missed = sorted(set(stored.values()) - set(seen))
        assert not missed, f"reader {n} missed events {missed[:10]} ({len(missed)} in all)"
    for n, ids in enumerate(http_ids):
        assert set(acked) <= set(ids.values()), f"HTTP reader {n} missed acknowledged claims"


async def _run(url: str, servers: list[str], headers: dict[str, str], source_id: str):
    acked: set[str] = set()
    failures: dict[str, int] = {}
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    clients = [httpx.AsyncClient(base_url=s, headers=headers, timeout=30, limits=limits)
               for s in servers]
    try:
        cursors = [await _feed_end(http) for http in clients]
        done = asyncio.Event()
        stop = threading.Event()
        http_seen: list[list[int]] = [[] for _ in clients]
        http_ids: list[dict[int, str]] = [{} for _ in clients]
        sql_seen: list[int] = []
        sql = threading.Thread(target=_sql_reader, args=(url, stop, sql_seen), daemon=True)
        sql.start()
        readers = [asyncio.create_task(_http_reader(http, cursor, done, seen, ids))
                   for http, cursor, seen, ids in zip(clients, cursors, http_seen, http_ids,
                                                      strict=True)]
        deadline = time.monotonic() + WRITE_SECONDS

        async def writer(n: int) -> None:
            http, i = clients[n % len(clients)], 0
            while time.monotonic() < deadline:
                i += 1
                response = await http.post("/v1/claims", json={
                    "text": f"Writer {n} reports convoy {i} near checkpoint {n * 10**6 + i}.",
                    "origin": "feed-order", "external_id": f"w{n}-{i}",
                    "attributions": [{"source_id": source_id, "stance": "asserts"}]})
                if response.status_code == 201:
                    acked.add(response.json()["id"])
                else:
                    failures[str(response.status_code)] = \
                        failures.get(str(response.status_code), 0) + 1

        await asyncio.gather(*(writer(n) for n in range(CLIENTS)))
        done.set()
        stop.set()
        await asyncio.wait_for(asyncio.gather(*readers), timeout=30)
        await asyncio.to_thread(sql.join, 30)
        assert not sql.is_alive(), "the SQL reader did not stop"
    finally:
        for http in clients:
            await http.aclose()
    return acked, failures, http_seen, http_ids, sql_seen


def test_bench_feed_reader_stops_only_on_a_page_asked_for_after_the_writes():
    """P7's reader (bench/worker_rows.py) polls while the last write commits: the poll in
    flight answers from a snapshot before that commit, and the writers finish meanwhile.
    Stopping on that empty page missed the last claim ("608 acknowledged, 607 seen")."""
    from bench.worker_rows import read_feed

    done = asyncio.Event()
    committed: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        after = int(request.url.params.get("cursor") or 0)
        snapshot = [e for e in committed if e["id"] > after]
        if not done.is_set():  # this poll is in flight as the last write commits and acks
            committed.append({"id": 1, "entity_id": "clm_last", "action": "claim.created"})
            done.set()
        position = snapshot[-1]["id"] if snapshot else after
        return httpx.Response(200, json={"items": snapshot, "next_cursor": str(position)})

    async def read() -> set[str]:
        seen: set[str] = set()
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler),
                                     base_url="http://feed") as http:
            await asyncio.wait_for(read_feed(http, None, done, seen, pause=0), timeout=5)
        return seen

    assert asyncio.run(read()) == {"clm_last"}


def test_a_closed_write_session_reused_takes_the_feed_lock_again(db):
    """The feed lock's flag goes with the transaction however it ends: close() rolls back
    without after_rollback, and a session used again must lock again (else its events could
    become visible after higher ids)."""
    if db.is_sqlite:
        pytest.skip("PostgreSQL only: the feed lock is an advisory lock")
    held = sa.text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                   "AND objid = :k AND pid = pg_backend_pid()")
    session = db.sessions()
    session.info["writer"] = True
    assert session.execute(held, {"k": WRITE_LOCK_ID}).scalar_one() == 1
    session.close()
    assert session.execute(held, {"k": WRITE_LOCK_ID}).scalar_one() == 1
    session.close()
