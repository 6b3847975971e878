"""Claims: register, read, list (filters, contested, stable cursor paging), edit with If-Match,
delete."""

from datetime import datetime

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from tests.factories import (
    add_attribution,
    all_pages,
    assert_problem,
    bearer,
    claim_of,
    get_json,
    listed,
    make_claim,
    make_source,
    merge,
    review,
)


def test_create_claim_starts_unverified_with_inline_sources(client, auth):
    isw = make_source(client, auth("ingester"), "Institute for the Study of War", aliases=["ISW"])
    response = client.post("/v1/claims", headers=auth("ingester"), json={
        "text": "Belarus is running an information operation aimed at fixing Ukrainian forces.",
        "topics": ["belarus", "information-operations"],
        "attributions": [
            {"source": "isw", "stance": "asserts"},
            {"source": "Minsk residents", "stance": "disputes"},
        ],
    })
    assert response.status_code == 201, response.text
    claim = response.json()
    assert claim["status"] == "unverified"
    assert claim["version"] == 1
    assert response.headers["etag"] == '"1"'
    assert response.headers["location"] == f"/v1/claims/{claim['id']}"
    names = {a["source"]["name"] for a in claim["attributions"]}
    assert names == {"Institute for the Study of War", "Minsk residents"}
    assert claim["attributions"][0]["source"]["id"] == isw["id"]
    assert claim["contested"] is True
    found = client.get("/v1/sources", params={"name": "minsk RESIDENTS"}, headers=auth("reader"))
    assert len(found.json()["items"]) == 1


def test_update_claim_needs_current_etag(client, auth):
    claim = make_claim(client, auth("ingester"))
    url = f"/v1/claims/{claim['id']}"
    assert_problem(client.patch(url, json={"text": "x"}, headers=auth("checker")), 428)
    ok = client.patch(url, json={"text": "Thousands of Russian troops are in Belarus."},
                      headers={**auth("checker"), "If-Match": '"1"'})
    assert ok.status_code == 200, ok.text
    assert ok.json()["version"] == 2
    assert ok.headers["etag"] == '"2"'
    stale = client.patch(url, json={"text": "Something else entirely."},
                         headers={**auth("checker"), "If-Match": '"1"'})
    assert_problem(stale, 412, contains="version 2")
    assert client.get(url, headers=auth("reader")).json()["text"] == (
        "Thousands of Russian troops are in Belarus.")


def test_create_claim_rejects_unknown_fields(client, auth):
    response = client.post("/v1/claims", headers=auth("ingester"),
                           json={"text": "A claim.", "status": "true", "version": 9})
    body = assert_problem(response, 422)
    assert {tuple(e["loc"][-1:]) for e in body["errors"]} == {("status",), ("version",)}
    assert client.get("/v1/claims", headers=auth("reader")).json()["items"] == []


# --- contested -----------------------------------------------------------------------


def test_list_claims_contested_is_computed_and_filterable(client, auth):
    def claim(text: str, *stances: str) -> dict:
        return make_claim(client, auth("ingester"), text, attributions=[
            {"source": f"Source {n}", "stance": stance} for n, stance in enumerate(stances)])

    both = claim("Asserted and disputed.", "asserts", "disputes")
    support_deny = claim("Supported and denied.", "supports", "denies")
    one_side = claim("Asserted twice.", "asserts", "supports")
    relayed = claim("Reported and disputed.", "reports", "disputes")
    bare = claim("Nobody said it.")
    assert [c["contested"] for c in (both, support_deny, one_side, relayed, bare)] == [
        True, True, False, False, False]
    assert set(listed(client, auth, contested="true")) == {both["id"], support_deny["id"]}
    assert set(listed(client, auth, contested="false")) == {
        one_side["id"], relayed["id"], bare["id"]}

    add_attribution(client, auth("ingester"), relayed["id"], source="Source 9", stance="asserts")
    assert claim_of(client, auth, relayed["id"])["contested"] is True
    dispute = next(a for a in both["attributions"] if a["stance"] == "disputes")
    response = client.delete(f"/v1/claims/{both['id']}/attributions/{dispute['id']}",
                             headers={**auth("checker"), "If-Match": "*"})
    assert response.status_code == 204, response.text
    assert claim_of(client, auth, both["id"])["contested"] is False
    assert set(listed(client, auth, contested="true")) == {support_deny["id"], relayed["id"]}


# --- filters and paging --------------------------------------------------------------


