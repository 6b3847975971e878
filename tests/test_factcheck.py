"""Google Fact Check Tools API v1alpha1, compatible: claims:search over published verdicts,
the pages API over publishing, Google's error shape, and Google's own Python client."""

import pytest
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from tests.factories import get_json, make_claim, review
from tests.live_server import live_auth, live_secrets, live_server  # noqa: F401

SEARCH = "/v1alpha1/claims:search"


def publish(client, auth, text, status="false", **fields):
    claim = make_claim(client, auth("ingester"), text, **fields)
    review(client, auth("checker"), claim["id"], status, "Checked against the record.")
    response = client.post(f"/v1/claims/{claim['id']}/publish", headers=auth("checker"), json={
        "url": f"https://factcheck.example.org/{claim['id']}", "headline": f"On: {text}"})
    assert response.status_code == 200, response.text
    return claim


def google_error(response, code: int, status: str) -> str:
    assert response.status_code == code, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "status"}
    assert body["error"]["code"] == code and body["error"]["status"] == status
    assert body["error"]["message"]
    return body["error"]["message"]


def test_search_claims_returns_google_shape(client, auth):
    claim = publish(client, auth, "Thousands of Russian soldiers are stationed in Belarus.",
                    first_stated_at="2022-12-07T09:00:00Z",
                    attributions=[{"source": "Government of Ukraine", "stance": "asserts"},
                                  {"source": "Minsk residents", "stance": "disputes"}])
    publish(client, auth, "Unrelated claim about the weather in Minsk.")
    response = client.get(SEARCH, params={"query": "soldiers Belarus"})  # no key
    assert response.status_code == 200, response.text
    body = response.json()
    published_at = get_json(client, f"/v1/claims/{claim['id']}/claimreview",
                            auth("reader"))["dateModified"]
    assert body == {"claims": [{
        "text": "Thousands of Russian soldiers are stationed in Belarus.",
        "claimant": "Government of Ukraine",
        "claimDate": "2022-12-07T09:00:00Z",
        "claimReview": [{
            "publisher": {"name": "Claimledger", "site": "127.0.0.1"},
            "url": f"https://factcheck.example.org/{claim['id']}",
            "title": "On: Thousands of Russian soldiers are stationed in Belarus.",
            "reviewDate": published_at,
            "textualRating": "False",
            "languageCode": "en",
        }],
    }]}


def test_search_claims_filters(client, auth):
    publish(client, auth, "Belarus is preparing to join the war.")
    publish(client, auth, "La Biélorussie se prépare à entrer en guerre.", language="fr")
    unpublished = make_claim(client, auth("ingester"), "Belarus reservists were called up.")
    review(client, auth("checker"), unpublished["id"], "true", "Confirmed.")

    def texts(**params):
        response = client.get(SEARCH, params=params)
        assert response.status_code == 200, response.text
        return sorted(c["text"] for c in response.json().get("claims", []))

    assert texts(query="Belarus") == ["Belarus is preparing to join the war."]
    assert texts(reviewPublisherSiteFilter="127.0.0.1") == [
        "Belarus is preparing to join the war.",
        "La Biélorussie se prépare à entrer en guerre."]
    assert texts(reviewPublisherSiteFilter="politifact.com") == []
    assert texts(reviewPublisherSiteFilter="127.0.0.1", languageCode="fr-FR") == [
        "La Biélorussie se prépare à entrer en guerre."]
    assert texts(query="Belarus", maxAgeDays=1) == ["Belarus is preparing to join the war."]
    assert client.get(SEARCH, params={"query": "nothing matches this"}).json() == {}


def test_search_claims_accepts_google_global_parameters(client, auth):
    publish(client, auth, "Belarus is preparing to join the war.")
    params = {"query": "Belarus", "key": "any", "alt": "json", "fields": "claims.text",
              "quotaUser": "me", "$.xgafv": "2", "prettyPrint": "false", "access_token": "t",
              "callback": "cb", "uploadType": "media", "upload_protocol": "raw"}
    response = client.get(SEARCH, params=params)
    assert response.status_code == 200, response.text
    assert "\n" not in response.text and response.json()["claims"]
    assert "\n  " in client.get(SEARCH, params={"query": "Belarus"}).text  # pretty by default
    google_error(client.get(SEARCH, params={"query": "Belarus", "alt": "proto"}), 400,
                 "INVALID_ARGUMENT")


