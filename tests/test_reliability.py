"""Reliability (issue 6): saturation of every write route, and SIGKILL in mid-write.

Everything runs against the real service (uvicorn in a subprocess) on the test's own
database, SQLite or PostgreSQL (CLAIMLEDGER_TEST_DATABASE_URL). By default the tests are
short; CLAIMLEDGER_RELIABILITY_FULL=1 runs the long versions. Each test prints what it did.
"""

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from app.config import Settings
from tests.conftest import mint_role_keys
from tests.factories import bearer
from tests.reliability_support import (
    FULL,
    ConnectionLost,
    KillableServer,
    RawHttp,
    claim_text,
    integrity_report,
    search_rows,
    table_counts,
)

# --- sizes: short by default, long with CLAIMLEDGER_RELIABILITY_FULL=1 -----------------

# Saturation: (concurrent connections, seconds) phases, run back to back on one server.
SATURATION_PHASES = [(64, 30.0), (256, 30.0)] if FULL else [(64, 2.0), (256, 3.0)]
# A write slower than this counts as a timeout (the server answers 503 itself after
# settings.request_timeout_seconds, 60 s by default).
REQUEST_TIMEOUT = 60.0
# Crash in a stream of single writes: writers, and when the kill comes (seconds).
STREAM_WRITERS = 16
STREAM_KILL_AFTER = (3.0, 6.0) if FULL else (1.0, 2.0)
STREAM_ROUNDS = 3 if FULL else 1
# Crash in a large ingest: batches of BATCH_ITEMS, the kill lands mid-batch.
BATCH_ITEMS = 1000
INGEST_BATCHES = 100 if FULL else 5
# After a crash, a claimed Idempotency-Key whose request died is taken over once the dead
# server's heartbeat is instance_timeout_seconds old (10 s by default), not after
# idempotency_pending_seconds (120 s): the crash tests run with the default settings and
# allow the retries no more 409 waiting than the heartbeat timeout and this slack.
TAKEOVER_SLACK = 3.0


@pytest.fixture
def rel_secrets(settings: Settings) -> dict[str, str]:
    """One key per role in the test's database: role name -> secret (before any server)."""
    return mint_role_keys(settings, "rel")


@contextlib.contextmanager
def killable_server(settings: Settings, tmp_path: Path) -> Iterator[KillableServer]:
    server = KillableServer(settings, tmp_path / "uvicorn.log")
    try:
        yield server.start()  # type: ignore[misc]
    finally:
        server.stop()


@contextlib.contextmanager
def engine_for(settings: Settings) -> Iterator[sa.Engine]:
    engine = sa.create_engine(settings.database_url)
    try:
        yield engine
    finally:
        engine.dispose()


def _kind(settings: Settings) -> str:
    return "sqlite" if settings.is_sqlite else "postgresql"


# --- 1. saturation ----------------------------------------------------------------------


@dataclass
class Acknowledged:
    """Every write the server acknowledged during the run, and what it implies."""

    claims: set[str] = field(default_factory=set)
    versions: dict[str, int] = field(default_factory=dict)  # owned claims: expected version
    texts: dict[str, str] = field(default_factory=dict)  # owned claims: expected text
    statuses: dict[str, str] = field(default_factory=dict)  # owned claims: expected status
    sources: set[str] = field(default_factory=set)
    attributions: set[str] = field(default_factory=set)
    inline_attributions: int = 0
    reviews: set[str] = field(default_factory=set)
    reopened: int = 0  # PATCHes of text under a verdict: each adds a review of its own
    links: set[str] = field(default_factory=set)
    patches: int = 0
    completions: list[tuple[float, str, float]] = field(default_factory=list)  # (t, op, s)
    failures: list[str] = field(default_factory=list)


ROUTES = ["claim", "source", "attribution", "review", "link", "ingest", "patch"]
WEIGHTS = [2, 1, 2, 2, 2, 1, 2]
LINK_KINDS = ["supports", "contradicts", "duplicates", "updates", "related"]


