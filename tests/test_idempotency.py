"""Idempotency-Key on every POST: replay, conflicts, per-key scope, in-flight retries, purge."""

import json
import threading
import time
from datetime import datetime, timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from app.db import Database
from app.domain import idempotency
from app.errors import Conflict
from app.main import create_app
from app.models import ApiKey, IdempotencyRecord, Instance, utcnow
from app.models import base as model_base
from tests.factories import (
    NDJSON,
    NO_FORCES,
    SOLDIERS,
    all_claims,
    assert_problem,
    get_json,
    ledger_state,
    make_claim,
    make_source,
)
from tests.live_server import live_auth, live_secrets, live_server  # noqa: F401

CIVILIANS = ("441 civilians were killed by Russian forces in the Kyiv, Sumy and Chernihiv regions "
             "early in the war.")
NOT_TARGET = "Russia does not intentionally target civilians."

ROUTES = ["claims", "sources", "attributions", "reviews", "links", "merge", "ingest", "keys"]
JSON = {"content-type": "application/json"}


@pytest.fixture
def post(client, auth):
    """post(route, idempotency_key, variant=0, role=None) -> the response of that POST route.

    Each variant is a different, valid body; every route is one that writes something new
    each time it really runs, so a replay is told apart from a second execution.
    """
    target = make_claim(client, auth("ingester"), CIVILIANS)
    other = make_claim(client, auth("ingester"), NOT_TARGET)
    make_source(client, auth("ingester"), "OHCHR", kind="intergovernmental")

    def body_of(route: str, variant: int) -> tuple[str, str, dict | list]:
        return {
            "claims": ("/v1/claims", "ingester", {"text": f"{SOLDIERS} ({variant})"}),
            "sources": ("/v1/sources", "ingester", {"name": f"BelTA {variant}"}),
            "attributions": (f"/v1/claims/{target['id']}/attributions", "ingester",
                             {"source": "OHCHR", "stance": "asserts",
                              "quote": f"quote {variant}"}),
            "reviews": (f"/v1/claims/{target['id']}/reviews", "checker",
                        {"status": "in_review" if variant == 0 else "true",
                         "rationale": "OHCHR report"}),
            "links": (f"/v1/claims/{target['id']}/links", "checker",
                      {"target_id": other["id"],
                       "kind": "contradicts" if variant == 0 else "related"}),
            "merge": (f"/v1/claims/{target['id']}/merge", "checker",
                      {"duplicate_id": other["id"], "note": f"same claim ({variant})"}),
            "ingest": ("/v1/ingest", "ingester",
                       [{"text": f"{NO_FORCES} ({variant})"}, {"text": f"Batch note {variant}"}]),
            "keys": ("/v1/keys", "admin", {"name": f"feed-bot-{variant}", "role": "ingester"}),
        }[route]

    def send(route: str, key: str | None, variant: int = 0, role: str | None = None):
        url, default_role, body = body_of(route, variant)
        headers = {**auth(role or default_role), **JSON}
        if route in ("reviews", "links", "merge"):  # they take If-Match (any current version)
            headers["If-Match"] = "*"
        if key is not None:
            headers["Idempotency-Key"] = key
        return client.post(url, content=json.dumps(body), headers=headers)

    return send


def everything(client, auth) -> dict:
    """The ledger plus the keys, to show that a replay wrote nothing."""
    return {**ledger_state(client, auth("reader")),
            "keys": get_json(client, "/v1/keys", auth("admin"), include_revoked="true")}


@pytest.mark.parametrize("route", ROUTES)
def test_post_route_same_key_same_body_replays_first_response(client, auth, post, route):
    first = post(route, "retry-1")
    assert first.status_code in (200, 201), first.text
    assert "idempotent-replayed" not in first.headers
    before = everything(client, auth)
    again = post(route, "retry-1")
    assert again.status_code == first.status_code
    assert again.headers["idempotent-replayed"] == "true"
    if route == "keys":  # the secret is never stored, so a replay cannot show it again
        assert again.json() == {**first.json(), "secret": ""}
        assert first.json()["secret"].startswith("clk_")
    else:
        assert again.json() == first.json()
    for header in ("etag", "location", "content-type"):
        assert again.headers.get(header) == first.headers.get(header), header
    assert everything(client, auth) == before


