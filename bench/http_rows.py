"""P1-P3: one-claim writes and one-claim reads against the service's own /healthz.

Each row starts `claimledger serve` (1 worker) on a fresh database, then alternates load
runs on /healthz (the ceiling: the same process, no database) and on the endpoint, and
compares the medians.
"""

import contextlib
import statistics
from collections.abc import Iterator

import httpx

from bench import corpus, requests
from bench.harness import (
    Load,
    Options,
    Result,
    Service,
    compare,
    drain,
    load,
    one_at_a_time,
    pct,
    pg_database,
    profiled,
    say,
    sqlite_database,
)


def make_source(service: Service) -> str:
    """An existing source to attribute claims to; its id."""
    with service.client() as client:
        response = client.post("/v1/sources", json={
            "name": "Institute for the Study of War", "kind": "think_tank", "aliases": ["ISW"]})
        response.raise_for_status()
        return response.json()["id"]


def seed_claims(service: Service, count: int, *, seed: int = 7) -> list[str]:
    """`count` claims with one attribution each, through /v1/ingest; their ids."""
    gen = corpus.Corpus(seed=seed, names=5000, villages=5000)
    ids: list[str] = []
    with service.client(timeout=300) as client:
        for start in range(0, count, 1000):
            items = [{"text": gen.text(), "topics": [gen.pick("topic")], "attributions": [
                {"source": gen.pick("source"), "stance": "asserts"}]}
                for _ in range(min(1000, count - start))]
            response = client.post("/v1/ingest", json=items)
            response.raise_for_status()
            ids += [r["claim_id"] for r in response.json()["items"] if r["claim_id"]]
    return list(dict.fromkeys(ids))


def _ratio_line(service: Load, ceiling: Load) -> str:
    return (f"{service.rps / ceiling.rps:.2f}x ({service.rps:,.0f} / {ceiling.rps:,.0f} req/s "
            f"on /healthz)")


def _errors_note(svc: Service, load_: Load) -> list[str]:
    if not load_.errors:
        return []
    try:
        counts = {k: v for k, v in svc.status_counts().items()
                  if not k.split()[-1].startswith("2")}
    except httpx.HTTPError as exc:
        counts = {"/metrics did not answer": type(exc).__name__}
    return [f"errors: {load_.non2xx} non-2xx and {load_.socket_errors} socket errors "
            f"(wrk); the worker's /metrics counts {counts or 'no error statuses'}"]


def _unloaded(svc: Service, spec: requests.Spec) -> str:
    times = one_at_a_time(svc.url, spec)
    median = statistics.median(times)
    return (f"one request at a time (no queueing): median {median:.1f} ms, p90 "
            f"{pct(times, 0.9):.1f} ms over {len(times)} requests, i.e. at most "
            f"{1000 / median:,.0f} req/s if requests were served one after another")


def _profile(svc: Service, spec: requests.Spec, opts: Options, name: str) -> list[str]:
    def run() -> None:
        load(svc.url, spec, seconds=opts.duration, connections=opts.connections,
             python=opts.python_load)
        drain(svc.busy_pids())

    return profiled(svc.pid, opts.duration, name, run)


def post_claims(row: str, database: str, database_url: str, *, ratio_target: float,
                p99_target: float, opts: Options) -> Result:
    title = f"POST /v1/claims (+1 attribution by source id) on {database} vs /healthz"
    target = f"≥ {ratio_target:.2f}x, p99 ≤ {p99_target:.0f} ms, zero errors"
    with Service(database_url, name=row.lower()) as svc:
        source_id = make_source(svc)
        spec = requests.post_claim(svc.key, source_id)
        ceiling, service = compare(svc.url, requests.healthz(), spec, opts, svc.busy_pids())
        ratio = service.rps / ceiling.rps
        passed = ratio >= ratio_target and service.p99 <= p99_target and service.errors == 0
        measured = (f"{_ratio_line(service, ceiling)}, p99 {service.p99:.0f} ms, "
                    f"{service.errors} errors")
        notes = [f"healthz: {ceiling.brief()}", f"POST: {service.brief()}",
                 *_errors_note(svc, service), _unloaded(svc, spec)]
        if not passed and opts.profile:
            notes += _profile(svc, spec, opts, row.lower())
    return Result(row, title, measured, target, passed, notes)


def p1(opts: Options) -> list[Result]:
    with sqlite_database("p1") as url:
        return [post_claims("P1", "SQLite", url, ratio_target=0.25, p99_target=100, opts=opts)]


def p2(opts: Options) -> list[Result]:
    with pg_database("p2") as url:
        return [post_claims("P2", "PostgreSQL", url, ratio_target=0.15, p99_target=150,
                            opts=opts)]


@contextlib.contextmanager
def _seeded(database_url: str, name: str, count: int) -> Iterator[tuple[Service, list[str]]]:
    with Service(database_url, name=name) as svc:
        ids = seed_claims(svc, count)
        yield svc, ids


def p3(opts: Options) -> list[Result]:
    title = "GET /v1/claims/{claim_id} on SQLite vs /healthz"
    target = "≥ 0.40x"
    count = 5000 if opts.full else 1000
    with sqlite_database("p3") as url, _seeded(url, "p3", count) as (svc, ids):
        say(f"    seeded {len(ids):,} claims (one attribution and topic each)")
        spec = requests.get_claims(svc.key, ids)
        ceiling, service = compare(svc.url, requests.healthz(), spec, opts, svc.busy_pids())
        ratio = service.rps / ceiling.rps
        passed = ratio >= 0.40 and service.errors == 0
        measured = f"{_ratio_line(service, ceiling)}, p99 {service.p99:.0f} ms"
        if service.errors:
            measured += f", {service.errors} errors"
        notes = [f"healthz: {ceiling.brief()}", f"GET: {service.brief()}",
                 *_errors_note(svc, service), _unloaded(svc, spec)]
        if not passed and opts.profile:
            notes += _profile(svc, spec, opts, "p3")
    return [Result("P3", title, measured, target, passed, notes)]
