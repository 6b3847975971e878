"""Webhook subscriptions: create, read, update, delete, safe targets, and signed messages.

Messages follow the Standard Webhooks specification (standardwebhooks.com): a JSON body
`{"type", "timestamp", "data"}` and the headers `webhook-id`, `webhook-timestamp` and
`webhook-signature`, signed with the `standardwebhooks` package, so receivers verify with
the spec's libraries. Sending is app/domain/deliveries.py.
"""

import base64
import ipaddress
import json
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import SplitResult, urlsplit

from sqlmodel import Session, col, delete, select
from standardwebhooks import Webhook as Signer

from app.domain.events import record_event
from app.domain.pagination import after_position, decode_time_cursor, encode_time_cursor
from app.domain.preconditions import IfMatch, check_version
from app.errors import Conflict, NotFound, Unprocessable
from app.models import (
    EVENT_TYPES,
    ClaimTopic,
    DeliveryStatus,
    Event,
    EventPublic,
    Webhook,
    WebhookCreate,
    WebhookCreated,
    WebhookDelivery,
    WebhookPublic,
    WebhookUpdate,
    to_utc,
    utcnow,
)

EVENT_KINDS = frozenset(t.split(".")[0] for t in EVENT_TYPES)
TEST_TYPE = "webhook.test"
MAX_URL = 2000

# Refused even with webhook_allow_local: link-local (cloud metadata at 169.254.169.254,
# AWS's IPv6 fd00:ec2::254), unspecified and multicast.
ALWAYS_REFUSED = (
    ipaddress.ip_network("169.254.0.0/16"),
    ipaddress.ip_network("fe80::/10"),
    ipaddress.ip_network("fd00:ec2::254/128"),
)

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeTarget(Exception):
    """A target URL that is not allowed, or resolves to an address that is not."""


# --- targets ------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    url: SplitResult
    host: str
    port: int


def parse_target(url: str, *, allow_local: bool) -> Target:
    """The parts of an allowed target URL (no DNS yet), or UnsafeTarget saying why not."""
    if len(url) > MAX_URL:
        raise UnsafeTarget(f"the URL is longer than {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeTarget(f"the URL is malformed: {exc}") from None
    if parts.scheme not in ("https", "http") or not parts.netloc or not parts.hostname:
        raise UnsafeTarget("the URL must be absolute: https://host/path")
    if parts.scheme == "http" and not allow_local:
        raise UnsafeTarget("only https URLs are allowed (plain http only with "
                           "CLAIMLEDGER_WEBHOOK_ALLOW_LOCAL)")
    if parts.username is not None or parts.password is not None:
        raise UnsafeTarget("the URL must not carry a user name or password")
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise UnsafeTarget("the URL must not contain spaces or control characters")
    default = 443 if parts.scheme == "https" else 80
    return Target(url=parts, host=parts.hostname, port=port or default)


def refusal(address: IpAddress, *, allow_local: bool) -> str | None:
    """Why sending to `address` is refused, or None when it is allowed."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if (any(address in net for net in ALWAYS_REFUSED if net.version == address.version)
            or address.is_link_local or address.is_unspecified or address.is_multicast):
        return f"{address} is a link-local, metadata, unspecified or multicast address"
    if address.is_global:
        return None
    if allow_local and (address.is_loopback or address.is_private):
        return None
    return f"{address} is a loopback, private or reserved address"


def resolve(target: Target, *, allow_local: bool) -> list[IpAddress]:
    """Every address the target's host resolves to, all of them allowed, or UnsafeTarget."""
    try:
        addresses = [ipaddress.ip_address(target.host)]
    except ValueError:
        try:
            infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise UnsafeTarget(f"the host {target.host} does not resolve ({exc})") from None
        addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%")[0])
                                       for info in infos))
    for address in addresses:
        reason = refusal(address, allow_local=allow_local)
        if reason is not None:
            raise UnsafeTarget(f"{target.host} resolves to {reason}")
    if not addresses:
        raise UnsafeTarget(f"the host {target.host} has no address")
    return addresses


def check_target(url: str, *, allow_local: bool) -> None:
    """A subscription's URL, checked when it is made or changed (422 saying why)."""
    try:
        resolve(parse_target(url, allow_local=allow_local), allow_local=allow_local)
    except UnsafeTarget as exc:
        raise Unprocessable(f"the webhook URL is refused: {exc}") from None


def check_event_types(types: list[str]) -> list[str]:
    unknown = [t for t in types if t != "*" and t not in EVENT_TYPES
               and not (t.endswith(".*") and t[:-2] in EVENT_KINDS)]
    if unknown:
        raise Unprocessable(f"unknown event types {unknown}; known: "
                            f"{', '.join(sorted(EVENT_TYPES))}, a kind such as claim.*, or *")
    return list(dict.fromkeys(types))


# --- messages -----------------------------------------------------------------


