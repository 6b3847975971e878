"""Engine and sessions: SQLite pragmas, pool sizing, and the single-writer rule."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

from app.config import Settings


def make_engine(settings: Settings) -> Engine:
    """An engine whose pool matches the worker threads, so requests never starve it."""
    url = settings.database_url
    kwargs: dict[str, Any] = {
        "pool_size": settings.threads,
        "max_overflow": 8,
        "pool_timeout": settings.pool_timeout,
        "pool_pre_ping": not url.startswith("sqlite"),
    }
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        if ":memory:" in url or url in ("sqlite://", "sqlite:///"):
            raise ValueError("use a file for SQLite: every connection must see the same data")
    else:
        kwargs["connect_args"] = {
            "options": f"-c statement_timeout={settings.statement_timeout_ms}"
        }
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine)
    return engine


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()


class Database:
    """The engine, its session factory and the write gate, built once per app."""

    def __init__(self, settings: Settings, engine: Engine | None = None):
        self.settings = settings
        self.engine = engine or make_engine(settings)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self.sessions = sessionmaker(
            self.engine, class_=Session, expire_on_commit=False, autoflush=False
        )
        # The feed's ordering lock (crud.record_event) lasts one transaction.
        for name in ("after_commit", "after_rollback"):
            event.listen(self.sessions, name, lambda session: session.info.pop("event_lock", None))
        # SQLite has one writer at a time; queueing writers here instead of in
        # busy_timeout sleeps cuts the tail latency (MEASURED.md) and avoids
        # SQLITE_BUSY_SNAPSHOT when a transaction that read turns into a writer.
        self._write_lock = threading.Lock() if self.is_sqlite else None

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.sessions() as session:
            yield session

    @contextmanager
    def write_session(self) -> Iterator[Session]:
        """A session for one unit of work; the caller commits. Serialised on SQLite."""
        with self._write_lock or nullcontext(), self.sessions() as session:
            try:
                yield session
            finally:
                session.rollback()

    def dispose(self) -> None:
        self.engine.dispose()


def ping(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