@pytest.mark.parametrize("route", ROUTES)
def test_post_route_same_key_other_body_is_422(client, auth, post, route):
    assert post(route, "retry-2").status_code in (200, 201)
    before = everything(client, auth)
    assert_problem(post(route, "retry-2", variant=1), 422, contains="different request")
    assert everything(client, auth) == before


def test_create_claim_replay_keeps_etag_and_location(client, auth, post):
    first = post("claims", "headers-1")
    again = post("claims", "headers-1")
    assert again.headers["etag"] == first.headers["etag"] == '"1"'
    assert again.headers["location"] == first.headers["location"]


def test_create_claim_without_key_runs_every_time(client, auth, post):
    ids = {post("claims", None).json()["id"] for _ in range(2)}
    assert len(ids) == 2


def test_create_claim_key_scoped_per_api_key(client, auth, post):
    mine = post("claims", "shared-string")
    assert mine.status_code == 201
    # Another API key may use the same string: it gets its own result, not the first one's.
    theirs = post("claims", "shared-string", role="checker")
    assert theirs.status_code == 201, theirs.text
    assert "idempotent-replayed" not in theirs.headers
    assert theirs.json()["id"] != mine.json()["id"]
    assert theirs.json()["created_by"] == "test-checker"
    other_body = post("claims", "shared-string", variant=1, role="admin")
    assert other_body.status_code == 201, other_body.text
    # And each key still replays its own.
    for role, first in (("ingester", mine), ("checker", theirs)):
        replay = post("claims", "shared-string", role=role)
        assert replay.headers["idempotent-replayed"] == "true"
        assert replay.json()["id"] == first.json()["id"]


def test_create_claim_failed_request_does_not_burn_key(client, auth):
    headers = {**auth("ingester"), "Idempotency-Key": "after-a-422"}
    before = everything(client, auth)
    invalid = client.post("/v1/claims", json={"text": ""}, headers=headers)
    assert_problem(invalid, 422)
    unknown = client.post("/v1/claims", json={"text": SOLDIERS, "status": "true"},
                          headers=headers)
    assert_problem(unknown, 422)  # run again, not replayed: the key was not kept
    assert "idempotent-replayed" not in unknown.headers
    assert everything(client, auth) == before
    ok = client.post("/v1/claims", json={"text": SOLDIERS}, headers=headers)
    assert ok.status_code == 201, ok.text
    replay = client.post("/v1/claims", json={"text": SOLDIERS}, headers=headers)
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json()["id"] == ok.json()["id"]


def test_create_source_conflict_does_not_burn_key(client, auth):
    make_source(client, auth("ingester"), "Institute for the Study of War", aliases=["ISW"])
    headers = {**auth("ingester"), "Idempotency-Key": "after-a-409"}
    clash = client.post("/v1/sources", json={"name": "ISW"}, headers=headers)
    assert_problem(clash, 409)
    ok = client.post("/v1/sources", json={"name": "Rochan Consulting"}, headers=headers)
    assert ok.status_code == 201, ok.text


def test_ingest_claims_all_failed_batch_does_not_burn_key(client, auth):
    headers = {**auth("ingester"), "Idempotency-Key": "batch-7"}
    failed = client.post("/v1/ingest", json=[{"text": ""}], headers=headers)
    assert_problem(failed, 422)
    ok = client.post("/v1/ingest", json=[{"text": SOLDIERS}], headers=headers)
    assert ok.status_code == 200, ok.text
    assert ok.json()["items"][0]["status"] == "created"


def test_create_claim_bad_idempotency_key_is_4xx(client, auth):
    before = everything(client, auth)
    too_long = client.post("/v1/claims", json={"text": SOLDIERS},
                           headers={**auth("ingester"), "Idempotency-Key": "k" * 256})
    assert_problem(too_long, 422)
    assert everything(client, auth) == before


