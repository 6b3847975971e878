"""`python -m bench [P1 P5 …] [--full] [--claims N]`: issue 6's performance targets.

Every row starts what it needs on 127.0.0.1 (a fresh SQLite file or PostgreSQL database,
`claimledger serve`, datasette), measures the ceiling and the service in the same run,
prints the ratio against its target, and stops everything it started.
"""

import argparse
import os
import platform
import sqlite3
import subprocess
import sys
import time
import traceback

from bench import (
    concurrency_rows,
    http_rows,
    ingest_rows,
    scale_rows,
    scale_write_rows,
    size_rows,
    source_rows,
    webhook_rows,
    worker_rows,
)
from bench.harness import SERVICE_ENV, Options, Result, have_wrk, install_cleanup, say

ROWS = {
    "P1": (http_rows.p1, "POST /v1/claims on SQLite vs /healthz",
           "≥ 0.25x, p99 ≤ 100 ms, zero errors"),
    "P2": (http_rows.p2, "POST /v1/claims on PostgreSQL vs /healthz",
           "≥ 0.15x, p99 ≤ 150 ms, zero errors"),
    "P3": (http_rows.p3, "GET /v1/claims/{claim_id} vs /healthz", "≥ 0.40x"),
    "P4": (ingest_rows.p4, "POST /v1/ingest, 100,000 claims, vs the raw driver",
           "≥ 0.10x of executemany (SQLite) / of COPY (PostgreSQL)"),
    "P5": (scale_rows.p5, "search at 1,000,000 claims, API vs raw FTS",
           "p50 ≤ 2x, p99 ≤ 3x, no query over 50 ms"),
    "P6": (scale_rows.p6, "RSS of one worker at 1,000,000 claims under load", "≤ 250 MB"),
    "P7": (worker_rows.p7, "two workers against one PostgreSQL",
           "no lost write, idempotency across workers; ratio printed"),
    "P8": (scale_rows.p8, "search, API vs Datasette's FTS JSON API", "p50 ≤ 1.0x"),
    "P9": (source_rows.p9, "POST /v1/ingest, batches naming 100,000 new sources, vs the raw "
           "driver", "batch ≤ 10 s; ratio to executemany / COPY printed"),
    "P10": (webhook_rows.p10, "POST /v1/claims with a 5 s-slow and with a dead webhook "
            "subscriber vs none, SQLite", "≥ 0.90x of the rate with none, each; zero errors"),
    "P11": (size_rows.p11, "bytes a claim on disk, written through ingest, by table",
            "≤ 1.5 KB a claim on SQLite; PostgreSQL's printed"),
    "P12": (concurrency_rows.p12, "reads at 1,000,000 claims, 64 connections vs one",
            "≥ 1.0x of one connection per class; ≥ Datasette's lean form at 64 (SQLite)"),
    "P13": (scale_write_rows.p13, "POST /v1/claims at 1,000,000 claims vs on the demo ledger",
            "≥ 0.8x of the demo ledger's rate, p99 ≤ 150 ms, zero errors"),
}


def parse(argv: list[str] | None) -> tuple[list[str], Options]:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rows", nargs="*", metavar="ROW",
                        help=f"rows to run ({', '.join(ROWS)}); default: all")
    parser.add_argument("--full", action="store_true",
                        help="longer runs: 20 s load runs, 3 ingest runs, 10 search passes")
    parser.add_argument("--claims", type=int, default=1_000_000,
                        help="ledger size for P5, P6, P8, P11, P12 and P13 (default 1,000,000)")
    parser.add_argument("--ingest-claims", type=int, default=100_000,
                        help="claims per P4 run (default 100,000)")
    parser.add_argument("--ingest-budget", type=float, default=60.0,
                        help="stop P4's API ingest after this many seconds per database "
                             "and rate what was sent (default 60; --full sends everything)")
    parser.add_argument("--duration", type=float, help="seconds per load run (default 5)")
    parser.add_argument("--runs", type=int, help="load runs per figure (default 3, median)")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--no-profile", action="store_true",
                        help="skip the py-spy profile taken when a row fails")
    parser.add_argument("--python-load", action="store_true",
                        help="use the Python load generator even if wrk is installed")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting for every server the rows start, as in app/config.py "
                             "(e.g. --set writer_process=false: a fast path switched off)")
    args = parser.parse_args(argv)
    for pair in args.set:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            parser.error(f"--set takes NAME=VALUE, not {pair!r}")
        SERVICE_ENV["CLAIMLEDGER_" + name.upper()] = value
    rows = [r.upper() for r in args.rows] or list(ROWS)
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        parser.error(f"unknown rows {unknown}; choose from {', '.join(ROWS)}")
    opts = Options(full=args.full, claims=args.claims, ingest_claims=args.ingest_claims,
                   ingest_budget=args.ingest_budget,
                   duration=args.duration or (20.0 if args.full else 5.0),
                   runs=args.runs or 3, connections=args.connections,
                   profile=not args.no_profile, python_load=args.python_load)
    return rows, opts


def _versions() -> str:
    wrk = "wrk" if have_wrk() else "Python asyncio+httpx generator (wrk not installed)"
    try:
        pg = subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-Atc",
                             "show server_version"], capture_output=True, text=True,
                            timeout=10).stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        pg = "?"
    return (f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
            f"PostgreSQL {pg}, {os.cpu_count()} cores, load from {wrk}")


def _load() -> str:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def table(results: list[Result]) -> str:
    head = ["row", "what", "measured", "target", "result", "rerun"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in results:
        cells = [r.row, r.title, r.measured, r.target, f"**{r.verdict}**",
                 f"`python -m bench {r.row.split('-')[0]}`"]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    rows, opts = parse(argv)
    install_cleanup()
    began = time.monotonic()
    say(f"Claimledger benchmarks: {', '.join(rows)} — {_versions()}")
    say(f"{opts.runs} x {opts.duration:.0f} s load runs, {opts.connections} connections; "
        f"{opts.claims:,}-claim ledger; {opts.ingest_claims:,} claims per ingest run; "
        f"{_load()}")
    say("servers' settings: " + ", ".join(f"{k}={v}" for k, v in SERVICE_ENV.items()))
    if opts.python_load or not have_wrk():
        say("warning: the Python load generator saturates its own core near 500-1,000 req/s, "
            "so ratios to /healthz are compressed toward 1; install wrk for real figures")
    results: list[Result] = []
    for row in rows:
        run, title, target = ROWS[row]
        say(f"\n== {row}: {title} (target {target}) — {_load()}")
        started = time.monotonic()
        try:
            got = run(opts)
        except KeyboardInterrupt:
            say("interrupted")
            break
        except Exception as exc:  # one broken row must not hide the others
            traceback.print_exc()
            got = [Result(row, title, f"not measured: {type(exc).__name__}: {exc}"[:300],
                          target, None)]
        for result in got:
            say(f"  {result.row}: {result.measured} — target {result.target} — "
                f"{result.verdict}")
            for note in result.notes:
                say(f"    {note}")
        say(f"  ({time.monotonic() - started:.0f} s)")
        results += got
    say(f"\n== Summary ({(time.monotonic() - began) / 60:.1f} min, {_load()})\n")
    say(table(results))
    return 0 if results and all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
