"""Batch ingestion: JSON or NDJSON, one result per item, sources resolved, nothing half-written."""

import json
import random

from fastapi.testclient import TestClient

from app.main import create_app
from tests.factories import (
    NDJSON,
    assert_problem,
    bearer,
    get_json,
    ingest,
    ledger_counts,
    ledger_state,
    make_claim,
    make_source,
)

SOLDIERS = "Thousands of Russian soldiers have been stationed in Belarus since October."
NO_FORCES = "Russia does not currently have enough forces in Belarus to launch an attack."
INFO_OP = ("Belarus is running an information operation aimed at fixing Ukrainian forces on the "
           "border.")
GETTING_READY = ("Belarus has been getting ready to join the conflict on Russia's side for a few "
                 "months.")
ARRIVE = "Troops and military equipment will arrive in Belarus over the next two days."
CIVILIANS = ("441 civilians were killed by Russian forces in the Kyiv, Sumy and Chernihiv regions "
             "early in the war.")
NOT_TARGET = "Russia does not intentionally target civilians."
DEATHS = "At least 6,700 civilian deaths have been counted in the war."

VOCABULARY = (  # noqa: SIM905  (a word list reads better as prose)
    "russian belarusian ukrainian troops soldiers civilians forces equipment border minsk kyiv "
    "sumy chernihiv october november december january regions officials ministry council "
    "agency report counted killed stationed arrived attack operation information exercise "
    "military tanks artillery aircraft drones missiles brigade battalion convoy railway "
    "refugees hospital school bridge power grid water shelling ceasefire talks sanctions"
).split()


def distinct_texts(count: int, seed: int = 7) -> list[str]:
    """Claims that share few words, so they are neither duplicates nor near duplicates."""
    rng = random.Random(seed)
    return [f"Item {n}: " + " ".join(rng.sample(VOCABULARY, 10)) + "." for n in range(count)]


def claims_by_text(client, headers) -> dict[str, dict]:
    page = get_json(client, "/v1/claims", headers, limit=200, include_merged="true")
    return {c["text"]: c for c in page["items"]}


def source_ids(claim: dict) -> list[str]:
    return [a["source"]["id"] for a in claim["attributions"]]


# --- formats and per-item results -----------------------------------------------------


def test_ingest_claims_json_array_creates_each_in_order(client, auth):
    body = ingest(client, auth("ingester"), [
        {"text": SOLDIERS, "topics": ["belarus"],
         "attributions": [{"source": "Government of Ukraine", "stance": "asserts"}]},
        {"text": NO_FORCES, "attributions": [{"source": "Ukrainian officials",
                                              "stance": "asserts",
                                              "quote": "not enough forces to attack"}]},
        {"text": INFO_OP},
    ])
    assert body["summary"] == {"received": 3, "created": 3, "duplicate": 0, "updated": 0,
                               "unchanged": 0,
                               "error": 0}
    assert [r["index"] for r in body["items"]] == [0, 1, 2]
    assert [r["status"] for r in body["items"]] == ["created"] * 3
    for result, text in zip(body["items"], (SOLDIERS, NO_FORCES, INFO_OP), strict=True):
        claim = get_json(client, f"/v1/claims/{result['claim_id']}", auth("reader"))
        assert claim["text"] == text
        assert claim["status"] == "unverified" and claim["version"] == 1
    first = get_json(client, f"/v1/claims/{body['items'][0]['claim_id']}", auth("reader"))
    assert first["topics"] == ["belarus"]
    assert first["attributions"][0]["source"]["name"] == "Government of Ukraine"
    second = get_json(client, f"/v1/claims/{body['items'][1]['claim_id']}", auth("reader"))
    assert second["attributions"][0]["quote"] == "not enough forces to attack"
    # Every new claim and source is in the change feed, once.
    events = get_json(client, "/v1/events", auth("reader"), limit=200)["items"]
    created = [e["entity_id"] for e in events if e["action"] == "claim.created"]
    assert sorted(created) == sorted(r["claim_id"] for r in body["items"])
    assert len([e for e in events if e["action"] == "source.created"]) == 2