def test_search_claims_pages_with_token_and_offset(client, auth):
    for n in range(5):
        publish(client, auth, f"Claim {n} about Belarus troop numbers.")
    seen, token = [], None
    while True:
        params = {"query": "Belarus", "pageSize": 2} | ({"pageToken": token} if token else {})
        body = get_json(client, SEARCH, {}, **params)
        seen += [c["text"] for c in body["claims"]]
        token = body.get("nextPageToken")
        if not token:
            break
    assert len(seen) == 5 and len(set(seen)) == 5
    assert seen == [f"Claim {n} about Belarus troop numbers." for n in reversed(range(5))]
    offset = get_json(client, SEARCH, {}, query="Belarus", pageSize=2, offset=3)
    assert [c["text"] for c in offset["claims"]] == seen[3:5]
    assert "nextPageToken" not in offset


@pytest.mark.parametrize("params", [
    {"query": "Belarus", "pageSize": "0"},
    {"query": "Belarus", "pageSize": "-1"},
    {"query": "Belarus", "pageSize": "100000"},
    {"query": "Belarus", "maxAgeDays": "abc"},
    {"query": "Belarus", "maxAgeDays": "-3"},
    {"query": "Belarus", "offset": "-1"},
    {"query": "Belarus", "languageCode": "not a language"},
    {"query": "Belarus", "pageToken": "not+base64"},
    {"languageCode": "en"},  # neither query nor site filter
])
def test_search_claims_bad_parameters_are_400_in_google_shape(client, params):
    google_error(client.get(SEARCH, params=params), 400, "INVALID_ARGUMENT")


def test_search_claims_refuses_tampered_or_foreign_page_token(client, auth):
    for n in range(3):
        publish(client, auth, f"Claim {n} about Belarus.")
    token = get_json(client, SEARCH, {}, query="Belarus", pageSize=1)["nextPageToken"]
    tampered = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    message = google_error(client.get(SEARCH, params={"query": "Belarus", "pageSize": 1,
                                                      "pageToken": tampered}),
                           400, "INVALID_ARGUMENT")
    assert "pageToken" in message
    message = google_error(client.get(SEARCH, params={"query": "Claim", "pageSize": 1,
                                                      "pageToken": token}),
                           400, "INVALID_ARGUMENT")
    assert "another query" in message


def test_search_claims_leaves_out_withdrawn(client, auth):
    claim = publish(client, auth, "Belarus is preparing to join the war.")
    assert client.delete(f"/v1/claims/{claim['id']}/publish",
                         headers=auth("checker")).status_code == 204
    assert get_json(client, SEARCH, {}, query="Belarus") == {}


# --- pages API -------------------------------------------------------------------------

PAGE = {
    "pageUrl": "https://factcheck.example.org/belarus-reservists",
    "claimReviewAuthor": {"name": "Claimledger"},
    "claimReviewMarkups": [{
        "claimReviewed": "Belarus has drawn up lists of reservists.",
        "claimAuthor": {"name": "Belarusian opposition"},
        "claimDate": "2022-12-06",
        "claimFirstAppearance": "https://example.org/opposition",
        "rating": {"textualRating": "Mostly true", "ratingExplanation": "Lists were seen."},
    }],
}


