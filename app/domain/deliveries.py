"""The webhook delivery worker: the event log is the outbox.

Each subscription keeps a cursor (the last event delivered). A worker leases a due
subscription (PostgreSQL: `SELECT … FOR UPDATE SKIP LOCKED`, so two servers never take the
same one), sends the next wanted event after the cursor, and on a 2xx moves the cursor on
in the same transaction that records the attempt. A server that dies mid-send loses only
its lease: once it runs out, another worker (or the restarted one) sends that event again.
So delivery is at least once, in order per subscription, and never lost between commit and
send. Failures wait out the retry schedule; a subscription failing its last attempt is
disabled and says why. Sends run on the event loop outside any request, bounded in number
and in time, never following redirects, to an address checked at each send.
"""

import asyncio
import contextlib
import ipaddress
import logging
import random
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import anyio.to_thread
import httpx
import sqlalchemy as sa
from sqlmodel import Session, col, select

from app.config import Settings
from app.db import Database
from app.domain import webhooks
from app.domain.events import record_event
from app.models import DeliveryStatus, Event, Webhook, WebhookDelivery, to_utc, utcnow

log = logging.getLogger("claimledger.webhooks")

SCAN = 500  # events looked at per step when passing over unwanted ones
LEASE_MARGIN = 5.0  # seconds a lease outlives the longest send, for the step that records it
USER_AGENT = "Claimledger-Webhooks/0.1"


@dataclass
class Job:
    """One message to send for a leased subscription."""

    webhook_id: str
    token: str
    url: str
    secrets: list[str]
    message_id: str
    type: str
    body: bytes
    attempt: int
    event_id: int | None = None
    delivery_id: str | None = None  # a queued test or redelivery


@dataclass
class Outcome:
    status_code: int | None
    error: str | None
    latency_ms: float
    at: datetime

    @property
    def ok(self) -> bool:
        return self.error is None


def _jitter(delay: float) -> float:
    return delay * random.uniform(0.9, 1.1) if delay > 0 else 0.0


def _due(now: datetime) -> sa.ColumnElement[bool]:
    return sa.and_(
        col(Webhook.active).is_(True),
        sa.or_(col(Webhook.next_attempt_at).is_(None), col(Webhook.next_attempt_at) <= now),
        sa.or_(col(Webhook.lease_until).is_(None), col(Webhook.lease_until) < now),
    )


def _next_job(session: Session, webhook: Webhook, now: datetime) -> Job | None:
    """The next message for a leased subscription: a queued test or redelivery first, then
    the first wanted event after its cursor (passing the cursor over unwanted ones)."""
    manual = session.exec(
        select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook.id,
                                      WebhookDelivery.status == DeliveryStatus.queued)
        .order_by(WebhookDelivery.created_at, WebhookDelivery.id).limit(1)).first()
    common = {"webhook_id": webhook.id, "token": webhook.lease_token or "", "url": webhook.url,
              "secrets": webhooks.signing_secrets(webhook, now)}
    if manual is not None:
        event = session.get(Event, manual.event_id) if manual.event_id is not None else None
        body = webhooks.event_message(event) if event is not None \
            else webhooks.test_message(webhook.id, now)
        return Job(**common, message_id=manual.message_id, type=manual.type, body=body,
                   attempt=1, event_id=manual.event_id, delivery_id=manual.id)
    # Ids become visible in commit order: every event up to `top` can be read now.
    top = session.exec(select(sa.func.max(Event.id))).one() or 0
    query = select(Event).where(col(Event.id) > webhook.cursor, col(Event.id) <= top)
    types = webhook.event_types
    if "*" not in types:  # only the actions asked for are read (with their snapshots)
        query = query.where(sa.or_(
            col(Event.action).in_([t for t in types if not t.endswith(".*")]),
            *(col(Event.action).startswith(t[:-1]) for t in types if t.endswith(".*"))))
    events = session.exec(query.order_by(Event.id).limit(SCAN)).all()
    for event in events:
        if webhooks.wanted(session, webhook, event):
            return Job(**common, message_id=webhooks.message_id(webhook.id, event.id or 0),
                       type=event.action, body=webhooks.event_message(event),
                       attempt=webhook.attempts + 1, event_id=event.id)
    # Nothing wanted up to the last event read (or, if fewer than a page, up to `top`).
    webhook.cursor = max(webhook.cursor, events[-1].id or 0 if len(events) == SCAN else top)
    return None