def test_ingest_claims_ndjson_creates_each_line(client, auth):
    lines = [json.dumps({"text": t}) for t in (SOLDIERS, NO_FORCES, INFO_OP)]
    response = client.post("/v1/ingest", content="\n".join(lines) + "\n",
                           headers={**auth("ingester"), **NDJSON})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [r["status"] for r in body["items"]] == ["created"] * 3
    texts = {t: c["id"] for t, c in claims_by_text(client, auth("reader")).items()}
    assert [texts[t] for t in (SOLDIERS, NO_FORCES, INFO_OP)] == [
        r["claim_id"] for r in body["items"]]


def test_ingest_claims_exact_duplicate_adds_missing_attributions(client, auth):
    existing = make_claim(client, auth("ingester"), SOLDIERS, attributions=[
        {"source": "Government of Ukraine", "stance": "asserts"}])
    body = ingest(client, auth("ingester"), [
        # Same words in another case and punctuation: the same claim.
        {"text": "THOUSANDS of Russian soldiers have been stationed in Belarus, since October!",
         "attributions": [{"source": "BelTA", "stance": "reports"},
                          {"source": "government of ukraine", "stance": "asserts"}]},
        {"text": SOLDIERS.lower(),
         "attributions": [{"source": "Government of Ukraine", "stance": "asserts"}]},
    ])
    assert [r["status"] for r in body["items"]] == ["duplicate", "duplicate"]
    assert [r["claim_id"] for r in body["items"]] == [existing["id"]] * 2
    assert [r["attributions_added"] for r in body["items"]] == [1, 0]
    assert body["summary"]["duplicate"] == 2 and body["summary"]["created"] == 0
    claim = get_json(client, f"/v1/claims/{existing['id']}", auth("reader"))
    assert sorted((a["source"]["name"], a["stance"]) for a in claim["attributions"]) == [
        ("BelTA", "reports"), ("Government of Ukraine", "asserts")]
    assert claim["version"] == 2
    assert len(claims_by_text(client, auth("reader"))) == 1


def test_ingest_claims_duplicates_of_stored_claims_fold_together(client, auth):
    """Several items of one batch folding into stored claims: one version step and one
    event per claim, carrying every attribution added; the index knows the new sources."""
    ing = auth("ingester")
    soldiers = make_claim(client, ing, SOLDIERS, attributions=[
        {"source": "Government of Ukraine", "stance": "asserts"}])
    civilians = make_claim(client, ing, CIVILIANS)
    deaths = make_claim(client, ing, DEATHS, attributions=[
        {"source": "OHCHR", "stance": "asserts"}])
    body = ingest(client, ing, [
        {"text": DEATHS.upper(), "attributions": [{"source": "OHCHR", "stance": "asserts"}]},
        {"text": SOLDIERS.upper(), "attributions": [{"source": "BelTA", "stance": "reports"}]},
        {"text": CIVILIANS.lower(), "attributions": [{"source": "OHCHR", "stance": "asserts"}]},
        {"text": SOLDIERS, "attributions": [{"source": "Rochan Consulting",
                                             "stance": "disputes"},
                                            {"source": "BelTA", "stance": "reports"}]},
        {"text": SOLDIERS, "attributions": [{"source": "Rochan Consulting",
                                             "stance": "disputes"}]},
    ])
    assert [(r["status"], r["claim_id"], r["attributions_added"]) for r in body["items"]] == [
        ("duplicate", deaths["id"], 0),
        ("duplicate", soldiers["id"], 1), ("duplicate", civilians["id"], 1),
        ("duplicate", soldiers["id"], 1), ("duplicate", soldiers["id"], 0)]
    claim = get_json(client, f"/v1/claims/{soldiers['id']}", auth("reader"))
    assert sorted((a["source"]["name"], a["stance"]) for a in claim["attributions"]) == [
        ("BelTA", "reports"), ("Government of Ukraine", "asserts"),
        ("Rochan Consulting", "disputes")]
    assert claim["version"] == 2 and claim["contested"] is True
    events = get_json(client, f"/v1/claims/{soldiers['id']}/history", auth("reader"))["items"]
    assert [(e["action"], e["changes"].get("attributions_added")) for e in events] == [
        ("claim.created", None), ("attribution.created", 2)]
    assert get_json(client, f"/v1/claims/{soldiers['id']}", auth("reader"),
                    as_of=events[-1]["at"]) == claim  # the event carries the claim as it is
    assert get_json(client, f"/v1/claims/{civilians['id']}", auth("reader"))["version"] == 2
    # A duplicate that brings nothing new changes nothing: no version step, no event.
    assert get_json(client, f"/v1/claims/{deaths['id']}", auth("reader"))["version"] == 1
    assert [e["action"] for e in get_json(
        client, f"/v1/claims/{deaths['id']}/history", auth("reader"))["items"]] == [
        "claim.created"]
    found = get_json(client, "/v1/claims", auth("reader"), q="Rochan")["items"]
    assert [c["id"] for c in found] == [soldiers["id"]]


