"""What every benchmark shares: options, results, processes on 127.0.0.1, databases, load.

Every process a benchmark starts is registered here and stopped by its pid (and its own
process group) when the benchmark ends, when the run is interrupted, or — through
PR_SET_PDEATHSIG — when this process dies.
"""

import atexit
import contextlib
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
BIN = Path(sys.executable).parent
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 25.0
# The service's per-key rate limit (6,000/min by default) would turn a load test into a
# test of the limiter; every benchmark raises it for its own key.
SERVICE_ENV = {"CLAIMLEDGER_RATE_LIMIT_PER_MINUTE": "1000000000"}


@dataclass
class Options:
    full: bool = False
    claims: int = 1_000_000
    duration: float = 5.0
    runs: int = 3
    connections: int = 64
    ingest_claims: int = 100_000
    ingest_budget: float = 60.0  # seconds of API ingest per database (not with --full)
    profile: bool = False
    python_load: bool = False  # force the Python generator even when wrk is installed

    @property
    def search_passes(self) -> int:
        return 10 if self.full else 3


@dataclass
class Result:
    row: str
    title: str
    measured: str
    target: str
    passed: bool | None  # None: could not be measured
    notes: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return {True: "PASS", False: "FAIL", None: "ERROR"}[self.passed]


def say(*parts: object) -> None:
    print(*parts, flush=True)


# --- processes ----------------------------------------------------------------

_LIVE: dict[int, "Process"] = {}


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the benchmark process dies, even by SIGKILL."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


class Process:
    """A child in a process group of its own, stopped by pid (SIGTERM, then SIGKILL)."""

    def __init__(self, argv: list[str], *, env: dict[str, str] | None = None,
                 log: Path | None = None, cwd: Path = ROOT):
        self.argv, self.env, self.log, self.cwd = argv, env, log, cwd
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def start(self) -> "Process":
        out = self.log.open("ab") if self.log else subprocess.DEVNULL
        try:
            self.popen = subprocess.Popen(
                self.argv, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent)
        finally:
            if self.log:
                out.close()  # type: ignore[union-attr]
        _LIVE[self.pid] = self
        return self

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self) -> None:
        if self.popen is None:
            return
        pid = self.pid
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            try:
                self.popen.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                self.popen.wait(10)
        # Workers a supervisor spawned share its process group; none may outlive it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        _LIVE.pop(pid, None)

    def __enter__(self) -> "Process":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def stop_all() -> None:
    for process in list(_LIVE.values()):
        process.stop()


def _on_signal(signum: int, _frame: object) -> None:
    stop_all()
    raise KeyboardInterrupt(f"signal {signum}")


def install_cleanup() -> None:
    atexit.register(stop_all)
    signal.signal(signal.SIGTERM, _on_signal)


def run(argv: list[str], *, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    """Run a command to completion; its stdout, or an error with its output."""
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])}… failed ({done.returncode}):\n"
                           f"{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return done.stdout


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, process: Process, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive():
            raise RuntimeError(f"{process.argv[0]} exited early; see {process.log}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s; see {process.log}")


# --- /proc --------------------------------------------------------------------


def rss_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in KiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(value.split()[0])
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (0 once it has gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def writer_processes(pid: int) -> list[int]:
    """The writer processes (app/fastpath/writer.py, named PROCESS_NAME) under `pid`: its own
    (one worker) or its workers' (several)."""
    from app.fastpath.writer import PROCESS_NAME
    found = []
    for child in children(pid):
        with contextlib.suppress(OSError):
            if Path(f"/proc/{child}/comm").read_text().strip() == PROCESS_NAME:
                found.append(child)
                continue
        found += writer_processes(child)
    return found


def children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(stat.parent.name))
    return sorted(out)


