"""Batches naming many new sources: created in bulk, each once, with its event, in seconds."""

import json
import random
import threading
import time

import httpx
import sqlalchemy as sa

from tests.factories import get_json
from tests.live_server import live_auth, live_secrets, live_server  # noqa: F401

ITEMS, PER_ITEM = 1000, 100


def big_batch(tag: str, per_item: int = PER_ITEM, sources: str | None = None) -> list[dict]:
    """1,000 items, each naming `per_item` sources nobody has named before (100: ~5.7 MB of
    JSON); with `sources`, the sources another batch (of that tag) named."""
    return [{"text": f"Batch {tag} claim {i}: troops and equipment moved to the border.",
             "attributions": [{"source": f"Source {sources or tag} {i:04d}-{k:03d}",
                               "stance": "asserts" if k % 2 else "disputes"}
                              for k in range(per_item)]}
            for i in range(ITEMS)]


def count(db, sql: str) -> int:
    with db.session() as session:
        return session.execute(sa.text(sql)).scalar_one()


def test_ingest_claims_1000_items_naming_100_new_sources_each(client, auth, db):
    items = big_batch("a")
    body = json.dumps(items).encode()
    assert len(body) > 5_000_000
    response = client.post("/v1/ingest", content=body, headers={
        **auth("ingester"), "content-type": "application/json"})
    assert response.status_code == 200, response.text[:500]
    result = response.json()
    assert result["summary"] == {"received": ITEMS, "created": ITEMS, "duplicate": 0,
                                 "updated": 0, "unchanged": 0, "error": 0}
    assert count(db, "SELECT count(*) FROM source") == ITEMS * PER_ITEM
    assert count(db, "SELECT count(*) FROM source_name") == ITEMS * PER_ITEM
    assert count(db, "SELECT count(*) FROM attribution") == ITEMS * PER_ITEM
    assert count(db, "SELECT count(*) FROM event WHERE action = 'source.created'") == \
        ITEMS * PER_ITEM
    assert count(db, "SELECT count(*) FROM event WHERE action = 'claim.created'") == ITEMS
    # Spot checks through the API: each claim cites its own sources, with the right stance,
    # and each source is findable by name, with its creation event.
    for i in random.Random(19).sample(range(ITEMS), 5):
        claim = get_json(client, f"/v1/claims/{result['items'][i]['claim_id']}",
                         auth("reader"))
        cited = {(a["source"]["name"], a["stance"]) for a in claim["attributions"]}
        assert cited == {(a["source"], a["stance"]) for a in items[i]["attributions"]}
        name = items[i]["attributions"][7]["source"]
        (source,) = get_json(client, "/v1/sources", auth("reader"), name=name.upper())["items"]
        assert source["name"] == name and source["kind"] == "other"
        assert source["reliability"] == "F" and source["aliases"] == [] and source["version"] == 1
        assert source["id"] in {a["source"]["id"] for a in claim["attributions"]}
        events = get_json(client, "/v1/events", auth("reader"), entity_type="source",
                          limit=200)
        del events  # the feed's first page: the ids below are checked in the table
        with db.session() as session:
            changes, actor = session.execute(sa.text(
                "SELECT changes, actor FROM event WHERE entity_id = :id"),
                {"id": source["id"]}).one()
        changes = json.loads(changes) if isinstance(changes, str) else changes
        assert actor == "test-ingester"
        assert changes == source


def test_create_claim_waits_at_most_about_one_batch_behind_new_sources(
        live_server, live_auth):  # noqa: F811
    """A batch naming 30,000 new sources takes about as long as one citing 30,000 sources
    that exist (a reasonable batch of that size), and a POST /v1/claims sent meanwhile waits
    no longer. Both are timed here, on this machine under its load of the moment, so the
    bound is relative: generous (3x, +2 s), and still far below creating sources one by one.
    """
    ingester = live_auth("ingester")
    with httpx.Client(base_url=live_server.url, headers=ingester, timeout=300) as client:
        waits: list[float] = []
        refused: list[str] = []
        done = threading.Event()

        def post_claims() -> None:
            n = 0
            while not done.wait(0.2):
                began = time.monotonic()
                response = client.post("/v1/claims", json={
                    "text": f"Claim {n} posted while a batch of new sources is written."})
                waits.append(time.monotonic() - began)
                if response.status_code != 201:
                    refused.append(response.text[:300])
                n += 1

        other = threading.Thread(target=post_claims, daemon=True)
        other.start()
        began = time.monotonic()
        new = client.post("/v1/ingest", json=big_batch("new", per_item=30))
        new_took = time.monotonic() - began
        done.set()
        other.join(300)
        assert new.status_code == 200, new.text[:500]
        assert new.json()["summary"]["created"] == ITEMS
        assert waits and not refused, refused
        began = time.monotonic()
        known = client.post("/v1/ingest", json=big_batch("known", per_item=30, sources="new"))
        known_took = time.monotonic() - began
        assert known.status_code == 200, known.text[:500]
        assert known.json()["summary"]["created"] == ITEMS
    bound = 3 * known_took + 2
    print(f"new sources: {new_took:.1f} s; known sources: {known_took:.1f} s; "
          f"claims meanwhile: {len(waits)}, the slowest {max(waits):.1f} s")
    assert new_took <= bound
    assert max(waits) <= bound
