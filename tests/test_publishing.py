"""Publishing a verdict: a decision with its own history events, If-Match, a copy of the
verdict that later reviews leave alone, and the ClaimReview JSON-LD it makes."""

import time

import pytest

from app import demo
from tests.factories import (
    add_attribution,
    assert_problem,
    get_json,
    ledger_state,
    make_claim,
    review,
    with_version,
)

PUBLISH = {"url": "https://factcheck.example.org/belarus-troops", "headline":
           "No, thousands of Russian soldiers are not stationed in Belarus"}


def publish(client, headers, claim_id, body=None, status=200):
    response = client.post(f"/v1/claims/{claim_id}/publish", json=body or PUBLISH,
                           headers=headers)
    assert response.status_code == status, response.text
    return response


def reviewed_claim(client, auth, status="mostly_false", **fields):
    claim = make_claim(client, auth("ingester"), **fields)
    review(client, auth("checker"), claim["id"], status, "Satellite imagery shows no build-up.")
    return claim


def test_publish_claim_records_event_and_claimreview(client, auth):
    claim = reviewed_claim(client, auth)
    response = publish(client, auth("checker"), claim["id"])
    body = response.json()
    assert body["status"] == "mostly_false" and body["url"] == PUBLISH["url"]
    assert body["rationale"] == "Satellite imagery shows no build-up."
    assert response.headers["etag"] == '"3"'
    history = get_json(client, f"/v1/claims/{claim['id']}/history", auth("reader"))["items"]
    event = history[-1]
    assert event["action"] == "claim.published" and event["entity_type"] == "publication"
    assert event["actor"] == "test-checker" and event["at"] == body["published_at"]
    assert event["changes"]["url"] == PUBLISH["url"]

    cr = client.get(f"/v1/claims/{claim['id']}/claimreview", headers=auth("reader"))
    assert cr.status_code == 200, cr.text
    assert cr.headers["content-type"].startswith("application/ld+json")
    data = cr.json()
    assert data["@context"] == "https://schema.org" and data["@type"] == "ClaimReview"
    assert data["reviewRating"] == {"@type": "Rating", "ratingValue": 2, "worstRating": 1,
                                    "bestRating": 5, "alternateName": "Mostly false"}


def test_publish_claim_keeps_verdict_until_published_again(client, auth):
    claim = reviewed_claim(client, auth, "false")
    first = publish(client, auth("checker"), claim["id"]).json()
    review(client, auth("checker"), claim["id"], "mixed", "New reports, both ways.")
    url = f"/v1/claims/{claim['id']}/claimreview"
    before = get_json(client, url, auth("reader"))
    assert before["reviewRating"]["alternateName"] == "False"
    assert before["dateModified"] == before["datePublished"]
    time.sleep(1.1)  # ClaimReview times are to the second
    again = publish(client, auth("checker"), claim["id"]).json()
    assert again["published_at"] == first["published_at"]
    after = get_json(client, url, auth("reader"))
    assert after["reviewRating"]["alternateName"] == "Mixed"
    assert after["reviewRating"]["ratingValue"] == 3
    assert after["datePublished"] == before["datePublished"]
    assert after["dateModified"] > before["dateModified"]
    actions = [e["action"] for e in get_json(client, f"/v1/claims/{claim['id']}/history",
                                             auth("reader"))["items"]]
    assert actions.count("claim.published") == 2


def test_publish_unverifiable_has_text_rating_only(client, auth):
    claim = reviewed_claim(client, auth, "unverifiable")
    publish(client, auth("checker"), claim["id"])
    data = get_json(client, f"/v1/claims/{claim['id']}/claimreview", auth("reader"))
    assert data["reviewRating"] == {"@type": "Rating", "alternateName": "Unverifiable"}