class Saturator:
    """Closed-loop writers, one per connection, each on claims of its own (so no If-Match
    race is expected and every write must succeed), cycling through every write route."""

    def __init__(self, url: str, headers: dict[str, str], shared_source: str):
        self.url, self.headers, self.shared_source = url, headers, shared_source
        self.acks = Acknowledged()
        self.t0 = 0.0
        self.timed = False

    def _claim_acked(self, claim_id: str, text: str) -> None:
        self.acks.claims.add(claim_id)
        self.acks.inline_attributions += 1
        self.acks.versions[claim_id] = 1
        self.acks.texts[claim_id] = text
        self.acks.statuses[claim_id] = "unverified"

    async def setup(self, claims: int) -> list[str]:
        """Two claims per writer, ingested up front so the timed phases are all mixed."""
        rng = random.Random("setup")
        ids: list[str] = []
        http = RawHttp.for_url(self.url, self.headers)
        try:
            for start in range(0, claims, BATCH_ITEMS):
                texts = [claim_text(rng, f"satup{i}")
                         for i in range(start, min(claims, start + BATCH_ITEMS))]
                response = await http.request("POST", "/v1/ingest", json_body=[
                    {"text": t, "attributions": [{"source_id": self.shared_source,
                                                  "stance": "asserts"}]} for t in texts])
                assert response.status == 200, response.text[:500]
                for text, item in zip(texts, response.json()["items"], strict=True):
                    assert item["status"] == "created", item
                    self._claim_acked(item["claim_id"], text)
                    ids.append(item["claim_id"])
        finally:
            await http.close()
        return ids

    async def call(self, http: RawHttp, op: str, method: str, path: str, expect: int,
                   **kwargs) -> dict | None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            response = await asyncio.wait_for(http.request(method, path, **kwargs),
                                              REQUEST_TIMEOUT)
        except TimeoutError:
            self.acks.failures.append(f"{op}: timeout after {REQUEST_TIMEOUT}s")
            await http.close()
            return None
        except ConnectionLost as exc:
            self.acks.failures.append(f"{op}: connection lost ({exc})")
            return None
        now = loop.time()
        if response.status != expect:
            self.acks.failures.append(f"{op}: {response.status} {response.text[:300]}")
            return None
        if self.timed:
            self.acks.completions.append((now - self.t0, op, now - started))
        return response.json() if response.body else {}

    async def step(self, http: RawHttp, rng: random.Random, op: str, tag: str,
                   owned: list[str], used_links: set[tuple[str, str, str]]) -> None:
        """One write of kind `op`; what the server acknowledges goes into self.acks."""
        acks = self.acks
        if op == "link":
            a, b = rng.sample(owned[-4:], 2)
            free = [k for k in LINK_KINDS if (a, b, k) not in used_links]
            if not free:
                op = "claim"
        if op == "claim":
            text = claim_text(rng, tag)
            body = await self.call(http, op, "POST", "/v1/claims", 201, json_body={
                "text": text, "topics": ["saturation"],
                "attributions": [{"source_id": self.shared_source, "stance": "asserts"}]})
            if body:
                self._claim_acked(body["id"], text)
                owned.append(body["id"])
        elif op == "source":
            body = await self.call(http, op, "POST", "/v1/sources", 201,
                                   json_body={"name": f"Saturation source {tag}"})
            if body:
                acks.sources.add(body["id"])
        elif op == "attribution":
            claim_id = rng.choice(owned)
            body = await self.call(http, op, "POST", f"/v1/claims/{claim_id}/attributions", 201,
                                   json_body={"source_id": self.shared_source,
                                              "stance": rng.choice(["supports", "disputes"]),
                                              "quote": f"quote {tag}"})
            if body:
                acks.attributions.add(body["id"])
                acks.versions[claim_id] += 1
        elif op == "review":
            claim_id = rng.choice(owned)
            status = "true" if acks.statuses[claim_id] == "in_review" else "in_review"
            body = await self.call(http, op, "POST", f"/v1/claims/{claim_id}/reviews", 201,
                                   json_body={"status": status, "rationale": f"checked {tag}"},
                                   headers={"If-Match": "*"})
            if body:
                acks.reviews.add(body["id"])
                acks.versions[claim_id] += 1
                acks.statuses[claim_id] = status
        elif op == "link":
            kind = rng.choice(free)
            used_links.add((a, b, kind))  # tried once, whatever the outcome
            body = await self.call(http, op, "POST", f"/v1/claims/{a}/links", 201,
                                   json_body={"target_id": b, "kind": kind},
                                   headers={"If-Match": "*"})
            if body:
                acks.links.add(body["id"])
                acks.versions[a] += 1
                acks.versions[b] += 1
        elif op == "ingest":
            items = [{"text": claim_text(rng, f"{tag}y{j}"),
                      "attributions": [{"source": "Saturation feed", "stance": "reports"}]}
                     for j in range(5)]
            body = await self.call(http, op, "POST", "/v1/ingest", 200, json_body=items)
            if body:
                statuses = [item["status"] for item in body["items"]]
                if statuses != ["created"] * 5:
                    acks.failures.append(f"ingest: item results {statuses}")
                acks.claims.update(item["claim_id"] for item in body["items"])
                acks.inline_attributions += 5
        elif op == "patch":
            claim_id = rng.choice(owned)
            text = claim_text(rng, f"{tag}edit")
            version = acks.versions[claim_id]
            body = await self.call(http, op, "PATCH", f"/v1/claims/{claim_id}", 200,
                                   json_body={"text": text},
                                   headers={"If-Match": f'"{version}"'})
            if body:
                # new text under a verdict reopens it: a second version, the review's
                reopened = acks.statuses[claim_id] not in ("unverified", "in_review")
                acks.patches += 1
                acks.reopened += reopened
                acks.versions[claim_id] = body["version"]
                acks.texts[claim_id] = text
                acks.statuses[claim_id] = body["status"]
                if body["version"] != version + 1 + reopened:
                    acks.failures.append(f"patch: version {version} -> {body['version']}")

    async def warm_up(self, owned: list[str]) -> None:
        """Each route once, untimed: the server's first request of a kind compiles queries."""
        http = RawHttp.for_url(self.url, self.headers)
        rng, used = random.Random("warm"), set()
        try:
            for op in ROUTES:
                await self.step(http, rng, op, f"warm{op}", owned, used)
        finally:
            await http.close()

    async def run(self, phases: list[tuple[int, float]]) -> float:
        writers = max(c for c, _ in phases)
        claims = await self.setup(2 * writers + 2)
        await self.warm_up(claims[-2:])
        loop = asyncio.get_running_loop()
        self.t0, self.timed = loop.time(), True
        end = self.t0 + sum(seconds for _, seconds in phases)

        async def writer(n: int, start_at: float) -> None:
            await asyncio.sleep(max(0.0, start_at - loop.time()))
            rng = random.Random(n)
            http = RawHttp.for_url(self.url, self.headers)
            owned, used = claims[2 * n:2 * n + 2], set()
            i = 0
            try:
                while loop.time() < end and len(self.acks.failures) < 20:
                    i += 1
                    await self.step(http, rng, rng.choices(ROUTES, WEIGHTS)[0],
                                    f"sat{n}x{i}", owned, used)
            finally:
                await http.close()

        tasks, offset, started = [], 0.0, 0
        for connections, seconds in phases:
            tasks += [asyncio.create_task(writer(n, self.t0 + offset))
                      for n in range(started, connections)]
            started = max(started, connections)
            offset += seconds
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=end - self.t0 + REQUEST_TIMEOUT + 30)
        return loop.time() - self.t0