# --- in flight, abandoned, purged -------------------------------------------------------


def _key_id(db, name: str) -> str:
    with db.session() as session:
        return session.exec(select(ApiKey.id).where(ApiKey.name == name)).one()


def _pending(db, *, api_key_id: str, key: str, body: bytes, age: timedelta,
             instance_id: str | None = None) -> None:
    digest = idempotency.request_hash("POST", "/v1/claims", "", body)
    with db.write_session() as session:
        session.add(IdempotencyRecord(api_key_id=api_key_id, key=key, request_hash=digest,
                                      started_at=utcnow() - age, created_at=utcnow() - age,
                                      instance_id=instance_id, claim_token="theirs"))
        session.commit()


def _instance(db, instance_id: str, *, silent: timedelta) -> None:
    """Another server instance whose last heartbeat was `silent` ago."""
    with db.write_session() as session:
        session.add(Instance(id=instance_id, last_seen_at=utcnow() - silent))
        session.commit()


def test_create_claim_retry_while_in_flight_is_409(client, auth, db):
    body = json.dumps({"text": SOLDIERS}).encode()
    _pending(db, api_key_id=_key_id(db, "test-ingester"), key="in-flight", body=body,
             age=timedelta(seconds=1))
    before = everything(client, auth)
    headers = {**auth("ingester"), **JSON, "Idempotency-Key": "in-flight"}
    busy = client.post("/v1/claims", content=body, headers=headers)
    assert_problem(busy, 409, contains="in progress")
    assert busy.headers["retry-after"]
    other = client.post("/v1/claims", content=json.dumps({"text": NO_FORCES}), headers=headers)
    assert_problem(other, 422, contains="different request")
    assert everything(client, auth) == before
    # Another API key is not held up by it.
    free = client.post("/v1/claims", content=body,
                       headers={**auth("checker"), **JSON, "Idempotency-Key": "in-flight"})
    assert free.status_code == 201, free.text


def test_create_claim_abandoned_in_flight_key_is_taken_over(client, auth, db, settings):
    body = json.dumps({"text": SOLDIERS}).encode()
    age = timedelta(seconds=settings.idempotency_pending_seconds + 5)
    _pending(db, api_key_id=_key_id(db, "test-ingester"), key="abandoned", body=body, age=age)
    headers = {**auth("ingester"), **JSON, "Idempotency-Key": "abandoned"}
    taken = client.post("/v1/claims", content=body, headers=headers)
    assert taken.status_code == 201, taken.text
    replay = client.post("/v1/claims", content=body, headers=headers)
    assert replay.status_code == 201
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json()["id"] == taken.json()["id"]
    assert len(get_json(client, "/v1/claims", auth("reader"))["items"]) == 1


@pytest.mark.parametrize("heartbeat", ["stale", "missing"])
def test_create_claim_key_held_by_dead_instance_is_taken_over_at_once(client, auth, db,
                                                                      settings, heartbeat):
    # The server that claimed the key a second ago was SIGKILLed: its heartbeat stopped
    # (or it is gone from the table). Well inside idempotency_pending_seconds, the retry
    # runs at once instead of getting 409 for two minutes.
    body = json.dumps({"text": SOLDIERS}).encode()
    if heartbeat == "stale":
        _instance(db, "killed", silent=timedelta(seconds=settings.instance_timeout_seconds + 1))
    _pending(db, api_key_id=_key_id(db, "test-ingester"), key="crashed", body=body,
             age=timedelta(seconds=1), instance_id="killed")
    headers = {**auth("ingester"), **JSON, "Idempotency-Key": "crashed"}
    taken = client.post("/v1/claims", content=body, headers=headers)
    assert taken.status_code == 201, taken.text
    replay = client.post("/v1/claims", content=body, headers=headers)
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json()["id"] == taken.json()["id"]
    assert len(get_json(client, "/v1/claims", auth("reader"))["items"]) == 1
    with db.session() as session:
        record = session.get(IdempotencyRecord, (_key_id(db, "test-ingester"), "crashed"))
        assert record.done and record.instance_id != "killed"