def test_ingest_claims_duplicate_within_batch_folds_into_first(client, auth):
    body = ingest(client, auth("ingester"), [
        {"text": ARRIVE, "attributions": [{"source": "Belarus Security Council",
                                           "stance": "asserts"}]},
        {"text": ARRIVE.upper(), "attributions": [{"source": "BelTA", "stance": "reports"},
                                                  {"source": "Belarus Security Council",
                                                   "stance": "asserts"}]},
    ])
    first, second = body["items"]
    assert (first["status"], second["status"]) == ("created", "duplicate")
    assert second["claim_id"] == first["claim_id"]
    assert second["attributions_added"] == 1
    claim = get_json(client, f"/v1/claims/{first['claim_id']}", auth("reader"))
    assert {a["source"]["name"] for a in claim["attributions"]} == {
        "Belarus Security Council", "BelTA"}
    assert len(claims_by_text(client, auth("reader"))) == 1


def test_ingest_claims_same_external_id_updates_claim(client, auth):
    first = ingest(client, auth("ingester"), [
        {"text": "At least 6,500 civilian deaths have been counted in the war.",
         "origin": "un-feed", "external_id": "deaths-1", "topics": ["casualties"],
         "attributions": [{"source": "United Nations", "stance": "asserts"}]}])
    claim_id = first["items"][0]["claim_id"]
    second = ingest(client, auth("ingester"), [
        {"text": DEATHS, "origin": "un-feed", "external_id": "deaths-1",
         "topics": ["casualties", "civilians"],
         "attributions": [{"source": "United Nations", "stance": "asserts"},
                          {"source": "OHCHR", "stance": "supports"}]}])
    result = second["items"][0]
    assert result["status"] == "updated"
    assert result["claim_id"] == claim_id
    assert result["attributions_added"] == 1
    assert second["summary"]["updated"] == 1
    claim = get_json(client, f"/v1/claims/{claim_id}", auth("reader"))
    assert claim["text"] == DEATHS
    assert claim["topics"] == ["casualties", "civilians"]
    assert claim["version"] > 1
    assert sorted(a["source"]["name"] for a in claim["attributions"]) == ["OHCHR",
                                                                         "United Nations"]
    assert list(claims_by_text(client, auth("reader"))) == [DEATHS]


def test_ingest_claims_reports_near_duplicates_in_similar(client, auth):
    existing = make_claim(client, auth("ingester"),
                          "Thousands of Russian troops have been in Belarus since October")
    body = ingest(client, auth("ingester"), [
        {"text": "thousands of Russian soldiers stationed in Belarus since October"},
        {"text": CIVILIANS},
    ])
    near, unrelated = body["items"]
    assert near["status"] == "created"  # near, not exact: a claim of its own
    assert [s["claim_id"] for s in near["similar"]] == [existing["id"]]
    assert 0.5 <= near["similar"][0]["score"] < 1
    assert unrelated["similar"] == []