def test_write_routes_saturated_lose_nothing(settings: Settings, rel_secrets, tmp_path):
    """Every write route under 64 then 256 connections: no 5xx, no timeout, no zero second,
    and every acknowledged write is in the database."""
    phases = SATURATION_PHASES
    duration = sum(s for _, s in phases)
    print(f"\nsaturation ({'full' if FULL else 'short'}, {_kind(settings)}): "
          + ", then ".join(f"{c} connections for {s:.0f}s" for c, s in phases)
          + " of POST claims/sources/attributions/reviews/links/ingest and PATCH claim")
    with killable_server(settings, tmp_path) as server:
        with httpx.Client(base_url=server.url, headers=bearer(rel_secrets["admin"]),
                          timeout=30) as client:
            response = client.post("/v1/sources", json={"name": "Saturation wire"})
            assert response.status_code == 201, response.text
            shared = response.json()["id"]
        saturator = Saturator(server.url, bearer(rel_secrets["admin"]), shared)
        elapsed = asyncio.run(saturator.run(phases))
        acks = saturator.acks
        assert server.process is not None and server.process.poll() is None, server.log_tail()

    assert not acks.failures, f"{len(acks.failures)} failed writes, e.g. {acks.failures[:5]}"
    per_second = Counter(int(t) for t, _, _ in acks.completions if t < duration)
    buckets = [per_second.get(s, 0) for s in range(int(duration))]
    latencies = sorted(s for _, _, s in acks.completions)
    by_route = Counter(op for _, op, _ in acks.completions)
    print(f"  {len(acks.completions)} writes in {elapsed:.1f}s "
          f"({len(acks.completions) / elapsed:.0f}/s); per route {dict(by_route)}; "
          f"per second {buckets}; "
          f"p50 {latencies[len(latencies) // 2] * 1000:.0f} ms, "
          f"p99 {latencies[int(len(latencies) * 0.99)] * 1000:.0f} ms, "
          f"max {latencies[-1] * 1000:.0f} ms")
    assert all(buckets), f"a second without a single completed write: {buckets}"
    assert set(by_route) == set(ROUTES), f"some route was never exercised: {by_route}"

    with engine_for(settings) as engine, engine.connect() as conn:
        def ids(table: str) -> set[str]:
            return set(conn.exec_driver_sql(f"SELECT id FROM {table}").scalars())

        assert ids("claim") == acks.claims
        assert ids("source") >= acks.sources | {shared}
        assert len(ids("source")) == len(acks.sources) + 2  # + the wire and the ingest feed
        attributions = ids("attribution")
        assert attributions >= acks.attributions
        assert len(attributions) == len(acks.attributions) + acks.inline_attributions
        assert ids("review") >= acks.reviews
        assert len(ids("review")) == len(acks.reviews) + acks.reopened
        assert ids("claim_link") == acks.links
        updated = conn.exec_driver_sql(
            "SELECT count(*) FROM event WHERE action = 'claim.updated'").scalar_one()
        assert updated == acks.patches
        rows = conn.exec_driver_sql("SELECT id, version, text, status FROM claim").all()
        stored = {r[0]: (r[1], r[2], r[3]) for r in rows}
        wrong = {cid: (stored[cid], (v, acks.texts[cid], acks.statuses[cid]))
                 for cid, v in acks.versions.items()
                 if stored[cid] != (v, acks.texts[cid], acks.statuses[cid])}
        assert not wrong, f"{len(wrong)} claims differ from what was acknowledged: " \
            f"{list(wrong.items())[:3]}"
        assert integrity_report(engine) == {}


