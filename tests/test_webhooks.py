"""Webhooks (issue 24): subscriptions, Standard Webhooks deliveries from the event log, retries,
safe targets. Every test runs on SQLite and, with CLAIMLEDGER_TEST_DATABASE_URL, PostgreSQL."""

import asyncio
import threading
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from standardwebhooks import Webhook, WebhookVerificationError

from app.config import Settings
from app.db import Database
from app.domain.deliveries import Dispatcher, Job
from app.main import create_app
from tests.factories import (
    add_attribution,
    assert_problem,
    get_json,
    make_claim,
    make_link,
    make_source,
    review,
    with_version,
)
from tests.webhook_receiver import Receiver, wait_until

FAST = {"webhook_allow_local": True, "webhook_poll_seconds": 0.05,
        "webhook_retry_schedule": "0 0.2s 0.2s", "webhook_timeout_seconds": 3.0}


@pytest.fixture
def settings(databases) -> Settings:
    """The suite's settings, with local receivers allowed and short retries."""
    return Settings(database_url=databases.fresh(), key_cache_seconds=0, threads=16,
                    rate_limit_per_minute=1_000_000, **FAST)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


def subscribe(client, auth, url: str, **fields) -> dict:
    response = client.post("/v1/webhooks", json={"url": url, **fields}, headers=auth())
    assert response.status_code == 201, response.text
    return response.json()


def feed_after(client, auth, after: int) -> list[dict]:
    items = get_json(client, "/v1/events", auth(), limit=200)["items"]
    return [e for e in items if e["id"] > after]


def deliveries(client, auth, webhook_id: str) -> list[dict]:
    return get_json(client, f"/v1/webhooks/{webhook_id}/deliveries", auth())["items"]


# --- subscriptions ------------------------------------------------------------


def test_create_webhook_shows_the_secret_once(client, auth, receiver):
    response = client.post("/v1/webhooks", json={"url": f"{receiver.url}/ok",
                                                 "event_types": ["claim.created", "review.*"]},
                           headers=auth())
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["secret"].startswith("whsec_")
    Webhook(created["secret"])  # the spec's library takes it as it is
    assert response.headers["Location"] == f"/v1/webhooks/{created['id']}"
    assert response.headers["ETag"] == '"1"'
    one = client.get(f"/v1/webhooks/{created['id']}", headers=auth())
    assert one.status_code == 200 and "secret" not in one.json()
    assert one.json()["event_types"] == ["claim.created", "review.*"]
    listed = get_json(client, "/v1/webhooks", auth())["items"]
    assert [w["id"] for w in listed] == [created["id"]] and "secret" not in listed[0]
    assert created["secret"] not in client.get("/v1/events", headers=auth()).text


def test_webhook_routes_need_an_admin_key(client, auth, receiver):
    assert_problem(client.post("/v1/webhooks", json={"url": f"{receiver.url}/ok"},
                               headers=auth("checker")), 403)
    assert_problem(client.get("/v1/webhooks"), 401)


@pytest.mark.parametrize(("url", "why"), [
    ("/relative/path", "url"),
    ("ftp://example.org/hook", "url"),
    ("https://example.org/" + "a" * 2000, "2000"),
    ("https://169.254.169.254/latest/meta-data", "link-local"),
    ("http://[fd00:ec2::254]/", "metadata"),
    ("http://[::ffff:169.254.169.254]/", "link-local"),
    ("https://user:pw@127.0.0.1/", "password"),
])
def test_create_webhook_refuses_unsafe_urls_even_when_local_is_allowed(client, auth, url, why):
    assert_problem(client.post("/v1/webhooks", json={"url": url}, headers=auth()), 422,
                   contains=why)


