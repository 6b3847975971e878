"""The fast paths: group commit for POST /v1/claims and the render cache behind GET.

Concurrent POSTs share transactions (app/fastpath/writer.py) yet each must behave exactly as if
it were alone: its own errors, its own idempotency record, nothing lost. A cached GET
(app/fastpath/read_cache.py) must never show a claim older than the database holds.
"""

import asyncio
import json
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import select

from app.domain import claims, listing, rendering
from app.errors import Conflict
from app.fastpath.bulk import pg_array
from app.fastpath.read_cache import ClaimCache
from app.main import create_app
from app.models import Claim, Event
from tests.factories import assert_problem, make_claim, make_source, with_version


def _batch_sizes(app) -> list[float]:
    """How many batches of each size the writer committed (histogram bucket counts)."""
    counts = {}
    for metric in app.state.metrics.write_batch.collect():
        for sample in metric.samples:
            if sample.name.endswith("_count"):
                counts["count"] = sample.value
            if sample.name.endswith("_sum"):
                counts["sum"] = sample.value
    return [counts.get("count", 0), counts.get("sum", 0)]


async def _post_all(app, bodies: list[dict[str, Any]], headers: dict[str, str],
                    extra: list[dict[str, str]] | None = None) -> list[httpx.Response]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await asyncio.gather(*(
                client.post("/v1/claims", json=body,
                            headers={**headers, **(extra[i] if extra else {})})
                for i, body in enumerate(bodies)))


def test_concurrent_posts_share_commits_and_each_gets_its_own_claim(settings, db, auth):
    app = create_app(settings, database=db)
    bodies = [{"text": f"Convoy number {i} crossed into Belarus near Homel on day {i * 3}.",
               "topics": ["belarus"],
               "attributions": [{"source": "Rochan Consulting", "stance": "asserts"}]}
              for i in range(40)]
    responses = asyncio.run(_post_all(app, bodies, auth("ingester")))
    assert [r.status_code for r in responses] == [201] * 40, responses[0].text
    created = [r.json() for r in responses]
    assert len({c["id"] for c in created}) == 40
    for body, claim in zip(bodies, created, strict=True):
        assert claim["text"] == body["text"]
        assert claim["version"] == 1 and claim["status"] == "unverified"
        assert [a["source"]["name"] for a in claim["attributions"]] == ["Rochan Consulting"]
    batches, claims = _batch_sizes(app)
    assert claims == 40 and batches < 40, "no two requests were committed together"
    with db.session() as session:
        stored = session.exec(select(Claim.id)).all()
        events = session.exec(select(Event).where(Event.action == "claim.created")).all()
        sources = {a["source"]["id"] for c in created for a in c["attributions"]}
    assert set(stored) == {c["id"] for c in created}
    assert len(events) == 40 and all(e.snapshot["version"] == 1 for e in events)
    assert len(sources) == 1, "one new source name must create one source, not one per request"


def test_write_batch_max_bounds_each_group_commit(settings, db, auth):
    app = create_app(settings.model_copy(update={"write_batch_max": 2}), database=db)
    bodies = [{"text": f"Convoy number {i} crossed into Belarus near Homel on day {i * 3}."}
              for i in range(24)]
    responses = asyncio.run(_post_all(app, bodies, auth("ingester")))
    assert [r.status_code for r in responses] == [201] * 24, responses[0].text
    batches, claims = _batch_sizes(app)
    assert claims == 24 and batches >= 12, "a group commit wrote more than write_batch_max"


