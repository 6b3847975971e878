"""History: every change is an event; a claim can be read as it stood at any past moment."""

import time
from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise

from tests.factories import (
    add_attribution,
    all_pages,
    assert_problem,
    current,
    get_json,
    make_claim,
    make_link,
    make_source,
    review,
    with_version,
)


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value)


def iso(value: datetime) -> str:
    return value.isoformat()


def pause() -> None:
    """Let the clock move on, so that each step has its own moment."""
    time.sleep(0.005)


def history(client, auth, claim_id: str, **params) -> list[dict]:
    return all_pages(client, f"/v1/claims/{claim_id}/history", auth("reader"), **params)


def as_of(client, auth, claim_id: str, moment: str):
    return client.get(f"/v1/claims/{claim_id}", params={"as_of": moment}, headers=auth("reader"))


def test_get_history_tells_whole_story_in_order(client, auth):
    isw = make_source(client, auth("ingester"), "Institute for the Study of War", aliases=["ISW"])
    claim = make_claim(client, auth("ingester"), "Belarus is running an information operation.",
                       topics=["belarus"])
    other = make_claim(client, auth("ingester"), "Belarus will not join the war.")
    duplicate = make_claim(client, auth("ingester"), "Belarus runs an information operation.",
                           attributions=[{"source": "Ukrainian officials", "stance": "supports"}])
    url = f"/v1/claims/{claim['id']}"
    edited = client.patch(url, json={"text": "Belarus is running an information operation "
                                             "aimed at fixing Ukrainian forces."},
                          headers=with_version(auth("checker"), 1))
    assert edited.status_code == 200, edited.text
    attribution = add_attribution(client, auth("ingester"), claim["id"], source="isw",
                                  stance="asserts", quote="an information operation")
    review(client, auth("checker"), claim["id"], "mostly_true", "ISW's assessment holds")
    link = make_link(client, auth("checker"), claim["id"], other["id"], "contradicts")
    merged = client.post(f"{url}/merge", json={"duplicate_id": duplicate["id"]},
                         headers=current(client, auth("checker"), claim["id"]))
    assert merged.status_code == 200, merged.text
    removed = client.delete(f"{url}/attributions/{attribution['id']}",
                            headers=current(client, auth("checker"), claim["id"]))
    assert removed.status_code == 204, removed.text

    events = history(client, auth, claim["id"])
    assert [e["action"] for e in events] == [
        "claim.created", "claim.updated", "attribution.created", "review.created",
        "link.created", "claim.merged", "attribution.deleted",
    ]
    assert [e["actor"] for e in events] == [
        "test-ingester", "test-checker", "test-ingester", "test-checker", "test-checker",
        "test-checker", "test-checker",
    ]
    assert all(e["claim_id"] == claim["id"] for e in events)
    ids = [e["id"] for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    times = [parse(e["at"]) for e in events]
    assert times == sorted(times)
    assert all(e["at"].endswith("Z") for e in events)

    created, updated, attributed, reviewed, linked, merge, detached = events
    assert created["changes"]["text"] == claim["text"]
    assert updated["changes"]["text"] == {"from": claim["text"], "to": edited.json()["text"]}
    assert attributed["entity_id"] == attribution["id"]
    assert attributed["changes"] == {"source_id": isw["id"], "stance": "asserts"}
    assert reviewed["changes"]["status"] == {"from": "unverified", "to": "mostly_true"}
    assert reviewed["changes"]["rationale"] == "ISW's assessment holds"
    assert linked["entity_id"] == link["id"]
    assert linked["changes"]["kind"] == "contradicts"
    assert linked["changes"]["to"] == other["id"]
    assert merge["changes"]["duplicate"] == duplicate["id"]
    assert merge["changes"]["attributions_moved"] == 1
    assert detached["entity_id"] == attribution["id"]
    assert detached["changes"]["removed"]["source"]["name"] == "Institute for the Study of War"
    assert detached["changes"]["removed"]["quote"] == "an information operation"

    assert [e["action"] for e in history(client, auth, duplicate["id"])] == [
        "claim.created", "claim.merged_into"]
    assert history(client, auth, duplicate["id"])[-1]["changes"]["target"] == claim["id"]
    assert [e["action"] for e in history(client, auth, other["id"])] == [
        "claim.created", "link.created"]


def test_get_history_pages_in_order(client, auth):
    claim = make_claim(client, auth("ingester"))
    for version in range(1, 6):
        response = client.patch(f"/v1/claims/{claim['id']}", json={"places": [f"Place {version}"]},
                                headers=with_version(auth("checker"), version))
        assert response.status_code == 200, response.text
    whole = get_json(client, f"/v1/claims/{claim['id']}/history", auth("reader"))
    assert whole["next_cursor"] is None
    assert len(whole["items"]) == 6
    paged = history(client, auth, claim["id"], limit=2)
    assert paged == whole["items"]
    assert [e["changes"]["places"]["to"] for e in paged[1:]] == [
        [f"Place {v}"] for v in range(1, 6)]


def test_get_claim_as_of_each_moment_returns_claim_as_it_stood(client, auth):
    make_source(client, auth("ingester"), "Government of Ukraine")
    claim = make_claim(client, auth("ingester"), "Thousands of Russian soldiers are in Belarus.")
    url = f"/v1/claims/{claim['id']}"
    moments = [claim]
    pause()
    edited = client.patch(url, json={"text": "Thousands of Russian soldiers have been stationed "
                                             "in Belarus since October."},
                          headers=with_version(auth("checker"), 1))
    assert edited.status_code == 200, edited.text
    moments.append(edited.json())
    pause()
    add_attribution(client, auth("ingester"), claim["id"], source="Government of Ukraine",
                    stance="asserts")
    moments.append(get_json(client, url, auth("reader")))
    pause()
    review(client, auth("checker"), claim["id"], "in_review", None)
    moments.append(get_json(client, url, auth("reader")))
    pause()
    review(client, auth("checker"), claim["id"], "true", "confirmed by satellite imagery")
    moments.append(get_json(client, url, auth("reader")))

    assert len({m["updated_at"] for m in moments}) == len(moments)
    for moment in moments:
        response = as_of(client, auth, claim["id"], moment["updated_at"])
        assert response.status_code == 200, response.text
        past = response.json()
        assert past["text"] == moment["text"]
        assert past["status"] == moment["status"]
        assert past["version"] == moment["version"]
        assert [a["id"] for a in past["attributions"]] == [a["id"] for a in moment["attributions"]]
    assert [m["status"] for m in moments] == [
        "unverified", "unverified", "unverified", "in_review", "true"]
    assert [len(m["attributions"]) for m in moments] == [0, 0, 1, 1, 1]

    # Between two moments the earlier one holds; in another offset it is the same instant.
    for earlier, later in pairwise(moments):
        start, end = parse(earlier["updated_at"]), parse(later["updated_at"])
        middle = start + (end - start) / 2
        assert as_of(client, auth, claim["id"], iso(middle)).json()["version"] == \
            earlier["version"]
        shifted = middle.astimezone(timezone(timedelta(hours=3)))
        assert as_of(client, auth, claim["id"], iso(shifted)).json()["version"] == \
            earlier["version"]
    future = datetime.now(UTC) + timedelta(days=365)
    assert as_of(client, auth, claim["id"], iso(future)).json()["version"] == \
        moments[-1]["version"]

    before = parse(claim["created_at"]) - timedelta(microseconds=1)
    assert_problem(as_of(client, auth, claim["id"], iso(before)), 404)
    assert_problem(as_of(client, auth, claim["id"], "2000-01-01T00:00:00Z"), 404)
    assert_problem(as_of(client, auth, "clm_00000000000000000000", iso(future)), 404)



def test_delete_claim_leaves_tombstone_and_readable_history(client, auth):
    claim = make_claim(client, auth("ingester"), "441 civilians were killed in the Kyiv region.",
                       attributions=[{"source": "OHCHR", "stance": "asserts"}])
    pause()
    review(client, auth("checker"), claim["id"], "mostly_true", "OHCHR report")
    url = f"/v1/claims/{claim['id']}"
    last = get_json(client, url, auth("reader"))
    pause()
    response = client.delete(url, headers=with_version(auth("admin"), last["version"]))
    assert response.status_code == 204, response.text

    assert_problem(client.get(url, headers=auth("reader")), 404)
    assert claim["id"] not in {c["id"] for c in all_pages(client, "/v1/claims", auth("reader"),
                                                            include_merged="true")}
    tombstones = get_json(client, "/v1/events", auth("reader"), action="claim.deleted")["items"]
    assert len(tombstones) == 1
    tombstone = tombstones[0]
    assert tombstone["claim_id"] == claim["id"]
    assert tombstone["entity_id"] == claim["id"]
    assert tombstone["actor"] == "test-admin"

    events = history(client, auth, claim["id"])
    assert [e["action"] for e in events] == ["claim.created", "review.created", "claim.deleted"]
    assert events[-1] == tombstone

    past = as_of(client, auth, claim["id"], last["updated_at"])
    assert past.status_code == 200, past.text
    assert past.json()["text"] == claim["text"]
    assert past.json()["status"] == "mostly_true"
    assert [a["source"]["name"] for a in past.json()["attributions"]] == ["OHCHR"]
    assert_problem(as_of(client, auth, claim["id"], tombstone["at"]), 404)
    later = parse(tombstone["at"]) + timedelta(seconds=1)
    assert_problem(as_of(client, auth, claim["id"], iso(later)), 404)

    # Deleting it again, or a claim that never was, is a 404 that records nothing.
    assert_problem(client.delete(url, headers=with_version(auth("admin"), "*")), 404)
    assert len(get_json(client, "/v1/events", auth("reader"),
                        action="claim.deleted")["items"]) == 1


def test_delete_claim_merged_into_it_is_409(client, auth):
    target = make_claim(client, auth("ingester"), "At least 6,700 civilian deaths were counted.")
    duplicate = make_claim(client, auth("ingester"), "6,700 civilians have died, the UN says.")
    merged = client.post(f"/v1/claims/{target['id']}/merge",
                         json={"duplicate_id": duplicate["id"]},
                         headers={**auth("checker"), "If-Match": "*"})
    assert merged.status_code == 200, merged.text
    admin = {**auth("admin"), "If-Match": "*"}
    assert_problem(client.delete(f"/v1/claims/{target['id']}", headers=admin), 409)
    assert client.delete(f"/v1/claims/{duplicate['id']}", headers=admin).status_code == 204
    assert client.delete(f"/v1/claims/{target['id']}", headers=admin).status_code == 204
    deleted = get_json(client, "/v1/events", auth("reader"), action="claim.deleted")["items"]
    assert [e["claim_id"] for e in deleted] == [duplicate["id"], target["id"]]


def test_list_events_cursor_paging_returns_each_event_once_in_order(client, auth):
    claims = [make_claim(client, auth("ingester"), f"Claim number {n} about Belarus.")
              for n in range(5)]
    for claim in claims[:3]:
        review(client, auth("checker"), claim["id"], "in_review", None)
    make_source(client, auth("ingester"), "BelTA")

    everything = get_json(client, "/v1/events", auth("reader"), limit=200)["items"]
    assert len(everything) >= 4 + 5 + 3 + 1  # the fixture's keys, claims, reviews, source
    seen: list[int] = []
    cursor = None
    while True:
        page = get_json(client, "/v1/events", auth("reader"), limit=4,
                        **({"cursor": cursor} if cursor else {}))
        assert page["next_cursor"], page
        assert len(page["items"]) <= 4
        seen.extend(e["id"] for e in page["items"])
        if not page["items"]:
            break
        cursor = page["next_cursor"]
    assert seen == [e["id"] for e in everything]
    assert seen == sorted(set(seen))

    # Polling with the last cursor yields nothing until something happens, then just that.
    again = get_json(client, "/v1/events", auth("reader"), cursor=cursor)
    assert again["items"] == []
    assert again["next_cursor"] == cursor
    new = make_claim(client, auth("ingester"), "A claim made after the reader caught up.")
    fresh = get_json(client, "/v1/events", auth("reader"), cursor=cursor)
    assert [(e["action"], e["claim_id"]) for e in fresh["items"]] == [("claim.created", new["id"])]
    assert fresh["next_cursor"] != cursor
    assert get_json(client, "/v1/events", auth("reader"),
                    cursor=fresh["next_cursor"])["items"] == []


def test_list_events_filters_by_claim_action_and_entity(client, auth):
    first = make_claim(client, auth("ingester"), "Troops will arrive within two days.")
    second = make_claim(client, auth("ingester"), "Minsk residents saw nothing unusual.")
    review(client, auth("checker"), first["id"], "in_review", None)
    review(client, auth("checker"), second["id"], "in_review", None)
    review(client, auth("checker"), first["id"], "unverifiable", "no locations were given")
    make_source(client, auth("ingester"), "Belarus Security Council")

    of_first = all_pages(client, "/v1/events", auth("reader"), claim_id=first["id"])
    assert [e["action"] for e in of_first] == ["claim.created", "review.created",
                                               "review.created"]
    assert {e["claim_id"] for e in of_first} == {first["id"]}

    reviews = all_pages(client, "/v1/events", auth("reader"), action="review.created", limit=1)
    assert [e["claim_id"] for e in reviews] == [first["id"], second["id"], first["id"]]
    assert [e["id"] for e in reviews] == sorted(e["id"] for e in reviews)

    both = all_pages(client, "/v1/events", auth("reader"), claim_id=second["id"],
                     action="review.created")
    assert len(both) == 1 and both[0]["changes"]["status"]["to"] == "in_review"

    sources = all_pages(client, "/v1/events", auth("reader"), entity_type="source")
    assert [e["action"] for e in sources] == ["source.created"]
    assert sources[0]["changes"]["name"] == "Belarus Security Council"
    keys = all_pages(client, "/v1/events", auth("reader"), entity_type="api_key")
    assert {e["action"] for e in keys} == {"key.created"}
    assert all("secret" not in str(e["changes"]) and "clk_" not in str(e) for e in keys)
    assert all_pages(client, "/v1/events", auth("reader"), action="no.such.action") == []
    assert all_pages(client, "/v1/events", auth("reader"), claim_id="clm_missing") == []


GENERAL_STAFF = "Генштаб ЗСУ"  # noqa: RUF001
UKRAINIAN_TEXT = "Зеленський: «понад 9 000» військових у Білорусі — \"з жовтня\""  # noqa: RUF001


def _patched(response):
    assert response.status_code == 200, response.text


def test_get_claim_as_of_each_moment_is_the_whole_representation_then(client, auth):
    """Every field of the claim read `as_of` a moment equals the claim as the API showed it
    then: the snapshots are stored packed (migration 0016), and what is unpacked must be
    what was packed, to the character (non-ASCII text, quotes, nulls, nested sources)."""
    make_source(client, auth("ingester"), GENERAL_STAFF)
    claim = make_claim(client, auth("ingester"), UKRAINIAN_TEXT, topics=["belarus"],
                       places=["Мінськ", "Gomel"])
    url = f"/v1/claims/{claim['id']}"
    moments = [{k: v for k, v in claim.items() if k != "likely_duplicates"}]
    steps = [
        lambda: add_attribution(client, auth("ingester"), claim["id"], source=GENERAL_STAFF,
                                stance="asserts", quote="Понад 9 000 — «за нашими даними»"),
        lambda: review(client, auth("checker"), claim["id"], "in_review", None),
        lambda: _patched(client.patch(url, json={"topics": ["belarus", "russia"], "places": []},
                                      headers=with_version(auth("checker"), 3))),
        lambda: review(client, auth("checker"), claim["id"], "mostly_true", "ISW: «так»"),
    ]
    for step in steps:
        pause()
        step()
        moments.append(get_json(client, url, auth("reader")))
    assert len({m["version"] for m in moments}) == len(moments)
    for moment in moments:
        response = as_of(client, auth, claim["id"], moment["updated_at"])
        assert response.status_code == 200, response.text
        assert response.json() == moment


def test_packed_event_values_read_back_as_stored():
    """A value packed with dictionary version 1 reads back the same forever: this one was
    packed when the format was made, so a change to the dictionary or the format (which
    would garble every stored event) fails here. Lone surrogates survive too."""
    from app.models.events import pack_json, unpack_json

    value = {"text": "Зеленський: «9 000» soldiers\u2014in Belarus", "version": 2,
             "topics": ["belarus"], "attributions": [], "current_review": None,
             "contested": False, "score": 0.75, "surrogate": "\ud800"}
    stored = bytes.fromhex(
        "0183cb5c987e61eb85dd40bcf762e3c59e0bbb2eecb8b0d34ae1d06a4b05a0cb0fed5628cecf49c904"
        "a6cb470d5332f3149c8079baa8b41839ad1a21a505a524a83c66a220dad1c0b04ace2f02068b819eb9"
        "29a8d02e2aca4f0747a9d2db050d4ab500")
    assert unpack_json(stored) == value
    assert unpack_json(pack_json(value)) == value
    assert pack_json(None) is None and unpack_json(None) is None
    # As the column held it before migration 0016, and after its downgrade: JSON text.
    assert unpack_json('{"a": [1, null]}') == unpack_json(b'{"a": [1, null]}') == {"a": [1, None]}


def test_events_store_changes_and_snapshots_packed(client, auth, db):
    """The event log keeps its JSON packed (a version byte, then deflate): a new claim's
    snapshot takes a fraction of its JSON's bytes (bench P11), and reads unpack it whole."""
    import json

    import sqlalchemy as sa
    from sqlmodel import select

    from app.models import Event

    claim = make_claim(client, auth("ingester"), "Thousands of Russian soldiers have been "
                       "stationed in Belarus since October.", topics=["belarus"])
    with db.session() as session:
        raw = session.execute(sa.text(
            "SELECT changes, snapshot FROM event WHERE claim_id = :c"), {"c": claim["id"]}).one()
        event = session.exec(select(Event).where(Event.claim_id == claim["id"])).one()
    changes, snapshot = (bytes(v) for v in raw)
    assert changes[:1] == snapshot[:1] == b"\x01"
    assert event.snapshot == {k: v for k, v in claim.items() if k != "likely_duplicates"}
    assert event.changes == {"text": claim["text"]}
    assert len(snapshot) < len(json.dumps(event.snapshot)) / 2