@pytest.mark.parametrize(("url", "why"), [
    ("http://example.org/hook", "only https"),
    ("https://127.0.0.1/hook", "loopback"),
    ("https://localhost:8443/hook", "loopback"),
    ("https://10.1.2.3/hook", "private"),
    ("https://[::1]/hook", "loopback"),
    ("https://169.254.169.254/", "link-local"),
])
def test_create_webhook_refuses_local_targets_by_default(settings, db, auth, url, why):
    strict = create_app(settings.model_copy(update={"webhook_allow_local": False,
                                                    "webhook_worker": False}), database=db)
    with TestClient(strict, raise_server_exceptions=False) as client:
        assert_problem(client.post("/v1/webhooks", json={"url": url}, headers=auth()), 422,
                       contains=why)
        assert get_json(client, "/v1/webhooks", auth())["items"] == []


def test_create_webhook_refuses_unknown_event_types_and_bad_fields(client, auth, receiver):
    url = f"{receiver.url}/ok"
    assert_problem(client.post("/v1/webhooks", json={"url": url, "event_types": ["claim.eaten"]},
                               headers=auth()), 422, contains="event_types")
    assert_problem(client.post("/v1/webhooks", json={"url": url, "event_types": ["nope.*"]},
                               headers=auth()), 422, contains="event_types")
    assert_problem(client.post("/v1/webhooks", json={"url": url, "event_types": []},
                               headers=auth()), 422)
    assert_problem(client.post("/v1/webhooks", json={"url": url, "secret": "whsec_x"},
                               headers=auth()), 422)
    assert_problem(client.post("/v1/webhooks", json={"url": url, "topics": ["Not A Slug"]},
                               headers=auth()), 422)
    hook = subscribe(client, auth, url)
    assert_problem(client.patch(f"/v1/webhooks/{hook['id']}", json={"active": None},
                                headers=with_version(auth(), 1)), 422, contains="null")
    assert_problem(client.patch(f"/v1/webhooks/{hook['id']}", json={"active": False},
                                headers=auth()), 428)
    assert_problem(client.patch(f"/v1/webhooks/{hook['id']}", json={"active": False},
                                headers=with_version(auth(), 7)), 412)
    assert_problem(client.patch(f"/v1/webhooks/{hook['id']}",
                                json={"url": "https://169.254.169.254/"},
                                headers=with_version(auth(), 1)), 422, contains="link-local")
    assert_problem(client.get("/v1/webhooks/whk_nope", headers=auth()), 404)
    assert_problem(client.get("/v1/webhooks?cursor=bm9wZQ", headers=auth()), 400)


# --- deliveries ---------------------------------------------------------------


def scripted_changes(client, auth) -> None:
    """A desk's morning: sources, claims with attributions, a review, an edit, a link."""
    checker = auth("checker")
    make_source(client, checker, "Institute for the Study of War", aliases=["ISW"])
    first = make_claim(client, checker, "Belarus is running an information operation aimed at "
                       "fixing Ukrainian forces on the border.", topics=["belarus"])
    second = make_claim(client, checker, "441 civilians were killed by Russian forces in the "
                        "Kyiv, Sumy and Chernihiv regions early in the war.",
                        attributions=[{"source": "OHCHR", "stance": "asserts"}])
    add_attribution(client, checker, first["id"], source="ISW", stance="asserts")
    review(client, checker, second["id"], "true")
    version = get_json(client, f"/v1/claims/{first['id']}", checker)["version"]
    response = client.patch(f"/v1/claims/{first['id']}", json={"topics": ["belarus", "war"]},
                            headers=with_version(checker, version))
    assert response.status_code == 200, response.text
    make_link(client, checker, first["id"], second["id"])