def test_create_claim_key_held_by_live_instance_is_409(client, auth, db):
    # Another worker (or instance on the same PostgreSQL) is running the request: its
    # heartbeat is fresh, so the retry waits even though the claim is not ours.
    body = json.dumps({"text": SOLDIERS}).encode()
    _instance(db, "other-worker", silent=timedelta(seconds=0))
    _pending(db, api_key_id=_key_id(db, "test-ingester"), key="elsewhere", body=body,
             age=timedelta(seconds=1), instance_id="other-worker")
    before = everything(client, auth)
    headers = {**auth("ingester"), **JSON, "Idempotency-Key": "elsewhere"}
    busy = client.post("/v1/claims", content=body, headers=headers)
    assert_problem(busy, 409, contains="in progress")
    assert busy.headers["retry-after"] == "1"
    assert everything(client, auth) == before


def _skew_clock(monkeypatch: pytest.MonkeyPatch, by: timedelta) -> None:
    """This process's clock (every utcnow()) runs `by` off the host's, and the database's."""
    class Skewed(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.now(tz) + by

    monkeypatch.setattr(model_base, "datetime", Skewed)  # utcnow() reads it there


@pytest.mark.parametrize("owner", ["live", "dead"])
def test_create_claim_skewed_clock_judges_owner_by_database_clock(client, auth, db, settings,
                                                                  monkeypatch, owner):
    # A server whose clock runs a minute ahead took a live server's fresh beat for a
    # minute of silence, and one a minute behind took a dead server for a live one:
    # beats are stamped and judged by the database's clock, which all servers share.
    body = json.dumps({"text": SOLDIERS}).encode()
    timeout = settings.instance_timeout_seconds
    if owner == "live":
        other = idempotency.Heartbeat(db, interval=settings.instance_heartbeat_seconds,
                                      timeout=timeout)
        assert other.beat()
        owner_id, skew = other.instance_id, timedelta(minutes=1)
    else:
        _instance(db, "killed", silent=timedelta(seconds=timeout + 1))
        owner_id, skew = "killed", -timedelta(minutes=1)
    _pending(db, api_key_id=_key_id(db, "test-ingester"), key="skewed", body=body,
             age=timedelta(seconds=1), instance_id=owner_id)
    _skew_clock(monkeypatch, skew)
    response = client.post("/v1/claims", content=body,
                           headers={**auth("ingester"), **JSON, "Idempotency-Key": "skewed"})
    if owner == "live":
        assert_problem(response, 409, contains="in progress")
        assert response.headers["retry-after"] == "1"
    else:
        assert response.status_code == 201, response.text


def test_create_claim_key_held_by_quiet_instance_409_says_when_it_is_taken_over(
        client, auth, db, settings):
    # Missed a few beats but not yet dead: Retry-After is the time until takeover.
    body = json.dumps({"text": SOLDIERS}).encode()
    timeout = settings.instance_timeout_seconds
    _instance(db, "quiet", silent=timedelta(seconds=timeout - 3.5))
    _pending(db, api_key_id=_key_id(db, "test-ingester"), key="quiet", body=body,
             age=timedelta(seconds=1), instance_id="quiet")
    busy = client.post("/v1/claims", content=body,
                       headers={**auth("ingester"), **JSON, "Idempotency-Key": "quiet"})
    assert_problem(busy, 409, contains="retry in")
    assert 1 <= int(busy.headers["retry-after"]) <= 4  # ~3.5 s, less the time this took


def test_create_claim_stamps_claim_with_this_instance(client, auth, db):
    with db.session() as session:
        (instance,) = session.exec(select(Instance)).all()
    headers = {**auth("ingester"), "Idempotency-Key": "stamped"}
    assert client.post("/v1/claims", json={"text": SOLDIERS}, headers=headers).status_code == 201
    with db.session() as session:
        record = session.get(IdempotencyRecord, (_key_id(db, "test-ingester"), "stamped"))
    assert record.instance_id == instance.id and record.claim_token


def test_instance_heartbeat_keeps_beating_and_leaves_at_shutdown(settings, db):
    settings = settings.model_copy(update={"instance_heartbeat_seconds": 0.1,
                                           "instance_timeout_seconds": 1.0})

    def seen() -> list[Instance]:
        with db.session() as session:
            return list(session.exec(select(Instance)).all())

    with TestClient(create_app(settings, database=db), raise_server_exceptions=False) as client:
        assert client.get("/healthz").status_code == 200
        heartbeat = client.app.state.heartbeat
        (first,) = seen()
        assert first.id == heartbeat.instance_id
        deadline = time.monotonic() + 10
        while heartbeat.beats < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert heartbeat.beats >= 6, "the heartbeat stopped"
        (later,) = seen()
        assert later.last_seen_at > first.last_seen_at
        assert utcnow() - later.last_seen_at < timedelta(seconds=1)
    assert seen() == []  # a clean shutdown leaves no live-looking row behind


def test_instance_heartbeat_survives_a_failing_database(settings, tmp_path):
    # No such database: the beat reports failure instead of raising into the app.
    url = f"sqlite:///{tmp_path}/no-dir/x.db" if settings.is_sqlite \
        else settings.database_url + "_missing"
    broken = Database(settings.model_copy(update={"database_url": url}))
    try:
        heartbeat = idempotency.Heartbeat(broken, interval=1, timeout=5)
        assert heartbeat.beat() is False and not heartbeat.registered
        assert heartbeat.beat() is False
    finally:
        broken.dispose()


def test_taken_over_request_writes_nothing(client, auth, db):
    # A request whose owner only looked dead (a long pause) and whose key a retry took
    # over must not store a second response: its transaction fails with 409.
    key_id = _key_id(db, "test-ingester")
    slow = idempotency.Idempotency(db, key_id, "paused", "digest",
                                   heartbeat=client.app.state.heartbeat)
    slow.begin()
    with db.write_session() as session:  # what a retry's takeover leaves behind
        record = session.get(IdempotencyRecord, (key_id, "paused"))
        record.claim_token, record.instance_id = "retry", "another"
        session.add(record)
        session.commit()
    with db.write_session() as session, pytest.raises(Conflict, match="took this Idem"):
        slow.save(session, status=201, body={"id": "clm_x"})
    slow.release()  # and its clean-up leaves the retry's claim alone
    with db.session() as session:
        record = session.get(IdempotencyRecord, (key_id, "paused"))
        assert record is not None and record.claim_token == "retry" and not record.done


def test_purge_idempotency_records_older_than_ttl(client, auth, db, settings):
    headers = {**auth("ingester"), "Idempotency-Key": "old"}
    first = client.post("/v1/claims", json={"text": SOLDIERS}, headers=headers)
    assert first.status_code == 201
    recent = {**auth("ingester"), "Idempotency-Key": "recent"}
    kept = client.post("/v1/claims", json={"text": NO_FORCES}, headers=recent)
    assert kept.status_code == 201
    ttl = timedelta(hours=settings.idempotency_ttl_hours)
    with db.write_session() as session:
        record = session.exec(select(IdempotencyRecord)
                              .where(IdempotencyRecord.key == "old")).one()
        record.created_at = utcnow() - ttl - timedelta(minutes=1)
        session.add(record)
        session.commit()
    with db.write_session() as session:
        assert idempotency.purge(session, older_than=ttl) == 1
        session.commit()
    with db.session() as session:
        left = session.exec(select(IdempotencyRecord.key)).all()
    assert left == ["recent"]
    # The purged key is forgotten: it may be used for a new request...
    fresh = client.post("/v1/claims", json={"text": CIVILIANS}, headers=headers)
    assert fresh.status_code == 201, fresh.text
    assert "idempotent-replayed" not in fresh.headers
    # ...while the recent one still replays.
    again = client.post("/v1/claims", json={"text": NO_FORCES}, headers=recent)
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == kept.json()["id"]


# --- real concurrency, through the live server ------------------------------------------


def _fire(url: str, count: int, make_request) -> list[httpx.Response]:
    """Send `count` requests at once, each from its own thread and connection."""
    start = threading.Barrier(count, timeout=30)
    results: list[httpx.Response | BaseException | None] = [None] * count

    def worker(n: int) -> None:
        try:
            with httpx.Client(base_url=url, timeout=60.0) as own:
                start.wait()
                results[n] = make_request(own, n)
        except BaseException as exc:  # reported below, in the test's thread
            results[n] = exc

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    assert not any(t.is_alive() for t in threads), "a request hung"
    for result in results:
        assert isinstance(result, httpx.Response), repr(result)
    return results  # type: ignore[return-value]


def test_ingest_claims_same_batch_20_concurrent_one_copy(live_server, live_auth):  # noqa: F811
    batch = [{"text": text, "attributions": [{"source": "OHCHR", "stance": "asserts"}]}
             for text in (SOLDIERS, NO_FORCES, CIVILIANS, NOT_TARGET)]
    body = json.dumps(batch)
    headers = {**live_auth("ingester"), **JSON, "Idempotency-Key": "nightly-feed-0001"}

    def send(client: httpx.Client, _n: int) -> httpx.Response:
        return client.post("/v1/ingest", content=body, headers=headers)

    responses = _fire(live_server.url, 20, send)
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 409}, [r.text for r in responses]
    ok = [r for r in responses if r.status_code == 200]
    assert ok
    first = ok[0].json()
    assert [r["status"] for r in first["items"]] == ["created"] * 4
    assert all(r.json() == first for r in ok)
    for busy in (r for r in responses if r.status_code == 409):
        assert busy.headers["content-type"].startswith("application/problem+json")
    with httpx.Client(base_url=live_server.url, timeout=60.0) as client:
        claims = all_claims(client, live_auth("reader"))
        assert sorted(c["text"] for c in claims) == sorted(i["text"] for i in batch)
        assert sorted(c["id"] for c in claims) == sorted(r["claim_id"] for r in first["items"])
        sources = client.get("/v1/sources", headers=live_auth("reader")).json()["items"]
        assert [s["name"] for s in sources] == ["OHCHR"]
        # The ones told "in flight" retry now and get the same answer, replayed.
        for _ in range(statuses.count(409) or 1):
            retry = client.post("/v1/ingest", content=body, headers=headers)
            assert retry.status_code == 200, retry.text
            assert retry.headers["idempotent-replayed"] == "true"
            assert retry.json() == first
        assert len(all_claims(client, live_auth("reader"))) == 4
    print(f"20 concurrent retries: {statuses.count(200)} replayed or first, "
          f"{statuses.count(409)} in flight")