class CpuTracker:
    """CPU seconds each worker of a service used while this is open, sampled every 250 ms
    (so workers that uvicorn replaces midway are counted too, up to their last sample)."""

    def __init__(self, service: "Service"):
        self.service = service
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        for pid in self.service.worker_pids():
            used = cpu_seconds(pid)
            self.first.setdefault(pid, used)
            if used:
                self.last[pid] = used

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            self._sample()

    def __enter__(self) -> "CpuTracker":
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def per_worker(self) -> dict[int, float]:
        return {pid: round(self.last.get(pid, start) - start, 1)
                for pid, start in self.first.items()}


# --- databases ----------------------------------------------------------------


@contextlib.contextmanager
def sqlite_database(name: str) -> Iterator[str]:
    """A fresh SQLite file under bench/out/, removed afterwards."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.db"
    remove_sqlite(path)
    try:
        yield f"sqlite:///{path}"
    finally:
        remove_sqlite(path)


def remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal", "-writegate"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def copy_sqlite(source: Path, target: Path) -> None:
    remove_sqlite(target)
    shutil.copyfile(source, target)


@contextlib.contextmanager
def pg_database(tag: str) -> Iterator[str]:
    """A fresh PostgreSQL database (created here, dropped afterwards); yields its URL."""
    import psycopg

    name = f"claimledger_bench_{tag}_{os.getpid()}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_URL.format(name=name)
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def driver_url(url: str) -> str:
    """The SQLAlchemy URL as plain libpq / file path for the raw drivers."""
    if url.startswith("sqlite:///"):
        return url.removeprefix("sqlite:///")
    return url.replace("postgresql+psycopg://", "postgresql://")


# --- the service --------------------------------------------------------------


def claimledger_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAIMLEDGER_")}
    env.update(SERVICE_ENV)
    env["CLAIMLEDGER_DATABASE_URL"] = database_url
    env.update(extra)
    return env


def migrate(database_url: str) -> None:
    """`claimledger migrate`: the schema at head, nothing in it."""
    run([str(BIN / "claimledger"), "migrate"], env=claimledger_env(database_url))


def admin_key(database_url: str, name: str = "bench-admin") -> str:
    """Migrate, then mint an admin key with the CLI (`claimledger keys create --quiet`)."""
    env = claimledger_env(database_url)
    migrate(database_url)
    out = run([str(BIN / "claimledger"), "keys", "create", "--name", name, "--role", "admin",
               "--replace", "--quiet"], env=env)
    return out.strip().splitlines()[-1]


class Service:
    """`claimledger serve` on 127.0.0.1 and a free port, with its own database and key."""

    def __init__(self, database_url: str, *, name: str, workers: int = 1,
                 env: dict[str, str] | None = None):
        self.database_url, self.name, self.workers = database_url, name, workers
        self.extra_env = env or {}
        self.process: Process | None = None
        self.key = ""
        self.url = ""

    def start(self) -> "Service":
        OUT.mkdir(parents=True, exist_ok=True)
        self.key = admin_key(self.database_url)
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        log = OUT / f"{self.name}.log"
        log.unlink(missing_ok=True)
        self.process = Process(
            [str(BIN / "claimledger"), "serve", "--host", "127.0.0.1", "--port", str(port),
             "--workers", str(self.workers), "--no-migrate"],
            env=claimledger_env(self.database_url, **self.extra_env), log=log).start()
        wait_http(self.url + "/healthz", self.process)
        if self.workers > 1:
            deadline = time.monotonic() + START_TIMEOUT
            while len(self.worker_pids()) < self.workers and time.monotonic() < deadline:
                time.sleep(0.2)
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def busy_pids(self) -> list[int]:
        """Every process that does a request's work: the workers and their writers."""
        return self.worker_pids() + writer_processes(self.pid)

    def worker_pids(self) -> list[int]:
        """The processes that serve requests: the server itself, or its workers."""
        if self.workers == 1:
            return [self.pid]
        return [p for p in children(self.pid) if "multiprocessing" not in _cmdline(p)
                or "spawn_main" in _cmdline(p)]

    def worker_restarts(self) -> list[str]:
        """uvicorn's lines about workers it found dead (or killed as hung) and replaced."""
        log = OUT / f"{self.name}.log"
        if not log.exists():
            return []
        return [json.loads(line).get("message", line) for line in log.read_text().splitlines()
                if '"uvicorn.error"' in line and "died" in line]

    def access_summary(self) -> list[str]:
        """Requests by route and status from the service's JSON access log, with their
        server-side latency (median / max), one line each."""
        log = OUT / f"{self.name}.log"
        seen: dict[str, list[float]] = {}
        for line in log.read_text().splitlines() if log.exists() else []:
            if '"claimledger.access"' not in line:
                continue
            with contextlib.suppress(ValueError, KeyError, TypeError):
                entry = json.loads(line)
                key = f"{entry['method']} {entry['route']} {entry['status']}"
                seen.setdefault(key, []).append(float(entry["ms"]))
        if not seen:
            return ["(no access log lines found)"]
        return [f"{key}: {len(ms):,} requests, median {statistics.median(ms):,.0f} ms, "
                f"max {max(ms):,.0f} ms" for key, ms in sorted(seen.items())]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def client(self, timeout: float = 60) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=timeout)

    def status_counts(self) -> dict[str, int]:
        """Responses by route and status so far, from /metrics (every worker's, summed)."""
        text = httpx.get(self.url + "/metrics", headers=self.headers, timeout=10).text
        out: dict[str, int] = {}
        pattern = re.compile(r'^claimledger_http_requests_total\{(.*)\} ([0-9.e+]+)$')
        for line in text.splitlines():
            match = pattern.match(line)
            if match:
                labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
                label = f"{labels.get('method')} {labels.get('route')} {labels.get('status')}"
                out[label] = int(float(match.group(2)))
        return out

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def __enter__(self) -> "Service":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _cmdline(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    return ""


# --- load ---------------------------------------------------------------------


@dataclass
class Load:
    """One load run's outcome (latencies in milliseconds)."""

    rps: float
    p50: float
    p99: float
    requests: int
    non2xx: int = 0
    socket_errors: int = 0
    seconds: float = 0.0

    @property
    def errors(self) -> int:
        return self.non2xx + self.socket_errors

    def brief(self) -> str:
        errors = f", {self.non2xx} non-2xx, {self.socket_errors} socket errors" \
            if self.errors else ""
        return (f"{self.rps:,.0f} req/s, p50 {self.p50:.1f} ms, p99 {self.p99:.1f} ms "
                f"({self.requests:,} requests{errors})")


def median_load(runs: list[Load]) -> Load:
    """The median of each figure over the runs; errors are summed (zero means zero in each)."""
    return Load(rps=statistics.median(r.rps for r in runs),
                p50=statistics.median(r.p50 for r in runs),
                p99=statistics.median(r.p99 for r in runs),
                requests=sum(r.requests for r in runs),
                non2xx=sum(r.non2xx for r in runs),
                socket_errors=sum(r.socket_errors for r in runs),
                seconds=sum(r.seconds for r in runs))


@dataclass
class Spec:
    """One kind of request to load a server with: a wrk Lua script and a Python equivalent."""

    name: str
    path: str
    lua: str = ""  # empty: a plain GET of `path`
    headers: dict[str, str] = field(default_factory=dict)
    # For the Python generator: returns (method, path, body or None).
    make: Callable[[], tuple[str, str, bytes | None]] | None = None


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def load(base_url: str, spec: Spec, *, seconds: float, connections: int,
         python: bool = False) -> Load:
    if have_wrk() and not python:
        return wrk(base_url, spec, seconds=seconds, connections=connections)
    return python_load(base_url, spec, seconds=seconds, connections=connections)


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(value: str) -> float:
    match = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", value.strip())
    if not match:
        raise ValueError(f"not a wrk duration: {value!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def wrk(base_url: str, spec: Spec, *, seconds: float, connections: int) -> Load:
    """One `wrk -t1` run with --latency; its request rate, p50/p99 and errors."""
    OUT.mkdir(parents=True, exist_ok=True)
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
            "--timeout", "10s"]
    for name, value in spec.headers.items():
        argv += ["-H", f"{name}: {value}"]
    if spec.lua:
        script = OUT / f"{spec.name}.lua"
        script.write_text(spec.lua)
        argv += ["-s", str(script)]
    argv.append(base_url + spec.path)
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60,
                         check=False)
    text = out.stdout
    if out.returncode != 0 or "Requests/sec" not in text:
        raise RuntimeError(f"wrk failed:\n{text}\n{out.stderr}")
    dist = dict(re.findall(r"^ *(50|75|90|99)%[ \t]+(\S+)[ \t]*$", text, re.M))
    if "99" not in dist:
        raise RuntimeError(f"no latency distribution in wrk's output:\n{text}")
    requests, took = re.search(r"(\d+) requests in ([0-9.]+\w+),", text).groups()
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                     text)
    return Load(rps=float(re.search(r"Requests/sec:\s+([0-9.]+)", text).group(1)),
                p50=_ms(dist["50"]), p99=_ms(dist["99"]), requests=int(requests),
                non2xx=int(non2xx.group(1)) if non2xx else 0,
                socket_errors=sum(map(int, sock.groups())) if sock else 0,
                seconds=_ms(took) / 1000)


