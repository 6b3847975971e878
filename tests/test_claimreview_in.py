"""ClaimReview in: schema.org's own examples, @graph, microdata-derived and Google claims:search
data, through POST /v1/ingest and `claimledger import`; the same review twice changes nothing;
every bad record refused, naming it."""

import copy
import json
from pathlib import Path

import httpx
import pytest

from app.domain import claimreview_in
from app.errors import AppError
from app.models import Status
from tests.factories import assert_problem, event_count, get_json
from tests.live_server import live_auth, live_secrets, live_server  # noqa: F401

DATA = Path(__file__).parent / "data"


def load(name: str) -> dict:
    return json.loads((DATA / name).read_text("utf-8"))


def post(client, headers, body, content_type: str = "application/json"):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post("/v1/ingest", content=data,
                       headers={**headers, "Content-Type": content_type})


def claim_by_text(client, headers, text: str) -> dict:
    items = get_json(client, "/v1/claims", headers, q=text, limit=5)["items"]
    found = [c for c in items if c["text"] == text]
    assert found, f"no claim {text!r}"
    return found[0]


# --- parsing, pure ------------------------------------------------------------------------


def test_parse_schemaorg_example():
    (record,) = claimreview_in.detect((DATA / "schemaorg-claimreview.json").read_bytes())
    assert isinstance(record, claimreview_in.Reviewed)
    assert record.claim["text"] == "The world is flat"
    assert record.claim["origin"] == "claimreview"
    assert record.claim["external_id"] == "https://example.com/news/science/worldisflat.html"
    assert record.verdict is Status.false
    assert record.sources == {"Square World Society": "other"}
    (att,) = record.claim["attributions"]
    assert att["citation_url"] == \
        "https://example.flatworlders.com/we-know-that-the-world-is-flat"
    assert att["citation_title"] == "We Know That The World Is Flat"
    assert att["citation_published_date"] == "2016-06-22"
    assert "Example.com science watch" in record.rationale


def test_parse_http_context_creativework_and_numeric_scale():
    (record,) = claimreview_in.detect(
        (DATA / "schemaorg-claimreview-creativework.json").read_bytes())
    assert record.verdict is Status.false  # 1 on its own 1…6 scale, no alternateName
    assert record.sources == {"Rick Perry": "other"}
    assert record.claim["first_stated_at"] == "2014-07-17T00:00:00Z"


def test_parse_graph_microdata_and_google():
    graph = claimreview_in.detect((DATA / "claimreview-graph.json").read_bytes())
    assert [r.verdict for r in graph] == [Status.mostly_true, Status.true]  # 9 of 0…10
    assert graph[0].sources == {"Belarus Security Council": "government", "BelTA": "media"}
    (micro,) = claimreview_in.detect((DATA / "claimreview-microdata.json").read_bytes())
    assert micro.claim["text"] == "The world is round" and micro.verdict is Status.true
    assert micro.sources == {"Eratosthenes": "other"}
    google = claimreview_in.detect((DATA / "google-claims-search.json").read_bytes())
    assert [r.verdict for r in google] == [Status.false, Status.true]
    assert google[0].evidence == ["https://www.politifact.com/factchecks/2022/apr/05/"
                                  "russia-civilians/", "https://fullfact.org/online/"
                                  "russia-civilians/"]


@pytest.mark.parametrize(("rating", "verdict"), [
    ({"alternateName": "Half True"}, Status.mixed),
    ({"alternateName": "mostly false"}, Status.mostly_false),
    ({"alternateName": "Pants on Fire!"}, Status.false),
    ({"alternateName": "Misleading"}, Status.misleading),
    ({"alternateName": "Unverifiable"}, Status.unverifiable),
    ({"alternateName": "Sort of", "ratingValue": 4, "worstRating": 1, "bestRating": 5},
     Status.mostly_true),
    ({"ratingValue": "3"}, Status.mixed),
    ({"ratingValue": 1, "worstRating": 5, "bestRating": 1}, Status.true),  # reversed scale
])
def test_rating_maps_to_verdict(rating, verdict):
    assert claimreview_in.verdict_of(rating)[0] is verdict


def test_claim_items_are_not_taken_for_claimreview():
    assert claimreview_in.detect(b'[{"text": "A claim.", "topics": ["x"]}]') is None
    assert claimreview_in.detect(b'{"text": "The \\"claims\\": field"}') is None


# --- through POST /v1/ingest ------------------------------------------------------------


