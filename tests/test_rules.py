"""Who may change what (issue 21): verdicts that cannot drift onto other text, feeds that
belong to their keys, If-Match on verdicts, merges, links and deletes, honest ingest results,
and idempotent retries that re-serialise their JSON."""

import json

import pytest

from tests.factories import (
    NDJSON,
    assert_problem,
    current,
    get_json,
    ingest,
    make_claim,
    make_key,
    review,
    with_version,
)

SOLDIERS = "Thousands of Russian soldiers have been stationed in Belarus since October."
SOLDIERS_EDITED = "Tens of thousands of Russian soldiers have been stationed in Belarus."
NO_FORCES = "Russia does not currently have enough forces in Belarus to launch an attack."


def history(client, auth, claim_id: str) -> list[dict]:
    return get_json(client, f"/v1/claims/{claim_id}/history", auth("reader"),
                    limit=200)["items"]


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


# --- 1. a verdict does not drift onto other text ---------------------------------------


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


# --- 2. a feed belongs to its key -------------------------------------------------------


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


# --- 3. If-Match on verdicts, merges, links and deletes ----------------------------------


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


@pytest.mark.parametrize("action", ["review", "link", "merge", "delete", "detach"])
def test_write_without_if_match_is_428(client, auth, action):
    claim = make_claim(client, auth("ingester"), SOLDIERS, attributions=[
        {"source": "Government of Ukraine", "stance": "asserts"}])
    other = make_claim(client, auth("ingester"), NO_FORCES)
    url = f"/v1/claims/{claim['id']}"
    method, path, body = {
        "review": ("POST", "/reviews", {"status": "in_review"}),
        "link": ("POST", "/links", {"target_id": other["id"], "kind": "related"}),
        "merge": ("POST", "/merge", {"duplicate_id": other["id"]}),
        "delete": ("DELETE", "", None),
        "detach": ("DELETE", f"/attributions/{claim['attributions'][0]['id']}", None),
    }[action]
    role = "admin" if action == "delete" else "checker"
    assert_problem(client.request(method, url + path, json=body, headers=auth(role)), 428,
                   contains="If-Match")
    assert_problem(client.request(method, url + path, json=body,
                                  headers=with_version(auth(role), 7)), 412)
    done = client.request(method, url + path, json=body,
                          headers=with_version(auth(role), claim["version"]))
    assert done.status_code < 300, done.text


def test_openapi_lists_428_on_the_guarded_writes_only(client):
    paths = client.get("/openapi.json").json()["paths"]
    guarded = [("post", "/v1/claims/{claim_id}/reviews"), ("post", "/v1/claims/{claim_id}/links"),
               ("post", "/v1/claims/{claim_id}/merge"), ("delete", "/v1/claims/{claim_id}"),
               ("delete", "/v1/claims/{claim_id}/attributions/{attribution_id}"),
               ("post", "/v1/sources/{source_id}/merge")]
    for method, path in guarded:
        assert {"412", "428"} <= set(paths[path][method]["responses"]), (method, path)
        assert "If-Match" in paths[path][method]["description"]
    assert "428" not in paths["/v1/claims/{claim_id}/attributions"]["post"]["responses"]
    assert "428" not in paths["/v1/claims"]["post"]["responses"]
    assert "412" not in paths["/v1/origins/{origin}/owner"]["put"]["responses"]


# --- 4. sources can be merged ------------------------------------------------------------


@pytest.fixture
def isw_pair(client, auth):
    """The Institute for the Study of War and its misspelt double, each with a claim; one
    claim cites both the same way (that attribution folds when they merge)."""
    def source(name, **fields):
        response = client.post("/v1/sources", headers=auth("ingester"),
                               json={"name": name, **fields})
        assert response.status_code == 201, response.text
        return response.json()

    isw = source("Institute for the Study of War", aliases=["ISW"], kind="think_tank")
    typo = source("Insitute for the Study of War", aliases=["I.S.W. Washington"])
    quote = {"stance": "asserts", "quote": "an information operation"}
    own = make_claim(client, auth("ingester"), "Belarus is running an information operation.",
                     attributions=[{"source_id": isw["id"], **quote}])
    shared = make_claim(client, auth("ingester"), "Belarus is fixing Ukrainian forces.",
                        attributions=[{"source_id": isw["id"], **quote},
                                      {"source_id": typo["id"], **quote}])
    moved = make_claim(client, auth("ingester"), "Belarus will not join the war this year.",
                       attributions=[{"source_id": typo["id"], "stance": "disputes"}])
    return {"isw": isw, "typo": typo, "own": own, "shared": shared, "moved": moved}