def test_withdraw_claim_hides_it_everywhere(client, auth):
    claim = reviewed_claim(client, auth)
    publish(client, auth("checker"), claim["id"])
    assert [c["id"] for c in get_json(client, "/v1/claims", auth("reader"),
                                      published="true")["items"]] == [claim["id"]]
    response = client.delete(f"/v1/claims/{claim['id']}/publish", headers=auth("checker"))
    assert response.status_code == 204, response.text
    assert_problem(client.get(f"/v1/claims/{claim['id']}/claimreview", headers=auth("reader")),
                   404, contains="withdrawn")
    assert get_json(client, "/v1/claims", auth("reader"), published="true")["items"] == []
    assert [c["id"] for c in get_json(client, "/v1/claims", auth("reader"),
                                      published="false")["items"]] == [claim["id"]]
    event = get_json(client, f"/v1/claims/{claim['id']}/history", auth("reader"))["items"][-1]
    assert event["action"] == "claim.withdrawn" and event["actor"] == "test-checker"
    assert_problem(client.delete(f"/v1/claims/{claim['id']}/publish", headers=auth("checker")),
                   404, contains="no published verdict")
    publish(client, auth("checker"), claim["id"])  # published again after a withdrawal
    assert get_json(client, f"/v1/claims/{claim['id']}/claimreview", auth("reader"))


def test_publish_claim_honours_if_match(client, auth):
    claim = reviewed_claim(client, auth)  # version 2 after its review
    stale = client.post(f"/v1/claims/{claim['id']}/publish", json=PUBLISH,
                        headers=with_version(auth("checker"), 1))
    assert_problem(stale, 412)
    ok = client.post(f"/v1/claims/{claim['id']}/publish", json=PUBLISH,
                     headers=with_version(auth("checker"), 2))
    assert ok.status_code == 200, ok.text
    assert_problem(client.delete(f"/v1/claims/{claim['id']}/publish",
                                 headers=with_version(auth("checker"), 2)), 412)
    gone = client.delete(f"/v1/claims/{claim['id']}/publish",
                         headers=with_version(auth("checker"), ok.headers["etag"]))
    assert gone.status_code == 204, gone.text


def test_claimreview_of_claim_never_published_is_404(client, auth):
    claim = reviewed_claim(client, auth)
    assert_problem(client.get(f"/v1/claims/{claim['id']}/claimreview", headers=auth("reader")),
                   404, contains="no published")


@pytest.mark.parametrize("status", [None, "in_review"])
def test_publish_claim_without_verdict_is_409(client, auth, status):
    claim = make_claim(client, auth("ingester"))
    if status:
        review(client, auth("checker"), claim["id"], status, None)
    before = ledger_state(client, auth("admin"))
    body = assert_problem(client.post(f"/v1/claims/{claim['id']}/publish", json=PUBLISH,
                                      headers=auth("checker")), 409, contains="only a verdict")
    assert body["claim_status"] == (status or "unverified")
    assert ledger_state(client, auth("admin")) == before


def test_publish_merged_claim_is_409(client, auth):
    keep = reviewed_claim(client, auth)
    dup = reviewed_claim(client, auth, text="Thousands of Russian troops are in Belarus.")
    merged = client.post(f"/v1/claims/{keep['id']}/merge", json={"duplicate_id": dup["id"]},
                         headers={**auth("checker"), "If-Match": "*"})
    assert merged.status_code == 200, merged.text
    assert_problem(client.post(f"/v1/claims/{dup['id']}/publish", json=PUBLISH,
                               headers=auth("checker")), 409, contains="merged")


@pytest.mark.parametrize("body", [
    {"headline": "No url"},
    {"url": "/relative/path", "headline": "A relative url"},
    {"url": "factcheck.example.org/x", "headline": "No scheme"},
    {"url": "javascript:alert(1)", "headline": "Not http"},
    {"url": "https://factcheck.example.org/x"},
    {"url": "https://factcheck.example.org/x", "headline": "   "},
    {"url": "https://factcheck.example.org/x", "headline": "x", "image_url": "/img.png"},
    {"url": "https://factcheck.example.org/x", "headline": "x", "status": "true"},
])
def test_publish_claim_with_bad_body_is_422(client, auth, body):
    claim = reviewed_claim(client, auth)
    before = ledger_state(client, auth("admin"))
    assert_problem(client.post(f"/v1/claims/{claim['id']}/publish", json=body,
                               headers=auth("checker")), 422)
    assert ledger_state(client, auth("admin")) == before


def test_publish_unknown_claim_is_404(client, auth):
    assert_problem(client.post("/v1/claims/clm_nope/publish", json=PUBLISH,
                               headers=auth("checker")), 404)


def test_publish_claim_replays_idempotency_key(client, auth):
    claim = reviewed_claim(client, auth)
    headers = {**auth("checker"), "Idempotency-Key": "pub-1"}
    first = client.post(f"/v1/claims/{claim['id']}/publish", json=PUBLISH, headers=headers)
    again = client.post(f"/v1/claims/{claim['id']}/publish", json=PUBLISH, headers=headers)
    assert again.status_code == 200 and again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"