def test_a_bad_request_in_a_batch_fails_alone(settings, db, auth):
    app = create_app(settings, database=db)
    good = [{"text": f"Artillery strikes reported in village {i} overnight."} for i in range(12)]
    missing_source = {"text": "A claim citing nobody real.",
                      "attributions": [{"source_id": "src_doesnotexist", "stance": "asserts"}]}
    twins = [{"text": f"Feed item {i}.", "origin": "belta", "external_id": "42"} for i in range(3)]
    responses = asyncio.run(_post_all(app, [*good, missing_source, *twins], auth("ingester")))
    assert [r.status_code for r in responses[:12]] == [201] * 12
    assert_problem(responses[12], 422, contains="src_doesnotexist")
    twin_statuses = sorted(r.status_code for r in responses[13:])
    assert twin_statuses == [201, 409, 409], "the same origin + external_id is created once"
    winner = next(r.json()["id"] for r in responses[13:] if r.status_code == 201)
    for loser in (r for r in responses[13:] if r.status_code == 409):
        assert winner in loser.json()["detail"]
    with db.session() as session:
        assert len(session.exec(select(Claim.id)).all()) == 13
    assert _batch_sizes(app)[1] == 13, "the metric counts the claims committed, not refused"


def test_a_batch_that_fails_as_a_whole_is_retried_one_by_one(settings, db, auth, monkeypatch):
    real = claims.insert_claims

    def poisoned(session, new, claims, *args, **kwargs):
        if any("poison" in c.text for c in claims.values()) and len(new) > 0:
            raise Conflict("the poisoned claim cannot be written")
        return real(session, new, claims, *args, **kwargs)

    monkeypatch.setattr(claims, "insert_claims", poisoned)
    app = create_app(settings, database=db)
    bodies = [{"text": f"Troop train {i} arrived at Brest."} for i in range(15)]
    bodies.insert(7, {"text": "The poison pill claim."})
    responses = asyncio.run(_post_all(app, bodies, auth("ingester")))
    statuses = [r.status_code for r in responses]
    assert statuses.count(201) == 15 and statuses[7] == 409
    assert_problem(responses[7], 409, contains="poisoned")
    with db.session() as session:
        texts = set(session.exec(select(Claim.text)).all())
    assert texts == {b["text"] for b in bodies} - {"The poison pill claim."}


def test_idempotency_keys_hold_inside_a_batch(settings, db, auth):
    app = create_app(settings, database=db)
    bodies = [{"text": f"Drone sighting {i} over Mazyr."} for i in range(10)]
    keys = [{"Idempotency-Key": f"batch-key-{i}"} for i in range(10)]
    first = asyncio.run(_post_all(app, bodies, auth("ingester"), keys))
    again = asyncio.run(_post_all(app, bodies, auth("ingester"), keys))
    assert [r.status_code for r in first] == [201] * 10
    assert [r.status_code for r in again] == [201] * 10
    assert all(r.headers.get("Idempotent-Replayed") == "true" for r in again)
    assert [r.json()["id"] for r in again] == [r.json()["id"] for r in first]
    with db.session() as session:
        assert len(session.exec(select(Claim.id)).all()) == 10


def test_likely_duplicates_see_earlier_claims_of_the_same_batch(settings, db, auth):
    app = create_app(settings, database=db)
    text = "Thousands of Russian soldiers have been stationed in Belarus since October."
    responses = asyncio.run(_post_all(app, [{"text": text}] * 5, auth("ingester")))
    assert [r.status_code for r in responses] == [201] * 5
    ids = [r.json()["id"] for r in responses]
    seen = [{d["claim_id"] for d in r.json()["likely_duplicates"]} for r in responses]
    # Whatever the batching, every claim after the first lists at least one earlier twin
    # and never itself, and exact twins are marked exact.
    assert sum(1 for s in seen if s) >= 4
    for claim_id, dupes, response in zip(ids, seen, responses, strict=True):
        assert claim_id not in dupes
        assert all(d["exact"] and d["score"] == 1.0 for d in response.json()["likely_duplicates"])


# --- the render cache behind GET /v1/claims/{id} ---------------------------------------