def python_load(base_url: str, spec: Spec, *, seconds: float, connections: int) -> Load:
    """A bounded asyncio + httpx generator: `connections` keep-alive clients for `seconds`.

    Used when wrk is not installed. httpx tops out at a few thousand requests a second
    on one core, so ratios to a fast ceiling are understated with it.
    """
    import asyncio

    async def main() -> Load:
        latencies: list[float] = []
        errors = [0, 0]
        # One client (one keep-alive connection) per worker, all made before the clock
        # starts: a pool shared by 64 tasks spends milliseconds a request finding a free
        # connection, and making a client costs milliseconds too.
        clients = [httpx.AsyncClient(base_url=base_url, timeout=10, headers=spec.headers,
                                     limits=httpx.Limits(max_connections=1))
                   for _ in range(connections)]
        deadline = time.perf_counter() + seconds

        async def worker(client: httpx.AsyncClient) -> None:
            async with client:
                while time.perf_counter() < deadline:
                    method, path, body = spec.make() if spec.make else ("GET", spec.path, None)
                    start = time.perf_counter()
                    try:
                        response = await client.request(
                            method, path, content=body,
                            headers={"Content-Type": "application/json"} if body else None)
                        if response.status_code >= 400:
                            errors[0] += 1
                    except httpx.HTTPError:
                        errors[1] += 1
                    latencies.append((time.perf_counter() - start) * 1000)

        began = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in clients))
        took = time.perf_counter() - began
        latencies.sort()
        pick = (lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]) \
            if latencies else (lambda q: 0.0)
        return Load(rps=len(latencies) / took, p50=pick(0.5), p99=pick(0.99),
                    requests=len(latencies), non2xx=errors[0], socket_errors=errors[1],
                    seconds=took)

    return asyncio.run(main())