# --- 2. crashes -------------------------------------------------------------------------


class Waits:
    """Seconds the retries after a crash spent waiting on 409 (a dead server's claims)."""

    def __init__(self, settings: Settings):
        self.allowed = settings.instance_timeout_seconds + TAKEOVER_SLACK
        # Else a retry could wait out the pending window and pass without any takeover.
        assert self.allowed < settings.idempotency_pending_seconds, \
            "the takeover bound is no tighter than the pending window"
        self.seconds = 0.0
        self.count = 0

    def check(self) -> None:
        assert self.seconds <= self.allowed, (
            f"retries waited {self.seconds:.1f}s on 409 in all: the dead server's claims were "
            f"not taken over within instance_timeout_seconds")


async def _send_until_done(http: RawHttp, method: str, path: str, *, json_body, key: str,
                           expect: int, waits: Waits) -> tuple[int, dict, bool]:
    """Send with this Idempotency-Key until it is done: (status, body, replayed).

    409 (the first attempt's claim is still pending) is retried after Retry-After, for
    as long as `waits` allows in all; past that a 409 fails the test.
    """
    while True:
        response = await asyncio.wait_for(http.request(
            method, path, json_body=json_body, headers={"Idempotency-Key": key}),
            REQUEST_TIMEOUT * 4)
        if response.status == 409 and waits.seconds < waits.allowed:
            pause = float(response.headers.get("retry-after", "1"))
            waits.seconds += pause
            waits.count += 1
            if pause >= 5:  # uvicorn closes idle keep-alive connections after 5 s
                await http.close()
            await asyncio.sleep(pause)
            continue
        assert response.status == expect, f"{key}: {response.status} {response.text[:500]}"
        return (response.status, response.json(),
                response.headers.get("idempotent-replayed") == "true")