def test_ingest_claims_50_concurrent_batches_create_new_source_once(
        live_server, live_auth):  # noqa: F811
    name = "Belarusian Hajun monitoring project"
    spellings = [name, name.upper(), name.lower() + " ", "Belarusian  Hajun Monitoring Project"]

    def send(client: httpx.Client, n: int) -> httpx.Response:
        batch = [{"text": f"Convoy {n} of military trucks crossed into Belarus near Brest.",
                  "attributions": [{"source": spellings[n % len(spellings)],
                                    "stance": "reports"}]},
                 {"text": f"Observers counted {n * 10 + 7} railway wagons with tanks.",
                  "attributions": [{"source": spellings[(n + 1) % len(spellings)],
                                    "stance": "asserts"}]}]
        return client.post("/v1/ingest", json=batch, headers={
            **live_auth("ingester"), "Idempotency-Key": f"batch-{n}"})

    responses = _fire(live_server.url, 50, send)
    assert [r.status_code for r in responses] == [200] * 50, [
        r.text for r in responses if r.status_code != 200][:3]
    assert all(r.json()["summary"]["created"] == 2 for r in responses)
    with httpx.Client(base_url=live_server.url, timeout=60.0) as client:
        found = client.get("/v1/sources", params={"name": name},
                           headers=live_auth("reader")).json()["items"]
        assert len(found) == 1
        every = client.get("/v1/sources", params={"limit": 200},
                           headers=live_auth("reader")).json()["items"]
        assert len(every) == 1
        claims = all_claims(client, live_auth("reader"))
        assert len(claims) == 100
        assert {a["source"]["id"] for c in claims for a in c["attributions"]} == {found[0]["id"]}