def drain(pids: list[int], timeout: float = 120.0) -> float:
    """Wait until the processes are idle (requests still queued when the load generator
    stopped have finished), so they do not eat into the next run; seconds waited."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        before = sum(cpu_seconds(p) for p in pids)
        time.sleep(0.3)
        if sum(cpu_seconds(p) for p in pids) - before < 0.3 * 0.1:
            break
    return time.monotonic() - began


def one_at_a_time(base_url: str, spec: Spec, count: int = 40) -> list[float]:
    """Milliseconds per request with one client sending one request at a time (no
    queueing): the service time the load figures divide up."""
    out = []
    with httpx.Client(base_url=base_url, headers=spec.headers, timeout=60) as client:
        for _ in range(count + 3):
            method, path, body = spec.make() if spec.make else ("GET", spec.path, None)
            start = time.perf_counter()
            response = client.request(method, path, content=body, headers={
                "Content-Type": "application/json"} if body else None)
            out.append((time.perf_counter() - start) * 1000)
            response.raise_for_status()
    return out[3:]


def compare(base_url: str, ceiling: Spec, service: Spec, opts: Options, pids: list[int],
            on_run: Callable[[int], None] | None = None) -> tuple[Load, Load]:
    """Ceiling and service runs interleaved (after a short warm-up of each), each run
    starting on an idle server; the medians."""
    python = opts.python_load
    for spec in (ceiling, service):
        load(base_url, spec, seconds=1, connections=opts.connections, python=python)
        drain(pids)
    ceilings, services = [], []
    for n in range(opts.runs):
        ceilings.append(load(base_url, ceiling, seconds=opts.duration,
                             connections=opts.connections, python=python))
        drain(pids)
        if on_run is not None:
            on_run(n)
        services.append(load(base_url, service, seconds=opts.duration,
                             connections=opts.connections, python=python))
        drain(pids)
        say(f"    run {n + 1}: {ceiling.name} {ceilings[-1].brief()}")
        say(f"           {service.name} {services[-1].brief()}")
    return median_load(ceilings), median_load(services)


def lua_string(value: str) -> str:
    # A JSON string literal is a valid Lua one when non-ASCII stays raw UTF-8 (Lua 5.1
    # has no \u escapes).
    return json.dumps(value, ensure_ascii=False)


def lua_list(values: list[str]) -> str:
    return "{" + ",".join(lua_string(v) for v in values) + "}"


def pct(values: list[float], q: float) -> float:
    """The q-quantile (nearest rank) of the values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