async def _stream_until_killed(server: KillableServer, headers: dict[str, str], round_: int,
                               kill_after: float):
    """STREAM_WRITERS writers POST claims with Idempotency-Keys until the SIGKILL."""
    sent: dict[str, dict] = {}  # key -> body (every request that was at least started)
    acked: dict[str, str] = {}  # key -> claim id
    errors: list[str] = []

    async def writer(n: int) -> None:
        rng = random.Random(f"{round_}-{n}")
        http = RawHttp.for_url(server.url, headers)
        try:
            for i in range(100_000):
                key = f"stream-{round_}-{n}-{i}"
                sent[key] = {"text": claim_text(rng, f"st{round_}w{n}n{i}"),
                             "topics": ["crash"],
                             "attributions": [{"source": "Crash wire", "stance": "reports"}]}
                try:
                    response = await asyncio.wait_for(http.request(
                        "POST", "/v1/claims", json_body=sent[key],
                        headers={"Idempotency-Key": key}), REQUEST_TIMEOUT)
                except ConnectionLost:
                    return  # the server is gone: this one's fate is unknown
                if response.status != 201:
                    errors.append(f"{response.status} {response.text[:300]}")
                    return
                acked[key] = response.json()["id"]
        finally:
            await http.close()

    tasks = [asyncio.create_task(writer(n)) for n in range(STREAM_WRITERS)]
    await asyncio.sleep(kill_after)
    in_flight_at_kill = len(sent) - len(acked)
    server.kill()
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=REQUEST_TIMEOUT)
    assert not errors, errors[:5]
    await asyncio.sleep(0)
    return sent, acked, in_flight_at_kill


def _tag(body: dict) -> str:
    return body["text"].split(" ", 1)[0]


def _claims_by_tag(engine: sa.Engine, prefix: str) -> Counter:
    """How many claims carry each tag (the first word of their text) starting with prefix."""
    with engine.connect() as conn:
        texts = conn.execute(sa.text("SELECT text FROM claim WHERE text LIKE :p"),
                             {"p": f"{prefix}%"}).scalars().all()
    return Counter(text.split(" ", 1)[0] for text in texts)