def test_list_claims_filters(client, auth):
    ukraine = make_source(client, auth("ingester"), "Government of Ukraine")
    russia = make_source(client, auth("ingester"), "Government of Russia")
    a = make_claim(client, auth("ingester"), "Russia's war is an illegal war of aggression.",
                   topics=["war"], attributions=[
                       {"source_id": ukraine["id"], "stance": "asserts"},
                       {"source_id": russia["id"], "stance": "disputes"}])
    b = make_claim(client, auth("ingester"), "Russia faces a security threat from the West.",
                   topics=["war", "security"], language="en-GB",
                   attributions=[{"source_id": russia["id"], "stance": "asserts"}])
    c = make_claim(client, auth("ingester"), "Росія не обстрілює цивільних.", language="uk",
                   topics=["civilians"])
    d = make_claim(client, auth("ingester"), "Ukraine bears no responsibility for the strikes.",
                   origin="telegram", external_id="post-1",
                   attributions=[{"source_id": ukraine["id"], "stance": "reports"}])
    review(client, auth("checker"), a["id"], "true", "UN General Assembly resolution")
    review(client, auth("checker"), b["id"], "false", "no evidence")
    review(client, auth("checker"), c["id"], "in_review", None)

    def ids(**params) -> set[str]:
        return set(listed(client, auth, **params))

    assert ids() == {a["id"], b["id"], c["id"], d["id"]}
    assert ids(status="true") == {a["id"]}
    assert ids(status=["true", "false"]) == {a["id"], b["id"]}
    assert ids(status="unverified") == {d["id"]}
    assert ids(source_id=russia["id"]) == {a["id"], b["id"]}
    assert ids(source_id=ukraine["id"]) == {a["id"], d["id"]}
    assert ids(stance="disputes") == {a["id"]}
    assert ids(stance="reports") == {d["id"]}
    assert ids(source_id=russia["id"], stance="asserts") == {b["id"]}
    assert ids(source_id=ukraine["id"], stance="disputes") == set()
    assert ids(topic="war") == {a["id"], b["id"]}
    assert ids(topic="security") == {b["id"]}
    assert ids(topic="nothing") == set()
    assert ids(language="uk") == {c["id"]}
    assert ids(language="en-gb") == {b["id"]}
    assert ids(language="en") == {a["id"], d["id"]}
    assert ids(origin="telegram") == {d["id"]}
    assert ids(status="true", topic="war", source_id=ukraine["id"]) == {a["id"]}

    claims = {x["id"]: claim_of(client, auth, x["id"]) for x in (a, b, c, d)}
    assert ids(created_after=claims[c["id"]]["created_at"]) == {c["id"], d["id"]}
    assert ids(created_before=claims[c["id"]]["created_at"]) == {a["id"], b["id"]}
    # d was never touched again: it was updated before the reviews of a, b and c.
    assert ids(updated_before=claims[a["id"]]["updated_at"]) == {d["id"]}
    assert ids(updated_after=claims[b["id"]]["updated_at"]) == {b["id"], c["id"]}
    assert ids(created_after="2999-01-01T00:00:00Z") == set()
    assert ids(updated_before="2000-01-01T00:00:00+02:00") == set()


SORT_KEYS = {
    "-created_at": ("created_at", True), "created_at": ("created_at", False),
    "-updated_at": ("updated_at", True), "updated_at": ("updated_at", False),
}


def test_list_claims_pages_every_sort_without_gaps_or_repeats(client, auth):
    claims = [make_claim(client, auth("ingester"), f"Numbered claim {n} about the war.")
              for n in range(7)]
    for claim in (claims[4], claims[0], claims[5]):  # shuffle updated_at against created_at
        review(client, auth("checker"), claim["id"], "in_review", None)
    hidden = make_claim(client, auth("ingester"), "A duplicate of claim 1.")
    assert merge(client, auth, claims[1]["id"], hidden["id"]).status_code == 200
    current = {c["id"]: c for c in all_pages(client, "/v1/claims", auth("reader"))}
    assert set(current) == {c["id"] for c in claims}

    for sort, (field, descending) in SORT_KEYS.items():
        expected = sorted(current.values(), key=lambda c, f=field: (datetime.fromisoformat(c[f]),
                                                                    c["id"]),
                          reverse=descending)
        pages, cursor = [], None
        while True:
            page = get_json(client, "/v1/claims", auth("reader"), limit=3, sort=sort,
                            **({"cursor": cursor} if cursor else {}))
            pages.append([c["id"] for c in page["items"]])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert [len(p) for p in pages] == [3, 3, 1], sort
        assert [i for p in pages for i in p] == [c["id"] for c in expected], sort

    first = get_json(client, "/v1/claims", auth("reader"), limit=3, sort="created_at")
    assert_problem(client.get("/v1/claims", params={"limit": 3, "sort": "-updated_at",
                                                    "cursor": first["next_cursor"]},
                              headers=auth("reader")), 400, contains="cursor")
    # A cursor stays valid while claims are added: the new ones sort before it, not after.
    later = make_claim(client, auth("ingester"), "Added while a reader was paging.")
    newest = get_json(client, "/v1/claims", auth("reader"), limit=3)
    rest = all_pages(client, "/v1/claims", auth("reader"), limit=3, cursor=newest["next_cursor"])
    assert later["id"] == newest["items"][0]["id"]
    assert len(newest["items"]) + len(rest) == 8


@pytest.mark.parametrize("largest", [2, 250])
def test_list_claims_page_size_is_bounded_by_max_page_size(settings, db, secrets, largest):
    app = create_app(settings.model_copy(update={"max_page_size": largest}), database=db)
    reader = bearer(secrets["reader"])
    with TestClient(app, raise_server_exceptions=False) as client:
        for n in range(3):
            make_claim(client, bearer(secrets["ingester"]), f"Numbered claim {n} about the war.")
        parameters = client.get("/openapi.json").json()["paths"]["/v1/claims"]["get"]["parameters"]
        assert next(p for p in parameters if p["name"] == "limit")["schema"]["maximum"] == largest
        assert_problem(client.get("/v1/claims", params={"limit": largest + 1}, headers=reader),
                       422, contains=str(largest))
        page = get_json(client, "/v1/claims", reader, limit=largest)
        assert len(page["items"]) == min(largest, 3)