def test_ingest_schemaorg_claimreview_creates_claim_source_verdict(client, auth):
    admin = auth("admin")
    response = post(client, auth("checker"), load("schemaorg-claimreview.json"))
    assert response.status_code == 200, response.text
    assert response.json()["summary"]["created"] == 1
    claim = claim_by_text(client, admin, "The world is flat")
    assert claim["status"] == "false"
    assert claim["origin"] == "claimreview"
    assert claim["current_review"]["evidence_urls"] == [
        "https://example.com/news/science/worldisflat.html"]
    (att,) = claim["attributions"]
    assert att["source"]["name"] == "Square World Society" and att["stance"] == "asserts"
    source = get_json(client, "/v1/sources", admin, name="Square World Society")["items"][0]
    assert source["kind"] == "other"
    # Its verdict is published at the review's own url, as the ClaimReview said.
    review = get_json(client, f"/v1/claims/{claim['id']}/claimreview", admin)
    assert review["@type"] == "ClaimReview" and review["reviewRating"]["alternateName"]
    assert review["url"] == load("schemaorg-claimreview.json")["url"]
    assert client.get(f"/c/{claim['id']}").status_code == 200
    # The same review again changes nothing: no claim, no event, no review.
    before = event_count(client, admin)
    again = post(client, auth("checker"), load("schemaorg-claimreview.json"))
    assert again.status_code == 200, again.text
    assert again.json()["summary"]["created"] == 0
    assert event_count(client, admin) == before
    assert claim_by_text(client, admin, "The world is flat") == claim


def test_ingest_claimreview_finds_existing_source_by_alias(client, auth):
    admin = auth("admin")
    made = client.post("/v1/sources", headers=admin, json={
        "name": "Square World Society of Flatland", "aliases": ["Square World Society"],
        "kind": "ngo"})
    assert made.status_code == 201, made.text
    assert post(client, admin, load("schemaorg-claimreview.json")).status_code == 200
    claim = claim_by_text(client, admin, "The world is flat")
    assert claim["attributions"][0]["source"]["id"] == made.json()["id"]


def test_ingest_graph_ndjson_microdata_google(client, auth):
    admin = auth("admin")
    assert post(client, admin, load("claimreview-graph.json")).status_code == 200
    troops = claim_by_text(client, admin, "Troops and military equipment will arrive in "
                           "Belarus over the next two days.")
    assert troops["status"] == "mostly_true"
    assert {a["source"]["name"] for a in troops["attributions"]} == {
        "Belarus Security Council", "BelTA"}
    lines = b"\n".join(json.dumps(load(name)).encode() for name in (
        "schemaorg-claimreview.json", "schemaorg-claimreview-creativework.json"))
    response = post(client, admin, lines, "application/x-ndjson")
    assert response.status_code == 200, response.text
    assert response.json()["summary"]["created"] == 2
    assert post(client, admin, load("claimreview-microdata.json")).status_code == 200
    assert claim_by_text(client, admin, "The world is round")["status"] == "true"
    response = post(client, admin, [load("google-claims-search.json")])
    assert response.status_code == 200, response.text
    russia = claim_by_text(client, admin, "Russia does not intentionally target civilians.")
    assert russia["status"] == "false"
    assert russia["attributions"][0]["source"]["name"] == "Government of Russia"
    assert len(russia["current_review"]["evidence_urls"]) == 2


def _review(**changes) -> dict:
    body = load("schemaorg-claimreview.json")
    for key, value in changes.items():
        if value is None:
            body.pop(key)
        else:
            body[key] = value
    return body


@pytest.mark.parametrize(("body", "fragment"), [
    (_review(claimReviewed=None), "claimReviewed"),
    (_review(**{"@type": "Review"}), "not ClaimReview"),
    (_review(reviewRating={"ratingValue": 7, "worstRating": 1, "bestRating": 5,
                           "alternateName": "Loony"}), "outside its scale"),
    (_review(url="/news/science/worldisflat.html"), "not an absolute http(s) URL"),
    (_review(datePublished="22/06/2016"), "not an ISO 8601 date"),
    (_review(reviewRating={"alternateName": "Zany"}), "not one this service can map"),
])
def test_ingest_bad_claimreview_refused(client, auth, body, fragment):
    response = post(client, auth("admin"), body)
    problem = assert_problem(response, 422, contains=fragment)
    assert problem["results"][0]["status"] == "error"
    assert get_json(client, "/v1/claims", auth("admin"))["items"] == []


def test_ingest_claimreview_ndjson_bad_line_fails_alone(client, auth):
    lines = json.dumps(load("schemaorg-claimreview.json")).encode() + b"\n{not json\n"
    response = post(client, auth("admin"), lines, "application/x-ndjson")
    assert response.status_code == 200, response.text
    results = response.json()["items"]
    assert [r["status"] for r in results] == ["created", "error"]
    assert "line 2 is not valid JSON" in results[1]["error"]["detail"]


def test_ingest_bad_claimreview_fails_alone(client, auth):
    good, bad = load("schemaorg-claimreview.json"), _review(claimReviewed=None)
    response = post(client, auth("admin"), [bad, good])
    assert response.status_code == 200, response.text
    results = response.json()["items"]
    assert [r["status"] for r in results] == ["error", "created"]
    assert "claimReviewed" in results[0]["error"]["detail"]