def test_pages_create_makes_claim_source_and_published_verdict(client, auth):
    response = client.post("/v1alpha1/pages", json=PAGE, headers=auth("checker"))
    assert response.status_code == 200, response.text
    page = response.json()
    claim_id = page["name"].removeprefix("pages/")
    claim = get_json(client, f"/v1/claims/{claim_id}", auth("reader"))
    assert claim["text"] == "Belarus has drawn up lists of reservists."
    assert claim["status"] == "mostly_true"
    assert claim["first_stated_at"] == "2022-12-06T00:00:00.000000Z"
    assert claim["current_review"]["rationale"] == "Lists were seen."
    (att,) = claim["attributions"]
    assert att["source"]["name"] == "Belarusian opposition" and att["stance"] == "asserts"
    assert att["citation_url"] == "https://example.org/opposition"
    assert page["pageUrl"] == PAGE["pageUrl"]
    markup = page["claimReviewMarkups"][0]
    assert markup["rating"]["textualRating"] == "Mostly true"
    assert markup["rating"]["ratingValue"] == 4
    assert markup["claimAuthor"] == {"name": "Belarusian opposition"}
    assert get_json(client, f"/v1alpha1/{page['name']}", auth("checker")) == page
    def listed(url):
        response = client.get("/v1alpha1/pages", params={"url": url}, headers=auth("checker"))
        assert response.status_code == 200, response.text
        return response.json()

    assert listed(PAGE["pageUrl"]) == {"claimReviewMarkupPages": [page]}
    assert listed("https://elsewhere.example.org/") == {}
    found = get_json(client, SEARCH, {}, query="reservists")["claims"]
    assert [c["claimant"] for c in found] == ["Belarusian opposition"]
    google_error(client.post("/v1alpha1/pages", json=PAGE, headers=auth("checker")), 409,
                 "ALREADY_EXISTS")


def test_pages_create_reuses_existing_claim(client, auth):
    claim = make_claim(client, auth("ingester"), "Belarus has drawn up lists of reservists.")
    page = client.post("/v1alpha1/pages", json=PAGE, headers=auth("checker")).json()
    assert page["name"] == f"pages/{claim['id']}"


def test_pages_update_republishes_and_delete_withdraws(client, auth):
    page = client.post("/v1alpha1/pages", json=PAGE, headers=auth("checker")).json()
    changed = {**PAGE, "name": page["name"], "pageUrl": "https://factcheck.example.org/v2",
               "claimReviewMarkups": [{**PAGE["claimReviewMarkups"][0],
                                       "rating": {"ratingValue": 1}}]}
    response = client.put(f"/v1alpha1/{page['name']}", json=changed, headers=auth("checker"))
    assert response.status_code == 200, response.text
    assert response.json()["pageUrl"] == "https://factcheck.example.org/v2"
    assert response.json()["claimReviewMarkups"][0]["rating"]["textualRating"] == "False"
    claim_id = page["name"].removeprefix("pages/")
    assert get_json(client, f"/v1/claims/{claim_id}/claimreview",
                    auth("reader"))["reviewRating"]["alternateName"] == "False"
    deleted = client.delete(f"/v1alpha1/{page['name']}", headers=auth("checker"))
    assert deleted.status_code == 200 and deleted.json() == {}
    assert client.get(f"/c/{claim_id}").status_code == 410
    assert get_json(client, SEARCH, {}, query="reservists") == {}
    google_error(client.get(f"/v1alpha1/{page['name']}", headers=auth("checker")), 404,
                 "NOT_FOUND")
    google_error(client.delete(f"/v1alpha1/{page['name']}", headers=auth("checker")), 404,
                 "NOT_FOUND")


def test_pages_update_of_missing_page_or_other_claim_is_refused(client, auth):
    page = client.post("/v1alpha1/pages", json=PAGE, headers=auth("checker")).json()
    google_error(client.put("/v1alpha1/pages/clm_00000000000000000000", json=PAGE,
                            headers=auth("checker")), 404, "NOT_FOUND")
    other = {**PAGE, "claimReviewMarkups": [{**PAGE["claimReviewMarkups"][0],
                                             "claimReviewed": "Another claim entirely."}]}
    message = google_error(client.put(f"/v1alpha1/{page['name']}", json=other,
                                      headers=auth("checker")), 400, "INVALID_ARGUMENT")
    assert "another claim" in message
    renamed = {**PAGE, "name": "pages/clm_00000000000000000000"}
    google_error(client.put(f"/v1alpha1/{page['name']}", json=renamed,
                            headers=auth("checker")), 400, "INVALID_ARGUMENT")


