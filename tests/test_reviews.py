"""Reviews and verdicts: a verdict stands on the text it was given for, a published one is
not changed under it, and two checkers setting verdicts at once never overwrite each other."""

from tests.factories import (
    NO_FORCES,
    SOLDIERS,
    SOLDIERS_EDITED,
    assert_problem,
    current,
    get_json,
    history,
    ingest,
    make_claim,
    review,
)


def test_patch_text_of_claim_with_verdict_reopens_it(client, auth):
    claim = make_claim(client, auth("ingester"), SOLDIERS)
    review(client, auth("checker"), claim["id"], "false", "No such deployment was seen.")
    edited = client.patch(f"/v1/claims/{claim['id']}", json={"text": SOLDIERS_EDITED},
                          headers=current(client, auth("checker"), claim["id"]))
    assert edited.status_code == 200, edited.text
    body = edited.json()
    assert body["status"] == "in_review"
    assert body["current_review"]["from_status"] == "false"
    assert "text changed" in body["current_review"]["rationale"]
    assert edited.headers["ETag"] == f'"{body["version"]}"'
    last = history(client, auth, claim["id"])[-1]
    assert last["action"] == "review.created"
    assert last["actor"] == "test-checker"
    assert last["changes"]["reason"] == "text_changed"
    assert last["changes"]["status"] == {"from": "false", "to": "in_review"}

def test_patch_other_fields_of_claim_with_verdict_keeps_it(client, auth):
    claim = make_claim(client, auth("ingester"), SOLDIERS)
    review(client, auth("checker"), claim["id"], "false", "No such deployment was seen.")
    edited = client.patch(f"/v1/claims/{claim['id']}", json={"topics": ["belarus"]},
                          headers=current(client, auth("checker"), claim["id"]))
    assert edited.status_code == 200, edited.text
    assert edited.json()["status"] == "false"

def test_ingest_update_changing_text_of_claim_with_verdict_reopens_it(client, auth):
    first = ingest(client, auth("ingester"), [
        {"text": SOLDIERS, "origin": "drift-feed", "external_id": "1"}])
    claim_id = first["items"][0]["claim_id"]
    review(client, auth("checker"), claim_id, "mostly_false", "Far fewer were counted.")
    again = ingest(client, auth("ingester"), [
        {"text": SOLDIERS_EDITED, "origin": "drift-feed", "external_id": "1"}])
    assert again["items"][0]["status"] == "updated"
    claim = get_json(client, f"/v1/claims/{claim_id}", auth("reader"))
    assert (claim["text"], claim["status"]) == (SOLDIERS_EDITED, "in_review")
    reopened = [e for e in history(client, auth, claim_id)
                if e["changes"].get("reason") == "text_changed"]
    assert [(e["action"], e["actor"]) for e in reopened] == [("review.created",
                                                             "test-ingester")]

def test_ingest_update_without_text_change_keeps_verdict(client, auth):
    ingest(client, auth("ingester"), [{"text": SOLDIERS, "origin": "f", "external_id": "1"}])
    claim_id = get_json(client, "/v1/claims", auth("reader"), origin="f")["items"][0]["id"]
    review(client, auth("checker"), claim_id, "true", "Confirmed by imagery.")
    again = ingest(client, auth("ingester"), [
        {"text": SOLDIERS, "origin": "f", "external_id": "1", "topics": ["belarus"]}])
    assert again["items"][0]["status"] == "updated"
    assert get_json(client, f"/v1/claims/{claim_id}", auth("reader"))["status"] == "true"

def test_ingest_update_of_published_verdict_is_refused_per_item(client, auth):
    first = ingest(client, auth("ingester"), [
        {"text": SOLDIERS, "origin": "pub-feed", "external_id": "1"}])
    claim_id = first["items"][0]["claim_id"]
    review(client, auth("checker"), claim_id, "false", "No such deployment was seen.")
    published = client.post(f"/v1/claims/{claim_id}/publish", headers=auth("checker"), json={
        "url": "https://factcheck.example.org/soldiers", "headline": "No deployment"})
    assert published.status_code == 200, published.text
    result = ingest(client, auth("ingester"), [
        {"text": SOLDIERS_EDITED, "origin": "pub-feed", "external_id": "1"},
        {"text": NO_FORCES}])
    assert [r["status"] for r in result["items"]] == ["error", "created"]
    error = result["items"][0]["error"]
    assert error["status"] == 409
    assert "published verdict; a checker must edit it" in error["detail"]
    claim = get_json(client, f"/v1/claims/{claim_id}", auth("reader"))
    assert (claim["text"], claim["status"]) == (SOLDIERS, "false")
    refused = history(client, auth, claim_id)[-1]
    assert refused["action"] == "claim.update_refused"
    assert refused["actor"] == "test-ingester"
    assert "published verdict" in refused["changes"]["reason"]
    # Withdrawn, the verdict is internal again: the same update reopens it.
    withdrawn = client.delete(f"/v1/claims/{claim_id}/publish", headers=auth("checker"))
    assert withdrawn.status_code == 204, withdrawn.text
    again = ingest(client, auth("ingester"), [
        {"text": SOLDIERS_EDITED, "origin": "pub-feed", "external_id": "1"}])
    assert again["items"][0]["status"] == "updated"
    assert get_json(client, f"/v1/claims/{claim_id}", auth("reader"))["status"] == "in_review"

def test_second_of_two_concurrent_verdicts_is_412(client, auth):
    claim = make_claim(client, auth("ingester"), SOLDIERS)
    both_read = current(client, auth("checker"), claim["id"])
    first = client.post(f"/v1/claims/{claim['id']}/reviews", headers=both_read,
                        json={"status": "true", "rationale": "Imagery confirms it."})
    assert first.status_code == 201, first.text
    second = client.post(f"/v1/claims/{claim['id']}/reviews", headers=both_read,
                         json={"status": "false", "rationale": "Nothing confirms it."})
    assert_problem(second, 412, contains="version")
    assert get_json(client, f"/v1/claims/{claim['id']}", auth("reader"))["status"] == "true"
