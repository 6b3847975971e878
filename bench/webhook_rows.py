"""P10: the write path with webhook subscribers that are slow or down (issue 24).

One `claimledger serve` (SQLite, local targets allowed) and two subscriptions to every
event: one to a receiver in this process that answers each delivery after 5 s, one to a
port nobody listens on. Load runs of `POST /v1/claims` alternate between three states of
the same server: no subscription active, only the slow one, only the dead one (PATCH
`active`), so each run's only difference is the subscriber. Deliveries run in the worker's
event loop outside requests, so the rate and p99 should not move.
"""

import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bench import requests
from bench.harness import (
    Load,
    Options,
    Result,
    Service,
    drain,
    free_port,
    load,
    median_load,
    say,
    sqlite_database,
)
from bench.http_rows import make_source

SLOW_SECONDS = 5.0
RATIO_TARGET = 0.90


@contextmanager
def slow_receiver() -> Iterator[tuple[str, list[float]]]:
    """A receiver answering every POST after SLOW_SECONDS; its URL and arrival times."""
    arrivals: list[float] = []
    stopping = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            arrivals.append(time.monotonic())
            stopping.wait(SLOW_SECONDS)
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", arrivals
    finally:
        stopping.set()
        server.shutdown()
        server.server_close()


def p10(opts: Options) -> list[Result]:
    title = "POST /v1/claims with a 5 s-slow and with a dead webhook subscriber vs none, SQLite"
    target = f"≥ {RATIO_TARGET:.2f}x of the rate with none, each; zero errors"
    env = {"CLAIMLEDGER_WEBHOOK_ALLOW_LOCAL": "true"}
    with sqlite_database("p10") as url, slow_receiver() as (slow_url, arrivals), \
            Service(url, name="p10", env=env) as svc:
        source_id = make_source(svc)
        dead_url = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
        hooks: dict[str, dict[str, Any]] = {}
        with svc.client() as client:
            for name, target_url in (("slow", slow_url), ("dead", dead_url)):
                response = client.post("/v1/webhooks", json={"url": target_url,
                                                             "active": False})
                response.raise_for_status()
                hooks[name] = response.json()

        def activate(wanted: str | None) -> None:
            with svc.client() as client:
                for name, hook in hooks.items():
                    active = name == wanted
                    if hook["active"] == active:
                        continue
                    response = client.patch(f"/v1/webhooks/{hook['id']}", json={
                        "active": active}, headers={"If-Match": f'"{hook["version"]}"'})
                    response.raise_for_status()
                    hooks[name] = response.json()

        spec = requests.post_claim(svc.key, source_id)
        pids = svc.busy_pids()
        runs: dict[str, list[Load]] = {"none": [], "slow": [], "dead": []}
        load(svc.url, spec, seconds=1, connections=opts.connections, python=opts.python_load)
        drain(pids)
        for n in range(opts.runs):
            for state in runs:
                activate(None if state == "none" else state)
                runs[state].append(load(svc.url, spec, seconds=opts.duration,
                                        connections=opts.connections,
                                        python=opts.python_load))
                drain(pids)
                say(f"    run {n + 1}: {state:>4} {runs[state][-1].brief()}")
        with svc.client() as client:
            log = {name: client.get(f"/v1/webhooks/{hook['id']}/deliveries",
                                    params={"limit": 200}).json()["items"]
                   for name, hook in hooks.items()}
    base, slow, dead = (median_load(runs[s]) for s in ("none", "slow", "dead"))
    ratios = {"slow": slow.rps / base.rps, "dead": dead.rps / base.rps}
    errors = base.errors + slow.errors + dead.errors
    passed = all(r >= RATIO_TARGET for r in ratios.values()) and errors == 0
    measured = (f"slow {ratios['slow']:.2f}x, dead {ratios['dead']:.2f}x "
                f"({slow.rps:,.0f} / {dead.rps:,.0f} / {base.rps:,.0f} req/s); p99 "
                f"{slow.p99:.0f} / {dead.p99:.0f} / {base.p99:.0f} ms; {errors} errors")
    slow_ms = [d["latency_ms"] for d in log["slow"] if d["latency_ms"] is not None]
    notes = [f"none: {base.brief()}", f"slow: {slow.brief()}", f"dead: {dead.brief()}",
             f"the slow receiver got {len(arrivals)} deliveries (one at a time, in order: "
             f"median latency {statistics.median(slow_ms) if slow_ms else 0:,.0f} ms)",
             f"the dead one: {len(log['dead'])} attempts recorded, the last: "
             f"{log['dead'][0]['error'] if log['dead'] else 'none'}"]
    return [Result("P10", title, measured, target, passed, notes)]