def test_ingest_nested_graph_refused(client, auth):
    deep = b'{"@context": "https://schema.org", "@graph": ' + b'{"@graph": ' * 1_000_000 \
        + b"{}" + b"}" * 1_000_001  # 11 MB
    assert_problem(post(client, auth("admin"), deep), 400, contains="nested too deeply")
    shallow: dict = {"@type": "ClaimReview"}
    for _ in range(claimreview_in.MAX_DEPTH + 1):
        shallow = {"@graph": [shallow]}
    assert_problem(post(client, auth("admin"), shallow), 400, contains="levels deep")


def test_ingest_claimreview_not_utf8_refused(client, auth):
    body = json.dumps(_review(claimReviewed="Caf\u00e9s are flat"), ensure_ascii=False)
    assert_problem(post(client, auth("admin"), body.encode("latin-1")), 400,
                   contains="not UTF-8")


def test_ingest_claimreview_needs_ingester(client, auth):
    assert_problem(post(client, auth("reader"), load("schemaorg-claimreview.json")), 403)


# --- through claimledger import ---------------------------------------------------------


def test_import_cli_claimreview_and_google_files_twice(client, auth, run_cli):
    admin = auth("admin")
    for name in ("schemaorg-claimreview.json", "google-claims-search.json",
                 "claimreview-graph.json"):
        result = run_cli("import", str(DATA / name))
        assert result.exit_code == 0, result.output
        assert "error" in result.output and "created" in result.output
    before = event_count(client, admin)
    claims = get_json(client, "/v1/claims", admin, limit=200)["items"]
    for name in ("schemaorg-claimreview.json", "google-claims-search.json",
                 "claimreview-graph.json"):
        assert run_cli("import", str(DATA / name)).exit_code == 0
    assert event_count(client, admin) == before
    assert get_json(client, "/v1/claims", admin, limit=200)["items"] == claims
    assert claim_by_text(client, admin, "The world is flat")["status"] == "false"


def test_import_cli_claimreview_all_or_nothing_unless_continue(client, auth, run_cli,
                                                               tmp_path):
    good = load("schemaorg-claimreview.json")
    bad = copy.deepcopy(good)
    bad["url"] = "https://example.com/other"
    bad["datePublished"] = "June 22, 2016"
    path = tmp_path / "reviews.json"
    path.write_text(json.dumps([good, bad]))
    result = run_cli("import", str(path))
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "record 2" in text and "not an ISO 8601 date" in text
    assert get_json(client, "/v1/claims", auth("admin"))["items"] == []
    result = run_cli("import", str(path), "--continue")
    assert result.exit_code == 2
    assert "record 2" in " ".join(result.output.split())
    assert claim_by_text(client, auth("admin"), "The world is flat")["status"] == "false"


def test_import_cli_claimreview_not_utf8(run_cli, tmp_path):
    path = tmp_path / "latin1.json"
    path.write_bytes(json.dumps(_review(claimReviewed="Caf\u00e9s are flat"),
                                ensure_ascii=False).encode("latin-1"))
    result = run_cli("import", str(path))
    assert result.exit_code == 1 and "not UTF-8" in result.output


def test_detect_raises_app_errors_only():
    with pytest.raises(AppError):
        claimreview_in.detect(b'{"@graph": ' * 5000 + b"{}" + b"}" * 5000)


def test_ingest_claimreview_of_a_claim_already_there(client, auth):
    admin = auth("admin")
    mine = client.post("/v1/claims", headers=admin, json={"text": "The world is flat"}).json()
    response = post(client, admin, load("schemaorg-claimreview.json"))
    assert response.status_code == 200, response.text
    assert response.json()["items"][0]["status"] == "duplicate"
    assert response.json()["items"][0]["claim_id"] == mine["id"]
    claim = claim_by_text(client, admin, "The world is flat")
    assert claim["status"] == "false"  # it had no verdict yet: it takes the review's
    assert claim["attributions"][0]["source"]["name"] == "Square World Society"
    # A claim the desk has given a verdict keeps it.
    other = load("schemaorg-claimreview.json")
    other["url"] = "https://example.org/another-check"
    other["reviewRating"] = {"alternateName": "True"}
    assert post(client, admin, other).status_code == 200
    assert claim_by_text(client, admin, "The world is flat")["status"] == "false"


def test_import_cli_claimreview_through_live_server(
        live_server, live_secrets, live_auth, run_cli):  # noqa: F811
    args = ("import", str(DATA / "google-claims-search.json"), "--url", live_server.url,
            "--key", live_secrets["checker"])
    result = run_cli(*args)
    assert result.exit_code == 0, result.output
    assert "2 created" in result.output
    again = run_cli(*args)  # the same file: the server replays its first answer
    assert again.exit_code == 0 and "2 created" in again.output
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        claims = http.get("/v1/claims", headers=live_auth("reader")).json()["items"]
    assert sorted(c["status"] for c in claims) == ["false", "true"]
    refused = run_cli("import", str(DATA / "schemaorg-claimreview.json"), "--url",
                      live_server.url, "--key", live_secrets["reader"])
    assert refused.exit_code == 1 and "403" in refused.output
