"""Abuse (issue 6): rate limits, slow clients, oversized answers, runaway statements.

- Per-key rate limit: 429 with Retry-After and problem+json once exceeded; other keys go on.
  On PostgreSQL the count is shared by every instance: two apps over one database accept
  at most the limit plus the documented sync slack (app/middleware/rate_limit.py) between them.
- Slowloris: clients that send headers and then stall, or dribble the body, are cut off
  (answered and disconnected) in bounded time, while other clients are served as usual.
- Pages are at most 200 items (201 is a 422) and queries at most 1,000 characters.
- Statement timeout (settings.statement_timeout_ms): PostgreSQL's statement_timeout, SQLite's
  progress handler; a statement that runs past it is stopped and answered 503.
"""

import asyncio
import contextlib
import random
import time
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from app.config import Settings
from app.db import Database
from app.domain import keys
from app.main import create_app
from app.middleware.rate_limit import RateLimiter
from app.models import Role
from tests.factories import assert_problem, bearer
from tests.reliability_support import KillableServer, RawHttp, claim_text

# --- helpers -----------------------------------------------------------------------------


@contextlib.contextmanager
def app_client(settings: Settings) -> Iterator[TestClient]:
    database = Database(settings)
    try:
        with TestClient(create_app(settings, database=database),
                        raise_server_exceptions=False) as client:
            yield client
    finally:
        database.dispose()


def make_keys(settings: Settings, *names: str, role: Role = Role.reader) -> dict[str, str]:
    database = Database(settings)
    try:
        with database.write_session() as session:
            out = {name: keys.create_key(session, name=name, role=role, actor="tests").secret
                   for name in names}
            session.commit()
    finally:
        database.dispose()
    return out


def wait_for_fresh_window(needed: float) -> None:
    """Limits count per wall-clock minute: start where `needed` seconds fit in one window."""
    left = 60 - time.time() % 60
    if left < needed:
        time.sleep(left + 0.05)


def is_postgres(settings: Settings) -> bool:
    return not settings.is_sqlite


# --- rate limits ---------------------------------------------------------------------------

LIMIT = 20


def test_rate_limit_exceeded_is_429_for_that_key_only(settings: Settings):
    settings = settings.model_copy(update={"rate_limit_per_minute": LIMIT})
    secrets = make_keys(settings, "greedy", "patient")
    with app_client(settings) as client:
        wait_for_fresh_window(8)
        for n in range(LIMIT):
            response = client.get("/v1/claims", headers=bearer(secrets["greedy"]))
            assert response.status_code == 200, (n, response.text)
        for _ in range(3):
            refused = client.get("/v1/claims", headers=bearer(secrets["greedy"]))
            body = assert_problem(refused, 429, contains="rate limit")
            retry = int(refused.headers["Retry-After"])
            assert 1 <= retry <= 60
            assert body["type"] and "instance" in body
        # A write is refused as well, before it does anything.
        refused = client.post("/v1/claims", json={"text": "Belarus closed its border."},
                              headers=bearer(secrets["greedy"]))
        assert_problem(refused, 429)
        # Another key has its own count, and its own full allowance.
        for n in range(LIMIT):
            response = client.get("/v1/claims", headers=bearer(secrets["patient"]))
            assert response.status_code == 200, (n, response.text)
        assert_problem(client.get("/v1/claims", headers=bearer(secrets["patient"])), 429)
        metrics = client.get("/metrics", headers=bearer(make_keys(settings, "ops")["ops"]))
        assert "claimledger_rate_limited_total 5.0" in metrics.text


