"""Webhook subscriptions (admin): Standard Webhooks deliveries of the event log."""

from datetime import timedelta

from fastapi import APIRouter, Depends, Response

from app.api import ETAG, LOCATION, READ_ERRORS, WRITE_ERRORS, with_headers
from app.deps import (
    AdminKey,
    CursorDep,
    IdempotencyDep,
    LimitDep,
    OptionalVersion,
    RequiredVersion,
    SessionDep,
    SettingsDep,
    WriteSessionDep,
    etag,
    require,
    set_etag,
)
from app.domain import webhooks
from app.domain.pagination import Page
from app.models import (
    Role,
    WebhookCreate,
    WebhookCreated,
    WebhookDeliveryPublic,
    WebhookPublic,
    WebhookUpdate,
)

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], responses=READ_ERRORS,
                   dependencies=[Depends(require(Role.admin))])


@router.post("", status_code=201, responses={**WRITE_ERRORS, **with_headers(201, ETAG, LOCATION)})
def create_webhook(
    webhook_in: WebhookCreate, admin: AdminKey, idem: IdempotencyDep, session: WriteSessionDep,
    settings: SettingsDep, response: Response,
) -> WebhookCreated:
    """Subscribe a URL to events after now. The signing `secret` is shown only here.

    The URL must be https and must not resolve to a loopback, private, link-local or
    metadata address. A replay (Idempotency-Key) returns the subscription without its secret.
    """
    created = webhooks.create_webhook(session, webhook_in=webhook_in, actor=admin.name,
                                      allow_local=settings.webhook_allow_local)
    headers = {"ETag": etag(created.version), "Location": f"/v1/webhooks/{created.id}"}
    idem.save(session, status=201, body=created.model_dump(mode="json") | {"secret": ""},
              headers=headers)
    session.commit()
    response.headers.update(headers)
    return created


@router.get("")
def list_webhooks(session: SessionDep, limit: LimitDep, cursor: CursorDep = None
                  ) -> Page[WebhookPublic]:
    """Subscriptions, oldest first, without their secrets."""
    rows, next_cursor = webhooks.list_webhooks(session, cursor=cursor, limit=limit)
    return Page(items=[webhooks.webhook_public(w) for w in rows], next_cursor=next_cursor)


@router.get("/{webhook_id}", responses=with_headers(200, ETAG))
def get_webhook(webhook_id: str, session: SessionDep, response: Response) -> WebhookPublic:
    """One subscription: its state, the last event delivered, and why it is disabled if so."""
    webhook = webhooks.get_webhook(session, webhook_id)
    set_etag(response, webhook.version)
    return webhooks.webhook_public(webhook)


@router.patch("/{webhook_id}", responses={**WRITE_ERRORS, **with_headers(200, ETAG)})
def update_webhook(
    webhook_id: str, webhook_in: WebhookUpdate, admin: AdminKey, version: RequiredVersion,
    session: WriteSessionDep, settings: SettingsDep, response: Response,
) -> WebhookPublic:
    """Edit a subscription, or pause (`{"active": false}`) and resume it (If-Match)."""
    webhook = webhooks.get_webhook(session, webhook_id, for_update=True)
    webhooks.update_webhook(session, webhook=webhook, update=webhook_in,
                            expected_version=version, actor=admin.name,
                            allow_local=settings.webhook_allow_local)
    public = webhooks.webhook_public(webhook)
    session.commit()
    set_etag(response, webhook.version)
    return public


@router.delete("/{webhook_id}", status_code=204, responses=WRITE_ERRORS)
def delete_webhook(webhook_id: str, admin: AdminKey, version: OptionalVersion,
                   session: WriteSessionDep) -> None:
    """Delete a subscription and its delivery log; nothing more is sent to it."""
    webhook = webhooks.get_webhook(session, webhook_id, for_update=True)
    webhooks.delete_webhook(session, webhook=webhook, expected_version=version,
                            actor=admin.name)
    session.commit()


@router.post("/{webhook_id}/rotate-secret", responses={**WRITE_ERRORS, **with_headers(200, ETAG)})
def rotate_webhook_secret(
    webhook_id: str, admin: AdminKey, idem: IdempotencyDep, session: WriteSessionDep,
    settings: SettingsDep, response: Response,
) -> WebhookCreated:
    """A new signing secret, shown only here; the old one also signs during the grace period."""
    webhook = webhooks.get_webhook(session, webhook_id, for_update=True)
    created = webhooks.rotate_secret(
        session, webhook=webhook, actor=admin.name,
        grace=timedelta(hours=settings.webhook_secret_grace_hours))
    idem.save(session, status=200, body=created.model_dump(mode="json") | {"secret": ""},
              headers={"ETag": etag(created.version)})
    session.commit()
    set_etag(response, created.version)
    return created


@router.post("/{webhook_id}/test", status_code=202, responses=WRITE_ERRORS)
def test_webhook(webhook_id: str, idem: IdempotencyDep, session: WriteSessionDep
                 ) -> WebhookDeliveryPublic:
    """Queue a `webhook.test` message; its attempt shows in the delivery log."""
    webhook = webhooks.get_webhook(session, webhook_id)
    delivery = WebhookDeliveryPublic.model_validate(webhooks.queue_test(session, webhook=webhook))
    idem.save(session, status=202, body=delivery)
    session.commit()
    return delivery


@router.get("/{webhook_id}/deliveries")
def list_webhook_deliveries(webhook_id: str, session: SessionDep, limit: LimitDep,
                            cursor: CursorDep = None) -> Page[WebhookDeliveryPublic]:
    """Attempts, newest first: status code, latency, attempt number, error, next try."""
    webhook = webhooks.get_webhook(session, webhook_id)
    rows, next_cursor = webhooks.list_deliveries(session, webhook=webhook, cursor=cursor,
                                                 limit=limit)
    return Page(items=[WebhookDeliveryPublic.model_validate(r) for r in rows],
                next_cursor=next_cursor)


@router.post("/{webhook_id}/deliveries/{delivery_id}/redeliver", status_code=202,
             responses=WRITE_ERRORS)
def redeliver_webhook_delivery(webhook_id: str, delivery_id: str, idem: IdempotencyDep,
                               session: WriteSessionDep) -> WebhookDeliveryPublic:
    """Send that delivery's event again (same `webhook-id`), ahead of the queue."""
    webhook = webhooks.get_webhook(session, webhook_id)
    delivery = WebhookDeliveryPublic.model_validate(
        webhooks.queue_redelivery(session, webhook=webhook, delivery_id=delivery_id))
    idem.save(session, status=202, body=delivery)
    session.commit()
    return delivery
