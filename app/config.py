"""Settings, read once from CLAIMLEDGER_* environment variables."""

import re
from functools import lru_cache

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIB = 1024 * 1024


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLAIMLEDGER_", extra="ignore")

    database_url: str = "sqlite:///./claimledger.db"
    # Worker threads for sync routes; the connection pool is sized to match so a
    # request can never wait on a pool that the other threads have drained.
    threads: int = 40
    pool_timeout: float = 10.0
    # PostgreSQL: a server that does not answer a new connection within this is down for
    # the request (503) instead of holding its thread until the kernel gives up (minutes).
    connect_timeout_seconds: int = Field(default=5, ge=1)
    statement_timeout_ms: int = 15_000
    max_body_bytes: int = 1 * MIB
    max_ingest_body_bytes: int = 16 * MIB
    max_batch_items: int = 1000
    default_page_size: int = 50
    max_page_size: int = 200
    rate_limit_per_minute: int = 6000
    idempotency_ttl_hours: int = 48
    # A claimed key whose request has not finished after this long is taken to be abandoned
    # (the backstop; a claim whose instance stopped beating is taken over sooner).
    idempotency_pending_seconds: float = 120.0
    # Each server process writes a heartbeat this often; one silent for instance_timeout
    # is taken to be dead and its pending idempotency claims are taken over at once.
    instance_heartbeat_seconds: float = Field(default=2.0, gt=0)
    instance_timeout_seconds: float = Field(default=10.0, gt=0)
    similarity_threshold: float = 0.5
    # A client sending its body slower than this between chunks is cut off (408).
    body_read_timeout_seconds: float = 10.0
    # A request's line and headers must arrive within this (408 + close):
    # app/server/header_deadline.py.
    header_timeout_seconds: float = 10.0
    request_timeout_seconds: float = 60.0
    log_level: str = "info"
    key_cache_seconds: float = 5.0
    # Rendered claims kept per worker for GET /v1/claims/{id} and list and search pages
    # (app/fastpath/read_cache.py); 0 keeps none. Its memory counts in bench P6.
    claim_cache_entries: int = Field(default=5000, ge=0)
    # Most claims one group commit writes together (app/fastpath/writer.py).
    write_batch_max: int = 64
    # Each worker writes new claims (POST /v1/claims) in a process of its own, on another
    # core; off, it writes them in a thread (app/fastpath/writer.py).
    writer_process: bool = True
    # Each server process takes what its startup made out of the garbage collector's reach
    # and collects young objects less often (app/server/heap.py).
    heap_settling: bool = True
    # SQLite's page cache per pooled connection (KiB). Each connection keeps its own, so
    # SQLite's default (2 MiB) times the pool would dominate a worker's memory (bench P6);
    # the operating system caches the file's pages for all of them anyway.
    sqlite_cache_kib: int = Field(default=512, ge=64)
    # The writer process's page cache (KiB; its one connection does all the writing): with
    # the readers' size each batch re-read and spilled the pages it dirtied (16 claim_band
    # keys per claim, all over the index). Bench P1 against P6: bench/RESULTS.md, "Writer
    # page cache".
    sqlite_writer_cache_kib: int = Field(default=4096, ge=64)
    # The live feed (GET /v1/events/stream) sends a heartbeat comment this often, so
    # proxies and clients see an idle stream is alive.
    feed_heartbeat_seconds: float = Field(default=15.0, gt=0, le=15)
    # Stopping (SIGTERM): in-flight requests get this long to finish (`claimledger serve`;
    # after it they are answered 503), then each shutdown step (the writer process, the
    # heartbeat row, a cancelled write's thread) at most shutdown_timeout_seconds; a process
    # still alive 4 x shutdown_timeout_seconds after its app stopped exits anyway.
    graceful_shutdown_seconds: int = Field(default=20, ge=1)
    shutdown_timeout_seconds: float = Field(default=10.0, gt=0)
    # A cancelled write (request deadline, shutdown) is interrupted, and its thread waited
    # for this long before the request's teardown goes on (app/db.py: run_writing).
    cancel_grace_seconds: float = Field(default=5.0, gt=0)
    # The organisation that publishes verdicts: the ClaimReview's author and publisher, and
    # the base of the public pages' canonical URLs (/c/{claim_id}, /sitemap.xml).
    publisher_name: str = Field(default="Claimledger", min_length=1)
    publisher_site_url: str = Field(default="http://127.0.0.1:8000", pattern=r"^https?://[^/\s]+")
    publisher_logo_url: str = ""  # none by default

    # Webhooks (app/domain/webhooks.py, app/domain/deliveries.py). Each worker process runs
    # a delivery loop; subscriptions are leased, so each message is sent by one of them.
    webhook_worker: bool = True
    # Plain http and loopback or private targets, for local development and tests
    # (link-local and cloud metadata addresses are refused even then).
    webhook_allow_local: bool = False
    # One delivery (DNS, connect, send, answer) must be done within this.
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    # Deliveries in flight at once per worker process.
    webhook_max_in_flight: int = Field(default=16, ge=1, le=1000)
    # Delay before each attempt at one message (s, m or h); a subscription that fails the
    # last is disabled. Each delay gets +-10% jitter.
    webhook_retry_schedule: str = "0 5s 5m 30m 2h 5h 10h 10h"
    # How often each worker looks for new events to deliver.
    webhook_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    # After a secret rotation, the old secret signs too for this long.
    webhook_secret_grace_hours: float = Field(default=24.0, ge=0)
    # Origins allowed to call the API from a browser, comma-separated ("*": any origin,
    # then without credentials). Empty: no CORS headers at all.
    cors_origins: str = ""

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _schedule_parses(cls, value: str) -> str:
        parse_delays(value)
        return value

    @property
    def webhook_retry_delays(self) -> list[float]:
        return parse_delays(self.webhook_retry_schedule)

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip()]

    @model_validator(mode="after")
    def _timeout_spans_heartbeats(self) -> "Settings":
        # A live instance whose beat is a little late must not be taken for dead.
        if self.instance_timeout_seconds < 2 * self.instance_heartbeat_seconds:
            raise ValueError("instance_timeout_seconds must be at least twice "
                             "instance_heartbeat_seconds")
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


_DELAY = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_delays(text: str) -> list[float]:
    """`0 5s 5m 2h` -> seconds; a bare number is seconds."""
    delays = []
    for word in text.replace(",", " ").split():
        match = _DELAY.match(word)
        if match is None:
            raise ValueError(f"{word!r} is not a delay such as 0, 5s, 5m or 2h")
        delays.append(float(match.group(1)) * _UNIT[match.group(2)])
    if not delays:
        raise ValueError("the retry schedule needs at least one attempt")
    return delays


@lru_cache
def get_settings() -> Settings:
    return Settings()
