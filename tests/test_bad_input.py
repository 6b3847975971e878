"""Bad input: each gets a specific 4xx problem+json, never a 500, and changes nothing."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.domain.pagination import encode_cursor
from tests.factories import (
    assert_problem,
    claim_body,
    ledger_state,
    make_claim,
    make_link,
    make_source,
    review,
    with_version,
)

JSON = {"content-type": "application/json"}


@pytest.fixture
def unchanged(client, auth, ledger):
    """Call it after the bad requests: the ledger must be exactly as it was before them."""
    before = ledger_state(client, auth("reader"))

    def check() -> None:
        assert ledger_state(client, auth("reader")) == before

    return check


def post_raw(client, url: str, content: bytes, headers: dict[str, str]):
    return client.post(url, content=content, headers={**headers, **JSON})


# --- bodies that are not what the endpoint takes ----------------------------------------


def test_create_claim_malformed_json_is_400(client, auth, unchanged):
    for raw in (b'{"text": ', b"{text: 'x'}", b'{"text": "a",}', b"\xff\xfe{}", b"{}}"):
        body = assert_problem(post_raw(client, "/v1/claims", raw, auth("ingester")), 400)
        assert "json" in body["detail"].lower()
    assert_problem(post_raw(client, "/v1/claims", b"", auth("ingester")), 422)
    unchanged()


def test_create_claim_json_not_an_object_is_422(client, auth, unchanged):
    for raw in (b"[]", b'["text"]', b'"A claim."', b"42", b"null", b"true"):
        assert_problem(post_raw(client, "/v1/claims", raw, auth("ingester")), 422)
    unchanged()


WRONG_TYPES = [
    {"text": 5},
    {"text": ["a claim"]},
    {"text": "A claim.", "topics": "belarus"},
    {"text": "A claim.", "topics": [1, 2]},
    {"text": "A claim.", "places": "Minsk"},
    {"text": "A claim.", "period_start_date": "yesterday"},
    {"text": "A claim.", "first_stated_at": "2022-12-07T10:00:00"},
    {"text": "A claim.", "attributions": {"source": "ISW"}},
    {"text": "A claim.", "attributions": [{"source": "ISW"}]},
    {"text": "A claim.", "attributions": [{"stance": "asserts"}]},
    {"text": "A claim.", "attributions": [{"source": "ISW", "source_id": "src_x",
                                           "stance": "asserts"}]},
    {"text": "A claim.", "origin": "feed"},
    {"text": "A claim.", "topics": ["Not A Slug"]},
]


def test_create_claim_wrong_types_is_422(client, auth, unchanged):
    for body in WRONG_TYPES:
        response = client.post("/v1/claims", json=body, headers=auth("ingester"))
        assert response.status_code == 422, (body, response.text)
        assert assert_problem(response, 422)["errors"]
    unchanged()


SMUGGLED = [
    ("/v1/claims", claim_body(id="clm_mine"), "ingester"),
    ("/v1/claims", claim_body(status="true"), "ingester"),
    ("/v1/claims", claim_body(duplicate_of="clm_x"), "ingester"),
    ("/v1/claims", claim_body(attributions=[{"source": "ISW", "stance": "asserts",
                                              "id": "att_x"}]), "ingester"),
    ("/v1/sources", {"name": "Somebody", "version": 3}, "ingester"),
    ("/v1/sources", {"name": "Somebody", "id": "src_mine"}, "ingester"),
    ("/v1/keys", {"name": "bot", "role": "reader", "secret": "clk_mine"}, "admin"),
]


def test_create_resource_unknown_field_is_422(client, auth, unchanged):
    for url, body, role in SMUGGLED:
        problem = assert_problem(client.post(url, json=body, headers=auth(role)), 422)
        assert any(e["type"] == "extra_forbidden" for e in problem["errors"]), (body, problem)
    unchanged()


def test_write_claim_parts_unknown_field_is_422(client, auth, ledger, unchanged):
    claim = ledger["first"]["id"]
    for url, body in (
        (f"/v1/claims/{claim}/attributions", {"source": "ISW", "stance": "asserts",
                                              "claim_id": ledger["second"]["id"]}),
        (f"/v1/claims/{claim}/reviews", {"status": "in_review", "reviewer": "someone else"}),
        (f"/v1/claims/{claim}/links", {"target_id": ledger["second"]["id"], "kind": "related",
                                       "created_by": "x"}),
        (f"/v1/claims/{claim}/merge", {"duplicate_id": ledger["second"]["id"], "force": True}),
    ):
        problem = assert_problem(client.post(url, json=body,
                                             headers=with_version(auth("checker"), "*")), 422)
        assert any(e["type"] == "extra_forbidden" for e in problem["errors"]), problem
    for url in (f"/v1/claims/{claim}", f"/v1/sources/{ledger['isw']['id']}"):
        response = client.patch(url, json={"version": 7}, headers=with_version(auth("checker"), 1))
        assert_problem(response, 422)
    unchanged()


# --- text the ledger will not store ---------------------------------------------------


def test_create_claim_bad_text_is_422(client, auth, unchanged):
    for text in ("", " ", "   \t\n  ", "\u00a0\u2003", "a" * 2001, "x" * 100 * 1024,
                 "Troops arrive\x00 tomorrow.", "bell\x07", "\x1b[31mred"):
        response = client.post("/v1/claims", json=claim_body(text), headers=auth("ingester"))
        assert response.status_code == 422, (text[:20], response.text[:300])
        assert_problem(response, 422)
    unchanged()


def test_create_claim_lone_surrogate_is_refused(client, auth, unchanged):
    escaped = b'{"text": "Troops \\ud800 arrive."}'
    assert_problem(post_raw(client, "/v1/claims", escaped, auth("ingester")), 422)
    low = b'{"text": "\\udc00"}'
    assert_problem(post_raw(client, "/v1/claims", low, auth("ingester")), 422)
    # The same surrogate encoded straight into the bytes (not valid UTF-8, but JSON decoders
    # pass it through) is refused the same way.
    encoded = '{"text": "Troops \ud800 arrive."}'.encode("utf-8", "surrogatepass")
    assert_problem(post_raw(client, "/v1/claims", encoded, auth("ingester")), 422)
    source = b'{"name": "Somebody", "aliases": ["\\ud800"]}'
    assert_problem(post_raw(client, "/v1/sources", source, auth("ingester")), 422)
    unchanged()


def test_create_source_bad_text_is_422(client, auth, unchanged):
    for body in ({"name": ""}, {"name": "   "}, {"name": "A\x00B"},
                 {"name": "n" * 201}, {"name": "Somebody", "aliases": [""]},
                 {"name": "Somebody", "homepage": "not a url"},
                 {"name": "Somebody", "homepage": "javascript:alert(1)"},
                 {"name": "Somebody", "description": "d" * 5001}):
        assert_problem(client.post("/v1/sources", json=body, headers=auth("ingester")), 422)
    unchanged()


def test_update_required_field_to_null_is_422(client, auth, ledger, unchanged):
    claim, source = ledger["first"], ledger["isw"]
    for field in ("text", "language"):
        response = client.patch(f"/v1/claims/{claim['id']}", json={field: None},
                                headers=with_version(auth("checker"), claim["version"]))
        assert_problem(response, 422, contains=field)
    for field in ("name", "kind", "reliability"):
        response = client.patch(f"/v1/sources/{source['id']}", json={field: None},
                                headers=with_version(auth("checker"), source["version"]))
        assert_problem(response, 422, contains=field)
    unchanged()


def test_write_time_without_utc_equivalent_is_422(client, auth, ledger, unchanged):
    # Valid RFC 3339 times that fall outside the representable range once moved to UTC.
    for moment in ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"):
        for body in (claim_body(first_stated_at=moment),
                     claim_body(attributions=[{"source": "ISW", "stance": "asserts",
                                               "stated_at": moment}])):
            response = client.post("/v1/claims", json=body, headers=auth("ingester"))
            assert response.status_code == 422, (body, response.text)
            assert_problem(response, 422)
        for name in ("created_after", "created_before", "updated_after", "updated_before"):
            assert_problem(client.get("/v1/claims", params={name: moment},
                                      headers=auth("reader")), 422)
        assert_problem(client.get(f"/v1/claims/{ledger['first']['id']}",
                                  params={"as_of": moment}, headers=auth("reader")), 422)
    unchanged()


def test_request_unknown_route_or_method_is_problem(client, auth, unchanged):
    assert_problem(client.get("/v1/nothing-here", headers=auth("admin")), 404)
    for method, url in (("PUT", "/v1/claims"), ("DELETE", "/v1/sources"),
                        ("PATCH", "/v1/events")):
        assert_problem(client.request(method, url, json={}, headers=auth("admin")), 405)
    for content_type, raw in (("text/plain", b'{"text": "A claim."}'),
                              ("application/x-www-form-urlencoded", b"text=A+claim.")):
        response = client.post("/v1/claims", content=raw,
                               headers={**auth("ingester"), "content-type": content_type})
        assert_problem(response, 415, contains="application/json")
    unchanged()


# --- ids -----------------------------------------------------------------------------


ABSURD_IDS = ["clm_00000000000000000000", "x" * 10_000, "..%2F..%2Fetc%2Fpasswd", "%2E%2E",
              "клейм-✓", "%F0%9F%92%A3", "1 OR 1=1", "'; DROP TABLE claim; --"]


def test_get_claim_missing_or_absurd_id_is_404(client, auth, unchanged):
    for claim_id in ABSURD_IDS:
        for url in (f"/v1/claims/{claim_id}", f"/v1/claims/{claim_id}/history",
                    f"/v1/claims/{claim_id}/reviews"):
            assert_problem(client.get(url, headers=auth("reader")), 404)
        # If-Match: * (any current version): a claim that does not exist has none
        assert_problem(client.delete(f"/v1/claims/{claim_id}",
                                     headers=with_version(auth("admin"), "*")), 404)
        assert_problem(client.post(f"/v1/claims/{claim_id}/reviews",
                                   headers=with_version(auth("checker"), "*"),
                                   json={"status": "in_review"}), 404)
    unchanged()


def test_request_with_nul_byte_in_path_or_query_is_refused(client, auth, ledger, unchanged):
    # SQLite can hold a NUL and simply finds nothing; PostgreSQL refuses the value (400).
    # Either way: no 500, and nothing changes.
    for url in ("/v1/claims/clm%00x", "/v1/claims/%00/history", "/v1/sources/%00",
                f"/v1/sources/{ledger['isw']['id']}%00/record"):
        response = client.get(url, headers=auth("reader"))
        assert response.status_code in (400, 404), (url, response.text)
        assert_problem(response, response.status_code)
    for method, url in (("DELETE", "/v1/claims/%00"), ("POST", "/v1/claims/%00/reviews")):
        response = client.request(method, url, json={"status": "in_review"},
                                  headers=with_version(auth("admin"), "*"))
        assert response.status_code in (400, 404), (url, response.text)
    for url, params in (("/v1/claims", {"topic": "war\x00"}), ("/v1/claims", {"origin": "\x00"}),
                        ("/v1/claims", {"source_id": "src\x00"}),
                        ("/v1/sources", {"name": "\x00"}), ("/v1/sources", {"prefix": "Q\x00"}),
                        ("/v1/events", {"action": "claim.created\x00"}),
                        ("/v1/events", {"claim_id": "\x00"})):
        response = client.get(url, params=params, headers=auth("reader"))
        assert response.status_code in (200, 400), (url, params, response.text)
        if response.status_code == 200:
            assert response.json()["items"] == [], (url, params)
        else:
            assert_problem(response, 400)
    unchanged()


def test_get_other_missing_ids_is_404(client, auth, ledger, unchanged):
    claim = ledger["first"]["id"]
    for url in ("/v1/sources/src_00000000000000000000", "/v1/sources/" + "s" * 10_000,
                "/v1/sources/источник", "/v1/sources/src_00000000000000000000/claims",
                "/v1/sources/src_00000000000000000000/record"):
        assert_problem(client.get(url, headers=auth("reader")), 404)
    assert_problem(client.delete(f"/v1/claims/{claim}/attributions/att_missing",
                                 headers=with_version(auth("checker"), "*")), 404)
    other_attribution = ledger["first"]["attributions"][0]["id"]
    assert_problem(client.delete(f"/v1/claims/{ledger['second']['id']}/attributions/"
                                 f"{other_attribution}",
                                 headers=with_version(auth("checker"), "*")), 404)
    assert_problem(client.delete("/v1/keys/key_missing", headers=auth("admin")), 404)
    assert_problem(client.patch("/v1/sources/src_missing", json={"name": "X"},
                                headers=with_version(auth("checker"), 1)), 404)
    assert_problem(client.patch("/v1/claims/clm_missing", json={"text": "X"},
                                headers=with_version(auth("checker"), 1)), 404)
    unchanged()


def test_create_attribution_unknown_source_id_is_422(client, auth, ledger, unchanged):
    for url, body in (
        (f"/v1/claims/{ledger['first']['id']}/attributions",
         {"source_id": "src_missing", "stance": "asserts"}),
        ("/v1/claims", claim_body(attributions=[{"source_id": "src_missing",
                                                 "stance": "asserts"}])),
        ("/v1/sources", {"name": "Konrad Muzyka", "affiliation_id": "src_missing"}),
    ):
        assert_problem(client.post(url, json=body, headers=auth("ingester")), 422,
                       contains="src_missing")
    unchanged()


# --- numbers -------------------------------------------------------------------------


def test_list_claims_huge_limit_is_422(client, auth, unchanged):
    for limit in (2**70, -(2**70), "9" * 5000, "1e3", "ten", ""):
        assert_problem(client.get("/v1/claims", params={"limit": limit},
                                  headers=auth("reader")), 422)
    unchanged()


def test_create_attribution_huge_credibility_is_422(client, auth, ledger, unchanged):
    url = f"/v1/claims/{ledger['first']['id']}/attributions"
    for credibility in (2**80, -(2**80), 7, 0, "7", 1.5):
        response = client.post(url, json={"source": "ISW", "stance": "asserts",
                                           "credibility": credibility}, headers=auth("ingester"))
        assert_problem(response, 422)
    unchanged()


def test_create_claim_5000_digit_number_is_400(client, auth, unchanged):
    digits = "9" * 5000
    # Integers this long are refused by the JSON parser itself (CPython's digit limit).
    for raw in (f'{{"text": {digits}}}', f'{{"text": "A claim.", "topics": [{digits}]}}',
                f'{{"text": "A claim.", "period_start_date": {digits}}}'):
        assert_problem(post_raw(client, "/v1/claims", raw.encode(), auth("ingester")), 400)
    # Huge floats parse (to infinity) and then fail validation.
    for raw in (f'{{"text": "A claim.", "places": [1e{digits}]}}',
                '{"text": "A claim.", "period_start_date": 1e400}',
                '{"text": 1e400}'):
        assert_problem(post_raw(client, "/v1/claims", raw.encode(), auth("ingester")), 422)
    unchanged()


def test_events_huge_numeric_cursor_is_400(client, auth, unchanged):
    for position in (2**70, -1, 1.5, True, "12", None):
        cursor = encode_cursor(position)
        assert_problem(client.get("/v1/events", params={"cursor": cursor},
                                  headers=auth("reader")), 400)
    unchanged()


def test_update_claim_huge_if_match_is_412(client, auth, ledger, unchanged):
    # Entity tags, so 412 (RFC 9110 §13.1.1), and no version so large reaches the database.
    url = f"/v1/claims/{ledger['first']['id']}"
    for value in (f'"{2**70}"', '"9' + "9" * 90 + '"'):
        assert_problem(client.patch(url, json={"text": "New."},
                                    headers=with_version(auth("checker"), value)), 412)
    unchanged()


# --- enums, languages, countries, periods ---------------------------------------------


def test_write_invalid_enum_values_is_422(client, auth, ledger, unchanged):
    claim, other = ledger["first"]["id"], ledger["second"]["id"]
    cases = [
        ("/v1/claims", claim_body(attributions=[{"source": "ISW", "stance": "believes"}]),
         "ingester"),
        (f"/v1/claims/{claim}/attributions", {"source": "ISW", "stance": "ASSERTS"},
         "ingester"),
        (f"/v1/claims/{claim}/attributions", {"source": "ISW", "stance": "asserts",
                                              "credibility": "A"}, "ingester"),
        ("/v1/sources", {"name": "Somebody", "kind": "alien"}, "ingester"),
        ("/v1/sources", {"name": "Somebody", "reliability": "G"}, "ingester"),
        ("/v1/sources", {"name": "Somebody", "reliability": "a"}, "ingester"),
        (f"/v1/claims/{claim}/reviews", {"status": "verified", "rationale": "r"}, "checker"),
        (f"/v1/claims/{claim}/reviews", {"status": "TRUE", "rationale": "r"}, "checker"),
        (f"/v1/claims/{claim}/links", {"target_id": other, "kind": "refutes"}, "checker"),
        ("/v1/keys", {"name": "bot", "role": "superuser"}, "admin"),
    ]
    for url, body, role in cases:
        assert_problem(client.post(url, json=body, headers=with_version(auth(role), "*")), 422)
    for params in ({"status": "bogus"}, {"stance": "believes"}, {"sort": "text"},
                   {"sort": "-id"}, {"contested": "maybe"}, {"include_merged": "perhaps"},
                   {"created_after": "last week"}):
        assert_problem(client.get("/v1/claims", params=params, headers=auth("reader")), 422)
    assert_problem(client.get("/v1/sources", params={"kind": "alien"},
                              headers=auth("reader")), 422)
    unchanged()


def test_write_url_with_any_space_or_control_character_is_422(client, auth, unchanged):
    """Every whitespace Python or JSON Schema's regex knows, and control characters, are
    refused anywhere in a URL (the schema says so too: clients see the same rule)."""
    for bad in ("http://a b", "http://a\u0085b", "http://a\u00a0b", "http://a\ufeffb",
                "http://a\u2028b", "http://a\u001fb", "http://a\u0007b", "https://\u00911"):
        body = {"name": "Somebody", "homepage": bad}
        assert_problem(client.post("/v1/sources", json=body, headers=auth("ingester")), 422)
    unchanged()
    fine = client.post("/v1/sources", headers=auth("ingester"), json={
        "name": "Somebody", "homepage": "https://пример.укр/путь?q=ё#раздел"})
    assert fine.status_code == 201, fine.text


def test_create_claim_invalid_language_is_422(client, auth, ledger, unchanged):
    claim = ledger["first"]
    for language in ("english!", "e", "en_US", "english-language-tag-1", "12", "en-", " en"):
        response = client.post("/v1/claims", json=claim_body(language=language),
                               headers=auth("ingester"))
        assert response.status_code == 422, (language, response.text)
        assert_problem(response, 422)
        assert_problem(client.patch(f"/v1/claims/{claim['id']}", json={"language": language},
                                    headers=with_version(auth("checker"), claim["version"])), 422)
    unchanged()


def test_create_source_invalid_country_is_422(client, auth, ledger, unchanged):
    isw = ledger["isw"]
    for country in ("XX1", "us", "USA", "U", "", "1A", 42):
        response = client.post("/v1/sources", json={"name": "Somebody", "country": country},
                               headers=auth("ingester"))
        assert response.status_code == 422, (country, response.text)
        assert_problem(response, 422)
        assert_problem(client.patch(f"/v1/sources/{isw['id']}", json={"country": country},
                                    headers=with_version(auth("checker"), isw["version"])), 422)
        if isinstance(country, str):
            assert_problem(client.get("/v1/sources", params={"country": country},
                                      headers=auth("reader")), 422)
    unchanged()


def test_write_claim_period_end_before_start_is_422(client, auth, ledger, unchanged):
    body = claim_body(period_start_date="2022-12-07", period_end_date="2022-10-01")
    assert_problem(client.post("/v1/claims", json=body, headers=auth("ingester")), 422,
                   contains="period_end_date")
    claim = ledger["first"]
    url = f"/v1/claims/{claim['id']}"
    response = client.patch(url, json={"period_start_date": "2022-12-07",
                                       "period_end_date": "2022-10-01"},
                            headers=with_version(auth("checker"), claim["version"]))
    assert_problem(response, 422, contains="period_end_date")
    unchanged()


def test_update_claim_period_end_before_existing_start_is_422(client, auth):
    claim = make_claim(client, auth("ingester"), period_start_date="2022-10-01",
                       period_end_date="2022-12-07")
    before = client.get(f"/v1/claims/{claim['id']}", headers=auth("reader")).json()
    response = client.patch(f"/v1/claims/{claim['id']}", json={"period_end_date": "2022-09-01"},
                            headers=with_version(auth("checker"), 1))
    assert_problem(response, 422, contains="period_end_date")
    assert client.get(f"/v1/claims/{claim['id']}", headers=auth("reader")).json() == before


# --- uniqueness and structure of sources ---------------------------------------------


def test_create_source_duplicate_name_is_409(client, auth, ledger, unchanged):
    for name in ("institute for the study of war", "INSTITUTE FOR THE STUDY OF WAR",
                 "  Institute   for the Study of War ", "Institute for the Study of War.",
                 "Institute-for-the-Study-of-War", "Institute for the Stúdy of War", "isw",
                 "I.S.W."):
        response = client.post("/v1/sources", json={"name": name}, headers=auth("ingester"))
        assert response.status_code == 409, (name, response.text)
        assert assert_problem(response, 409).get("source_id") == ledger["isw"]["id"]
    unchanged()


def test_write_source_alias_colliding_with_other_name_is_409(client, auth, ledger, unchanged):
    response = client.post("/v1/sources", json={"name": "Somebody Else",
                                                "aliases": ["institute for the study of WAR"]},
                           headers=auth("ingester"))
    assert_problem(response, 409)
    rochan = ledger["rochan"]
    for body in ({"aliases": ["ISW"]}, {"aliases": ["Rochan", "Institute for the Study of War"]},
                 {"name": "I.S.W."}):
        response = client.patch(f"/v1/sources/{rochan['id']}", json=body,
                                headers=with_version(auth("checker"), rochan["version"]))
        assert_problem(response, 409)
    unchanged()


def test_update_source_affiliation_cycle_is_422(client, auth, unchanged):
    a = make_source(client, auth("ingester"), "Rochan Consulting Group")
    b = make_source(client, auth("ingester"), "Konrad Muzyka", affiliation_id=a["id"])
    c = make_source(client, auth("ingester"), "Rochan junior analyst", affiliation_id=b["id"])
    unchanged_now = ledger_state(client, auth("reader"))
    for target in (b["id"], c["id"], a["id"]):
        response = client.patch(f"/v1/sources/{a['id']}", json={"affiliation_id": target},
                                headers=with_version(auth("checker"), a["version"]))
        assert_problem(response, 422, contains="cycle")
    response = client.patch(f"/v1/sources/{a['id']}", json={"affiliation_id": "src_missing"},
                            headers=with_version(auth("checker"), a["version"]))
    assert_problem(response, 422)
    assert ledger_state(client, auth("reader")) == unchanged_now


# --- claims that cannot relate -------------------------------------------------------


def test_merge_claim_into_itself_is_422(client, auth, ledger, unchanged):
    claim = ledger["first"]["id"]
    assert_problem(client.post(f"/v1/claims/{claim}/merge", json={"duplicate_id": claim},
                               headers=with_version(auth("checker"), "*")), 422, contains="itself")
    assert_problem(client.post(f"/v1/claims/{claim}/merge", json={"duplicate_id": "clm_nope"},
                               headers=with_version(auth("checker"), "*")), 422)
    unchanged()


def test_create_link_to_itself_or_missing_target_is_422(client, auth, ledger, unchanged):
    claim = ledger["first"]["id"]
    assert_problem(client.post(f"/v1/claims/{claim}/links",
                               json={"target_id": claim, "kind": "supports"},
                               headers=with_version(auth("checker"), "*")), 422, contains="itself")
    for target in ("clm_00000000000000000000", "x" * 100, "../etc"):
        assert_problem(client.post(f"/v1/claims/{claim}/links",
                                   json={"target_id": target, "kind": "supports"},
                                   headers=with_version(auth("checker"), "*")), 422)
    assert_problem(client.post(f"/v1/claims/{claim}/links",
                               json={"target_id": "x" * 101, "kind": "supports"},
                               headers=with_version(auth("checker"), "*")), 422)
    unchanged()


def test_create_link_duplicate_is_409(client, auth, ledger):
    first, second = ledger["first"]["id"], ledger["second"]["id"]
    make_link(client, auth("checker"), first, second, "contradicts")
    before = ledger_state(client, auth("reader"))
    assert_problem(client.post(f"/v1/claims/{first}/links",
                               json={"target_id": second, "kind": "contradicts"},
                               headers=with_version(auth("checker"), "*")), 409)
    assert ledger_state(client, auth("reader")) == before


# --- If-Match ------------------------------------------------------------------------


def test_update_claim_stale_if_match_is_412(client, auth, ledger, unchanged):
    claim = ledger["first"]
    url = f"/v1/claims/{claim['id']}"
    for version in (0, claim["version"] + 1, 999):
        assert_problem(client.patch(url, json={"text": "Edited."},
                                    headers=with_version(auth("checker"), version)), 412)
    assert_problem(client.post(f"{url}/reviews", json={"status": "in_review"},
                               headers=with_version(auth("checker"), 99)), 412)
    assert_problem(client.delete(url, headers=with_version(auth("admin"), 99)), 412)
    source = ledger["isw"]
    assert_problem(client.patch(f"/v1/sources/{source['id']}", json={"name": "ISW Inc"},
                                headers=with_version(auth("checker"), 2)), 412)
    unchanged()


def test_update_without_if_match_is_428(client, auth, ledger, unchanged):
    assert_problem(client.patch(f"/v1/claims/{ledger['first']['id']}", json={"text": "Edited."},
                                headers=auth("checker")), 428, contains="If-Match")
    assert_problem(client.patch(f"/v1/sources/{ledger['isw']['id']}", json={"name": "ISW Inc"},
                                headers=auth("checker")), 428, contains="If-Match")
    unchanged()


def test_update_claim_malformed_if_match_is_400(client, auth, ledger, unchanged):
    # '"abc"', '""', '"1", "2"' are entity tags (a list): 412 or 200, tests/test_http.py.
    for value in ("1", "abc", "W/1", '"1', '"1" "2"', '*, "1"'):
        for url in (f"/v1/claims/{ledger['first']['id']}", f"/v1/sources/{ledger['isw']['id']}"):
            response = client.patch(url, json={"description": "x"} if "sources" in url
                                    else {"text": "Edited."},
                                    headers=with_version(auth("checker"), value))
            assert response.status_code == 400, (value, response.text)
            assert_problem(response, 400, contains="If-Match")
    unchanged()


# --- sizes ---------------------------------------------------------------------------


def test_create_claim_body_over_1_mib_is_413(client, auth, unchanged):
    big = json.dumps(claim_body("x" * (1024 * 1024 + 10))).encode()
    assert_problem(post_raw(client, "/v1/claims", big, auth("ingester")), 413)
    padded = json.dumps(claim_body("A claim.", places=["p" * 200] * 6000)).encode()
    assert len(padded) > 1024 * 1024
    assert_problem(post_raw(client, "/v1/sources", padded, auth("ingester")), 413)
    unchanged()


def test_create_claim_too_many_items_is_422(client, auth, unchanged):
    for body in (claim_body(topics=[f"t{i}" for i in range(21)]),
                 claim_body(places=[f"p{i}" for i in range(21)]),
                 claim_body(attributions=[{"source": f"S{i}", "stance": "asserts"}
                                          for i in range(101)])):
        assert_problem(client.post("/v1/claims", json=body, headers=auth("ingester")), 422)
    unchanged()


# --- reviews -------------------------------------------------------------------------


def test_create_review_verdict_without_rationale_is_422(client, auth, ledger, unchanged):
    for status in ("true", "false", "mixed", "misleading", "unverifiable"):
        for rationale in (None, "", "   "):
            body = {"status": status} | ({} if rationale is None else {"rationale": rationale})
            assert_problem(client.post(f"/v1/claims/{ledger['first']['id']}/reviews", json=body,
                                       headers=with_version(auth("checker"), "*")), 422,
                           contains="rationale")
    unchanged()


def test_create_review_unverified_is_422(client, auth, ledger):
    claim = ledger["first"]["id"]
    url = f"/v1/claims/{claim}/reviews"
    before = ledger_state(client, auth("reader"))
    assert_problem(client.post(url, json={"status": "unverified", "rationale": "reset"},
                               headers=with_version(auth("checker"), "*")), 422,
                   contains="unverified")
    assert ledger_state(client, auth("reader")) == before
    review(client, auth("checker"), claim, "false")
    before = ledger_state(client, auth("reader"))
    assert_problem(client.post(url, json={"status": "unverified", "rationale": "reset"},
                               headers=with_version(auth("checker"), "*")), 422)
    assert_problem(client.post(url, json={"status": "false", "rationale": "again"},
                               headers=with_version(auth("checker"), "*")), 422, contains="already")
    assert ledger_state(client, auth("reader")) == before


# --- paging --------------------------------------------------------------------------


def forged(*parts) -> str:
    return encode_cursor(*parts)


BAD_CURSORS = [
    "not-a-cursor", "!!!!", "%%%", "eyJ", "W10", "bnVsbA", "e30",
    forged(), forged("a"), forged(1, 2, 3, 4),
]


def test_list_bad_cursor_is_400(client, auth, ledger, unchanged):
    claim = ledger["first"]["id"]
    for cursor in BAD_CURSORS:
        for url in ("/v1/claims", "/v1/sources", "/v1/events", f"/v1/claims/{claim}/history",
                    f"/v1/sources/{ledger['isw']['id']}/claims"):
            response = client.get(url, params={"cursor": cursor}, headers=auth("reader"))
            assert response.status_code == 400, (url, cursor, response.text)
            assert_problem(response, 400, contains="cursor")
    unchanged()


FORGED_CLAIM_CURSORS = [
    ("2022-12-07T00:00:00+00:00", 5, "-created_at"),
    ("2022-12-07T00:00:00+00:00", ["clm_x"], "-created_at"),
    ("2022-12-07T00:00:00+00:00", {"id": "clm_x"}, "created_at"),
    ("2022-12-07T00:00:00+00:00", None, "-created_at"),
    ("not a time", "clm_x", "-created_at"),
    (12345, "clm_x", "-created_at"),
    ("2022-12-07T00:00:00+00:00", "clm_x", 7),
    ("2022-12-07T00:00:00+00:00", "clm_x", "-text"),
    ("2022-12-07T00:00:00+00:00", "clm_x", "created_at"),
]


def test_list_claims_forged_cursor_is_400(client, auth, unchanged):
    for parts in FORGED_CLAIM_CURSORS:
        response = client.get("/v1/claims", params={"cursor": forged(*parts)},
                              headers=auth("reader"))
        assert response.status_code == 400, (parts, response.text)
        assert_problem(response, 400, contains="cursor")
    unchanged()


def test_list_sources_forged_cursor_is_400(client, auth, unchanged):
    for parts in ((5, "src_x"), ("Name", 5), ({"a": 1}, "src_x"), ("Name", None),
                  (["Name"], ["src_x"]), ("Name", "src_x", "extra")):
        response = client.get("/v1/sources", params={"cursor": forged(*parts)},
                              headers=auth("reader"))
        assert response.status_code == 400, (parts, response.text)
        assert_problem(response, 400, contains="cursor")
    unchanged()


def test_list_limit_out_of_range_is_422(client, auth, ledger, unchanged):
    for limit in (0, -1, 201, 1000):
        for url in ("/v1/claims", "/v1/sources", "/v1/events",
                    f"/v1/claims/{ledger['first']['id']}/history",
                    f"/v1/sources/{ledger['isw']['id']}/claims"):
            response = client.get(url, params={"limit": limit}, headers=auth("reader"))
            assert response.status_code == 422, (url, limit, response.text)
            assert_problem(response, 422)
    unchanged()


def test_list_query_too_long_is_422(client, auth, unchanged):
    for url, params in (("/v1/sources", {"name": "n" * 201}),
                        ("/v1/sources", {"prefix": "p" * 201}),
                        ("/v1/claims", {"topic": "t" * 65}),
                        ("/v1/claims", {"cursor": "c" * 1001}),
                        ("/v1/events", {"action": "a" * 65})):
        assert_problem(client.get(url, params=params, headers=auth("reader")), 422)
    unchanged()


def test_get_claim_as_of_without_offset_is_422(client, auth, ledger, unchanged):
    for as_of in ("2022-12-07T10:00:00", "2022-12-07 10:00:00", "2022-12-07", "yesterday",
                  "2022-13-01T00:00:00Z", "9" * 30):
        response = client.get(f"/v1/claims/{ledger['first']['id']}", params={"as_of": as_of},
                              headers=auth("reader"))
        assert response.status_code == 422, (as_of, response.text)
        assert_problem(response, 422)
    unchanged()


# --- ingest: a bad item is its own error, a body that cannot be parsed is a 400 -----------


def test_ingest_empty_source_id_fails_that_item_alone(client, auth):
    response = client.post("/v1/ingest", headers=auth("ingester"), json=[
        {"text": "Troops will arrive in Belarus over the next two days.",
         "attributions": [{"source_id": "", "stance": "asserts"}]},
        {"text": "Belarus is running an information operation on the border."},
    ])
    assert response.status_code == 200, response.text
    first, second = response.json()["items"]
    assert first["status"] == "error" and first["error"]["status"] == 422
    assert "source_id" in first["error"]["detail"]
    assert second["status"] == "created"
    alone = client.post("/v1/ingest", headers=auth("ingester"), json=[
        {"text": "Troops will arrive in Belarus over the next two days.",
         "attributions": [{"source_id": "", "stance": "asserts"}]}])
    assert_problem(alone, 422, contains="every item failed")


def test_ingest_deeply_nested_body_is_400(client, auth):
    deep = b"[" * 1000 + b"]" * 1000
    nested_item = b'[{"text": "Troops arrive.", "topics": ' + deep + b"}]"
    for body in (deep, nested_item, b'{"items": ' + deep + b"}"):
        response = post_raw(client, "/v1/ingest", body, auth("ingester"))
        assert_problem(response, 400, contains="json")
        assert response.headers.get("x-request-id")
    # The same body to POST /v1/claims is a 400 too.
    assert_problem(post_raw(client, "/v1/claims", deep, auth("ingester")), 400)
    # In NDJSON each line is an item: a line nested too deep is that line's error.
    ndjson = b"\n".join([deep, json.dumps({"text": "Belarus is massing troops."}).encode()])
    response = client.post("/v1/ingest", content=ndjson,
                           headers={**auth("ingester"), "content-type": "application/x-ndjson"})
    assert response.status_code == 200, response.text
    bad, good = response.json()["items"]
    assert bad["status"] == "error" and bad["error"]["status"] == 400
    assert "line 1" in bad["error"]["detail"]
    assert good["status"] == "created"
    assert_problem(client.post("/v1/ingest", content=deep, headers={
        **auth("ingester"), "content-type": "application/x-ndjson"}), 422,
        contains="every item failed")


# Values every field of an ingest item is tried with: right and wrong types, empty,
# blank, wordless and unstorable strings, nested containers.
_STRINGS = st.sampled_from([
    "", " ", "...", "!!!", "\u200b", "\u00ad", "\ufeff", "_", "a\x00b", "\x1b[31m", "x" * 2001,
    "Troops arrive.", "ISW", "Institute for the Study of War", "en", "belarus", "Bad Slug",
    "https://example.org/a", "http://", "2026-01-01", "2026-02-30", "0001-01-01",
    "2026-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00",
    "asserts", "disputes", "A", "1", "src_doesnotexist",
]) | st.text(max_size=12)
_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | _STRINGS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_STRINGS, inner, max_size=3),
    max_leaves=6)


def _item(source_id: str):
    """An ingest item: mostly well formed, each field sometimes any value at all."""

    def field(good):  # about one time in eight, anything
        return st.one_of(*[good] * 7, _VALUES)

    names = st.sampled_from(["ISW", "Institute for the Study of War", "BelTA", "U.N.", "..."])
    ids = st.one_of(*map(st.just, ("", " ", source_id)))  # each as often as the others
    attribution = field(
        st.fixed_dictionaries(
            {"stance": field(st.sampled_from(["asserts", "disputes", "reports"]))},
            optional={"quote": field(st.text(max_size=20)),
                      "citation_url": field(st.just("https://example.org/a")),
                      "citation_published_date": field(st.just("2026-01-01")),
                      "credibility": field(st.sampled_from(["1", "6"])),
                      "stated_at": field(st.just("2026-01-01T00:00:00Z"))},
        ).flatmap(lambda att: field(st.one_of(
            st.fixed_dictionaries({"source_id": field(ids)}),
            st.fixed_dictionaries({"source": field(names)}),
        )).map(lambda named: {**att, **named} if isinstance(named, dict) else named)))
    texts = st.sampled_from(["Troops arrive in Belarus.", "Troops arrive in Belarus!",
                             "441 civilians were killed.", "Russia does not target civilians."]
                            ) | st.integers(0, 10**6).map(lambda n: f"Claim {n} about Belarus.")
    return st.fixed_dictionaries({
        "text": field(texts), "attributions": field(st.lists(attribution, max_size=3)),
    }, optional={
        "language": field(st.just("en")),
        "topics": field(st.lists(st.sampled_from(["belarus", "war"]), max_size=2)),
        "places": field(st.lists(names, max_size=2)),
        "period_start_date": field(st.just("2026-01-01")),
        "period_end_date": field(st.just("2026-02-01")),
        "first_stated_at": field(st.just("2026-01-01T00:00:00+01:00")),
        "origin": field(st.just("feed")),
        "external_id": field(st.sampled_from(["1", "2"])),
    }).flatmap(lambda item: field(st.just(item)))


def test_ingest_random_items_never_5xx(client, auth):
    source = make_source(client, auth("ingester"), "Institute for the Study of War",
                         aliases=["ISW"])

    @settings(max_examples=150, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.lists(_item(source["id"]), min_size=1, max_size=6), st.booleans())
    def post(batch, ndjson):
        if ndjson:
            response = client.post("/v1/ingest", headers={
                **auth("ingester"), "content-type": "application/x-ndjson"},
                content="\n".join(json.dumps(item) for item in batch))
        else:
            response = client.post("/v1/ingest", json=batch, headers=auth("ingester"))
        assert response.status_code < 500, (batch, response.text[:500])
        if response.status_code == 200:
            assert len(response.json()["items"]) == len(batch)
        else:
            assert_problem(response, response.status_code)

    post()


# --- text without a letter or digit -------------------------------------------------------

WORDLESS = ("...", "!!!", "\u200b\u200b\u200b", "\u200b", "\u00ad", "\ufeff", "___", "- - -")


def test_write_text_without_letter_or_digit_is_422(client, auth, ledger, unchanged):
    claim, isw = ledger["first"], ledger["isw"]
    for text in WORDLESS:
        for response in (
            client.post("/v1/claims", json=claim_body(text), headers=auth("ingester")),
            client.patch(f"/v1/claims/{claim['id']}", json={"text": text},
                         headers=with_version(auth("checker"), claim["version"])),
            client.post("/v1/claims", json=claim_body(attributions=[
                {"source": text, "stance": "asserts"}]), headers=auth("ingester")),
            client.post(f"/v1/claims/{claim['id']}/attributions",
                        json={"source": text, "stance": "asserts"},
                        headers=with_version(auth("ingester"), claim["version"])),
            client.post("/v1/sources", json={"name": text}, headers=auth("ingester")),
            client.post("/v1/sources", json={"name": "Somebody", "aliases": [text]},
                        headers=auth("ingester")),
            client.patch(f"/v1/sources/{isw['id']}", json={"name": text},
                         headers=with_version(auth("checker"), isw["version"])),
            client.patch(f"/v1/sources/{isw['id']}", json={"aliases": ["ISW", text]},
                         headers=with_version(auth("checker"), isw["version"])),
            client.post("/v1/keys", json={"name": text, "role": "reader"},
                        headers=auth("admin")),
        ):
            body = assert_problem(response, 422, contains="at least one letter or digit")
            assert body["errors"][0]["type"] == "no_letter_or_digit", body
        for item in ({"text": text},
                     {"text": "Troops arrive.", "attributions": [{"source": text,
                                                                  "stance": "asserts"}]}):
            refused = client.post("/v1/ingest", json=[item], headers=auth("ingester"))
            problem = assert_problem(refused, 422, contains="every item failed")
            assert "at least one letter or digit" in problem["results"][0]["error"]["detail"]
    unchanged()


def test_write_text_with_one_letter_or_digit_is_accepted(client, auth):
    for text in ("...a", "!!!7", "\u200b\u00e9\u200b", "\u0416.", "\u4e2d", "\u0661"):
        make_claim(client, auth("ingester"), f"{text}")
        make_source(client, auth("ingester"), f"Source {text}", aliases=[text])