def test_a_post_with_an_idempotency_key_counts_once(settings: Settings):
    """The key is asked for twice on such a POST (its role, and its idempotency claim):
    the request is still one hit, not two."""
    settings = settings.model_copy(update={"rate_limit_per_minute": LIMIT})
    secrets = make_keys(settings, "ingest", role=Role.ingester)
    with app_client(settings) as client:
        wait_for_fresh_window(8)
        for n in range(LIMIT):
            response = client.post("/v1/claims", json={"text": f"Convoy {n} reached Gomel."},
                                   headers={**bearer(secrets["ingest"]),
                                            "Idempotency-Key": f"convoy-{n}"})
            assert response.status_code == 201, (n, response.text)
        assert_problem(client.post("/v1/claims", json={"text": "One too many."},
                                   headers={**bearer(secrets["ingest"]),
                                            "Idempotency-Key": "convoy-late"}), 429)


def test_rate_limit_is_shared_by_two_instances_on_postgresql(settings: Settings):
    """Two create_app over one PostgreSQL database, one key, requests alternating between
    them: together they accept at most the limit plus the sync slack of each instance."""
    if not is_postgres(settings):
        pytest.skip("SQLite is for one process: its rate limit is in memory by design")
    limit = 100
    settings = settings.model_copy(update={"rate_limit_per_minute": limit})
    secret = make_keys(settings, "shared")["shared"]
    with app_client(settings) as first, app_client(settings) as second:
        sync_hits = first.app.state.rate_limiter.sync_hits
        slack = 2 * sync_hits  # each instance's unshared hits, and the peer's latest batch
        wait_for_fresh_window(12)
        accepted = {"first": 0, "second": 0}
        refused = 0
        for n in range(2 * limit):
            name, client = ("first", first) if n % 2 == 0 else ("second", second)
            response = client.get("/v1/claims", headers=bearer(secret))
            if response.status_code == 200:
                accepted[name] += 1
            else:
                assert_problem(response, 429)
                refused += 1
        total = sum(accepted.values())
        print(f"\nshared rate limit: limit {limit}/min, sync every {sync_hits} hits or "
              f"{first.app.state.rate_limiter.sync_seconds:g}s; two instances accepted "
              f"{accepted} = {total} of {2 * limit} (bound {limit} + {slack})")
        assert limit <= total <= limit + slack
        assert accepted["first"] < limit and accepted["second"] < limit  # neither alone


def test_shared_counts_are_written_every_hundredth_of_the_limit():
    """A worker adds its hits to the shared count at 1% of the limit (at least 20 hits),
    not on every request: each addition is a write and a commit."""
    written: list[int] = []

    class Counting:  # stands for a session: records each hits value it adds
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def execute(self, _statement, params):
            if "n" in params:  # the addition, not the hourly clean-up of old windows
                written.append(params["n"])
            return self

        def scalar_one(self):
            return sum(written)

        def commit(self):
            pass

    limiter = RateLimiter(6000, shared=True, sync_seconds=3600)
    assert limiter.sync_hits == 60
    for _ in range(121):
        limiter.hit("key", Counting)
    assert written == [1, 60, 60]  # the first hit of a window, then every 60th
    assert RateLimiter(100, shared=True).sync_hits == 20


# --- slow clients ------------------------------------------------------------------------

BODY_SECONDS = 2.0
REQUEST_SECONDS = 6.0
SLACK = 3.0  # scheduling on a busy 2-core machine
STALLERS = 20
DRIBBLERS = 20


async def _slow_client(url: str, secret: str, *, dribble: bool) -> tuple[float, bytes]:
    """Send the headers of a 5,000-byte POST, then nothing (or a byte every 0.5 s).

    Returns how long until the server closed the connection, and what it answered.
    """
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    started = time.monotonic()
    writer.write((f"POST /v1/claims HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {secret}"
                  "\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{")
                 .encode())
    await writer.drain()

    async def trickle() -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while True:
                await asyncio.sleep(0.5)
                writer.write(b" ")
                await writer.drain()

    trickling = asyncio.create_task(trickle()) if dribble else None
    answer = b""
    deadline = REQUEST_SECONDS + BODY_SECONDS + 4 * SLACK
    try:
        while chunk := await asyncio.wait_for(reader.read(65536), deadline):
            answer += chunk
    except TimeoutError:
        answer += b"\n[still open]"
    except ConnectionError:
        pass
    finally:
        if trickling:
            trickling.cancel()
        writer.close()
    return time.monotonic() - started, answer