def test_ingest_claims_reports_near_duplicates_within_batch(client, auth):
    body = ingest(client, auth("ingester"), [
        {"text": "Thousands of Russian troops have been in Belarus since October"},
        {"text": "thousands of Russian soldiers stationed in Belarus since October"},
    ])
    first, second = body["items"]
    assert (first["status"], second["status"]) == ("created", "created")
    assert [s["claim_id"] for s in second["similar"]] == [first["claim_id"]]
    assert second["similar"][0]["score"] >= 0.5


def test_ingest_claims_resolves_sources_by_id_name_alias_any_spelling(client, auth):
    isw = make_source(client, auth("ingester"), "Institute for the Study of War",
                      aliases=["ISW"], kind="think_tank")
    spellings = [{"source_id": isw["id"]}, {"source": "ISW"}, {"source": "isw"},
                 {"source": "I.S.W."}, {"source": "Institute for the Study of War"},
                 {"source": "institute for the study of war "},
                 {"source": "INSTITUTE  for the study of   WAR"},
                 {"source": "Ínstitute for the Stüdy of War"}]
    texts = distinct_texts(len(spellings))
    before = ledger_counts(client, auth("reader"))
    body = ingest(client, auth("ingester"), [
        {"text": text, "attributions": [{**ref, "stance": "asserts"}]}
        for text, ref in zip(texts, spellings, strict=True)])
    assert body["summary"]["created"] == len(spellings), body
    claims = claims_by_text(client, auth("reader"))
    assert [source_ids(claims[t]) for t in texts] == [[isw["id"]]] * len(spellings)
    after = ledger_counts(client, auth("reader"))
    assert after["sources"] == before["sources"] == 1


def test_ingest_claims_unknown_source_created_once(client, auth):
    texts = distinct_texts(4)
    body = ingest(client, auth("ingester"), [
        {"text": texts[0], "attributions": [{"source": "Minsk residents", "stance": "disputes"}]},
        {"text": texts[1], "attributions": [{"source": "MINSK  Residents", "stance": "asserts"}]},
        {"text": texts[2], "attributions": [{"source": "minsk residents.", "stance": "asserts"}]},
        {"text": texts[3], "attributions": [{"source": "Rochan Consulting",
                                             "stance": "asserts"}]},
    ])
    assert body["summary"]["created"] == 4
    minsk = get_json(client, "/v1/sources", auth("reader"), name="minsk residents")["items"]
    assert len(minsk) == 1
    claims = claims_by_text(client, auth("reader"))
    assert {tuple(source_ids(claims[t])) for t in texts[:3]} == {(minsk[0]["id"],)}
    assert len(get_json(client, "/v1/sources", auth("reader"))["items"]) == 2
    # A second batch naming it again finds it rather than creating another.
    ingest(client, auth("ingester"), [
        {"text": NOT_TARGET, "attributions": [{"source": "Minsk Residents", "stance": "denies"}]}])
    assert len(get_json(client, "/v1/sources", auth("reader"))["items"]) == 2
    events = get_json(client, "/v1/events", auth("reader"), limit=200,
                      action="source.created")["items"]
    assert len(events) == 2


def test_ingest_claims_ingester_role_needed(client, auth):
    response = client.post("/v1/ingest", json=[{"text": SOLDIERS}], headers=auth("reader"))
    assert_problem(response, 403)
    assert_problem(client.post("/v1/ingest", json=[{"text": SOLDIERS}]), 401)


# --- bad input: refused whole, or failing alone, never half-written -------------------


def test_ingest_claims_1001_items_is_422_and_1000_accepted(client, auth):
    before = ledger_state(client, auth("reader"))
    too_many = [{"text": t} for t in distinct_texts(1001)]
    assert_problem(client.post("/v1/ingest", json=too_many, headers=auth("ingester")), 422,
                   contains="1000")
    lines = "\n".join(json.dumps(item) for item in too_many)
    assert_problem(client.post("/v1/ingest", content=lines,
                               headers={**auth("ingester"), **NDJSON}), 422, contains="1000")
    assert ledger_state(client, auth("reader")) == before
    body = ingest(client, auth("ingester"), too_many[:1000])
    assert body["summary"]["received"] == 1000
    assert body["summary"]["created"] == 1000
    assert ledger_counts(client, auth("reader"))["claims"] == 1000