def test_cached_claim_follows_every_change(client, auth):
    source = make_source(client, auth("checker"), "Institute for the Study of War")
    claim = make_claim(client, auth("checker"), attributions=[
        {"source_id": source["id"], "stance": "asserts"}])
    url = f"/v1/claims/{claim['id']}"
    first = client.get(url, headers=auth("reader"))
    assert first.status_code == 200 and first.headers["ETag"] == '"1"'
    assert client.get(url, headers=auth("reader")).content == first.content  # served again
    metrics = client.get("/metrics", headers=auth("reader")).text
    assert 'claimledger_claim_cache_total{result="hit"} 1.0' in metrics, metrics[-800:]

    renamed = client.patch(f"/v1/sources/{source['id']}", json={"name": "ISW"},
                           headers=with_version(auth("checker"), source["version"]))
    assert renamed.status_code == 200, renamed.text
    after_rename = client.get(url, headers=auth("reader")).json()
    assert after_rename["attributions"][0]["source"]["name"] == "ISW"

    reviewed = client.post(f"{url}/reviews", json={"status": "in_review"},
                           headers={**auth("checker"), "If-Match": "*"})
    assert reviewed.status_code == 201, reviewed.text
    after_review = client.get(url, headers=auth("reader"))
    assert after_review.json()["status"] == "in_review"
    assert after_review.headers["ETag"] == f'"{after_review.json()["version"]}"'
    assert after_review.json()["version"] > 1

    other = make_claim(client, auth("checker"), "Belarus denies hosting Russian troops.")
    linked = client.post(f"/v1/claims/{other['id']}/links",
                         json={"target_id": claim["id"], "kind": "contradicts"},
                         headers={**auth("checker"), "If-Match": "*"})
    assert linked.status_code == 201, linked.text
    assert [link["kind"] for link in client.get(url, headers=auth("reader")).json()["links"]] \
        == ["contradicts"]

    deleted = client.delete(url, headers={**auth("admin"), "If-Match": "*"})
    assert deleted.status_code == 204, deleted.text
    assert_problem(client.get(url, headers=auth("reader")), 404, contains=claim["id"])
    past = client.get(url, params={"as_of": after_rename["updated_at"]}, headers=auth("reader"))
    assert past.status_code == 200 and past.json()["id"] == claim["id"]


def test_cached_claim_sees_changes_made_by_another_worker(settings, db, client, auth):
    claim = make_claim(client, auth("checker"))
    url = f"/v1/claims/{claim['id']}"
    assert client.get(url, headers=auth("reader")).json()["topics"] == []
    # A second app on the same database stands for another worker process.
    from fastapi.testclient import TestClient
    with TestClient(create_app(settings, database=db)) as other:
        changed = other.patch(url, json={"topics": ["troops"]},
                              headers=with_version(auth("checker"), 1))
        assert changed.status_code == 200, changed.text
    fresh = client.get(url, headers=auth("reader"))
    assert fresh.json()["topics"] == ["troops"] and fresh.headers["ETag"] == '"2"'


@pytest.mark.parametrize("size", [0, 1, 3])
def test_the_cache_is_bounded(settings, db, auth, size):
    from fastapi.testclient import TestClient
    settings = settings.model_copy(update={"claim_cache_entries": size})
    with TestClient(create_app(settings, database=db)) as client:
        ids = [make_claim(client, auth("checker"), f"Claim number {i} about Belarus.")["id"]
               for i in range(6)]
        for claim_id in ids * 2:
            response = client.get(f"/v1/claims/{claim_id}", headers=auth("reader"))
            assert response.status_code == 200 and response.json()["id"] == claim_id
        assert len(client.app.state.claim_cache._entries) == size