async def _well_behaved(url: str, secret: str, stop: asyncio.Event) -> list[tuple[int, float]]:
    """Meanwhile, an ordinary client: a claim and a health check every 0.2 s."""
    http = RawHttp.for_url(url, bearer(secret))
    rng = random.Random(7)
    out = []
    try:
        while not stop.is_set():
            for method, path, body in (("POST", "/v1/claims", {"text": claim_text(rng, "ok")}),
                                       ("GET", "/healthz", None)):
                started = time.monotonic()
                response = await asyncio.wait_for(http.request(method, path, json_body=body),
                                                  30)
                out.append((response.status, time.monotonic() - started))
            await asyncio.sleep(0.2)
    finally:
        await http.close()
    return out


def test_a_request_past_its_time_limit_is_503_and_the_next_is_served(settings: Settings):
    """A handler still working after request_timeout_seconds is cancelled; the client gets
    a 503 problem with Retry-After, and the server goes on serving."""
    settings = settings.model_copy(update={"request_timeout_seconds": 0.5})
    database = Database(settings)
    app = create_app(settings, database=database)
    cancelled = []

    async def stuck() -> dict[str, str]:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        return {"never": "answered"}

    app.add_api_route("/stuck", stuck)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            started = time.monotonic()
            response = client.get("/stuck")
            took = time.monotonic() - started
            assert_problem(response, 503, contains="longer than 0.5 s")
            assert response.headers["Retry-After"] == "1"
            assert took < 0.5 + SLACK and cancelled == [True]
            assert client.get("/healthz").status_code == 200
    finally:
        database.dispose()


def test_slow_request_bodies_are_cut_off_without_blocking_others(settings: Settings, tmp_path):
    settings = settings.model_copy(update={"body_read_timeout_seconds": BODY_SECONDS,
                                           "request_timeout_seconds": REQUEST_SECONDS})
    secret = make_keys(settings, "writer", role=Role.ingester)["writer"]
    print(f"\nslowloris: {STALLERS} clients stall after the headers, {DRIBBLERS} dribble a "
          f"byte every 0.5 s (body timeout {BODY_SECONDS:g}s, request timeout "
          f"{REQUEST_SECONDS:g}s), with {settings.threads} threads; an ordinary client "
          f"writes meanwhile")

    async def scenario(url: str):
        stop = asyncio.Event()
        ordinary = asyncio.create_task(_well_behaved(url, secret, stop))
        slow = await asyncio.gather(
            *(_slow_client(url, secret, dribble=False) for _ in range(STALLERS)),
            *(_slow_client(url, secret, dribble=True) for _ in range(DRIBBLERS)))
        stop.set()
        return slow, await ordinary

    server = KillableServer(settings, tmp_path / "uvicorn.log")
    try:
        server.start()
        slow, ordinary = asyncio.run(scenario(server.url))
        assert server.process is not None and server.process.poll() is None
    finally:
        server.stop()

    stalled, dribbled = slow[:STALLERS], slow[STALLERS:]
    print(f"  stalled bodies cut off after {min(t for t, _ in stalled):.1f}-"
          f"{max(t for t, _ in stalled):.1f}s, dribbled after "
          f"{min(t for t, _ in dribbled):.1f}-{max(t for t, _ in dribbled):.1f}s; "
          f"ordinary requests: {len(ordinary)}, slowest {max(t for _, t in ordinary):.2f}s")
    for seconds, answer in stalled:
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:300]
        assert b"application/problem+json" in answer
        assert seconds <= BODY_SECONDS + SLACK, f"stalled body held {seconds:.1f}s"
    for seconds, answer in dribbled:
        assert answer.startswith((b"HTTP/1.1 408 ", b"HTTP/1.1 503 ")), answer[:300]
        assert b"application/problem+json" in answer
        assert seconds <= REQUEST_SECONDS + SLACK, f"dribbled body held {seconds:.1f}s"
    assert ordinary, "the ordinary client got nothing done"
    assert {status for status, _ in ordinary} <= {200, 201}, ordinary
    assert max(t for _, t in ordinary) < 2 * SLACK, "slow clients held up an ordinary one"