def test_ingest_claims_17_mb_body_is_413(client, auth):
    make_claim(client, auth("ingester"), SOLDIERS)
    before = ledger_state(client, auth("reader"))
    item = json.dumps({"text": "x" * 1990, "note": "y" * 16_000})
    body = ("[" + ",".join([item] * 1000) + "]").encode()
    assert len(body) > 17 * 1024 * 1024
    response = client.post("/v1/ingest", content=body,
                           headers={**auth("ingester"), "content-type": "application/json"})
    assert_problem(response, 413)
    assert ledger_state(client, auth("reader")) == before


def test_ingest_claims_body_past_max_ingest_body_bytes_is_413(settings, db, secrets):
    app = create_app(settings.model_copy(update={"max_ingest_body_bytes": 4000}), database=db)
    items = [{"text": t} for t in distinct_texts(60)]
    raw = json.dumps(items).encode()
    assert 4000 < len(raw) < settings.max_body_bytes
    headers = {**bearer(secrets["ingester"]), "content-type": "application/json"}
    with TestClient(app, raise_server_exceptions=False) as client:
        assert_problem(client.post("/v1/ingest", content=raw, headers=headers), 413)
        assert ledger_counts(client, bearer(secrets["reader"]))["claims"] == 0
        response = client.post("/v1/ingest", content=json.dumps(items[:5]), headers=headers)
        assert response.status_code == 200, response.text


def test_ingest_claims_past_max_batch_items_is_422_as_the_openapi_document_says(
        settings, db, secrets):
    app = create_app(settings.model_copy(update={"max_batch_items": 3}), database=db)
    items = [{"text": t} for t in distinct_texts(4)]
    with TestClient(app, raise_server_exceptions=False) as client:
        body = client.get("/openapi.json").json()["paths"]["/v1/ingest"]["post"]["requestBody"]
        assert body["content"]["application/json"]["schema"]["maxItems"] == 3
        assert_problem(client.post("/v1/ingest", json=items, headers=bearer(secrets["ingester"])),
                       422, contains="3")
        response = client.post("/v1/ingest", json=items[:3], headers=bearer(secrets["ingester"]))
        assert response.status_code == 200, response.text


def test_ingest_claims_1_mb_body_accepted(client, auth):
    # Bigger than any other route takes (1 MiB), well within the batch limit (16 MiB).
    items = [{"text": t, "attributions": [{"source": "UN", "stance": "asserts",
                                           "note": "n" * 4000}]}
             for t in distinct_texts(300)]
    raw = json.dumps(items).encode()
    assert len(raw) > 1024 * 1024
    response = client.post("/v1/ingest", content=raw,
                           headers={**auth("ingester"), "content-type": "application/json"})
    assert response.status_code == 200, response.text
    assert response.json()["summary"]["created"] == 300


def test_ingest_claims_ndjson_bad_line_fails_alone(client, auth):
    before = ledger_counts(client, auth("reader"))
    body = "\n".join([json.dumps({"text": SOLDIERS}), '{"text": "cut off in the mid',
                      json.dumps({"text": NO_FORCES}), "[1, 2", json.dumps({"text": INFO_OP})])
    response = client.post("/v1/ingest", content=body, headers={**auth("ingester"), **NDJSON})
    assert response.status_code == 200, response.text
    results = response.json()["items"]
    assert [r["status"] for r in results] == ["created", "error", "created", "error", "created"]
    for bad in (results[1], results[3]):
        assert bad["claim_id"] is None
        assert bad["error"]["status"] == 400 and "json" in bad["error"]["detail"].lower()
        assert bad["error"]["title"]
    assert response.json()["summary"] == {"received": 5, "created": 3, "duplicate": 0,
                                          "updated": 0, "unchanged": 0, "error": 2}
    assert set(claims_by_text(client, auth("reader"))) == {SOLDIERS, NO_FORCES, INFO_OP}
    assert ledger_counts(client, auth("reader")) == {
        "claims": 3, "sources": 0, "events": before["events"] + 3}