def test_list_and_search_pages_follow_every_change(client, auth):
    source = make_source(client, auth("checker"), "Institute for the Study of War")
    claim = make_claim(client, auth("checker"), "Belarus moved troops to the border.",
                       attributions=[{"source_id": source["id"], "stance": "asserts"}])
    make_claim(client, auth("checker"), "Belarus hosts Russian bombers.")

    def both() -> list[dict[str, Any]]:
        listed = client.get("/v1/claims", headers=auth("reader"))
        found = client.get("/v1/claims", params={"q": "troops border"}, headers=auth("reader"))
        assert listed.status_code == found.status_code == 200, (listed.text, found.text)
        mine = [c for c in listed.json()["items"] if c["id"] == claim["id"]]
        assert [c["id"] for c in found.json()["items"]] == [claim["id"]]
        assert mine == found.json()["items"]  # the same rendering either way
        return mine[0]

    first = both()
    assert both() == first  # reused
    assert client.get(f"/v1/claims/{claim['id']}", headers=auth("reader")).json() == first
    hits = next(line for line in client.get("/metrics", headers=auth("reader")).text
                .splitlines() if line.startswith('claimledger_claim_cache_total{result="hit"}'))
    assert float(hits.split()[-1]) >= 3, hits

    renamed = client.patch(f"/v1/sources/{source['id']}", json={"name": "ISW"},
                           headers=with_version(auth("checker"), source["version"]))
    assert renamed.status_code == 200, renamed.text
    assert both()["attributions"][0]["source"]["name"] == "ISW"
    reviewed = client.post(f"/v1/claims/{claim['id']}/reviews", json={"status": "in_review"},
                           headers={**auth("checker"), "If-Match": "*"})
    assert reviewed.status_code == 201, reviewed.text
    after = both()
    assert after["status"] == "in_review" and after["version"] > first["version"]
    assert after == client.get(f"/v1/claims/{claim['id']}", headers=auth("reader")).json()


def test_created_claim_is_shown_as_stored(client, auth):
    """POST answers (and the creation event keeps) a representation built in memory: it must
    be exactly what reading the claim back shows, for every kind of field."""
    isw = make_source(client, auth("checker"), "Institute for the Study of War")
    body = {
        "text": "Belarus is running an information operation on the border.",
        "topics": ["ukraine", "belarus", "ukraine"], "places": ["Brest", "Mazyr"],
        "language": "en-GB", "first_stated_at": "2022-10-10T09:30:00+03:00",
        "period_start_date": "2022-10-01", "period_end_date": "2022-10-31",
        "origin": "feed-test", "external_id": "item-1",
        "attributions": [
            {"source_id": isw["id"], "stance": "asserts", "quote": "fixing forces",
             "citation_url": "https://example.org/isw", "citation_title": "Update",
             "citation_published_date": "2022-10-11", "credibility": "2",
             "stated_at": "2022-10-10T18:00:00-04:00", "note": "daily update"},
            {"source": "Minsk residents", "stance": "disputes"},
            {"source": "BelTA", "stance": "reports"},
        ],
    }
    created = client.post("/v1/claims", json=body, headers=auth("ingester"))
    assert created.status_code == 201, created.text
    shown = created.json()
    shown.pop("likely_duplicates")
    read = client.get(f"/v1/claims/{shown['id']}", headers=auth("reader"))
    assert read.json() == shown
    assert shown["topics"] == ["belarus", "ukraine"] and shown["contested"] is True
    assert shown["first_stated_at"] == "2022-10-10T06:30:00.000000Z"
    # as_of reads the creation event's snapshot
    past = client.get(f"/v1/claims/{shown['id']}", params={"as_of": shown["updated_at"]},
                      headers=auth("reader"))
    assert past.status_code == 200, past.text
    assert past.json() == shown
    assert [c["id"] for c in client.get("/v1/claims", params={"q": "fixing minsk belta"},
                                        headers=auth("reader")).json()["items"]] == [shown["id"]]