@pytest.mark.parametrize("body", [
    {**PAGE, "pageUrl": "/relative"},
    {k: v for k, v in PAGE.items() if k != "pageUrl"},
    {**PAGE, "claimReviewMarkups": []},
    {**PAGE, "claimReviewMarkups": [{**PAGE["claimReviewMarkups"][0],
                                     "rating": {"textualRating": "Pants on fire"}}]},
    {**PAGE, "claimReviewMarkups": [{**PAGE["claimReviewMarkups"][0], "claimDate": "soon"}]},
    {**PAGE, "unknownField": 1},
])
def test_pages_create_bad_body_is_400(client, auth, body):
    google_error(client.post("/v1alpha1/pages", json=body, headers=auth("checker")), 400,
                 "INVALID_ARGUMENT")
    assert get_json(client, "/v1/claims", auth("reader"))["items"] == []


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/v1alpha1/pages"), ("POST", "/v1alpha1/pages"),
    ("GET", "/v1alpha1/pages/clm_00000000000000000000"),
    ("PUT", "/v1alpha1/pages/clm_00000000000000000000"),
    ("DELETE", "/v1alpha1/pages/clm_00000000000000000000")])
def test_pages_need_a_checker_key(client, auth, method, path):
    body = {"json": PAGE} if method in ("POST", "PUT") else {}
    google_error(client.request(method, path, **body), 401, "UNAUTHENTICATED")
    for role in ("reader", "ingester"):
        message = google_error(client.request(method, path, headers=auth(role), **body), 403,
                               "PERMISSION_DENIED")
        assert "checker" in message
    assert client.request(method, path, headers=auth("checker"), **body).status_code < 500


# --- Google's official client, against the real server ---------------------------------


def test_official_python_client_searches_pages_and_manages_pages(live_server, live_auth):  # noqa: F811
    import httpx
    from google.oauth2.credentials import Credentials

    with httpx.Client(base_url=live_server.url, headers=live_auth("checker")) as http:
        for n in range(5):
            claim = http.post("/v1/claims", json={"text": f"Claim {n} on Belarus troop numbers."})
            cid = claim.json()["id"]
            assert http.post(f"/v1/claims/{cid}/reviews", headers={"If-Match": "*"}, json={
                "status": "false", "rationale": "No."}).status_code == 201
            assert http.post(f"/v1/claims/{cid}/publish", json={
                "url": f"https://factcheck.example.org/{n}", "headline": f"Check {n}"}
            ).status_code == 200
    base = live_server.url + "/"
    service = build("factchecktools", "v1alpha1", client_options={"api_endpoint": base},
                    developerKey="not-needed", static_discovery=True)
    texts = []
    request = service.claims().search(query="Belarus", pageSize=2, languageCode="en")
    while request is not None:
        response = request.execute()
        texts += [c["text"] for c in response["claims"]]
        assert response["claims"][0]["claimReview"][0]["publisher"]["name"] == "Claimledger"
        request = service.claims().search_next(request, response)
    assert texts == [f"Claim {n} on Belarus troop numbers." for n in reversed(range(5))]
    with pytest.raises(HttpError) as refused:
        service.claims().search(query="Belarus", pageSize=0).execute()
    assert refused.value.status_code == 400
    assert "pageSize" in refused.value.reason

    secret = live_auth("checker")["Authorization"].removeprefix("Bearer ")
    pages = build("factchecktools", "v1alpha1", client_options={"api_endpoint": base},
                  credentials=Credentials(token=secret), static_discovery=True).pages()
    page = pages.create(body=PAGE).execute()
    assert pages.get(name=page["name"]).execute() == page
    listed = []
    request = pages.list(pageSize=4)
    while request is not None:
        response = request.execute()
        listed += [p["name"] for p in response["claimReviewMarkupPages"]]
        request = pages.list_next(request, response)
    assert len(listed) == 6 and listed[0] == page["name"]
    assert pages.delete(name=page["name"]).execute() == {}
    with pytest.raises(HttpError) as missing:
        pages.get(name=page["name"]).execute()
    assert missing.value.status_code == 404


def test_head_of_refused_search_has_status_and_no_body(client):
    response = client.head(SEARCH, params={"pageSize": "0", "query": "x"})
    assert response.status_code == 400
    assert response.content == b""
    assert response.headers["content-type"].startswith("application/json")