def test_receiver_gets_every_event_signed_in_feed_order(client, auth, receiver):
    hook = subscribe(client, auth, f"{receiver.url}/ok")
    scripted_changes(client, auth)
    feed = feed_after(client, auth, hook["last_event_id"])
    assert len(feed) >= 8
    got = receiver.wait_for("/ok", len(feed))
    payloads = [r.verify(hook["secret"]) for r in got]
    assert [p["data"]["id"] for p in payloads] == [e["id"] for e in feed]
    assert [p["data"] for p in payloads] == feed  # every event, once, as the feed has it
    assert [p["type"] for p in payloads] == [e["action"] for e in feed]
    assert [p["timestamp"] for p in payloads] == [e["at"] for e in feed]
    assert len({r.headers["webhook-id"] for r in got}) == len(got)
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "QUJD" * 8).verify(got[0].body, got[0].headers)
    log = wait_until(lambda: [d for d in deliveries(client, auth, hook["id"])
                              if d["status"] == "succeeded"] if len(
        deliveries(client, auth, hook["id"])) >= len(feed) else None, what="the log")
    assert {d["status_code"] for d in log} == {204}
    assert all(d["latency_ms"] >= 0 and d["attempt"] == 1 for d in log)
    done = wait_until(lambda: (w := get_json(client, f"/v1/webhooks/{hook['id']}", auth()))
                      ["last_event_id"] == feed[-1]["id"] and w, what="the cursor")
    assert done["attempts"] == 0 and done["active"] is True


def test_event_types_and_topics_filter_what_is_sent(client, auth, receiver):
    reviews = subscribe(client, auth, f"{receiver.url}/ok/reviews",
                        event_types=["review.created"], topics=["belarus"])
    claims = subscribe(client, auth, f"{receiver.url}/ok/claims", event_types=["claim.*"])
    checker = auth("checker")
    belarus = make_claim(client, checker, "Troops will arrive in Belarus within two days.",
                         topics=["belarus"])
    other = make_claim(client, checker, "At least 6,700 civilian deaths have been counted.")
    review(client, checker, other["id"], "mostly_true")
    review(client, checker, belarus["id"], "false")
    got = receiver.wait_for("/ok/reviews", 1)
    data = got[0].verify(reviews["secret"])["data"]
    assert data["action"] == "review.created" and data["claim_id"] == belarus["id"]
    claim_msgs = receiver.wait_for("/ok/claims", 2)
    assert [m.verify(claims["secret"])["type"] for m in claim_msgs[:2]] == \
        ["claim.created", "claim.created"]
    wait_until(lambda: get_json(client, f"/v1/webhooks/{reviews['id']}", auth())
               ["last_event_id"] > reviews["last_event_id"], what="the cursor moving")
    assert len(receiver.on("/ok/reviews")) == 1
    assert all(m.verify(claims["secret"])["type"].startswith("claim.")
               for m in receiver.on("/ok/claims"))


def test_down_receiver_gets_retries_then_its_subscription_is_disabled(client, auth, receiver):
    hook = subscribe(client, auth, f"{receiver.url}/500")
    make_claim(client, auth("checker"))
    got = receiver.wait_for("/500", 3)
    assert len({r.headers["webhook-id"] for r in got}) == 1  # the same message each time
    disabled = wait_until(lambda: (w := get_json(client, f"/v1/webhooks/{hook['id']}", auth()))
                          ["active"] is False and w, what="disabling")
    assert "3 failed attempts" in disabled["disabled_reason"]
    assert "500" in disabled["disabled_reason"]
    log = deliveries(client, auth, hook["id"])
    assert [d["attempt"] for d in log] == [3, 2, 1]  # newest first
    assert {d["status"] for d in log} == {"failed"} and {d["status_code"] for d in log} == {500}
    assert log[0]["next_attempt_at"] is None and log[2]["next_attempt_at"] is not None
    assert len(receiver.on("/500")) == 3  # no more once disabled
    events = get_json(client, "/v1/events", auth(), action="webhook.disabled")["items"]
    assert [e["entity_id"] for e in events] == [hook["id"]]
    # Resumed at a working URL, it gets the event that failed, then the rest.
    response = client.patch(f"/v1/webhooks/{hook['id']}", json={
        "active": True, "url": f"{receiver.url}/ok"}, headers=with_version(auth(), disabled[
            "version"]))
    assert response.status_code == 200, response.text
    assert response.json()["disabled_reason"] is None
    resent = receiver.wait_for("/ok", 1)
    assert resent[0].headers["webhook-id"] == got[0].headers["webhook-id"]


