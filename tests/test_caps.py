"""One claim's representation stays bounded: attributions and links per claim are capped
(claims.MAX_ATTRIBUTIONS, claims.MAX_LINKS) on every path that adds them. Past the cap: a 409
that leaves the claim as it was (in a batch, that item fails alone; sources it names are
still created, as for any failing item)."""

import pytest

from app.domain import claims
from tests.factories import (
    add_attribution,
    assert_problem,
    get_json,
    ingest,
    make_claim,
    make_link,
    make_source,
)


@pytest.fixture
def small_caps(monkeypatch):
    monkeypatch.setattr(claims, "MAX_ATTRIBUTIONS", 2)
    monkeypatch.setattr(claims, "MAX_LINKS", 1)


def test_attribution_past_the_cap_is_409_and_writes_nothing(client, auth, small_caps):
    ing = auth("ingester")
    claim = make_claim(client, ing, "Belarusian units moved to Brest.")
    add_attribution(client, ing, claim["id"], source="BelTA", stance="reports")
    add_attribution(client, ing, claim["id"], source="ISW", stance="asserts")
    before = get_json(client, f"/v1/claims/{claim['id']}", auth("reader"))
    response = client.post(f"/v1/claims/{claim['id']}/attributions", headers=ing,
                           json={"source": "OHCHR", "stance": "disputes"})
    assert_problem(response, 409, contains="more than 2 attributions")
    assert get_json(client, f"/v1/claims/{claim['id']}", auth("reader")) == before


def test_ingest_duplicate_past_the_cap_fails_alone(client, auth, small_caps):
    ing = auth("ingester")
    text = "Rail traffic to Gomel was halted overnight."
    body = ingest(client, ing, [
        {"text": text, "attributions": [{"source": "BelTA", "stance": "reports"}]},
        {"text": text, "attributions": [{"source": "ISW", "stance": "asserts"},
                                        {"source": "OHCHR", "stance": "asserts"}]},
        {"text": "A second, unrelated claim about Mazyr."},
    ])
    statuses = [item["status"] for item in body["items"]]
    assert statuses == ["created", "error", "created"], body
    assert body["items"][1]["error"]["status"] == 409
    claim_id = body["items"][0]["claim_id"]
    # Then from the database: one more fits, two more do not.
    again = client.post("/v1/ingest", headers=ing, json=[{"text": text, "attributions": [
        {"source": "ISW", "stance": "asserts"}, {"source": "OHCHR", "stance": "asserts"}]}])
    problem = assert_problem(again, 422, contains="more than 2 attributions")  # all failed
    assert problem["results"][0]["error"]["status"] == 409
    claim = get_json(client, f"/v1/claims/{claim_id}", auth("reader"))
    assert [a["source"]["name"] for a in claim["attributions"]] == ["BelTA"]
    fits = ingest(client, ing, [{"text": text, "attributions": [
        {"source": "ISW", "stance": "asserts"}]}])
    assert fits["items"][0]["status"] == "duplicate"
    assert len(get_json(client, f"/v1/claims/{claim_id}", auth("reader"))["attributions"]) == 2


def test_ingest_duplicates_of_a_stored_claim_fill_the_cap_in_item_order(client, auth, small_caps):
    ing = auth("ingester")
    text = "Rail traffic to Gomel was halted overnight."
    claim = make_claim(client, ing, text, attributions=[{"source": "BelTA", "stance": "reports"}])
    body = ingest(client, ing, [
        {"text": text, "attributions": [{"source": "ISW", "stance": "asserts"}]},
        {"text": text, "attributions": [{"source": "OHCHR", "stance": "asserts"}]},
        {"text": text, "attributions": [{"source": "BelTA", "stance": "reports"}]},
    ])
    assert [(i["status"], i["attributions_added"]) for i in body["items"]] == [
        ("duplicate", 1), ("error", 0), ("duplicate", 0)], body
    assert body["items"][1]["error"]["status"] == 409
    stored = get_json(client, f"/v1/claims/{claim['id']}", auth("reader"))
    assert [a["source"]["name"] for a in stored["attributions"]] == ["BelTA", "ISW"]
    assert stored["version"] == 2
    # Full now: a duplicate bringing only what the claim has is still a duplicate, not a 409.
    again = ingest(client, ing, [
        {"text": text, "attributions": [{"source": "ISW", "stance": "asserts"}]}])
    assert [(i["status"], i["attributions_added"]) for i in again["items"]] == [
        ("duplicate", 0)], again