@pytest.mark.parametrize("q", [None, "bombers"])
def test_a_page_is_read_from_one_snapshot(client, db, auth, q):
    """A claim reviewed after its page was found, before it was rendered, is shown as it was
    when found: the page never holds a claim its filter excludes."""
    claim = make_claim(client, auth("checker"), "Belarus hosts Russian bombers.")
    cache = ClaimCache(db)

    def render_after_a_review(session, ids):
        reviewed = client.post(f"/v1/claims/{claim['id']}/reviews",
                               json={"status": "in_review"},
                               headers={**auth("checker"), "If-Match": "*"})
        assert reviewed.status_code == 201, reviewed.text
        return cache.render(session, ids)

    with db.session() as session:
        page = listing.list_claims(session, where=listing.claim_filters(status=["unverified"]),
                                   limit=10, q=q, filtered=True, render=render_after_a_review)
    shown = [json.loads(item) for item in page.items]
    assert [(c["id"], c["status"], c["version"]) for c in shown] == [
        (claim["id"], "unverified", 1)]
    now = client.get(f"/v1/claims/{claim['id']}", headers=auth("reader")).json()
    assert (now["status"], now["version"]) == ("in_review", 2)  # the copy kept was not served


def test_a_source_page_is_read_from_one_snapshot(client, db, auth, monkeypatch):
    """The same for GET /v1/sources/{id}/claims, which reads the source first."""
    source = make_source(client, auth("checker"), "BelTA")
    claim = make_claim(client, auth("checker"), "Belarus hosts Russian bombers.",
                       attributions=[{"source_id": source["id"], "stance": "reports"}])
    render = rendering.claims_public

    def render_after_a_change(session, claims):
        with db.engine.begin() as conn:  # another writer, between finding and rendering
            conn.execute(sa.text("UPDATE claim SET status = 'in_review', "
                                 "version = version + 1 WHERE id = :id"), {"id": claim["id"]})
        return render(session, claims)

    monkeypatch.setattr(rendering, "claims_public", render_after_a_change)
    page = client.get(f"/v1/sources/{source['id']}/claims", params={"status": "unverified"},
                      headers=auth("reader"))
    monkeypatch.undo()
    assert page.status_code == 200, page.text
    assert [(c["id"], c["status"], c["version"]) for c in page.json()["items"]] == [
        (claim["id"], "unverified", 1)]


ARRAY_TEXTS = ['plain', '', 'NULL', 'a "quoted" word', 'back\\slash \\" and \\\\',
               '{braces}, commas', "  spaces  ",
               "Зеленський сказав «ні»", "tab\tnew\nline", "emoji 🇧🇾"]


def test_pg_array_literal_format():
    assert pg_array([]) == "{}" and pg_array([1, -2]) == "{1,-2}"
    assert pg_array(['a"b', "c\\d", ""]) == '{"a\\"b","c\\\\d",""}'
    assert pg_array(n for n in (3, 4)) == "{3,4}"