def test_sigkill_during_single_writes_loses_no_acknowledged_write(settings, rel_secrets,
                                                                 tmp_path):
    """SIGKILL mid-stream of POSTs; restart; intact; every ack present; retries finish it."""
    headers = bearer(rel_secrets["ingester"])
    rng = random.Random()
    print(f"\ncrash in a write stream ({'full' if FULL else 'short'}, {_kind(settings)}): "
          f"{STREAM_ROUNDS} round(s) of {STREAM_WRITERS} writers POSTing claims with "
          f"Idempotency-Keys, SIGKILL after {STREAM_KILL_AFTER[0]}-{STREAM_KILL_AFTER[1]}s")
    all_sent: dict[str, dict] = {}
    all_acked: dict[str, str] = {}
    all_committed: set[str] = set()  # keys whose claim committed but whose answer was lost
    with killable_server(settings, tmp_path) as server, engine_for(settings) as engine:
        for round_ in range(STREAM_ROUNDS):
            kill_after = rng.uniform(*STREAM_KILL_AFTER)
            sent, acked, in_flight = asyncio.run(
                _stream_until_killed(server, headers, round_, kill_after))
            all_sent.update(sent)
            all_acked.update(acked)
            assert acked, "nothing was acknowledged before the kill; the test proves nothing"
            server.start()
            assert integrity_report(engine) == {}
            with engine.connect() as conn:
                present = set(conn.exec_driver_sql("SELECT id FROM claim").scalars())
            lost = set(all_acked.values()) - present
            assert not lost, f"{len(lost)} acknowledged claims are gone after the crash"
            tags = _claims_by_tag(engine, "st")
            assert sum(tags.values()) == len(present), "a claim nobody sent"
            assert set(tags) <= {_tag(body) for body in all_sent.values()}, "a stray claim"
            assert set(tags.values()) == {1}, "a claim was written twice"
            committed = set(tags) - {_tag(all_sent[k]) for k in all_acked}
            all_committed |= {k for k, body in sent.items() if _tag(body) in committed}
            print(f"  round {round_}: killed after {kill_after:.1f}s with {len(acked)} "
                  f"acknowledged and {in_flight} in flight; after restart all acknowledged "
                  f"are there, {len(committed)} unacknowledged had committed, integrity ok")

        async def finish() -> dict[str, tuple[str, bool]]:
            http = RawHttp.for_url(server.url, headers)
            out = {}
            try:
                for key, body in all_sent.items():
                    _, response, replayed = await _send_until_done(
                        http, "POST", "/v1/claims", json_body=body, key=key, expect=201,
                        waits=waits)
                    out[key] = (response["id"], replayed)
            finally:
                await http.close()
            return out

        started = time.monotonic()
        waits = Waits(settings)
        final = asyncio.run(finish())
        waits.check()
        for key, claim_id in all_acked.items():
            assert final[key] == (claim_id, True), f"{key}: not replayed as acknowledged"
        for key in all_committed:
            assert final[key][1], f"{key}: committed before the kill, yet not replayed"
        tags = _claims_by_tag(engine, "st")
        assert len(tags) == len(all_sent) and set(tags.values()) == {1}
        assert integrity_report(engine) == {}
        with engine.connect() as conn:
            pending = conn.exec_driver_sql(
                "SELECT count(*) FROM idempotency_record WHERE NOT done").scalar_one()
        assert pending == 0
        print(f"  resent all {len(all_sent)} requests with their keys in "
              f"{time.monotonic() - started:.1f}s: "
              f"{len(all_acked) + len(all_committed)} replayed, exactly "
              f"{len(tags)} claims, integrity ok; {waits.count} answers of 409 "
              f"({waits.seconds:.0f}s) before the dead server's claims were taken over")


def _batch(batch: int) -> list[dict]:
    rng = random.Random(f"batch-{batch}")
    return [{"text": claim_text(rng, f"ib{batch:03d}i{i:04d}", words=6),
             "topics": ["crash-feed"],
             "attributions": [{"source": f"Feed source {i % 10}", "stance": "asserts"}]}
            for i in range(BATCH_ITEMS)]