def test_similar_to_suggests_misspelt_accented_and_transliterated_names(client, auth, isw_pair):
    found = get_json(client, "/v1/sources", auth("reader"),
                     similar_to="institute for the study of war")["items"]
    assert [s["id"] for s in found[:2]] == [isw_pair["isw"]["id"], isw_pair["typo"]["id"]]
    assert found[0]["score"] == 1.0 and 0.6 < found[1]["score"] < 1.0
    assert found[1]["matched"] == "Insitute for the Study of War"
    client.post("/v1/sources", headers=auth("ingester"), json={"name": "Александр Лукашенко"})
    client.post("/v1/sources", headers=auth("ingester"), json={"name": "Volodymyr Zelenskyy"})
    names = [s["name"] for s in get_json(client, "/v1/sources", auth("reader"),
                                         similar_to="Aleksandr Lukashenko")["items"]]
    assert names[0] == "Александр Лукашенко"
    names = [s["name"] for s in get_json(client, "/v1/sources", auth("reader"),
                                         similar_to="ZELÉNSKYY, Volodymyr")["items"]]
    assert names[0] == "Volodymyr Zelenskyy"
    assert get_json(client, "/v1/sources", auth("reader"), similar_to="qqqqqqqqqq")["items"] == []


@pytest.mark.parametrize("params", [{"similar_to": "isw", "name": "isw"},
                                    {"similar_to": "...", "limit": 5}])
def test_similar_to_bad_use_is_422(client, auth, params):
    assert_problem(client.get("/v1/sources", params=params, headers=auth("reader")), 422,
                   contains="similar_to")


def test_merge_source_folds_duplicate_into_survivor(client, auth, isw_pair):
    isw, typo = isw_pair["isw"], isw_pair["typo"]
    record_before = [get_json(client, f"/v1/sources/{s['id']}/record", auth("reader"))
                     for s in (isw, typo)]
    before = get_json(client, "/v1/events", auth("reader"), limit=200)["items"][-1]["at"]
    merged = client.post(f"/v1/sources/{isw['id']}/merge", headers=with_version(
        auth("checker"), isw["version"]), json={"duplicate_id": typo["id"],
                                                "note": "misspelt by a feed"})
    assert merged.status_code == 200, merged.text
    body = merged.json()
    assert merged.headers["ETag"] == f'"{body["version"]}"'
    assert body["aliases"] == ["ISW", "Insitute for the Study of War", "I.S.W. Washington"]
    # the old id, name and aliases resolve to the survivor
    assert get_json(client, f"/v1/sources/{typo['id']}", auth("reader"))["id"] == isw["id"]
    assert get_json(client, "/v1/sources", auth("reader"),
                    name="insitute for the study of war")["items"][0]["id"] == isw["id"]
    # attributions moved, the repeated one folded; the track record is whole
    shared = get_json(client, f"/v1/claims/{isw_pair['shared']['id']}", auth("reader"))
    assert [a["source"]["id"] for a in shared["attributions"]] == [isw["id"]]
    moved = get_json(client, f"/v1/claims/{isw_pair['moved']['id']}", auth("reader"))
    assert moved["attributions"][0]["source"]["name"] == isw["name"]
    record = get_json(client, f"/v1/sources/{isw['id']}/record", auth("reader"))
    assert record != record_before[0]
    assert get_json(client, f"/v1/sources/{typo['id']}/record", auth("reader")) == record
    claims = get_json(client, f"/v1/sources/{isw['id']}/claims", auth("reader"))["items"]
    assert {c["id"] for c in claims} == {isw_pair[k]["id"] for k in ("own", "shared", "moved")}
    # history shows the merge, with actor and reason; as_of before it, the old source
    event = history(client, auth, isw_pair["moved"]["id"])[-1]
    assert (event["action"], event["actor"]) == ("source.merged", "test-checker")
    assert event["changes"]["reason"] == "misspelt by a feed"
    assert event["changes"]["duplicate"] == typo["id"]
    past = get_json(client, f"/v1/claims/{isw_pair['moved']['id']}", auth("reader"),
                    as_of=before)
    assert past["attributions"][0]["source"]["name"] == "Insitute for the Study of War"
    source_events = get_json(client, "/v1/events", auth("reader"), entity_type="source",
                             action="source.merged_into")["items"]
    assert [e["entity_id"] for e in source_events] == [typo["id"]]
    # an attribution naming the old id lands on the survivor
    att = client.post(f"/v1/claims/{isw_pair['own']['id']}/attributions", headers=auth("ingester"),
                      json={"source_id": typo["id"], "stance": "supports"})
    assert att.status_code == 201, att.text
    assert att.json()["source"]["id"] == isw["id"]
    item = ingest(client, auth("ingester"), [{"text": "ISW reports a build-up.", "attributions": [
        {"source_id": typo["id"], "stance": "asserts"}]}])["items"][0]
    assert item["status"] == "created"