def new_secret() -> str:
    """A signing secret as the Standard Webhooks libraries take it: whsec_ + base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def message_id(webhook_id: str, event_id: int) -> str:
    """The same for every attempt at one event for one subscription (receivers dedupe on it)."""
    return f"msg_{webhook_id.removeprefix('whk_')}_{event_id}"


def event_message(event: Event) -> bytes:
    """The body for an event: `data` is the event exactly as the feed has it."""
    data = EventPublic.model_validate(event).model_dump(mode="json")
    return _body(event.action, data["at"], data)


def test_message(webhook_id: str, at: datetime) -> bytes:
    stamp = to_utc(at).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return _body(TEST_TYPE, stamp, {"webhook_id": webhook_id,
                                    "message": "a test event from Claimledger"})


def _body(type_: str, timestamp: str, data: dict[str, Any]) -> bytes:
    return json.dumps({"type": type_, "timestamp": timestamp, "data": data},
                      separators=(",", ":"), ensure_ascii=False).encode()


def signature(secrets_: list[str], msg_id: str, at: datetime, body: bytes) -> str:
    """`webhook-signature`: `v1,<base64 HMAC-SHA256>` for each secret, space-separated."""
    return " ".join(Signer(s).sign(msg_id, at, body) for s in secrets_)


def signing_secrets(webhook: Webhook, now: datetime) -> list[str]:
    """The current secret, and the previous one while its grace period lasts."""
    out = [webhook.secret]
    expires = to_utc(webhook.previous_secret_expires_at)
    if webhook.previous_secret and expires is not None and expires > now:
        out.append(webhook.previous_secret)
    return out


def wanted(session: Session, webhook: Webhook, event: Event) -> bool:
    """Whether the subscription asked for this event (its types, then its topics)."""
    types = webhook.event_types
    if not ("*" in types or event.action in types or f"{event.action.split('.')[0]}.*" in types):
        return False
    if not webhook.topics:
        return True
    if event.snapshot is not None and isinstance(event.snapshot.get("topics"), list):
        topics = set(event.snapshot["topics"])
    elif event.claim_id is not None:
        topics = set(session.exec(select(ClaimTopic.topic).where(
            ClaimTopic.claim_id == event.claim_id)).all())
    else:
        return False
    return bool(topics & set(webhook.topics))


# --- subscriptions ------------------------------------------------------------


def webhook_public(webhook: Webhook, *, now: datetime | None = None) -> WebhookPublic:
    rotated = len(signing_secrets(webhook, now or utcnow())) > 1
    return WebhookPublic.model_validate(webhook, update={"last_event_id": webhook.cursor,
                                                         "secret_rotated": rotated})


def _created(webhook: Webhook) -> WebhookCreated:
    return WebhookCreated.model_validate(webhook_public(webhook).model_dump()
                                         | {"secret": webhook.secret})


def _audit(webhook: Webhook) -> dict[str, Any]:
    """What the event log keeps of a subscription: never its secret."""
    return {"url": webhook.url, "event_types": webhook.event_types, "topics": webhook.topics,
            "active": webhook.active}


def create_webhook(session: Session, *, webhook_in: WebhookCreate, actor: str,
                   allow_local: bool) -> WebhookCreated:
    """A subscription to the events after this one; its secret is in the result only."""
    check_target(webhook_in.url, allow_local=allow_local)
    webhook = Webhook(url=webhook_in.url, event_types=check_event_types(webhook_in.event_types),
                      topics=list(dict.fromkeys(webhook_in.topics)), active=webhook_in.active,
                      secret=new_secret(), created_by=actor)
    session.add(webhook)
    event = record_event(session, actor=actor, action="webhook.created", entity_type="webhook",
                         entity_id=webhook.id, changes=_audit(webhook))
    session.flush()
    # Every event before this one has committed (the feed's lock is held until commit):
    # the subscription starts right after its own creation.
    webhook.cursor = event.id or 0
    return _created(webhook)


def get_webhook(session: Session, webhook_id: str, *, for_update: bool = False) -> Webhook:
    """The subscription or 404; `for_update` locks its row until commit (PostgreSQL)."""
    webhook = session.get(Webhook, webhook_id, with_for_update=for_update or None)
    if webhook is None:
        raise NotFound(f"webhook {webhook_id} does not exist")
    return webhook


def list_webhooks(session: Session, *, cursor: str | None, limit: int
                  ) -> tuple[list[Webhook], str | None]:
    query = select(Webhook).order_by(Webhook.created_at, Webhook.id).limit(limit + 1)
    if cursor:
        after, last_id = decode_time_cursor(cursor)
        query = query.where(after_position(col(Webhook.created_at), col(Webhook.id), after,
                                           last_id, descending=False))
    rows = list(session.exec(query).all())
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_time_cursor(rows[-1].created_at, rows[-1].id) if more else None
    return rows, next_cursor


def update_webhook(session: Session, *, webhook: Webhook, update: WebhookUpdate,
                   expected_version: IfMatch, actor: str, allow_local: bool) -> Webhook:
    """Change the target, types, topics, or pause (`active: false`) and resume.

    Resuming sends what happened while it was paused, in order; resuming a disabled
    subscription starts its retries afresh from the event that failed.
    """
    check_version(webhook.version, expected_version, f"webhook {webhook.id}")
    fields = update.model_dump(exclude_unset=True)
    if "url" in fields:
        check_target(fields["url"], allow_local=allow_local)
    if "event_types" in fields:
        fields["event_types"] = check_event_types(fields["event_types"])
    if "topics" in fields:
        fields["topics"] = list(dict.fromkeys(fields["topics"]))
    changes = {k: v for k, v in fields.items() if getattr(webhook, k) != v}
    if not changes:
        return webhook
    for name, value in changes.items():
        setattr(webhook, name, value)
    if changes.get("active") is True or "url" in changes:
        webhook.disabled_reason = None
        webhook.attempts = 0
        webhook.failing_since = None
        webhook.next_attempt_at = None
    webhook.version += 1
    webhook.updated_at = utcnow()
    session.add(webhook)
    record_event(session, actor=actor, action="webhook.updated", entity_type="webhook",
                 entity_id=webhook.id, changes=changes)
    return webhook


def delete_webhook(session: Session, *, webhook: Webhook, expected_version: IfMatch | None,
                   actor: str) -> None:
    """Remove a subscription and its delivery log; a send under way is not recorded."""
    if expected_version is not None:
        check_version(webhook.version, expected_version, f"webhook {webhook.id}")
    session.exec(delete(WebhookDelivery).where(col(WebhookDelivery.webhook_id) == webhook.id))
    session.delete(webhook)
    record_event(session, actor=actor, action="webhook.deleted", entity_type="webhook",
                 entity_id=webhook.id, changes=_audit(webhook))


def rotate_secret(session: Session, *, webhook: Webhook, actor: str,
                  grace: timedelta) -> WebhookCreated:
    """A new secret, shown once; the old one keeps signing (a second signature) for `grace`."""
    now = utcnow()
    webhook.previous_secret = webhook.secret
    webhook.previous_secret_expires_at = now + grace
    webhook.secret = new_secret()
    webhook.version += 1
    webhook.updated_at = now
    session.add(webhook)
    record_event(session, actor=actor, action="webhook.secret_rotated", entity_type="webhook",
                 entity_id=webhook.id,
                 changes={"previous_secret_expires_at":
                          webhook.previous_secret_expires_at.isoformat()})
    return _created(webhook)


def _require_active(webhook: Webhook, what: str) -> None:
    if not webhook.active:
        why = f" ({webhook.disabled_reason})" if webhook.disabled_reason else ""
        raise Conflict(f"webhook {webhook.id} is paused or disabled{why}; resume it "
                       f"(PATCH with active: true) before {what}")


def queue_test(session: Session, *, webhook: Webhook) -> WebhookDelivery:
    """A test message, sent once by the delivery worker ahead of the queue."""
    _require_active(webhook, "sending a test event")
    delivery = WebhookDelivery(webhook_id=webhook.id, type=TEST_TYPE, manual=True,
                               message_id=f"msg_test_{secrets.token_hex(8)}",
                               status=DeliveryStatus.queued)
    session.add(delivery)
    return delivery


def queue_redelivery(session: Session, *, webhook: Webhook, delivery_id: str) -> WebhookDelivery:
    """Send an event already attempted once more (same webhook-id), ahead of the queue."""
    original = session.get(WebhookDelivery, delivery_id)
    if original is None or original.webhook_id != webhook.id:
        raise NotFound(f"delivery {delivery_id} of webhook {webhook.id} does not exist")
    _require_active(webhook, "redelivering")
    if original.event_id is None:
        raise Conflict("a test event cannot be redelivered; send another test")
    delivery = WebhookDelivery(webhook_id=webhook.id, event_id=original.event_id,
                               type=original.type, message_id=original.message_id, manual=True,
                               status=DeliveryStatus.queued)
    session.add(delivery)
    return delivery


def list_deliveries(session: Session, *, webhook: Webhook, cursor: str | None, limit: int
                    ) -> tuple[list[WebhookDelivery], str | None]:
    """The subscription's delivery log, newest first."""
    query = (select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook.id)
             .order_by(col(WebhookDelivery.created_at).desc(), col(WebhookDelivery.id).desc())
             .limit(limit + 1))
    if cursor:
        before, last_id = decode_time_cursor(cursor)
        query = query.where(after_position(col(WebhookDelivery.created_at),
                                           col(WebhookDelivery.id), before, last_id,
                                           descending=True))
    rows = list(session.exec(query).all())
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_time_cursor(rows[-1].created_at, rows[-1].id) if more else None
    return rows, next_cursor