# --- where the time goes ------------------------------------------------------

_LAYERS = [  # (what the frame's file path starts with, layer)
    ("sqlite3/", "driver: SQL execution (sqlite3 / psycopg)"),
    ("psycopg/", "driver: SQL execution (sqlite3 / psycopg)"),
    ("sqlmodel/", "SQLAlchemy / SQLModel (ORM, Core, compiling, pooling)"),
    ("sqlalchemy/", "SQLAlchemy / SQLModel (ORM, Core, compiling, pooling)"),
    ("<sqlalchemy", "SQLAlchemy / SQLModel (ORM, Core, compiling, pooling)"),
    ("pydantic", "pydantic (validation, serialisation)"),
    ("fastapi/", "FastAPI / Starlette (routing, dependencies, responses)"),
    ("starlette/", "FastAPI / Starlette (routing, dependencies, responses)"),
    ("sse_starlette/", "FastAPI / Starlette (routing, dependencies, responses)"),
    ("uvicorn/", "uvicorn / HTTP"),
    ("httptools/", "uvicorn / HTTP"),
    ("anyio/", "threads and event loop (anyio, asyncio, threading)"),
    ("asyncio/", "threads and event loop (anyio, asyncio, threading)"),
    ("threading.py", "threads and event loop (anyio, asyncio, threading)"),
    ("concurrent/", "threads and event loop (anyio, asyncio, threading)"),
    ("json/", "json"),
    ("logging/", "logging"),
    ("prometheus_client/", "Prometheus metrics"),
    ("app/", "Claimledger code itself (app/)"),
]
# SQLAlchemy's calls into the driver (cursor.execute and friends): time under them is the
# database's (or the driver's) own.
_DRIVER_CALLS = frozenset(("do_execute", "do_executemany", "do_execute_no_params", "do_commit",
                           "do_rollback", "do_begin"))


def _is_driver(frame: str) -> bool:
    return frame.partition(" (")[0].rsplit(".", 1)[-1] in _DRIVER_CALLS