def test_ingest_claims_overlapping_batches_10_concurrent_one_copy(
        live_server, live_auth):  # noqa: F811
    # Two feed workers whose batches overlap (different batches, so different keys): the
    # items they share must still go in once.
    shared = [{"text": SOLDIERS, "origin": "feed", "external_id": "soldiers-1"},
              {"text": NO_FORCES}]

    def send(client: httpx.Client, n: int) -> httpx.Response:
        batch = [*shared, {"text": f"Worker {n} saw {n + 3} convoys near Mazyr."}]
        return client.post("/v1/ingest", json=batch, headers={
            **live_auth("ingester"), "Idempotency-Key": f"worker-{n}"})

    responses = _fire(live_server.url, 10, send)
    assert [r.status_code for r in responses] == [200] * 10, [
        r.text for r in responses if r.status_code != 200][:3]
    with httpx.Client(base_url=live_server.url, timeout=60.0) as client:
        texts = [c["text"] for c in all_claims(client, live_auth("reader"))]
    assert texts.count(SOLDIERS) == 1 and texts.count(NO_FORCES) == 1
    assert len(texts) == 12


def test_create_claim_same_external_id_10_concurrent_one_wins(
        live_server, live_auth):  # noqa: F811
    body = {"text": SOLDIERS, "origin": "feed", "external_id": "soldiers-1"}

    def send(client: httpx.Client, _n: int) -> httpx.Response:
        return client.post("/v1/claims", json=body, headers=live_auth("ingester"))

    responses = _fire(live_server.url, 10, send)
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * 9, [r.text for r in responses if r.status_code != 409]
    winner = next(r for r in responses if r.status_code == 201).json()["id"]
    assert {r.json()["claim_id"] for r in responses if r.status_code == 409} == {winner}