def test_merge_source_refusals(client, auth, isw_pair):
    isw, typo = isw_pair["isw"], isw_pair["typo"]
    url = f"/v1/sources/{isw['id']}/merge"
    assert_problem(client.post(url, headers=auth("checker"), json={"duplicate_id": typo["id"]}),
                   428)
    assert_problem(client.post(url, headers=with_version(auth("checker"), 9),
                               json={"duplicate_id": typo["id"]}), 412)
    assert_problem(client.post(url, headers=with_version(auth("ingester"), 1),
                               json={"duplicate_id": typo["id"]}), 403)
    assert_problem(client.post(url, headers=with_version(auth("checker"), 1),
                               json={"duplicate_id": isw["id"]}), 422, contains="itself")
    assert_problem(client.post(url, headers=with_version(auth("checker"), 1),
                               json={"duplicate_id": "src_nope"}), 422, contains="not exist")
    ok = client.post(url, headers=with_version(auth("checker"), 1),
                     json={"duplicate_id": typo["id"]})
    assert ok.status_code == 200, ok.text
    again = client.post(url, headers={**auth("checker"), "If-Match": "*"},
                        json={"duplicate_id": typo["id"]})
    assert_problem(again, 409, contains="already merged")


# --- 5. idempotent retries compare parsed JSON -------------------------------------------


def test_retry_with_reserialised_json_body_replays(client, auth):
    headers = {**auth("ingester"), "Idempotency-Key": "reserialised",
               "Content-Type": "application/json"}
    body = {"text": SOLDIERS, "topics": ["belarus"], "language": "en"}
    first = client.post("/v1/claims", content=json.dumps(body), headers=headers)
    assert first.status_code == 201, first.text
    shuffled = json.dumps(dict(reversed(body.items())), indent=2)
    again = client.post("/v1/claims", content=shuffled, headers=headers)
    assert again.status_code == 201, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    other = client.post("/v1/claims", content=json.dumps({**body, "language": "de"}),
                        headers=headers)
    assert_problem(other, 422, contains="different request")


def test_retry_with_reserialised_ndjson_body_replays(client, auth):
    headers = {**auth("ingester"), **NDJSON, "Idempotency-Key": "reserialised-feed"}
    lines = [{"text": SOLDIERS, "origin": "nd", "external_id": "1"}, {"text": NO_FORCES}]
    first = client.post("/v1/ingest", headers=headers,
                        content="\n".join(json.dumps(x) for x in lines) + "\n")
    assert first.status_code == 200, first.text
    spaced = "\r\n".join(json.dumps(dict(reversed(x.items())), indent=None,
                                    separators=(" , ", " : ")) for x in lines)
    again = client.post("/v1/ingest", headers=headers, content=spaced)
    assert again.status_code == 200, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    swapped = client.post("/v1/ingest", headers=headers,
                          content="\n".join(json.dumps(x) for x in reversed(lines)))
    assert_problem(swapped, 422, contains="different request")


# --- 6. honest per-item results -----------------------------------------------------------


def test_ingest_same_item_again_is_unchanged_and_created_counts_attributions(client, auth):
    item = {"text": SOLDIERS, "origin": "honest", "external_id": "1", "attributions": [
        {"source": "Government of Ukraine", "stance": "asserts"},
        {"source": "ISW", "stance": "supports"}]}
    first = ingest(client, auth("ingester"), [item])
    assert first["items"][0]["status"] == "created"
    assert first["items"][0]["attributions_added"] == 2
    claim = get_json(client, f"/v1/claims/{first['items'][0]['claim_id']}", auth("reader"))
    again = ingest(client, auth("ingester"), [item])
    assert again["items"][0]["status"] == "unchanged"
    assert again["items"][0]["attributions_added"] == 0
    assert again["summary"]["unchanged"] == 1 and again["summary"]["updated"] == 0
    assert get_json(client, f"/v1/claims/{claim['id']}", auth("reader"))["version"] == \
        claim["version"]
    more = ingest(client, auth("ingester"), [{**item, "attributions": [
        *item["attributions"], {"source": "BelTA", "stance": "reports"}]}])
    assert (more["items"][0]["status"], more["items"][0]["attributions_added"]) == ("updated", 1)
