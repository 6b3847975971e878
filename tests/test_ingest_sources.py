"""Batches naming many new sources: created in bulk, each once, with its event, in seconds."""

import json
import random
import threading
import time
from datetime import UTC, datetime

import httpx
import sqlalchemy as sa

from app.models.events import JsonText, unpack_json
from tests.factories import get_json, ingest, make_source
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
        changes = unpack_json(changes)
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


# --- what the bulk path writes is what the one-at-a-time path wrote (bench P9) -------------


def _stored(db, sql: str, **params) -> list:
    """The one column a query reads, decoded: the event log's columns are packed JSON
    (app/models/events.py), other JSON columns text on SQLite."""
    with db.session() as session:
        rows = session.execute(sa.text(sql), params).all()
    return [unpack_json(v) if isinstance(v, bytes | memoryview) else
            json.loads(v) if isinstance(v, str) else v for (v,) in rows]


def test_ingest_claims_new_sources_are_stored_as_they_read_back(client, auth, db):
    """The claims' representations in their `claim.created` events are built without reading
    the batch's new sources back, and the sources' events from one template: each must equal
    what the API shows. Two spellings of one new name make one source, named by the first
    spelling in sorted order and created on behalf of the first item naming it; new sources'
    ids ascend in the order the items name them (each index takes them in order)."""
    known = make_source(client, auth("admin"), "Rochan Consulting", kind="think_tank",
                        reliability="B", aliases=["Rochan"])
    items = [
        {"text": f"Item {i}: convoy {i} moved towards the border near Homel.",
         "attributions": [{"source": f"New source {i:02d} {k}", "stance": "asserts"}
                          for k in range(3)] + [
             {"source": "ROCHAN", "stance": "disputes", "quote": 'a "quoted"\tline\n'},
             {"source": "minsk  residents" if i == 2 else "Minsk Residents",
              "stance": "reports"}]}
        for i in range(4)]
    result = ingest(client, auth("ingester"), items)
    assert result["summary"]["created"] == 4
    (minsk,) = get_json(client, "/v1/sources", auth("reader"), name="minsk residents")["items"]
    assert minsk["name"] == "Minsk Residents"  # sorted: "Minsk Residents" < "minsk  residents"
    new_ids = []
    for i, item in enumerate(result["items"]):
        claim = get_json(client, f"/v1/claims/{item['claim_id']}", auth("reader"))
        (snapshot,) = _stored(db, "SELECT snapshot FROM event WHERE entity_id = :id AND "
                                  "action = 'claim.created'", id=item["claim_id"])
        assert snapshot == claim
        assert [a["source"]["name"] for a in claim["attributions"]] == [
            f"New source {i:02d} {k}" for k in range(3)] + ["Rochan Consulting",
                                                            "Minsk Residents"]
        assert claim["attributions"][3]["source"] == {
            "id": known["id"], "name": "Rochan Consulting", "kind": "think_tank",
            "reliability": "B"}
        new_ids += [a["source"]["id"] for a in claim["attributions"][:3]]
    assert new_ids.index(min(new_ids)) == 0 and new_ids == sorted(new_ids)
    for source_id in [*new_ids, minsk["id"]]:
        source = get_json(client, f"/v1/sources/{source_id}", auth("reader"))
        (changes,) = _stored(db, "SELECT changes FROM event WHERE entity_id = :id", id=source_id)
        assert changes == source
    with db.session() as session:
        actors = session.execute(sa.text(
            "SELECT actor FROM event WHERE action = 'source.created' ORDER BY id")).scalars().all()
    assert actors == ["test-admin"] + ["test-ingester"] * (len(new_ids) + 1)


def test_has_word_agrees_with_folding():
    """has_word answers ASCII text without folding it; the answer must be folding's."""
    from app.domain.text import fold, has_word

    pieces = ["a", "Z", "7", "_", ".", "'", "\u200b", "\u00ad", "\ufeff", "\u0301", "é", "ß",
              "Ж", "٣", "…", " ", "\t", "😀", "ﬁ", "Ⅻ", "²", "-", "\u2019"]
    rng = random.Random(9)
    for _ in range(5000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 6)))
        assert has_word(text) == bool(fold(text)), repr(text)


def test_bulk_rows_of_unlike_keys_store_json_text_as_json(db):
    """Rows whose keys differ go through SQLAlchemy's own insert: a value given as JSON text
    (JsonText) is stored as the JSON it spells, not as a string."""
    from app.fastpath import bulk
    from app.models import Event

    base = {"actor": "bulk-test", "action": "test.bulk", "entity_type": "test",
            "entity_id": "x", "at": datetime.now(UTC)}
    with db.write_session() as session:
        bulk.insert_rows(session.connection(), Event.__table__, [
            {**base, "changes": JsonText('{"a": [1, "two"]}')},
            {**base, "changes": {"b": None}, "snapshot": None}])
        session.commit()
    assert _stored(db, "SELECT changes FROM event WHERE actor = 'bulk-test' ORDER BY id") == [
        {"a": [1, "two"]}, {"b": None}]