def test_sigkill_during_large_ingest_leaves_whole_batches(settings, rel_secrets, tmp_path):
    """SIGKILL mid-batch in a large ingest; restart; intact; every batch all-or-nothing;
    re-sending every batch with its Idempotency-Key completes it with no duplicate."""
    headers = bearer(rel_secrets["ingester"])
    total = INGEST_BATCHES * BATCH_ITEMS
    print(f"\ncrash in a large ingest ({'full' if FULL else 'short'}, {_kind(settings)}): "
          f"{total} claims in {INGEST_BATCHES} batches of {BATCH_ITEMS} with Idempotency-Keys,"
          f" two senders, SIGKILL in the middle of a batch near the middle of the run")
    batches = {b: _batch(b) for b in range(INGEST_BATCHES)}
    kill_when_acked = max(1, INGEST_BATCHES // 2)

    async def until_killed(server: KillableServer) -> tuple[dict[int, dict], list[int]]:
        acked: dict[int, dict] = {}
        durations: list[float] = []
        queue = list(range(INGEST_BATCHES))
        started: list[int] = []
        loop = asyncio.get_running_loop()

        async def sender() -> None:
            http = RawHttp.for_url(server.url, headers)
            try:
                while queue:
                    batch = queue.pop(0)
                    started.append(batch)
                    t = loop.time()
                    try:
                        response = await asyncio.wait_for(http.request(
                            "POST", "/v1/ingest", json_body=batches[batch],
                            headers={"Idempotency-Key": f"ingest-{batch}"}), 300)
                    except ConnectionLost:
                        return
                    assert response.status == 200, response.text[:500]
                    durations.append(loop.time() - t)
                    acked[batch] = response.json()
            finally:
                await http.close()

        tasks = [asyncio.create_task(sender()) for _ in range(2)]

        async def until(condition) -> None:
            while not condition():
                await asyncio.sleep(0.02)
                failed = [t.exception() for t in tasks if t.done() and t.exception()]
                assert not failed, failed

        await until(lambda: len(acked) >= kill_when_acked)
        # Kill while a batch is surely being written: the newest one sent, a quarter of the
        # fastest batch's time after it was seen in flight, if it still is. (Half the mean
        # batch time after an ack missed when the machine was shared: a last batch written
        # alone finished inside it, and none was left.)
        while True:
            flying = [b for b in started if b not in acked]
            assert flying or queue, "every batch was answered before a kill could land"
            if flying:
                await asyncio.sleep(min(durations) / 4)
                if flying[-1] not in acked:
                    break
            else:
                await asyncio.sleep(0.005)
        in_flight = [b for b in started if b not in acked]
        server.kill()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
        return acked, in_flight

    with killable_server(settings, tmp_path) as server, engine_for(settings) as engine:
        t = time.monotonic()
        acked, in_flight = asyncio.run(until_killed(server))
        first_run = time.monotonic() - t
        assert in_flight, "no batch was in flight at the kill"
        server.start()
        assert integrity_report(engine) == {}
        present = _claims_by_tag(engine, "ib")
        per_batch = Counter(tag[:5] for tag in present)
        assert set(present.values()) <= {1}, "a claim was written twice"
        assert {n for n in per_batch.values()} <= {BATCH_ITEMS}, f"half a batch: {per_batch}"
        for batch, body in acked.items():
            assert per_batch.get(f"ib{batch:03d}") == BATCH_ITEMS, f"acked batch {batch} lost"
            assert body["summary"]["created"] == BATCH_ITEMS
        committed_unacked = [b for b in in_flight if f"ib{b:03d}" in per_batch]
        print(f"  killed after {first_run:.1f}s with {len(acked)} batches acknowledged and "
              f"{in_flight} in flight ({committed_unacked} had committed); after restart: "
              f"{len(present)} claims, whole batches only, integrity ok")

        async def resend() -> dict[int, tuple[dict, bool]]:
            http = RawHttp.for_url(server.url, headers)
            out = {}
            try:
                for batch in range(INGEST_BATCHES):
                    _, body, replayed = await _send_until_done(
                        http, "POST", "/v1/ingest", json_body=batches[batch],
                        key=f"ingest-{batch}", expect=200, waits=waits)
                    out[batch] = (body, replayed)
            finally:
                await http.close()
            return out

        t = time.monotonic()
        waits = Waits(settings)
        final = asyncio.run(resend())
        waits.check()
        for batch, body in acked.items():
            assert final[batch] == (body, True), f"batch {batch} was not replayed as acked"
        for batch in committed_unacked:
            assert final[batch][1], f"batch {batch} committed but was not replayed"
        created = sum(body["summary"]["created"] for body, _ in final.values())
        assert created == total
        present = _claims_by_tag(engine, "ib")
        assert len(present) == total and set(present.values()) == {1}
        counts = table_counts(engine, ["claim"])
        assert counts["claim"] == total
        with engine.connect() as conn:
            events = conn.exec_driver_sql(
                "SELECT count(*) FROM event WHERE action = 'claim.created'").scalar_one()
            pending = conn.exec_driver_sql(
                "SELECT count(*) FROM idempotency_record WHERE NOT done").scalar_one()
            sources = conn.exec_driver_sql("SELECT count(*) FROM source").scalar_one()
        assert events == total and pending == 0 and sources == 10
        assert search_rows(engine) == total
        assert integrity_report(engine) == {}
        print(f"  resent all {INGEST_BATCHES} batches with their keys in "
              f"{time.monotonic() - t:.1f}s: {len(acked) + len(committed_unacked)} replayed, "
              f"exactly {total} claims, {events} claim.created events, {total} search rows, "
              f"integrity ok; {waits.count} answers of 409 ({waits.seconds:.0f}s) before the "
              f"dead server's claims were taken over")
