"""Per-key rate limits in fixed one-minute windows.

On SQLite (one process) the counts live in memory. On PostgreSQL they are shared by
every worker and instance through the `rate_limit_window` table; to keep a database
write off every request, each worker adds its local hits to the shared count at most
every `sync_seconds` or `sync_hits` (1% of the limit, at least 20 hits), so the limit
holds across workers to within that slack.
"""

import math
import threading
import time
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlmodel import Session

from app.errors import TooManyRequests

WINDOW = 60


class RateLimiter:
    def __init__(self, limit_per_minute: int, *, shared: bool, sync_seconds: float = 1.0,
                 sync_hits: int | None = None):
        self.limit = limit_per_minute
        self.shared = shared
        # By default 1% of the limit, at least 20 hits: a fixed 20 made a busy worker write
        # and commit its count many times a second (bench/RESULTS.md, "Rate-limit sync").
        # The overshoot across workers is up to that many hits per worker.
        self.sync_seconds = sync_seconds
        self.sync_hits = max(20, limit_per_minute // 100) if sync_hits is None else sync_hits
        self._lock = threading.Lock()
        # key id -> [window, hits not yet shared, shared total last seen, last sync time]
        self._state: dict[str, list[float]] = {}

    def share_due(self, key_id: str) -> bool:
        """Whether this key's next hit goes to the database (so belongs in a thread)."""
        if not self.shared:
            return False
        now = time.time()
        state = self._state.get(key_id)
        return state is None or state[0] != math.floor(now / WINDOW) * WINDOW \
            or state[1] + 1 >= self.sync_hits or now - state[3] >= self.sync_seconds

    def hit(self, key_id: str, session_factory=None) -> None:
        """Count one request; raise 429 (with Retry-After) past the limit."""
        now = time.time()
        window = math.floor(now / WINDOW) * WINDOW
        with self._lock:
            state = self._state.get(key_id)
            if state is None or state[0] != window:
                state = self._state[key_id] = [window, 0, 0, 0.0]
                if len(self._state) > 100_000:
                    self._state = {key_id: state}
            state[1] += 1
            due = self.shared and session_factory is not None and (
                state[1] >= self.sync_hits or now - state[3] >= self.sync_seconds)
            if due:
                pending, state[1], state[3] = state[1], 0, now
            total = state[1] + state[2]
        if due:
            shared_total = self._share(session_factory, key_id, window, pending)
            with self._lock:
                state[2] = shared_total
                total = state[1] + state[2]
        if total > self.limit:
            retry = max(1, math.ceil(window + WINDOW - now))
            raise TooManyRequests(
                f"rate limit of {self.limit} requests per minute for this key reached; "
                f"retry in {retry} s", headers={"Retry-After": str(retry)})

    def _share(self, session_factory, key_id: str, window: float, pending: int) -> int:
        start = datetime.fromtimestamp(window, UTC)
        with session_factory() as session:
            session: Session
            total = session.execute(sa.text(
                "INSERT INTO rate_limit_window (key_id, window_start, hits) "
                "VALUES (:k, :w, :n) ON CONFLICT (key_id, window_start) "
                "DO UPDATE SET hits = rate_limit_window.hits + excluded.hits RETURNING hits"
            ), {"k": key_id, "w": start, "n": pending}).scalar_one()
            if int(window) % 600 == 0:
                session.execute(sa.text("DELETE FROM rate_limit_window WHERE window_start < :w"),
                                {"w": datetime.fromtimestamp(window - 3600, UTC)})
            session.commit()
        return int(total)