def test_claimreview_itemreviewed_names_asserting_sources_and_appearances(client, auth):
    claim = make_claim(client, auth("ingester"), first_stated_at="2022-12-01T10:00:00+02:00",
                       attributions=[
                           {"source": "Government of Ukraine", "stance": "asserts",
                            "citation_url": "https://example.org/ukraine",
                            "citation_published_date": "2022-12-01"},
                           {"source": "Minsk residents", "stance": "disputes"}])
    muzyka = client.post("/v1/sources", json={"name": "Konrad Muzyka", "kind": "expert"},
                         headers=auth("ingester")).json()
    add_attribution(client, auth("ingester"), claim["id"], source_id=muzyka["id"],
                    stance="asserts", citation_url="https://example.org/rochan",
                    citation_title="Rochan report")
    review(client, auth("checker"), claim["id"], "true")
    publish(client, auth("checker"), claim["id"],
            {**PUBLISH, "image_url": "https://factcheck.example.org/img.png"})
    item = get_json(client, f"/v1/claims/{claim['id']}/claimreview", auth("reader"))
    assert item["image"] == "https://factcheck.example.org/img.png"
    assert item["itemReviewed"] == {
        "@type": "Claim",
        "author": [{"@type": "Organization", "name": "Government of Ukraine"},
                   {"@type": "Person", "name": "Konrad Muzyka"}],
        "datePublished": "2022-12-01T08:00:00Z",
        "appearance": [
            {"@type": "CreativeWork", "url": "https://example.org/ukraine",
             "datePublished": "2022-12-01"},
            {"@type": "CreativeWork", "url": "https://example.org/rochan",
             "headline": "Rochan report"}],
        "firstAppearance": {"@type": "CreativeWork", "url": "https://example.org/ukraine",
                            "datePublished": "2022-12-01"},
    }


@pytest.fixture
def demo_ledger(db):
    with db.write_session() as session:
        counts = demo.load_demo(session)
        session.commit()
    return counts


def test_demo_claimreview_matches_golden(client, auth, demo_ledger):
    """The golden ClaimReview of the demo's OHCHR claim (ids and times filled in)."""
    assert demo_ledger["published"] == 4
    published = get_json(client, "/v1/claims", auth("reader"), published="true")["items"]
    assert sorted(c["status"] for c in published) == ["mostly_false", "mostly_true", "true",
                                                       "unverifiable"]
    claim = next(c for c in published if c["text"].startswith("441 civilians"))
    got = get_json(client, f"/v1/claims/{claim['id']}/claimreview", auth("reader"))
    when = got["datePublished"]
    assert when.endswith("Z") and len(when) == 20
    text = ("441 civilians were killed by Russian forces in the Kyiv, Sumy and Chernihiv "
            "regions early in the war.")
    assert got == {
        "@context": "https://schema.org",
        "@type": "ClaimReview",
        "url": f"http://127.0.0.1:8000/c/{claim['id']}",
        "headline": f"Fact check: {text}",
        "claimReviewed": text,
        "inLanguage": "en",
        "datePublished": when,
        "dateModified": when,
        "author": {"@type": "Organization", "name": "Claimledger",
                   "url": "http://127.0.0.1:8000"},
        "reviewRating": {"@type": "Rating", "ratingValue": 4, "worstRating": 1,
                         "bestRating": 5, "alternateName": "Mostly true"},
        "itemReviewed": {"@type": "Claim",
                         "author": {"@type": "Organization",
                                    "name": "Office of the High Commissioner for Human Rights"},
                         "datePublished": "2022-12-07T00:00:00Z"},
        "reviewBody": claim["current_review"]["rationale"],
    }


def test_delete_published_claim_takes_its_publication_along(client, auth):
    claim = reviewed_claim(client, auth)
    publish(client, auth("checker"), claim["id"])
    assert client.delete(f"/v1/claims/{claim['id']}",
                         headers={**auth("admin"), "If-Match": "*"}).status_code == 204
    assert_problem(client.get(f"/c/{claim['id']}"), 404)
    assert client.get("/claimreview.jsonl").text == ""
    assert client.get("/v1alpha1/claims:search", params={"query": "soldiers"}).json() == {}