def test_retry_with_reserialised_json_body_replays(client, auth):
    headers = {**auth("ingester"), "Idempotency-Key": "reserialised",
               "Content-Type": "application/json"}
    body = {"text": SOLDIERS, "topics": ["belarus"], "language": "en"}
    first = client.post("/v1/claims", content=json.dumps(body), headers=headers)
    assert first.status_code == 201, first.text
    shuffled = json.dumps(dict(reversed(body.items())), indent=2)
    again = client.post("/v1/claims", content=shuffled, headers=headers)
    assert again.status_code == 201, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    other = client.post("/v1/claims", content=json.dumps({**body, "language": "de"}),
                        headers=headers)
    assert_problem(other, 422, contains="different request")

def test_retry_with_reserialised_ndjson_body_replays(client, auth):
    headers = {**auth("ingester"), **NDJSON, "Idempotency-Key": "reserialised-feed"}
    lines = [{"text": SOLDIERS, "origin": "nd", "external_id": "1"}, {"text": NO_FORCES}]
    first = client.post("/v1/ingest", headers=headers,
                        content="\n".join(json.dumps(x) for x in lines) + "\n")
    assert first.status_code == 200, first.text
    spaced = "\r\n".join(json.dumps(dict(reversed(x.items())), indent=None,
                                    separators=(" , ", " : ")) for x in lines)
    again = client.post("/v1/ingest", headers=headers, content=spaced)
    assert again.status_code == 200, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    swapped = client.post("/v1/ingest", headers=headers,
                          content="\n".join(json.dumps(x) for x in reversed(lines)))
    assert_problem(swapped, 422, contains="different request")