@pytest.mark.parametrize(("path", "error", "code"), [
    ("/hang", "no answer within 3 s", None),
    ("/301", "redirects are not followed", 301),
    ("/close", "the request failed", None),
])
def test_failing_receivers_are_recorded_not_fatal(client, auth, receiver, path, error, code):
    hook = subscribe(client, auth, f"{receiver.url}{path}")
    make_claim(client, auth("checker"))
    log = wait_until(lambda: deliveries(client, auth, hook["id"]), what="a recorded attempt")
    assert log[-1]["status"] == "failed" and error in log[-1]["error"]
    assert log[-1]["status_code"] == code
    assert receiver.on("/ok/redirected") == []  # a redirect is never followed
    # The API is not held up meanwhile.
    assert client.get("/v1/claims", headers=auth("reader")).status_code == 200


def test_paused_subscription_gets_what_happened_once_resumed(client, auth, receiver):
    hook = subscribe(client, auth, f"{receiver.url}/ok", event_types=["claim.created"])
    paused = client.patch(f"/v1/webhooks/{hook['id']}", json={"active": False},
                          headers=with_version(auth(), 1))
    assert paused.status_code == 200 and paused.json()["active"] is False
    texts = [f"Claim number {i} about troops in Belarus." for i in range(3)]
    for text in texts:
        make_claim(client, auth("checker"), text)
    assert_problem(client.post(f"/v1/webhooks/{hook['id']}/test", headers=auth()), 409,
                   contains="resume")
    threading.Event().wait(0.5)
    assert receiver.on("/ok") == []
    resumed = client.patch(f"/v1/webhooks/{hook['id']}", json={"active": True},
                           headers=with_version(auth(), paused.json()["version"]))
    assert resumed.status_code == 200
    got = receiver.wait_for("/ok", 3)
    assert [r.verify(hook["secret"])["data"]["changes"]["text"] for r in got] == texts


def test_test_event_redelivery_and_secret_rotation(client, auth, receiver):
    hook = subscribe(client, auth, f"{receiver.url}/ok")
    queued = client.post(f"/v1/webhooks/{hook['id']}/test", headers=auth())
    assert queued.status_code == 202 and queued.json()["status"] == "queued"
    got = receiver.wait_for("/ok", 1)
    assert got[0].verify(hook["secret"])["type"] == "webhook.test"
    make_claim(client, auth("checker"))
    receiver.wait_for("/ok", 2)
    log = wait_until(lambda: [d for d in deliveries(client, auth, hook["id"])
                              if d["type"] == "claim.created" and d["status"] == "succeeded"],
                     what="the claim's delivery")
    again = client.post(f"/v1/webhooks/{hook['id']}/deliveries/{log[0]['id']}/redeliver",
                        headers=auth())
    assert again.status_code == 202, again.text
    third = receiver.wait_for("/ok", 3)[2]
    assert third.headers["webhook-id"] == receiver.on("/ok")[1].headers["webhook-id"]
    assert_problem(client.post(f"/v1/webhooks/{hook['id']}/deliveries/dlv_nope/redeliver",
                               headers=auth()), 404)
    rotated = client.post(f"/v1/webhooks/{hook['id']}/rotate-secret", headers=auth())
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    assert new_secret != hook["secret"] and rotated.json()["secret_rotated"] is True
    make_claim(client, auth("checker"), "Russia does not intentionally target civilians.")
    after = receiver.wait_for("/ok", 5)[3:]  # the rotation's own event, then the claim
    for message, kind in zip(after, ["webhook.secret_rotated", "claim.created"], strict=True):
        assert len(message.headers["webhook-signature"].split(" ")) == 2  # both secrets sign
        assert message.verify(new_secret)["type"] == kind
        assert message.verify(hook["secret"])["type"] == kind


