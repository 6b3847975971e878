"""Links, merges, contested claims, list filters and stable cursor paging."""

from datetime import datetime

import pytest

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


def claim_of(client, auth, claim_id: str) -> dict:
    return get_json(client, f"/v1/claims/{claim_id}", auth("reader"))


def listed(client, auth, **params) -> list[str]:
    return [c["id"] for c in all_pages(client, "/v1/claims", auth("reader"), **params)]


def merge(client, auth, target_id: str, duplicate_id: str):
    return client.post(f"/v1/claims/{target_id}/merge", json={"duplicate_id": duplicate_id},
                       headers={**auth("checker"), "If-Match": "*"})


# --- links ---------------------------------------------------------------------------


def test_create_link_appears_on_both_claims(client, auth):
    denial = make_claim(client, auth("ingester"), "Russia does not intentionally target civilians.")
    killed = make_claim(client, auth("ingester"), "441 civilians were killed by Russian forces.")
    link = make_link(client, auth("checker"), denial["id"], killed["id"], "contradicts",
                     note="OHCHR documents executions")
    assert (link["claim_id"], link["target_id"], link["kind"]) == (
        denial["id"], killed["id"], "contradicts")
    assert link["created_by"] == "test-checker"
    for claim_id in (denial["id"], killed["id"]):
        claim = claim_of(client, auth, claim_id)
        assert claim["links"] == [link]
        assert claim["version"] == 2  # a link is a change to both ends
    other = make_link(client, auth("checker"), killed["id"], denial["id"], "related")
    assert [lk["id"] for lk in claim_of(client, auth, denial["id"])["links"]] == [
        link["id"], other["id"]]


def test_create_link_duplicate_is_409(client, auth):
    first = make_claim(client, auth("ingester"), "At least 6,700 civilian deaths were counted.")
    second = make_claim(client, auth("ingester"), "441 civilians were killed near Kyiv.")
    make_link(client, auth("checker"), second["id"], first["id"], "related")
    body = assert_problem(client.post(f"/v1/claims/{second['id']}/links",
                                      headers=current(client, auth("checker"), second["id"]),
                                      json={"target_id": first["id"], "kind": "related"}), 409)
    assert body["link_id"]
    make_link(client, auth("checker"), second["id"], first["id"], "updates")
    assert len(claim_of(client, auth, first["id"])["links"]) == 2


# --- merges --------------------------------------------------------------------------


@pytest.fixture
def merged(client, auth):
    """A duplicate folded into a target; returns the claims and sources involved."""
    council = make_source(client, auth("ingester"), "Belarus Security Council")
    residents = make_source(client, auth("ingester"), "Minsk residents")
    belta = make_source(client, auth("ingester"), "BelTA")
    target = make_claim(client, auth("ingester"), "Troops will arrive in Belarus within two days.",
                        topics=["belarus"],
                        attributions=[{"source_id": council["id"], "stance": "asserts"}])
    duplicate = make_claim(client, auth("ingester"),
                           "Troops and equipment will arrive in Belarus in the next two days.",
                           topics=["military", "belarus"],
                           attributions=[{"source_id": council["id"], "stance": "asserts"},
                                         {"source_id": residents["id"], "stance": "disputes"},
                                         {"source_id": belta["id"], "stance": "reports"}])
    supported = make_claim(client, auth("ingester"), "Belarus is preparing to join the war.")
    relating = make_claim(client, auth("ingester"), "Exercises restrict movement in Belarus.")
    make_link(client, auth("checker"), duplicate["id"], supported["id"], "supports")
    make_link(client, auth("checker"), relating["id"], duplicate["id"], "related")
    make_link(client, auth("checker"), duplicate["id"], target["id"], "duplicates")
    response = merge(client, auth, target["id"], duplicate["id"])
    assert response.status_code == 200, response.text
    return {"target": target, "duplicate": duplicate, "supported": supported,
            "relating": relating, "council": council, "residents": residents,
            "belta": belta, "response": response}


def test_merge_claim_moves_attributions_topics_and_links(client, auth, merged):
    target, duplicate = merged["target"], merged["duplicate"]
    result = merged["response"].json()
    assert result["id"] == target["id"]
    assert merged["response"].headers["etag"] == f'"{result["version"]}"'
    assert result == claim_of(client, auth, target["id"])
    stances = sorted((a["source"]["name"], a["stance"]) for a in result["attributions"])
    assert stances == sorted([("Belarus Security Council", "asserts"), ("BelTA", "reports"),
                              ("Minsk residents", "disputes")])
    assert result["topics"] == ["belarus", "military"]
    assert result["contested"] is True
    ends = sorted((lk["claim_id"], lk["target_id"], lk["kind"]) for lk in result["links"])
    assert ends == sorted([(target["id"], merged["supported"]["id"], "supports"),
                           (merged["relating"]["id"], target["id"], "related")])
    assert claim_of(client, auth, merged["supported"]["id"])["links"][0]["claim_id"] == \
        target["id"]

    gone = claim_of(client, auth, duplicate["id"])
    assert gone["duplicate_of"] == target["id"]
    assert gone["attributions"] == [] and gone["links"] == []
    assert duplicate["id"] not in listed(client, auth)
    assert target["id"] in listed(client, auth)
    assert duplicate["id"] in listed(client, auth, include_merged="true")
    source_claims = all_pages(client, f"/v1/sources/{merged['residents']['id']}/claims",
                              auth("reader"))
    assert [c["id"] for c in source_claims] == [target["id"]]


def test_write_merged_claim_is_409(client, auth, merged):
    duplicate, target = merged["duplicate"]["id"], merged["target"]["id"]
    other = make_claim(client, auth("ingester"), "Belarus has been ready for months.")
    version = claim_of(client, auth, duplicate)["version"]
    before = claim_of(client, auth, duplicate)
    attempts = [
        client.patch(f"/v1/claims/{duplicate}", json={"text": "Edited after the merge."},
                     headers=with_version(auth("checker"), version)),
        client.post(f"/v1/claims/{duplicate}/reviews", json={"status": "in_review"},
                    headers=with_version(auth("checker"), version)),
        client.post(f"/v1/claims/{duplicate}/attributions",
                    json={"source": "BelTA", "stance": "reports"}, headers=auth("ingester")),
        client.post(f"/v1/claims/{duplicate}/links",
                    json={"target_id": other["id"], "kind": "related"},
                    headers=with_version(auth("checker"), version)),
        merge(client, auth, duplicate, other["id"]),
        client.post(f"/v1/claims/{other['id']}/links",
                    json={"target_id": duplicate, "kind": "related"},
                    headers={**auth("checker"), "If-Match": "*"}),
    ]
    for response in attempts:
        body = assert_problem(response, 409)
        assert target in body["detail"], body
    assert_problem(merge(client, auth, target, duplicate), 409, contains="already merged")
    assert_problem(merge(client, auth, other["id"], duplicate), 409, contains="already merged")
    assert claim_of(client, auth, duplicate) == before
    assert claim_of(client, auth, other["id"])["links"] == []


def test_merge_claim_records_both_ends_in_history(client, auth, merged):
    target, duplicate = merged["target"]["id"], merged["duplicate"]["id"]
    last = get_json(client, f"/v1/claims/{target}/history", auth("reader"))["items"][-1]
    assert (last["action"], last["actor"]) == ("claim.merged", "test-checker")
    last = get_json(client, f"/v1/claims/{duplicate}/history", auth("reader"))["items"][-1]
    assert last["action"] == "claim.merged_into"
    assert last["changes"]["target"] == target


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
                             headers=current(client, auth("checker"), both["id"]))
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