def test_ingest_claims_invalid_items_fail_alone(client, auth):
    long_name = "S" * 5000
    before = ledger_counts(client, auth("reader"))
    body = ingest(client, auth("ingester"), [
        {"text": SOLDIERS, "attributions": [{"source": "Government of Ukraine",
                                             "stance": "asserts"}]},
        {"attributions": [{"source": "Forgotten text source", "stance": "asserts"}]},
        {"text": NO_FORCES, "attributions": [{"source": long_name, "stance": "asserts"}]},
        "not an object",
        {"text": INFO_OP, "status": "true"},
        {"text": ARRIVE, "attributions": [{"source": "BelTA", "stance": "shouts"}]},
        {"text": GETTING_READY},
    ])
    statuses = [r["status"] for r in body["items"]]
    assert statuses == ["created", "error", "error", "error", "error", "error", "created"]
    missing_text = body["items"][1]["error"]
    assert missing_text["status"] == 422 and "text" in missing_text["detail"]
    assert any(e["loc"] == ["text"] for e in missing_text["errors"])
    too_long = body["items"][2]["error"]
    assert too_long["status"] == 422 and "source" in too_long["detail"]
    assert "status" in body["items"][4]["error"]["detail"]  # unknown fields are refused
    # Only the good items left a trace: no source of a failed item was created.
    names = {s["name"] for s in get_json(client, "/v1/sources", auth("reader"))["items"]}
    assert names == {"Government of Ukraine"}
    assert set(claims_by_text(client, auth("reader"))) == {SOLDIERS, GETTING_READY}
    # Two claim.created and one source.created event.
    assert ledger_counts(client, auth("reader")) == {
        "claims": 2, "sources": 1, "events": before["events"] + 3}


def test_ingest_claims_unknown_source_id_fails_item_without_creating_its_sources(client, auth):
    before = ledger_counts(client, auth("reader"))
    body = ingest(client, auth("ingester"), [
        {"text": NO_FORCES, "attributions": [
            {"source": "A source only the failed item names", "stance": "asserts"},
            {"source_id": "src_doesnotexist", "stance": "asserts"}]},
        {"text": SOLDIERS, "attributions": [{"source": "Government of Ukraine",
                                             "stance": "asserts"}]},
    ])
    assert [r["status"] for r in body["items"]] == ["error", "created"]
    assert "src_doesnotexist" in body["items"][0]["error"]["detail"]
    names = {s["name"] for s in get_json(client, "/v1/sources", auth("reader"))["items"]}
    assert names == {"Government of Ukraine"}
    assert ledger_counts(client, auth("reader")) == {
        "claims": 1, "sources": 1, "events": before["events"] + 2}


def test_ingest_claims_every_item_failing_is_422_and_writes_nothing(client, auth):
    make_claim(client, auth("ingester"), SOLDIERS)
    before = ledger_state(client, auth("reader"))
    response = client.post("/v1/ingest", headers=auth("ingester"), json=[
        {"attributions": [{"source": "New source one", "stance": "asserts"}]},
        {"text": NO_FORCES, "attributions": [{"source_id": "src_nope", "stance": "asserts"},
                                             {"source": "New source two",
                                              "stance": "asserts"}]},
        {"text": "", "topics": ["Not A Slug"]},
    ])
    problem = assert_problem(response, 422, contains="every item failed")
    assert [r["status"] for r in problem["results"]] == ["error"] * 3
    ndjson = client.post("/v1/ingest", content="{oops\nnot json either\n",
                         headers={**auth("ingester"), **NDJSON})
    assert_problem(ndjson, 422)
    assert ledger_state(client, auth("reader")) == before