def _path(frame: str) -> str:
    return frame.rpartition(" (")[2].rsplit(":", 1)[0]


def _layer(frame: str) -> str:
    if _is_driver(frame):
        return "driver: SQL execution (sqlite3 / psycopg)"
    path = _path(frame)
    for prefix, layer in _LAYERS:
        if path.startswith(prefix) or f"/{prefix}" in path:
            return layer
    return "other"


def _function(frame: str) -> str:
    """`create_claim (app/domain/claims.py:123)` -> `app/domain/claims.py:create_claim`."""
    return f"{_path(frame)}:{frame.partition(' (')[0]}"


def summarise_profile(raw: Path, *, top: int = 14) -> list[str]:
    """Leaf samples by layer, and the app functions with the most inclusive time."""
    layers: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        layer = _layer(frames[-1])
        if any(_is_driver(f) for f in frames):
            layer = "driver: SQL execution (sqlite3 / psycopg)"
        layers[layer] = layers.get(layer, 0) + n
        for fn in {_function(f) for f in frames if _path(f).startswith("app/")}:
            inclusive[fn] = inclusive.get(fn, 0) + n
    if not total:
        return ["(no samples)"]
    out = [f"{total:,} samples of busy threads; by the innermost known layer:"]
    out += [f"  {n / total:6.1%}  {layer}" for layer, n in
            sorted(layers.items(), key=lambda kv: -kv[1])]
    out.append("app functions by inclusive share of busy samples:")
    out += [f"  {n / total:6.1%}  {fn}" for fn, n in
            sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]]
    return out


def py_spy() -> str | None:
    path = BIN / "py-spy"
    return str(path) if path.exists() else shutil.which("py-spy")


class Profile:
    """py-spy sampling one process for a while, started now or after a delay.

    The thread that starts py-spy lives until py-spy exits: a child started with
    PR_SET_PDEATHSIG is signalled when the *thread* that forked it ends.
    """

    def __init__(self, pid: int, seconds: float, name: str, *, delay: float = 0.0):
        self.pid, self.seconds, self.name, self.delay = pid, seconds, name, delay
        self.raw = OUT / f"profile-{name}.txt"
        self.raw.unlink(missing_ok=True)
        self.spy: Process | None = None
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        tool = py_spy()
        if tool is None or self._cancel.wait(self.delay):
            return
        self.spy = Process([tool, "record", "-p", str(self.pid), "-d",
                            str(round(self.seconds)), "-r", "200", "--nonblocking",
                            "-f", "raw", "-o", str(self.raw)],
                           log=OUT / f"profile-{self.name}.log").start()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.spy.popen.wait(self.seconds + 30)  # type: ignore[union-attr]

    def start(self) -> "Profile":
        self._thread.start()
        return self

    def finish(self) -> list[str]:
        """Wait for the sampling to end (it is skipped if it has not begun); the summary."""
        self._cancel.set()
        self._thread.join()
        if self.spy is not None:
            self.spy.stop()
        if py_spy() is None:
            return ["(py-spy is not installed: pip install py-spy)"]
        if not self.raw.exists():
            return ["(py-spy wrote nothing: the run ended before sampling began, or see "
                    f"{OUT / f'profile-{self.name}.log'})"]
        return [f"profile ({self.raw.relative_to(ROOT)}):", *summarise_profile(self.raw)]


def profiled(pid: int, seconds: float, name: str, during: Callable[[], object]) -> list[str]:
    """Sample `pid` (and its writer process, if it has one) with py-spy while `during()`
    runs; a summary of where the time went in each."""
    profiles = [Profile(pid, seconds + 1, name).start()]
    profiles += [Profile(writer, seconds + 1, f"{name}-writer").start()
                 for writer in writer_processes(pid)[:1]]
    time.sleep(0.5)
    try:
        during()
    finally:
        lines = profiles[0].finish()
        for writer in profiles[1:]:
            lines += ["the writer process:", *writer.finish()]
    return lines