def test_link_and_merge_past_the_cap_are_409(client, auth, small_caps):
    ing, checker = auth("ingester"), auth("checker")
    a, b, c = (make_claim(client, ing, f"Claim {n} about the Belarus border.")
               for n in ("one", "two", "three"))
    make_link(client, checker, a["id"], b["id"])
    response = client.post(f"/v1/claims/{c['id']}/links", headers=checker,
                           json={"target_id": a["id"], "kind": "related"})
    assert_problem(response, 409, contains="more than 1 links")
    # Merging b (one link) into c would give c... b's link to a, c's first: fits.
    source = make_source(client, ing, "Rochan Consulting", kind="think_tank")
    for claim in (b, c):
        for stance in ("asserts", "reports"):
            add_attribution(client, ing, claim["id"], source_id=source["id"], stance=stance,
                            quote=f"{claim['id']} {stance}")
    before = get_json(client, f"/v1/claims/{c['id']}", auth("reader"))
    response = client.post(f"/v1/claims/{c['id']}/merge", headers=checker,
                           json={"duplicate_id": b["id"]})
    assert_problem(response, 409, contains="more than 2 attributions")
    assert get_json(client, f"/v1/claims/{c['id']}", auth("reader")) == before
    assert get_json(client, f"/v1/claims/{b['id']}", auth("reader"))["duplicate_of"] is None


def test_ingest_update_past_the_cap_fails_alone_and_edits_nothing(client, auth, small_caps):
    ing = auth("ingester")
    first = ingest(client, ing, [{"text": "Exercises began near Baranovichi.",
                                  "origin": "wire", "external_id": "7"}])
    claim_id = first["items"][0]["claim_id"]
    body = ingest(client, ing, [
        {"text": "Exercises ended near Baranovichi.", "origin": "wire", "external_id": "7",
         "attributions": [{"source": "BelTA", "stance": "reports"},
                          {"source": "ISW", "stance": "asserts"},
                          {"source": "OHCHR", "stance": "asserts"}]},
        {"text": "An unrelated claim about Pinsk."},
    ])
    assert [i["status"] for i in body["items"]] == ["error", "created"], body
    assert body["items"][0]["error"]["status"] == 409
    claim = get_json(client, f"/v1/claims/{claim_id}", auth("reader"))
    assert claim["text"] == "Exercises began near Baranovichi." and claim["attributions"] == []
    assert claim["version"] == 1


def test_merge_counts_what_the_claim_would_hold(client, auth, small_caps):
    """Attributions the two share fold into one: a merge that ends at the cap is fine."""
    ing, checker = auth("ingester"), auth("checker")
    keep = make_claim(client, ing, "Troops moved toward Mozyr overnight.")
    dup = make_claim(client, ing, "Troops moved towards Mozyr overnight.")
    for claim in (keep, dup):
        add_attribution(client, ing, claim["id"], source="BelTA", stance="reports")
    add_attribution(client, ing, keep["id"], source="ISW", stance="asserts")
    response = client.post(f"/v1/claims/{keep['id']}/merge", headers=checker,
                           json={"duplicate_id": dup["id"]})
    assert response.status_code == 200, response.text
    assert len(get_json(client, f"/v1/claims/{keep['id']}", auth("reader"))["attributions"]) == 2


def test_sqlite_cache_setting_must_be_positive():
    from pydantic import ValidationError

    from app.config import Settings
    with pytest.raises(ValidationError):
        Settings(sqlite_cache_kib=-5)