def test_pg_array_literals_round_trip(db):
    """Band keys, claim ids and search documents reach PostgreSQL as array literals built
    by app.fastpath.bulk.pg_array: every string and int must come back exactly as it was sent."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only: SQLite takes no array parameters")
    ints = [0, -1, (1 << 63) - 1, 42]
    with db.session() as session:
        texts = session.execute(sa.text("SELECT CAST(:a AS text[])"),
                                {"a": pg_array(ARRAY_TEXTS)}).scalar_one()
        numbers = session.execute(sa.text("SELECT CAST(:a AS bigint[])"),
                                  {"a": pg_array(ints)}).scalar_one()
        empty = session.execute(sa.text("SELECT cardinality(CAST(:a AS varchar[]))"),
                                {"a": pg_array([])}).scalar_one()
    assert texts == ARRAY_TEXTS and numbers == ints and empty == 0


def test_claims_with_any_characters_are_indexed_and_found(client, auth):
    """The search document goes in as an array literal (PostgreSQL): quotes, backslashes
    and braces in a claim must neither break the insert nor change what is indexed."""
    text = 'ISW said "Belarus {again}" \\ hosts the 1st tank regiment, 2022'
    created = make_claim(client, auth("ingester"), text)
    found = client.get("/v1/claims", params={"q": "regiment"}, headers=auth("reader"))
    assert found.status_code == 200, found.text
    assert [c["id"] for c in found.json()["items"]] == [created["id"]]
    assert found.json()["items"][0]["text"] == text


@pytest.mark.parametrize("copy", [False, True], ids=["arrays", "copy"])
def test_bulk_rows_are_stored_as_an_executemany_would(db, monkeypatch, copy):
    """app.fastpath.bulk.insert_rows (arrays or, for large batches, COPY on PostgreSQL;
    executemany on SQLite): every kind of value a claim's rows hold reads back the same as
    through SQLAlchemy's own insert."""
    from datetime import UTC, date, datetime, timedelta, timezone

    from app.fastpath import bulk
    from app.models import Status

    if copy:
        if db.is_sqlite:
            pytest.skip("PostgreSQL only: SQLite has no COPY")
        monkeypatch.setattr(bulk, "COPY_FROM_ROWS", 1)

    kyiv = timezone(timedelta(hours=2))
    base = {"language": "uk", "period_end_date": None, "first_stated_at": None,
            "origin": None, "external_id": None, "version": 1, "duplicate_of": None,
            "created_by": 'bench "quoted" \\ key'}
    rows = [
        {**base, "id": "clm_bulk_a", "text": ARRAY_TEXTS[3], "places": ["Brest", 'Mo"zyr'],
         "period_start_date": date(2022, 10, 1), "fingerprint": "a" * 64,
         "status": Status.mostly_false, "created_at": datetime(2026, 12, 4, 21, 0, tzinfo=UTC),
         "updated_at": datetime(2026, 12, 4, 23, 30, tzinfo=kyiv)},
        {**base, "id": "clm_bulk_b", "places": [],
         "text": ARRAY_TEXTS[7] + " {x}, NULL \\N " + ARRAY_TEXTS[8] + ARRAY_TEXTS[4],
         "period_start_date": None, "fingerprint": "b" * 64, "status": "unverified",
         "created_at": datetime(2026, 1, 1, 0, 0, 0, 123456, tzinfo=UTC),
         "updated_at": datetime(2026, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)},
    ]
    table = Claim.__table__
    with db.write_session() as session:
        if not db.is_sqlite:  # the literal's offset must hold in any session zone
            session.execute(sa.text("SET LOCAL TimeZone = 'Europe/Kyiv'"))
        bulk.insert_rows(session.connection(), table, rows)
        session.commit()
    with db.session() as session:
        stored = {row.id: row for row in session.execute(
            sa.select(table).where(table.c.id.in_(["clm_bulk_a", "clm_bulk_b"]))).all()}
    for row in rows:
        got = stored[row["id"]]
        for name, value in row.items():
            want = value.value if hasattr(value, "value") else value
            if isinstance(want, datetime):
                want = want.astimezone(UTC)
            assert getattr(got, name) == want, (name, getattr(got, name), want)
    with db.write_session() as session:  # the ledger is shared by the module's tests
        session.execute(sa.delete(table).where(table.c.id.in_(["clm_bulk_a", "clm_bulk_b"])))
        session.commit()
    # What the executemany would refuse is refused: a naive time, a value too long.
    with db.write_session() as session, pytest.raises((ValueError, sa.exc.StatementError),
                                                      match="timezone"):
        bulk.insert_rows(session.connection(), table, [
            {**rows[0], "id": "clm_bulk_c", "created_at": datetime(2026, 1, 1)}])
    if not db.is_sqlite:  # SQLite keeps any length
        with db.write_session() as session, pytest.raises(sa.exc.DataError):
            bulk.insert_rows(session.connection(), table, [
                {**rows[0], "id": "clm_bulk_d", "created_by": "x" * 201}])