class Deliveries:
    """The database steps of delivery (sync: run in a thread), shared by every worker."""

    def __init__(self, db: Database, settings: Settings):
        self.db = db
        self.settings = settings
        self.schedule = settings.webhook_retry_delays
        self.lease = timedelta(seconds=settings.webhook_timeout_seconds + LEASE_MARGIN)

    def _has_work(self, now: datetime) -> list[str]:
        """Ids of due subscriptions with something to send (a read: no write when idle)."""
        with self.db.session() as session:
            top = session.exec(select(sa.func.max(Event.id))).one() or 0
            queued = select(WebhookDelivery.webhook_id).where(
                WebhookDelivery.status == DeliveryStatus.queued)
            return list(session.exec(select(Webhook.id).where(
                _due(now), sa.or_(col(Webhook.cursor) < top, col(Webhook.id).in_(queued)))).all())

    def claim(self, limit: int) -> list[Job]:
        """Lease up to `limit` due subscriptions and return the next message of each."""
        now = utcnow()
        candidates = self._has_work(now)
        if not candidates or limit <= 0:
            return []
        jobs = []
        with self.db.write_session() as session:
            query = select(Webhook).where(_due(now), col(Webhook.id).in_(candidates)) \
                .order_by(Webhook.next_attempt_at, Webhook.id).limit(limit)
            if not self.db.is_sqlite:
                query = query.with_for_update(skip_locked=True)
            for webhook in session.exec(query).all():
                webhook.lease_token = secrets.token_hex(8)
                webhook.lease_until = now + self.lease
                job = _next_job(session, webhook, now)
                if job is None:  # nothing wanted after all: the cursor moved past it
                    webhook.lease_token = webhook.lease_until = None
                else:
                    jobs.append(job)
                session.add(webhook)
            session.commit()
        return jobs

    def finish(self, job: Job, outcome: Outcome) -> Job | None:
        """Record an attempt; on success, lease on and return the subscription's next message.

        Nothing is recorded if the subscription was deleted or its lease was taken over
        meanwhile (the next holder sends the message again)."""
        with self.db.write_session() as session:
            query = select(Webhook).where(Webhook.id == job.webhook_id)
            if not self.db.is_sqlite:
                query = query.with_for_update()
            webhook = session.exec(query).first()
            if webhook is None or webhook.lease_token != job.token:
                return None
            now = utcnow()
            row = session.get(WebhookDelivery, job.delivery_id) if job.delivery_id else None
            if row is None:
                row = WebhookDelivery(webhook_id=webhook.id, event_id=job.event_id,
                                      message_id=job.message_id, type=job.type,
                                      status=DeliveryStatus.queued)
            row.attempt = job.attempt
            row.status = DeliveryStatus.succeeded if outcome.ok else DeliveryStatus.failed
            row.status_code = outcome.status_code
            row.latency_ms = round(outcome.latency_ms, 1)
            row.error = outcome.error[:500] if outcome.error else None
            row.attempted_at = outcome.at
            if job.delivery_id is None:
                if outcome.ok:
                    webhook.cursor = job.event_id or webhook.cursor
                    webhook.attempts = 0
                    webhook.failing_since = webhook.next_attempt_at = None
                else:
                    self._failed(session, webhook, job, outcome, now)
                    row.next_attempt_at = webhook.next_attempt_at
            session.add(row)
            session.flush()  # the row is no longer queued for the lookup below
            following = None
            if webhook.active and webhook.next_attempt_at is None:
                webhook.lease_until = now + self.lease
                following = _next_job(session, webhook, now)
            if following is None:
                webhook.lease_token = webhook.lease_until = None
            session.add(webhook)
            session.commit()
            return following

    def _failed(self, session: Session, webhook: Webhook, job: Job, outcome: Outcome,
                now: datetime) -> None:
        webhook.attempts += 1
        webhook.failing_since = webhook.failing_since or outcome.at
        if webhook.attempts < len(self.schedule):
            webhook.next_attempt_at = now + timedelta(
                seconds=_jitter(self.schedule[webhook.attempts]))
            return
        since = to_utc(webhook.failing_since)
        webhook.active = False
        webhook.next_attempt_at = None
        webhook.disabled_reason = (
            f"disabled after {webhook.attempts} failed attempts at event {job.event_id} "
            f"since {since:%Y-%m-%dT%H:%M:%SZ}; the last: {outcome.error}")[:500]
        webhook.version += 1
        webhook.updated_at = now
        record_event(session, actor="webhooks", action="webhook.disabled",
                     entity_type="webhook", entity_id=webhook.id,
                     changes={"disabled_reason": webhook.disabled_reason})

    def release(self, job: Job) -> None:
        """Give a lease back unused (the server is stopping): the message goes again."""
        with self.db.write_session(gate_timeout=2.0) as session:
            session.execute(sa.update(Webhook).where(
                col(Webhook.id) == job.webhook_id, col(Webhook.lease_token) == job.token
            ).values(lease_token=None, lease_until=None))
            session.commit()


