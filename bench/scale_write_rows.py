"""P13: writes keep their speed as the ledger grows (1,000,000 claims by default; --claims N).

Two servers run side by side on one machine: one on the demo ledger (`claimledger demo`,
written by the app itself) and one on the large ledger (bench/ledger.py, with every
claim's band keys and its `claim.created` event, the rows a new claim is inserted among).
Each is loaded with `POST /v1/claims` (bench/requests.py `post_claim`) at 64 connections,
with its own `/healthz` as ceiling. Runs alternate between the two servers (ceiling, then
POST, on each), so a shared machine's drift falls on both alike.

The row's figure is the large ledger's POST rate over the demo ledger's, both measured in
the same minutes, and the large ledger's p99. Beside it, each rate over its own server's
/healthz (the issue's measure: 0.094x against 0.187x of /healthz) and their ratio: not the
verdict, because the two servers' /healthz, the same code, differed by up to 1.5x from one
run to the next on a shared machine, which that ratio then carries. The demo ledger grows
by the claims each run writes (some thousands): still a small ledger next to the large one.
"""

import contextlib
from collections.abc import Iterator

from bench import ledger, requests
from bench.harness import (
    BIN,
    Load,
    Options,
    Result,
    Service,
    claimledger_env,
    drain,
    load,
    median_load,
    pg_database,
    profiled,
    run,
    say,
    sqlite_database,
)
from bench.scale_rows import working_copy

RATIO_TARGET = 0.8
P99_TARGET = 150.0


def demo_ledger(url: str) -> None:
    """The demo ledger, loaded by the app (`claimledger demo`, which migrates first)."""
    run([str(BIN / "claimledger"), "demo"], env=claimledger_env(url))


def a_source(svc: Service) -> str:
    with svc.client() as client:
        response = client.get("/v1/sources", params={"limit": 1})
        response.raise_for_status()
        return response.json()["items"][0]["id"]


class Side:
    """One server and what was measured on it."""

    def __init__(self, name: str, svc: Service):
        self.name, self.svc = name, svc
        self.spec = requests.post_claim(svc.key, a_source(svc), name=f"post-{name}")
        self.ceilings: list[Load] = []
        self.posts: list[Load] = []

    @property
    def ceiling(self) -> Load:
        return median_load(self.ceilings)

    @property
    def post(self) -> Load:
        return median_load(self.posts)

    @property
    def ratio(self) -> float:
        return self.post.rps / self.ceiling.rps

    def run(self, opts: Options, *, warm_up: bool = False) -> None:
        seconds = 1 if warm_up else opts.duration
        pids = self.svc.busy_pids()
        for spec, into in ((requests.healthz(), self.ceilings), (self.spec, self.posts)):
            got = load(self.svc.url, spec, seconds=seconds, connections=opts.connections,
                       python=opts.python_load)
            drain(pids)
            if not warm_up:
                into.append(got)
                say(f"      {self.name} {spec.name}: {got.brief()}")


def _measure(small: Side, large: Side, opts: Options) -> None:
    for side in (small, large):
        side.run(opts, warm_up=True)
    for n in range(opts.runs):
        say(f"    run {n + 1}:")
        for side in (small, large) if n % 2 == 0 else (large, small):
            side.run(opts)


def _profile(side: Side, opts: Options, name: str) -> list[str]:
    def during() -> None:
        load(side.svc.url, side.spec, seconds=opts.duration, connections=opts.connections,
             python=opts.python_load)
        drain(side.svc.busy_pids())

    return [f"profile of POST on the {side.name} ledger:",
            *profiled(side.svc.pid, opts.duration, name, during)]


def _row(row: str, database: str, small: Side, large: Side, claims: int,
         opts: Options) -> Result:
    _measure(small, large, opts)
    relative = large.ratio / small.ratio
    plain = large.post.rps / small.post.rps
    p99 = large.post.p99
    errors = small.post.errors + large.post.errors
    passed = plain >= RATIO_TARGET and p99 <= P99_TARGET and not errors
    measured = (f"{plain:.2f}x of the demo ledger's rate ({large.post.rps:,.0f} / "
                f"{small.post.rps:,.0f} req/s; each over its /healthz {large.ratio:.3f}x / "
                f"{small.ratio:.3f}x = {relative:.2f}x), p99 {p99:.0f} ms at {claims:,}"
                + (f", {errors} errors" if errors else ""))
    notes = [f"{side.name}: healthz {side.ceiling.brief()}; POST {side.post.brief()}"
             for side in (small, large)]
    if not passed and opts.profile:
        for side in (small, large):
            notes += _profile(side, opts, f"{row.lower()}-{side.name}")
    return Result(row, f"POST /v1/claims at {claims:,} claims vs the demo ledger, "
                  f"{database}", measured,
                  f"≥ {RATIO_TARGET}x of the demo ledger's rate, "
                  f"p99 ≤ {P99_TARGET:.0f} ms, zero errors", passed, notes)


@contextlib.contextmanager
def _sides(small_url: str, large_url: str, tag: str) -> Iterator[tuple[Side, Side]]:
    demo_ledger(small_url)
    with Service(small_url, name=f"{tag}-demo") as small_svc, \
            Service(large_url, name=f"{tag}-large") as large_svc:
        yield Side("demo", small_svc), Side("large", large_svc)


def p13(opts: Options) -> list[Result]:
    path, _ = ledger.sqlite_ledger(opts.claims)
    results = []
    with sqlite_database("p13-demo") as small, working_copy(path, "p13") as large, \
            _sides(small, large, "p13") as (a, b):
        results.append(_row("P13-sqlite", "SQLite", a, b, opts.claims, opts))
    with pg_database("p13demo") as small, ledger.pg_ledger(path, "p13") as large, \
            _sides(small, large, "p13-pg") as (a, b):
        results.append(_row("P13-pg", "PostgreSQL", a, b, opts.claims, opts))
    return results
