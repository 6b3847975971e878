"""app/db.py: what every SQLite connection is set up with."""

import sqlite3
from pathlib import Path

import pytest

from app import db as db_module
from app.config import Settings
from app.db import Database


def test_the_write_ahead_log_is_cut_back_after_a_burst(settings: Settings, monkeypatch):
    """A reader holding a snapshot lets the log grow past its usual size; once the log is
    copied and starts over, the file shrinks back to WAL_SIZE_LIMIT instead of keeping
    its largest size on disk for good."""
    if not settings.database_url.startswith("sqlite"):
        pytest.skip("SQLite only: PostgreSQL manages its own write-ahead log")
    limit = 128 * 1024
    monkeypatch.setattr(db_module, "WAL_SIZE_LIMIT", limit)
    database = Database(settings)
    path = Path(database.engine.url.database)
    wal = Path(f"{path}-wal")
    reader = sqlite3.connect(path)
    try:
        with database.engine.begin() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_size_limit").scalar() == limit
            conn.exec_driver_sql("CREATE TABLE filler (x BLOB)")
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM claim").fetchall()  # pins its snapshot
        for _ in range(8):
            with database.engine.begin() as conn:
                conn.exec_driver_sql("INSERT INTO filler VALUES (zeroblob(256 * 1024))")
        grown = wal.stat().st_size
        assert grown > 8 * limit
        reader.rollback()
        with database.engine.begin() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").all()
        with database.engine.begin() as conn:  # the log starts over, and is cut back
            conn.exec_driver_sql("INSERT INTO filler VALUES (1)")
        assert wal.stat().st_size <= limit, (grown, wal.stat().st_size)
    finally:
        reader.close()
        database.dispose()