def test_ingest_claims_malformed_or_empty_batch_refused(client, auth):
    before = ledger_state(client, auth("reader"))
    json_headers = {**auth("ingester"), "content-type": "application/json"}
    assert_problem(client.post("/v1/ingest", content=b'[{"text": "a"', headers=json_headers),
                   400, contains="json")
    assert_problem(client.post("/v1/ingest", content=b"\xff\xfe[]", headers=json_headers), 400)
    assert_problem(client.post("/v1/ingest", json=[], headers=auth("ingester")), 422,
                   contains="empty")
    assert_problem(client.post("/v1/ingest", json={"text": SOLDIERS},
                               headers=auth("ingester")), 422)
    assert_problem(client.post("/v1/ingest", content="\n\n",
                               headers={**auth("ingester"), **NDJSON}), 422)
    assert ledger_state(client, auth("reader")) == before


def test_ingest_claims_repeated_external_id_in_batch_second_is_error(client, auth):
    before = ledger_counts(client, auth("reader"))
    body = ingest(client, auth("ingester"), [
        {"text": SOLDIERS, "origin": "feed", "external_id": "7"},
        {"text": NO_FORCES, "origin": "feed", "external_id": "7"},
        {"text": INFO_OP, "origin": "other-feed", "external_id": "7"},
    ])
    assert [r["status"] for r in body["items"]] == ["created", "error", "created"]
    assert "repeated" in body["items"][1]["error"]["detail"]
    assert set(claims_by_text(client, auth("reader"))) == {SOLDIERS, INFO_OP}
    # two claims, and each origin's first use (it now belongs to the ingesting key)
    assert ledger_counts(client, auth("reader"))["events"] == before["events"] + 4


def test_ingest_claims_alias_colliding_with_a_name_resolves_to_that_source(client, auth):
    isw = make_source(client, auth("ingester"), "Institute for the Study of War",
                      aliases=["ISW"])
    before = ledger_state(client, auth("reader"))
    clash = client.post("/v1/sources", headers=auth("ingester"), json={
        "name": "Critical Threats Project", "aliases": ["institute for the study of WAR"]})
    assert_problem(clash, 409, contains="already")
    assert clash.json()["source_id"] == isw["id"]
    clash_alias = client.post("/v1/sources", headers=auth("ingester"),
                              json={"name": "Rochan Consulting", "aliases": ["I.S.W."]})
    assert_problem(clash_alias, 409)
    assert ledger_state(client, auth("reader")) == before
    body = ingest(client, auth("ingester"), [
        {"text": INFO_OP, "attributions": [{"source": "institute for the study of WAR",
                                            "stance": "asserts"}]}])
    claim = get_json(client, f"/v1/claims/{body['items'][0]['claim_id']}", auth("reader"))
    assert source_ids(claim) == [isw["id"]]
    assert len(get_json(client, "/v1/sources", auth("reader"))["items"]) == 1


def test_ingest_claims_known_external_id_of_merged_claim_goes_to_survivor(client, auth):
    first = ingest(client, auth("ingester"), [
        {"text": "Thousands of Russian troops are in Belarus.", "origin": "feed",
         "external_id": "troops-1"}])
    merged_id = first["items"][0]["claim_id"]
    survivor = make_claim(client, auth("ingester"), SOLDIERS)
    response = client.post(f"/v1/claims/{survivor['id']}/merge",
                           headers={**auth("checker"), "If-Match": "*"},
                           json={"duplicate_id": merged_id})
    assert response.status_code == 200, response.text
    again = ingest(client, auth("ingester"), [
        {"text": "Thousands of Russian troops are in Belarus.", "origin": "feed",
         "external_id": "troops-1",
         "attributions": [{"source": "Government of Ukraine", "stance": "asserts"}]}])
    result = again["items"][0]
    assert result["claim_id"] == survivor["id"]
    assert result["attributions_added"] == 1
    claim = get_json(client, f"/v1/claims/{survivor['id']}", auth("reader"))
    assert [a["source"]["name"] for a in claim["attributions"]] == ["Government of Ukraine"]
    merged = get_json(client, f"/v1/claims/{merged_id}", auth("reader"))
    assert merged["attributions"] == [] and merged["duplicate_of"] == survivor["id"]
