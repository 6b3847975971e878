"""P7: two workers (`claimledger serve --workers 2`) against one PostgreSQL database.

Correctness, checked against the database afterwards:
- no lost write: 64 clients register claims (each with a unique origin/external_id) for a
  while; every acknowledged claim must be stored exactly once, nothing unacknowledged may
  appear, and a feed reader polling `/v1/events` after its cursor during the writes must
  have seen every `claim.created` event;
- idempotency across workers: for each of 40 Idempotency-Keys, 8 identical POSTs at once
  (spread over both workers by the kernel), then the 409s retried: exactly one claim per
  key, every 201 carries the same claim, replays say so; the key with another body is 422.
Throughput: the same POST load as P2 on 1 worker and on 2, the ratio printed.
"""

import asyncio
import random
import time

import httpx
import psycopg

from bench import requests
from bench.harness import (
    CpuTracker,
    Load,
    Options,
    Result,
    Service,
    drain,
    driver_url,
    load,
    median_load,
    pg_database,
    say,
)
from bench.http_rows import make_source

IDEMPOTENCY_KEYS = 40
PER_KEY = 8


def _throughput(svc: Service, source_id: str, opts: Options) -> tuple[Load, dict[int, float]]:
    spec = requests.post_claim(svc.key, source_id, name=f"post-claim-{svc.workers}w")
    load(svc.url, spec, seconds=1, connections=opts.connections, python=opts.python_load)
    drain(svc.busy_pids())
    runs = []
    with CpuTracker(svc) as cpu:
        for n in range(opts.runs):
            runs.append(load(svc.url, spec, seconds=opts.duration,
                             connections=opts.connections, python=opts.python_load))
            drain(svc.busy_pids())
            say(f"    {svc.workers} worker(s), run {n + 1}: {runs[-1].brief()}")
    return median_load(runs), cpu.per_worker()


async def _writes(svc: Service, source_id: str, seconds: float, clients: int) -> dict:
    """Unique claims from `clients` concurrent clients, with a feed reader alongside."""
    acked: dict[str, str] = {}  # external_id -> claim id
    failures: dict[str, int] = {}
    seen: set[str] = set()
    limits = httpx.Limits(max_connections=clients + 1, max_keepalive_connections=clients + 1)
    async with httpx.AsyncClient(base_url=svc.url, headers=svc.headers, timeout=60,
                                 limits=limits) as http:
        cursor = None  # the feed reader starts at the current end of the feed
        while True:
            params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
            page = (await http.get("/v1/events", params=params)).json()
            cursor = page["next_cursor"]
            if not page["items"]:
                break
        deadline = time.monotonic() + seconds
        done = asyncio.Event()

        async def writer(n: int) -> None:
            i = 0
            while time.monotonic() < deadline:
                external_id = f"w{n}-{i}"
                i += 1
                body = {"text": f"Writer {n} reports {i} new {random.choice(['tanks', 'drones'])}"
                                f" near checkpoint {random.randrange(10**6)}.",
                        "origin": "p7-writes", "external_id": external_id,
                        "attributions": [{"source_id": source_id, "stance": "asserts"}]}
                try:
                    response = await http.post("/v1/claims", json=body)
                except httpx.HTTPError as exc:
                    failures[type(exc).__name__] = failures.get(type(exc).__name__, 0) + 1
                    continue
                if response.status_code == 201:
                    acked[external_id] = response.json()["id"]
                else:
                    failures[str(response.status_code)] = \
                        failures.get(str(response.status_code), 0) + 1

        read = asyncio.create_task(read_feed(http, cursor, done, seen))
        await asyncio.gather(*(writer(n) for n in range(clients)))
        done.set()
        await read
    return {"acked": acked, "failures": failures, "seen": seen}


async def read_feed(http: httpx.AsyncClient, cursor: str | None, done: asyncio.Event,
                    seen: set[str], *, pause: float = 0.05) -> None:
    """Poll `/v1/events?action=claim.created` after `cursor`, adding each event's claim id
    to `seen`, until a page asked for after `done` was set comes back empty.

    `done` must be read before the request is sent: a poll in flight while the last write
    commits can answer from a snapshot taken before it, and stopping on that empty page
    missed the last claim (P7 once reported 608 acknowledged, 607 seen).
    """
    while True:
        finished = done.is_set()
        params = {"limit": 200, "action": "claim.created", **({"cursor": cursor} if cursor else {})}
        response = await http.get("/v1/events", params=params)
        response.raise_for_status()
        page = response.json()
        seen.update(e["entity_id"] for e in page["items"])
        cursor = page["next_cursor"] or cursor
        if not page["items"]:
            if finished:
                return
            await asyncio.sleep(pause)


