"""Source merges: likely duplicates of a name (similar_to), and folding a duplicate source
into its survivor."""

import pytest

from tests.factories import (
    assert_problem,
    get_json,
    history,
    ingest,
    make_claim,
    with_version,
)


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
