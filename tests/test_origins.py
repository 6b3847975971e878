"""Origins: an ingest feed belongs to the key that first wrote to it; admins list origins
and hand them over."""

import pytest

from tests.factories import (
    NO_FORCES,
    SOLDIERS,
    SOLDIERS_EDITED,
    assert_problem,
    bearer,
    get_json,
    history,
    ingest,
    make_key,
)


@pytest.fixture
def rival(client, auth) -> dict[str, str]:
    """Headers of a second ingester key."""
    return bearer(make_key(client, auth("admin"), "rival-feed-job", "ingester")["secret"])

def test_ingest_origin_of_another_key_is_403_per_item(client, auth, rival):
    first = ingest(client, auth("ingester"), [
        {"text": SOLDIERS, "origin": "owned-feed", "external_id": "1"}])
    claim_id = first["items"][0]["claim_id"]
    result = ingest(client, rival, [
        {"text": SOLDIERS_EDITED, "origin": "owned-feed", "external_id": "1"},
        {"text": "A new item under someone else's feed.", "origin": "owned-feed",
         "external_id": "2"},
        {"text": NO_FORCES, "origin": "rival-feed", "external_id": "1"},
    ])
    assert [r["status"] for r in result["items"]] == ["error", "error", "created"]
    for item in result["items"][:2]:
        assert item["error"]["status"] == 403
        assert "test-ingester" in item["error"]["detail"]
    assert get_json(client, f"/v1/claims/{claim_id}", auth("reader"))["text"] == SOLDIERS
    assert get_json(client, "/v1/claims", auth("reader"), origin="owned-feed")["items"] == [
        get_json(client, f"/v1/claims/{claim_id}", auth("reader"))]
    refused = history(client, auth, claim_id)[-1]
    assert (refused["action"], refused["actor"]) == ("claim.update_refused", "rival-feed-job")
    assert refused["changes"]["status"] == 403
    assert "owned-feed" in refused["changes"]["reason"]

def test_post_claim_under_origin_of_another_key_is_403(client, auth, rival):
    ingest(client, auth("ingester"), [{"text": SOLDIERS, "origin": "posted", "external_id": "1"}])
    response = client.post("/v1/claims", headers=rival, json={
        "text": NO_FORCES, "origin": "posted", "external_id": "2"})
    assert_problem(response, 403, contains="belongs to the key test-ingester")
    mine = client.post("/v1/claims", headers=auth("ingester"), json={
        "text": NO_FORCES, "origin": "posted", "external_id": "2"})
    assert mine.status_code == 201, mine.text

def test_admin_may_update_any_origin(client, auth):
    ingest(client, auth("ingester"), [{"text": SOLDIERS, "origin": "adm", "external_id": "1"}])
    result = ingest(client, auth("admin"), [
        {"text": SOLDIERS_EDITED, "origin": "adm", "external_id": "1"}])
    assert result["items"][0]["status"] == "updated"

def test_list_origins_and_hand_one_over(client, auth, rival):
    ingest(client, auth("ingester"), [
        {"text": SOLDIERS, "origin": "handed", "external_id": "1"}])
    origins = get_json(client, "/v1/origins", auth("admin"))["items"]
    handed = next(o for o in origins if o["origin"] == "handed")
    assert (handed["owner_name"], handed["claims"]) == ("test-ingester", 1)
    rival_id = next(k["id"] for k in get_json(client, "/v1/keys", auth("admin"))
                    if k["name"] == "rival-feed-job")
    response = client.put("/v1/origins/handed/owner", headers=auth("admin"),
                          json={"key_id": rival_id})
    assert response.status_code == 200, response.text
    assert response.json()["owner_name"] == "rival-feed-job"
    assert response.json()["granted_by"] == "test-admin"
    updated = ingest(client, rival, [
        {"text": SOLDIERS_EDITED, "origin": "handed", "external_id": "1"}])
    assert updated["items"][0]["status"] == "updated"
    refused = ingest(client, auth("ingester"), [
        {"text": SOLDIERS, "origin": "handed", "external_id": "1"}], status=422)
    assert refused["results"][0]["error"]["status"] == 403
    event = get_json(client, "/v1/events", auth("reader"), action="origin.owner_set")["items"][-1]
    assert event["actor"] == "test-admin"
    assert event["changes"]["to"] == rival_id and event["changes"]["origin"] == "handed"

def test_origin_with_slash_is_addressable(client, auth, rival):
    ingest(client, auth("ingester"), [
        {"text": SOLDIERS, "origin": "feeds/belta", "external_id": "1"}])
    rival_id = next(k["id"] for k in get_json(client, "/v1/keys", auth("admin"))
                    if k["name"] == "rival-feed-job")
    response = client.put("/v1/origins/feeds/belta/owner", headers=auth("admin"),
                          json={"key_id": rival_id})
    assert response.status_code == 200, response.text
    assert response.json()["origin"] == "feeds/belta"

@pytest.mark.parametrize("key_id", ["key_does_not_exist", "reader"])
def test_hand_origin_to_unusable_key_is_422(client, auth, key_id):
    if key_id == "reader":
        key_id = make_key(client, auth("admin"), "just-reading", "reader")["id"]
    response = client.put("/v1/origins/anything/owner", headers=auth("admin"),
                          json={"key_id": key_id})
    assert_problem(response, 422, contains="API key")

def test_replaced_owner_key_of_same_name_inherits_origin(client, auth):
    old = make_key(client, auth("admin"), "nightly-feed", "ingester")
    ingest(client, bearer(old["secret"]), [
        {"text": SOLDIERS, "origin": "nightly", "external_id": "1"}])
    assert client.delete(f"/v1/keys/{old['id']}", headers=auth("admin")).status_code == 204
    new = make_key(client, auth("admin"), "nightly-feed", "ingester")
    result = ingest(client, bearer(new["secret"]), [
        {"text": SOLDIERS_EDITED, "origin": "nightly", "external_id": "1"}])
    assert result["items"][0]["status"] == "updated"