def test_deleting_a_subscription_with_queued_deliveries(client, auth, receiver, settings):
    slow = settings.model_copy(update={"webhook_retry_schedule": "0 1h"})
    hook = subscribe(client, auth, f"{receiver.url}/500")
    hanging = subscribe(client, auth, f"{receiver.url}/hang")
    make_claim(client, auth("checker"))
    receiver.wait_for("/hang", 1)
    receiver.wait_for("/500", 1)
    for webhook_id in (hook["id"], hanging["id"]):  # one waiting to retry, one mid-send
        assert client.delete(f"/v1/webhooks/{webhook_id}", headers=auth()).status_code == 204
        assert_problem(client.get(f"/v1/webhooks/{webhook_id}/deliveries", headers=auth()), 404)
    threading.Event().wait(3.5)  # the hanging send times out and finds its subscription gone
    assert get_json(client, "/v1/webhooks", auth())["items"] == []
    # The worker goes on: a new subscription is served.
    fresh = subscribe(client, auth, f"{receiver.url}/ok")
    make_claim(client, auth("checker"), "At least 6,700 civilian deaths have been counted.")
    assert receiver.wait_for("/ok", 1)[0].verify(fresh["secret"])["type"] == "claim.created"
    assert slow.webhook_retry_delays == [0.0, 3600.0]


def test_two_workers_never_send_the_same_delivery(client, auth, receiver, settings):
    """A second worker (its own engine, as another server would have) on the same database."""
    hooks = [subscribe(client, auth, f"{receiver.url}/ok/{i}", event_types=["claim.created"])
             for i in range(3)]
    other = Database(settings)
    stop = threading.Event()

    def second_worker() -> None:
        async def main() -> None:
            task = asyncio.create_task(Dispatcher(other, settings).run())
            while not stop.is_set():
                await asyncio.sleep(0.05)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

        asyncio.run(main())

    thread = threading.Thread(target=second_worker)
    thread.start()
    try:
        for i in range(8):
            make_claim(client, auth("checker"), f"Claim {i}: troops moved near Brest.")
        for i in range(3):
            got = receiver.wait_for(f"/ok/{i}", 8)
            ids = [r.headers["webhook-id"] for r in got]
            assert len(ids) == len(set(ids)) == 8, ids  # each once, in order
            events = [r.verify(hooks[i]["secret"])["data"]["id"] for r in got]
            assert events == sorted(events)
    finally:
        stop.set()
        thread.join(10)
        other.dispose()


def test_delivery_checks_the_address_again_at_each_send(settings, db):
    """DNS can change after a subscription is made: the send is refused, and recorded."""
    strict = Dispatcher(db, settings.model_copy(update={"webhook_allow_local": False}))
    job = Job(webhook_id="whk_x", token="t", url="https://localhost:9/hook",
              secrets=["whsec_" + "QUJD" * 8], message_id="msg_1", type="claim.created",
              body=b"{}", attempt=1, event_id=1)

    async def attempt():
        async with httpx.AsyncClient() as client:
            return await strict.send(client, job)

    outcome = asyncio.run(attempt())
    assert not outcome.ok and outcome.status_code is None
    assert "refused" in outcome.error and "loopback" in outcome.error


# --- CORS ---------------------------------------------------------------------

ALLOWED = "https://desk.example.org"


@pytest.fixture
def cors_client(settings, db) -> Iterator[TestClient]:
    app = create_app(settings.model_copy(update={"cors_origins": f"{ALLOWED}, https://b.test",
                                                 "webhook_worker": False}), database=db)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def preflight(client, origin: str, method: str = "PATCH"):
    return client.options("/v1/claims/clm_x", headers={
        "Origin": origin, "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization, if-match, idempotency-key, "
                                          "content-type"})


def test_cors_preflight_from_an_allowed_origin(cors_client):
    response = preflight(cors_client, ALLOWED)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ALLOWED
    assert "PATCH" in response.headers["access-control-allow-methods"]
    allowed = response.headers["access-control-allow-headers"].lower()
    for header in ("authorization", "if-match", "idempotency-key", "content-type"):
        assert header in allowed


def test_cors_preflight_from_an_unknown_origin_is_refused(cors_client):
    response = preflight(cors_client, "https://evil.example")
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers


def test_cors_simple_requests_expose_headers_to_allowed_origins_only(cors_client, auth):
    claim = make_claim(cors_client, auth("checker"))
    response = cors_client.get(f"/v1/claims/{claim['id']}",
                               headers={**auth("reader"), "Origin": ALLOWED})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ALLOWED
    exposed = response.headers["access-control-expose-headers"].lower()
    for header in ("etag", "location", "retry-after"):
        assert header in exposed
    denied = cors_client.get(f"/v1/claims/{claim['id']}",
                             headers={**auth("reader"), "Origin": "https://evil.example"})
    assert denied.status_code == 200  # the server answers; the browser withholds it
    assert "access-control-allow-origin" not in denied.headers
    unauthenticated = cors_client.get("/v1/claims", headers={"Origin": ALLOWED})
    assert unauthenticated.status_code == 401  # errors carry CORS too, so scripts can read them
    assert unauthenticated.headers["access-control-allow-origin"] == ALLOWED


def test_cors_is_off_by_default_and_any_origin_has_no_credentials(client, settings, db):
    response = preflight(client, ALLOWED)
    assert "access-control-allow-origin" not in response.headers
    anyone = create_app(settings.model_copy(update={"cors_origins": "*",
                                                    "webhook_worker": False}), database=db)
    with TestClient(anyone, raise_server_exceptions=False) as open_client:
        response = preflight(open_client, "https://anywhere.example")
        assert response.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in response.headers


# --- a real server killed mid-delivery ------------------------------------------


def test_server_killed_mid_delivery_resumes_after_restart(settings, tmp_path, receiver):
    """SIGKILL while the receiver holds a delivery: the restarted server sends what was left."""
    from tests.live_server import mint_role_keys, run_live_server

    admin = {"Authorization": f"Bearer {mint_role_keys(settings, 'live')['admin']}"}
    receiver.gate.clear()  # the first delivery hangs until the server is gone
    with run_live_server(settings, tmp_path / "first.log") as server, \
            httpx.Client(base_url=server.url, timeout=10) as api:
        response = api.post("/v1/webhooks", headers=admin, json={
            "url": f"{receiver.url}/gate", "event_types": ["claim.created"]})
        assert response.status_code == 201, response.text
        hook = response.json()
        for i in range(5):
            created = api.post("/v1/claims", headers=admin,
                               json={"text": f"Claim {i}: equipment arrived in Gomel."})
            assert created.status_code == 201, created.text
        receiver.wait_for("/gate", 1)
        assert server.process is not None
        server.process.kill()  # mid-delivery: nothing recorded, its lease held
        server.process.wait(10)
    receiver.gate.set()
    with run_live_server(settings, tmp_path / "second.log") as server, \
            httpx.Client(base_url=server.url, timeout=10) as api:
        got = wait_until(lambda: len({r.headers["webhook-id"] for r in receiver.on("/gate")})
                         >= 5 and receiver.on("/gate"), timeout=30, what="the rest")
        first_seen = list(dict.fromkeys(r.headers["webhook-id"] for r in got))
        texts = [r.verify(hook["secret"])["data"]["changes"]["text"] for r in got]
        assert list(dict.fromkeys(texts)) == [f"Claim {i}: equipment arrived in Gomel."
                                              for i in range(5)]  # in order, none lost
        assert len(first_seen) == 5
        assert len(got) <= 6  # at least once: only the one cut short went twice

        def succeeded() -> list[dict]:
            items = api.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=admin).json()
            return [d for d in items["items"] if d["status"] == "succeeded"]

        assert len(wait_until(lambda: len(succeeded()) >= 5 and succeeded(),
                              what="five recorded deliveries")) >= 5


def test_every_action_the_ledger_records_can_be_subscribed_to():
    """An action missing from EVENT_TYPES could only be had with `*`: each one recorded in
    app/ (action="kind.verb") is a type a subscription may name."""
    import re
    from pathlib import Path

    from app.models import EVENT_TYPES
    recorded = {m for path in Path(__file__).parent.parent.joinpath("app").rglob("*.py")
                for m in re.findall(r'action(?:=|": )"([a-z_]+\.[a-z_]+)"', path.read_text())}
    assert recorded and recorded <= set(EVENT_TYPES), sorted(recorded - set(EVENT_TYPES))