async def _slow_headers(url: str) -> float:
    """Send a request line and then a header line every 0.5 s, never ending the headers."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    started = time.monotonic()
    writer.write(f"GET /v1/claims HTTP/1.1\r\nHost: {host}\r\n".encode())
    deadline = started + REQUEST_SECONDS + BODY_SECONDS + SLACK
    try:
        with contextlib.suppress(ConnectionError, OSError):
            for n in range(10_000):
                if time.monotonic() > deadline:
                    break
                writer.write(f"X-Slow-{n}: 1\r\n".encode())
                await writer.drain()
                with contextlib.suppress(TimeoutError):
                    if await asyncio.wait_for(reader.read(65536), 0.5) == b"":
                        break  # the server closed the connection
    finally:
        writer.close()
    return time.monotonic() - started


def test_slow_request_headers_are_cut_off(settings: Settings, tmp_path):
    """uvicorn has no deadline for request headers; app/server/header_deadline.py adds one."""
    settings = settings.model_copy(update={"body_read_timeout_seconds": BODY_SECONDS,
                                           "request_timeout_seconds": REQUEST_SECONDS,
                                           "header_timeout_seconds": BODY_SECONDS})
    print(f"\nslow headers: 5 clients send a header line every 0.5 s for up to "
          f"{REQUEST_SECONDS + BODY_SECONDS + SLACK:g}s")

    async def silent(url: str) -> tuple[float, bytes]:
        """Connect and send nothing at all."""
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        started = time.monotonic()
        answer = await asyncio.wait_for(reader.read(), REQUEST_SECONDS + BODY_SECONDS + SLACK)
        writer.close()
        return time.monotonic() - started, answer

    async def scenario(url: str) -> tuple[list[float], tuple[float, bytes]]:
        held = await asyncio.gather(*(_slow_headers(url) for _ in range(5)))
        return list(held), await silent(url)

    server = KillableServer(settings, tmp_path / "uvicorn.log")
    try:
        server.start()
        held, (silent_held, answer) = asyncio.run(scenario(server.url))
        assert httpx.get(f"{server.url}/healthz").status_code == 200, "the server still serves"
    finally:
        server.stop()
    print(f"  connections held {min(held):.1f}-{max(held):.1f}s; a silent one {silent_held:.1f}s")
    assert max(held) <= BODY_SECONDS + SLACK, "slow headers were not cut off at their deadline"
    assert silent_held <= BODY_SECONDS + SLACK
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:60]


# --- bounded answers ---------------------------------------------------------------------


def test_pages_and_queries_are_bounded(settings: Settings):
    secrets = make_keys(settings, "feed", role=Role.ingester)
    with app_client(settings) as client:
        rng = random.Random(3)
        items = [{"text": claim_text(rng, f"page{i}") + " " + "x" * 1500,
                  "attributions": [{"source": "Wire", "stance": "reports"}]}
                 for i in range(230)]
        response = client.post("/v1/ingest", json=items, headers=bearer(secrets["feed"]))
        assert response.status_code == 200 and response.json()["summary"]["created"] == 230
        claim_id = response.json()["items"][0]["claim_id"]
        source_id = client.get("/v1/sources", params={"name": "Wire"},
                               headers=bearer(secrets["feed"])).json()["items"][0]["id"]
        lists = ["/v1/claims", "/v1/sources", "/v1/events", f"/v1/claims/{claim_id}/history",
                 f"/v1/sources/{source_id}/claims"]
        for url in lists:
            assert_problem(client.get(url, params={"limit": 201},
                                      headers=bearer(secrets["feed"])), 422)
            page = client.get(url, params={"limit": 200}, headers=bearer(secrets["feed"]))
            assert page.status_code == 200, (url, page.text)
            assert len(page.json()["items"]) <= 200
        full = client.get("/v1/claims", params={"limit": 200}, headers=bearer(secrets["feed"]))
        assert len(full.json()["items"]) == 200 and full.json()["next_cursor"]
        default = client.get("/v1/claims", headers=bearer(secrets["feed"])).json()
        assert len(default["items"]) == settings.default_page_size
        print(f"\nbounded answers: a full page of 200 claims of ~1,600 characters is "
              f"{len(full.content) / 1024:.0f} KiB")

        words = " ".join(["belarus"] * 200)
        ok = client.get("/v1/claims", params={"q": words[:1000]},
                        headers=bearer(secrets["feed"]))
        assert ok.status_code == 200, ok.text
        too_long = client.get("/v1/claims", params={"q": words[:1000] + "s"},
                              headers=bearer(secrets["feed"]))
        assert_problem(too_long, 422)


# --- statement timeout ---------------------------------------------------------------

# A statement that runs for seconds on either database.
SLOW_SQL = {
    "postgresql": "SELECT pg_sleep(5)",
    "sqlite": "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) "
              "SELECT count(*) FROM (SELECT x FROM n LIMIT 40000000)",  # ~10 s
}


def test_statement_timeout_is_applied_on_every_connection(settings: Settings):
    settings = settings.model_copy(update={"statement_timeout_ms": 300})
    secret = make_keys(settings, "reader")["reader"]
    with app_client(settings) as client:
        app = client.app
        engine = app.state.db.engine
        if is_postgres(settings):
            # Every pooled connection has it, not only the first.
            connections = [engine.connect() for _ in range(3)]
            try:
                for conn in connections:
                    assert conn.execute(text("SHOW statement_timeout")).scalar_one() == "300ms"
            finally:
                for conn in connections:
                    conn.close()

        @app.get("/test-only/slow")
        def slow_statement() -> dict[str, str]:
            with app.state.db.session() as session:
                session.execute(text(SLOW_SQL[engine.dialect.name])).all()
            return {"status": "finished"}

        for _ in range(2):  # the connection that was interrupted serves the next request
            started = time.monotonic()
            response = client.get("/test-only/slow", headers=bearer(secret))
            elapsed = time.monotonic() - started
            body = assert_problem(response, 503)
            assert "pg_sleep" not in response.text and "SELECT" not in response.text
            assert elapsed < 3, f"the statement ran {elapsed:.1f}s despite a 300 ms timeout"
            assert body["detail"]
        assert client.get("/v1/claims", headers=bearer(secret)).status_code == 200


# --- a database that does not answer ------------------------------------------------------


# Without a connect timeout every step hangs for minutes, teardown included: the thread
# method ends the whole run with a stack dump, where a signal would leave it hung.
@pytest.mark.timeout(60, method="thread")
def test_an_unanswering_database_is_503_within_the_connect_timeout():
    """A PostgreSQL address that accepts the connection and never answers (a hung server,
    a black-holed proxy): /readyz says so within connect_timeout_seconds, and a request
    gets a 503 problem, instead of each waiting for the kernel to give up."""
    import socket

    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(64)  # connections complete in the backlog; nothing is ever read
        url = f"postgresql+psycopg://postgres@127.0.0.1:{hung.getsockname()[1]}/claimledger"
        settings = Settings(database_url=url, connect_timeout_seconds=1, pool_timeout=1)
        database = Database(settings)
        try:
            with TestClient(create_app(settings, database=database),
                            raise_server_exceptions=False) as client:
                started = time.monotonic()
                ready = client.get("/readyz")
                assert ready.status_code == 503 and ready.json()["status"] == "unavailable"
                listed = client.get("/v1/claims", headers={"Authorization": "Bearer clk_x"})
                assert_problem(listed, 503, contains="database")
                assert time.monotonic() - started < 10
        finally:
            database.dispose()