async def _idempotency(svc: Service, source_id: str) -> dict:
    problems: list[str] = []
    statuses: dict[str, int] = {}
    keys = [f"p7-idem-{n}-{random.randrange(10**9)}" for n in range(IDEMPOTENCY_KEYS)]
    bodies = {k: {"text": f"Idempotency probe {k}: the convoy reached the border.",
                  "attributions": [{"source_id": source_id, "stance": "reports"}]}
              for k in keys}
    limits = httpx.Limits(max_connections=IDEMPOTENCY_KEYS * PER_KEY)
    async with httpx.AsyncClient(base_url=svc.url, headers=svc.headers, timeout=60,
                                 limits=limits) as http:

        async def send(key: str, body: dict | None = None) -> httpx.Response:
            return await http.post("/v1/claims", json=body or bodies[key],
                                   headers={"Idempotency-Key": key})

        first = await asyncio.gather(*(send(k) for k in keys for _ in range(PER_KEY)))
        first_statuses: dict[str, int] = {}
        for r in first:
            first_statuses[str(r.status_code)] = first_statuses.get(str(r.status_code), 0) + 1
        by_key: dict[str, list[httpx.Response]] = {k: [] for k in keys}
        for n, response in enumerate(first):
            by_key[keys[n // PER_KEY]].append(response)
        for key, responses in by_key.items():
            for attempt in range(50):  # retry the in-flight 409s until they replay
                pending = [i for i, r in enumerate(responses) if r.status_code == 409]
                if not pending:
                    break
                await asyncio.sleep(0.1 * (attempt + 1))
                for i in pending:
                    responses[i] = await send(key)
            for r in responses:
                statuses[str(r.status_code)] = statuses.get(str(r.status_code), 0) + 1
            created = [r for r in responses if r.status_code == 201]
            originals = [r for r in created if r.headers.get("Idempotent-Replayed") != "true"]
            ids = {r.json()["id"] for r in created}
            if len(created) != PER_KEY or len(originals) != 1 or len(ids) != 1:
                problems.append(f"{key}: statuses {[r.status_code for r in responses]}, "
                                f"{len(originals)} not replayed, claim ids {sorted(ids)}")
        other = await send(keys[0], {"text": "Another body under the same key.",
                                     "attributions": []})
        if other.status_code != 422:
            problems.append(f"same key, other body: {other.status_code}, expected 422")
    return {"keys": keys, "bodies": bodies, "problems": problems, "statuses": statuses,
            "first": first_statuses,
            "ids": {k: by_key[k][0].json().get("id") for k in keys
                    if by_key[k][0].status_code == 201}}


def p7(opts: Options) -> list[Result]:
    title = "two workers against one PostgreSQL: correctness, and throughput vs one worker"
    target = "no lost write, idempotency holds across workers; ratio printed"
    notes: list[str] = []
    problems: list[str] = []
    write_seconds = 20.0 if opts.full else 8.0
    with pg_database("p7") as url:
        with Service(url, name="p7-1w") as one:
            source_id = make_source(one)
            single, _ = _throughput(one, source_id, opts)
        with Service(url, name="p7-2w", workers=2) as two:
            pids = two.worker_pids()
            if len(pids) != 2:
                problems.append(f"expected 2 worker processes, found {pids}")
            double, cpu = _throughput(two, source_id, opts)
            say(f"    CPU seconds per worker pid during the 2-worker load: {cpu}")
            with CpuTracker(two) as checks:
                writes = asyncio.run(_writes(two, source_id, write_seconds, opts.connections))
                drain(two.busy_pids())
                idem = asyncio.run(_idempotency(two, source_id))
            spread = checks.per_worker()
            restarts = two.worker_restarts()
        if restarts:
            problems.append(
                f"uvicorn replaced {len(restarts)} worker(s) under load ({'; '.join(restarts)}):"
                " its supervisor kills a worker that does not answer the health-check ping "
                "within timeout_worker_healthcheck (30 s under `claimledger serve`), and "
                "a worker busy with 40 request threads did not; its in-flight requests failed")
        with psycopg.connect(driver_url(url)) as conn:
            stored = dict(conn.execute(
                "SELECT external_id, id FROM claim WHERE origin = 'p7-writes'").fetchall())
            events = conn.execute(
                "SELECT count(*), count(DISTINCT entity_id) FROM event WHERE "
                "action = 'claim.created' AND entity_id = ANY(%s)",
                (list(stored.values()),)).fetchone()
            per_key = {k: conn.execute("SELECT count(*) FROM claim WHERE text = %s",
                                       (idem["bodies"][k]["text"],)).fetchone()[0]
                       for k in idem["keys"]}
    acked, seen = writes["acked"], writes["seen"]
    lost = {e: c for e, c in acked.items() if stored.get(e) != c}
    phantom = set(stored) - set(acked)
    unseen = set(acked.values()) - seen
    if lost:
        problems.append(f"{len(lost)} acknowledged claims missing or changed, e.g. "
                        f"{list(lost.items())[:3]}")
    if phantom:
        problems.append(f"{len(phantom)} claims stored that no client saw acknowledged "
                        f"(failed requests: {writes['failures']})")
    if events[0] != len(stored) or events[1] != len(stored):
        problems.append(f"{events[0]} claim.created events for {len(stored)} claims")
    if unseen:
        problems.append(f"the feed reader missed {len(unseen)} claim.created events")
    problems += idem["problems"]
    duplicated = {k: n for k, n in per_key.items() if n != 1}
    if duplicated:
        problems.append(f"claims per idempotency key ≠ 1: {duplicated}")
    ratio = double.rps / single.rps
    notes += [f"1 worker: {single.brief()}", f"2 workers: {double.brief()}",
              f"writes: {len(acked):,} acknowledged by 2 workers in {write_seconds:.0f} s, "
              f"{len(stored):,} stored, feed reader saw {len(seen & set(acked.values())):,}; "
              f"failed requests: {writes['failures'] or 'none'}",
              f"idempotency: {IDEMPOTENCY_KEYS} keys x {PER_KEY} concurrent POSTs; final "
              f"first answers {idem['first']}, after retrying the 409s {idem['statuses']}",
              f"CPU s per worker pid during the correctness checks: {spread}",
              *problems]
    passed = not problems and double.errors == 0 and single.errors == 0
    measured = (f"{'correct' if not problems else 'INCORRECT'}; 2 workers / 1 worker = "
                f"{ratio:.2f}x ({double.rps:,.0f} / {single.rps:,.0f} POST req/s)")
    return [Result("P7", title, measured, target, passed, notes)]
