"""P12: reads at scale under concurrency (1,000,000 claims by default; --claims N).

For each class of read (a rare, a medium and a common search term, and GET one claim) the
same server is loaded with one connection and then with `--connections` (64): throughput
must not fall as connections grow. On SQLite, Datasette's lean JSON form (`_shape=array`,
unranked, no count) at 64 connections serves the same texts as a second ceiling. The same
reads at 64 connections with `--workers 2` are printed beside the row: what a second process
buys on this machine.
"""

import contextlib
import random
import urllib.parse
from collections.abc import Iterator

from bench import ledger
from bench.harness import Load, Options, Result, Service, Spec, load, lua_list, median_load, say
from bench.requests import get_claims
from bench.scale_rows import LIMIT, datasette, working_copy

CLASSES = ("rare", "medium", "common")


def _search_spec(key: str, queries: list[str], name: str) -> Spec:
    paths = [f"/v1/claims?limit={LIMIT}&q={urllib.parse.quote(q)}" for q in queries]
    return _paths_spec(paths, name, {"Authorization": f"Bearer {key}"})


def _paths_spec(paths: list[str], name: str, headers: dict[str, str]) -> Spec:
    lua = f"""
math.randomseed(os.time())
local paths = {lua_list(paths)}
request = function()
  return wrk.format("GET", paths[math.random(#paths)])
end
"""
    return Spec(name=name, path=paths[0], lua=lua, headers=headers,
                make=lambda: ("GET", random.choice(paths), None))


def _measure(url: str, spec: Spec, opts: Options, connections: int) -> Load:
    load(url, spec, seconds=1, connections=connections, python=opts.python_load)  # warm-up
    runs = [load(url, spec, seconds=opts.duration, connections=connections,
                 python=opts.python_load) for _ in range(opts.runs)]
    return median_load(runs)


def _specs(svc: Service, meta: dict, ids: list[str]) -> dict[str, Spec]:
    specs = {kind: _search_spec(svc.key, [q["q"] for q in meta["queries"] if q["kind"] == kind],
                                f"search-{kind}") for kind in CLASSES}
    specs["get"] = get_claims(svc.key, ids, name="get-claim")
    return specs


def _row(row: str, database: str, svc: Service, specs: dict[str, Spec], opts: Options,
         lean: dict[str, Load]) -> Result:
    lines, passed = [], True
    worst = None
    for kind, spec in specs.items():
        one = _measure(svc.url, spec, opts, 1)
        many = _measure(svc.url, spec, opts, opts.connections)
        ratio = many.rps / one.rps if one.rps else 0.0
        ok = ratio >= 1.0 and not many.errors
        line = (f"{kind}: {opts.connections} conn {many.brief()}; 1 conn {one.brief()}; "
                f"{ratio:.2f}x")
        if kind in lean:
            ds = lean[kind]
            ok = ok and many.rps >= ds.rps
            versus = f"{many.rps / ds.rps:.2f}x" if ds.rps else "it answered none in time"
            line += f"; Datasette lean at {opts.connections}: {ds.rps:,.0f} req/s ({versus})"
        say(f"    {line}")
        lines.append(line)
        passed = passed and ok
        worst = ratio if worst is None else min(worst, ratio)
    measured = f"worst {opts.connections}-connection / 1-connection ratio {worst:.2f}x"
    target = ("≥ 1.0x of 1 connection for every class" +
              (f", ≥ Datasette lean at {opts.connections}" if lean else ""))
    return Result(row, f"reads at {opts.claims:,} claims on {database}, 1 vs "
                  f"{opts.connections} connections", measured, target, passed, lines)


def _lean(ds_url: str, table: str, meta: dict, opts: Options) -> dict[str, Load]:
    out = {}
    for kind in CLASSES:
        paths = [f"{table}?_search={urllib.parse.quote(q['q'])}&_size={LIMIT}&_shape=array"
                 for q in meta["queries"] if q["kind"] == kind]
        out[kind] = _measure(ds_url, _paths_spec(paths, f"datasette-{kind}", {}), opts,
                             opts.connections)
        say(f"    Datasette lean {kind} at {opts.connections}: {out[kind].brief()}")
    return out


@contextlib.contextmanager
def _lean_ceiling(path, meta, opts: Options) -> Iterator[dict[str, Load]]:
    ds_path = ledger.datasette_db(path, meta)
    with datasette(ds_path) as ds_url:
        yield _lean(ds_url, f"/{ds_path.stem}/claims.json", meta, opts)


def _two_workers(url: str, name: str, meta: dict, ids: list[str], opts: Options,
                 result: Result) -> None:
    """What `--workers 2` gives at 64 connections, beside the row (not a target)."""
    with Service(url, name=name, workers=2) as svc:
        for kind, spec in _specs(svc, meta, ids).items():
            many = _measure(svc.url, spec, opts, opts.connections)
            line = f"{kind} with --workers 2: {opts.connections} conn {many.brief()}"
            say(f"    {line}")
            result.notes.append(line)


def p12(opts: Options) -> list[Result]:
    path, meta = ledger.sqlite_ledger(opts.claims)
    ids = ledger.claim_ids(path, 2000)
    results = []
    with _lean_ceiling(path, meta, opts) as lean, working_copy(path, "p12") as url:
        with Service(url, name="p12") as svc:
            results.append(_row("P12-sqlite", "SQLite", svc, _specs(svc, meta, ids), opts,
                                lean))
        _two_workers(url, "p12-2", meta, ids, opts, results[-1])
    with ledger.pg_ledger(path, "p12") as url:
        with Service(url, name="p12-pg") as svc:
            results.append(_row("P12-pg", "PostgreSQL", svc, _specs(svc, meta, ids), opts, {}))
        _two_workers(url, "p12-pg-2", meta, ids, opts, results[-1])
    return results
