"""Links between claims, and merges of duplicates into the claim they repeat."""

import pytest

from tests.factories import (
    all_pages,
    assert_problem,
    claim_of,
    current,
    get_json,
    listed,
    make_claim,
    make_link,
    make_source,
    merge,
    with_version,
)

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