class Dispatcher:
    """A worker's delivery loop: claims due subscriptions and drives each while it has work."""

    def __init__(self, db: Database, settings: Settings):
        self.settings = settings
        self.steps = Deliveries(db, settings)
        self.limit = settings.webhook_max_in_flight
        self.timeout = settings.webhook_timeout_seconds
        self.allow_local = settings.webhook_allow_local
        self.running: set[asyncio.Task[None]] = set()
        self.complained_at = -60.0

    async def run(self) -> None:
        # No pooled connections: each send connects to the address just checked (a kept
        # connection could be reused for another host name resolving to the same address).
        async with httpx.AsyncClient(
            follow_redirects=False, trust_env=False, timeout=self.timeout,
            limits=httpx.Limits(max_keepalive_connections=0),
        ) as client:
            try:
                while True:
                    free = self.limit - len(self.running)
                    jobs: list[Job] = []
                    if free > 0:
                        try:
                            jobs = await anyio.to_thread.run_sync(self.steps.claim, free)
                        except Exception as exc:  # the database is down or not migrated
                            self._complain(exc)
                    for job in jobs:
                        task = asyncio.create_task(self._drive(client, job))
                        self.running.add(task)
                        task.add_done_callback(self.running.discard)
                    await asyncio.sleep(self.settings.webhook_poll_seconds)
            finally:
                for task in list(self.running):
                    task.cancel()
                if self.running:
                    await asyncio.wait(list(self.running), timeout=5)

    def _complain(self, exc: Exception) -> None:
        """Log a failing poll once a minute, not at every poll."""
        now = time.monotonic()
        if now - self.complained_at >= 60:
            self.complained_at = now
            log.warning("webhook deliveries: could not look for work: %s: %s",
                        type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")

    async def _drive(self, client: httpx.AsyncClient, job: Job | None) -> None:
        """Send a subscription's messages one after another, in order, while it has any."""
        while job is not None:
            try:
                outcome = await self.send(client, job)
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await asyncio.shield(anyio.to_thread.run_sync(self.steps.release, job))
                raise
            try:
                job = await anyio.to_thread.run_sync(self.steps.finish, job, outcome)
            except Exception:
                log.exception("webhook %s: could not record a delivery", job.webhook_id)
                return

    async def send(self, client: httpx.AsyncClient, job: Job) -> Outcome:
        """One attempt: check the address, POST the signed message, time it; never raises."""
        at = utcnow()
        started = time.monotonic()
        code: int | None = None
        error: str | None = None
        try:
            async with asyncio.timeout(self.timeout):
                code = await self._post(client, job, at)
            if not 200 <= code < 300:
                error = f"the receiver answered {code}" + (
                    " (redirects are not followed)" if 300 <= code < 400 else "")
        except TimeoutError:
            error = f"no answer within {self.timeout:g} s"
        except webhooks.UnsafeTarget as exc:
            error = f"refused: {exc}"
        except httpx.HTTPError as exc:
            error = f"the request failed: {type(exc).__name__}: {exc}".rstrip(": ")
        except OSError as exc:
            error = f"the request failed: {exc}"
        return Outcome(status_code=code, error=error,
                       latency_ms=(time.monotonic() - started) * 1000, at=at)

    async def _post(self, client: httpx.AsyncClient, job: Job, at: datetime) -> int:
        target = webhooks.parse_target(job.url, allow_local=self.allow_local)
        addresses = await anyio.to_thread.run_sync(
            lambda: webhooks.resolve(target, allow_local=self.allow_local), abandon_on_cancel=True)
        # Connect to the address just checked (DNS may change between check and connect),
        # with the host name in Host and in TLS (SNI and certificate check).
        address = addresses[0]
        literal = f"[{address}]" if isinstance(address, ipaddress.IPv6Address) else str(address)
        url = target.url._replace(netloc=f"{literal}:{target.port}").geturl()
        host = target.url.netloc.rsplit("@", 1)[-1]
        headers = {
            "Host": host,
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "webhook-id": job.message_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": webhooks.signature(job.secrets, job.message_id, at, job.body),
        }
        extensions = {"sni_hostname": target.host} if target.url.scheme == "https" else {}
        request = client.build_request("POST", url, content=job.body, headers=headers,
                                       extensions=extensions)
        response = await client.send(request, stream=True)
        await response.aclose()  # the answer's body is not needed
        return response.status_code
