"""The desk over HTTP: sign-in cookie, CSRF and origin checks, security headers, roles, and
bad input shown next to its field (the browser tests drive the same pages in Chromium)."""

import json
import re
from pathlib import Path

import pytest

from app.desk import imports, security
from app.errors import BadRequest
from tests.factories import get_json, make_claim, make_key, review

DATA = Path(__file__).parent / "data"

TOKEN = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')


@pytest.fixture
def signed_in(client, secrets):
    """signed_in("checker") -> the CSRF token of the client, now signed in with that role."""

    def sign(role: str = "checker") -> str:
        client.cookies.clear()
        response = client.post("/sign-in", data={"api_key": secrets[role]},
                               follow_redirects=False)
        assert response.status_code == 303, response.text
        page = client.get("/")
        assert page.status_code == 200
        return TOKEN.search(page.text).group(1)

    return sign


def test_desk_sign_in_sets_httponly_strict_cookie(client, secrets):
    response = client.post("/sign-in", data={"api_key": secrets["reader"]},
                           follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{security.COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert secrets["reader"] not in response.headers["location"]


def test_desk_sign_in_bad_key_shown_next_to_field(client):
    for key, message in (("", "Enter your API key."), ("clk_wrong", "unknown or revoked")):
        response = client.post("/sign-in", data={"api_key": key})
        assert response.status_code == 200
        assert message in response.text
        assert 'aria-invalid="true"' in response.text
        assert "set-cookie" not in response.headers


def test_desk_pages_without_key_go_to_sign_in(client):
    for path in ("/", "/queue", "/sources", "/overview", "/claims/clm_x", "/desk/events"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"] == "/sign-in"


def test_desk_pages_carry_security_headers_api_does_not(client, signed_in, auth):
    signed_in("reader")
    for path in ("/", "/sign-in", "/overview", "/claims/clm_missing"):
        response = client.get(path)
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "same-origin"
        assert response.headers["content-type"].startswith("text/html")
    assert client.get("/claims/clm_missing").status_code == 404
    api = client.get("/v1/claims", headers=auth("reader"))
    assert "content-security-policy" not in api.headers


def test_desk_revoked_key_signs_out(client, auth, secrets):
    created = make_key(client, auth("admin"), "soon-revoked", "checker")
    client.post("/sign-in", data={"api_key": created["secret"]})
    assert client.get("/queue").status_code == 200
    assert client.delete(f"/v1/keys/{created['id']}", headers=auth("admin")).status_code == 204
    response = client.get("/queue", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/sign-in?expired=1"
    assert f'{security.COOKIE}=""' in response.headers["set-cookie"]
    assert "no longer valid" in client.get("/sign-in?expired=1").text


def test_desk_sign_out_clears_cookie(client, signed_in):
    token = signed_in()
    response = client.post("/sign-out", data={"csrf_token": token}, follow_redirects=False)
    assert response.status_code == 303
    assert "Max-Age=0" in response.headers["set-cookie"]


def test_desk_post_without_csrf_token_or_from_another_site_refused(client, signed_in, auth):
    claim = make_claim(client, auth("ingester"))
    token = signed_in()
    url = f"/claims/{claim['id']}/verdict"
    form = {"status": "false", "rationale": "forged", "version": "1"}
    for data, headers in (
        (form, {}),
        ({**form, "csrf_token": "0" * 64}, {}),
        ({**form, "csrf_token": token}, {"Origin": "https://attacker.example"}),
        ({**form, "csrf_token": token}, {"Sec-Fetch-Site": "cross-site"}),
    ):
        response = client.post(url, data=data, headers=headers)
        assert response.status_code == 403, (data, headers)
        assert "Refused" in response.text
    assert client.get(f"/v1/claims/{claim['id']}", headers=auth("reader")).json()["status"] \
        == "unverified"
    same = client.post(url, data={**form, "csrf_token": token},
                       headers={"Origin": "http://testserver"}, follow_redirects=False)
    assert same.status_code == 303


def test_desk_reader_cannot_post_or_see_forms(client, signed_in, auth):
    claim = make_claim(client, auth("ingester"))
    token = signed_in("reader")
    page = client.get(f"/claims/{claim['id']}").text
    assert "Record status" not in page and "Attach source" not in page
    response = client.post(f"/claims/{claim['id']}/verdict",
                           data={"csrf_token": token, "status": "in_review", "version": "1"})
    assert response.status_code == 403
    assert "checker role" in response.text
    assert client.get("/claims/new").status_code == 403


def test_desk_ingester_sees_attach_but_not_verdict(client, signed_in, auth):
    claim = make_claim(client, auth("ingester"))
    signed_in("ingester")
    page = client.get(f"/claims/{claim['id']}").text
    assert "Attach source" in page and "Record status" not in page


@pytest.mark.parametrize(("form", "fields", "message"), [
    ("verdict", {"status": "false", "rationale": ""}, "needs a rationale"),
    ("verdict", {"status": "bogus"}, "Input should be"),
    ("verdict", {"status": "unverified"}, "unverified is the status of a new claim"),
    ("verdict", {"status": "true", "rationale": "ok", "evidence_urls": "not a url"},
     "should match pattern"),
    ("edit", {"text": "", "language": "en"}, "must not be blank"),
    ("edit", {"text": "Fine text", "language": "not a language!"}, "should match pattern"),
    ("edit", {"text": "Fine text", "language": "en", "topics": "Bad Topic!"},
     "should match pattern"),
    ("sources", {"source": "", "stance": "asserts"}, "name the source"),
    ("sources", {"source": "BelTA", "stance": "shouts"}, "Input should be"),
    ("sources", {"source": "BelTA", "stance": "reports", "citation_url": "javascript:alert(1)"},
     "should match pattern"),
    ("links", {"target_id": "clm_missing", "kind": "supports"}, "does not exist"),
    ("links", {"target_id": "", "kind": "supports"}, ""),
    ("merge", {"duplicate_id": "clm_missing"}, "does not exist"),
    ("assign", {"assignee": "x" * 201}, "at most 200"),
])
def test_desk_claim_form_bad_input_shown_and_kept(client, signed_in, auth, form, fields,
                                                  message):
    claim = make_claim(client, auth("ingester"))
    token = signed_in()
    data = {"csrf_token": token, "version": str(claim["version"]), **fields}
    response = client.post(f"/claims/{claim['id']}/{form}", data=data, follow_redirects=False)
    assert response.status_code == 200, response.text
    assert message in response.text
    assert 'class="error"' in response.text
    for value in fields.values():
        if value and value != "bogus" and value != "shouts":
            assert value.replace("&", "&amp;") in response.text  # what was typed is kept
    after = client.get(f"/v1/claims/{claim['id']}", headers=auth("reader")).json()
    assert after["version"] == claim["version"]  # nothing was written


def test_desk_claim_form_stale_version_shows_conflict(client, signed_in, auth):
    claim = make_claim(client, auth("ingester"))
    token = signed_in()
    client.patch(f"/v1/claims/{claim['id']}", json={"text": "Their new text here."},
                 headers={**auth("checker"), "If-Match": '"1"'})
    response = client.post(f"/claims/{claim['id']}/edit", data={
        "csrf_token": token, "version": "1", "text": "My own text here.", "language": "en"})
    assert response.status_code == 200
    assert "Someone else changed this claim" in response.text
    assert "Their new text here." in response.text and "My own text here." in response.text
    assert 'name="version" value="2"' in response.text


def test_desk_new_claim_and_missing_claim(client, signed_in, auth):
    token = signed_in("ingester")
    response = client.post("/claims/new", data={"csrf_token": token, "text": "  "})
    assert response.status_code == 200 and "must not be blank" in response.text
    response = client.post("/claims/new", data={
        "csrf_token": token, "text": "Minsk bought 50 drones.", "source": "BelTA",
        "stance": "reports"}, follow_redirects=False)
    assert response.status_code == 303
    claim_id = response.headers["location"].split("/")[2].split("?")[0]
    claim = client.get(f"/v1/claims/{claim_id}", headers=auth("reader")).json()
    assert claim["attributions"][0]["source"]["name"] == "BelTA"
    assert claim["created_by"] == "test-ingester"
    missing = client.post("/claims/clm_missing/verdict", data={
        "csrf_token": token, "status": "in_review", "version": "1"})
    assert missing.status_code == 403  # the role is checked before the claim is looked up


def test_desk_list_bad_filters_shown(client, signed_in):
    signed_in("reader")
    response = client.get("/", params={"status": "bogus", "contested": "maybe",
                                       "sort": "sideways"})
    assert response.status_code == 200
    for message in ("Choose a status", "Choose yes, no or either", "Choose an order"):
        assert message in response.text
    response = client.get("/", params={"cursor": "not-a-cursor"})
    assert response.status_code == 200
    assert "cursor" in response.text and 'role="alert"' in response.text
    assert "Choose a kind" in client.get("/sources", params={"kind": "aliens"}).text
    for params in ({"topic": "a\x00b"}, {"q": "a\x00b"}, {"source": "\x00"}):
        response = client.get("/", params=params)
        assert response.status_code < 500, response.text
        assert response.headers["content-type"].startswith("text/html")


def test_desk_import_batch_checks_token_and_reports_items(client, signed_in, auth):
    token = signed_in("ingester")
    body = b'{"text": "Imported: Belarus opened a new airbase."}\n{"text": ""}\nnot json'
    headers = {"Content-Type": "application/x-ndjson"}
    assert client.post("/import/batch", content=body, headers=headers).status_code == 403
    response = client.post("/import/batch", content=b"\n",
                           headers={**headers, security.CSRF_HEADER: token})
    assert response.status_code == 422
    assert "empty" in response.json()["detail"]
    response = client.post("/import/batch", content=body,
                           headers={**headers, security.CSRF_HEADER: token})
    assert response.status_code == 200
    items = response.json()["items"]
    assert [item["status"] for item in items] == ["created", "error", "error"]
    assert "not valid JSON" in items[2]["error"]["detail"]


def test_desk_markup_escaped_in_html(client, signed_in, auth):
    claim = make_claim(client, auth("ingester"), '<script>alert("x")</script> Minsk & Moscow')
    signed_in("reader")
    page = client.get(f"/claims/{claim['id']}").text
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; Minsk &amp; Moscow" in page


def _version(client, auth, claim_id: str) -> str:
    return str(get_json(client, f"/v1/claims/{claim_id}", auth("reader"))["version"])


def test_desk_publish_and_withdraw_forms(client, signed_in, auth):
    claim = make_claim(client, auth("ingester"), "Minsk has banned Russian troop trains.")
    review(client, auth("checker"), claim["id"], "false")
    token = signed_in()
    page = client.get(f"/claims/{claim['id']}").text
    assert "Publish the verdict" in page and ">Withdraw<" not in page
    url = f"/claims/{claim['id']}/publish"
    bad = client.post(url, data={"csrf_token": token, "version": _version(client, auth,
                      claim["id"]), "url": "not a url", "headline": "Trains: false"})
    assert bad.status_code == 200
    assert 'id="publish-url-error"' in bad.text and "Trains: false" in bad.text  # kept
    assert client.get(f"/c/{claim['id']}").status_code == 404  # nothing published
    done = client.post(url, data={"csrf_token": token, "version": _version(
        client, auth, claim["id"]), "url": "https://factcheck.example/trains",
        "headline": "Trains: false"}, follow_redirects=False)
    assert done.status_code == 303, done.text
    public = client.get(f"/c/{claim['id']}")
    assert public.status_code == 200 and "Trains: false" in public.text
    page = client.get(done.headers["location"]).text
    assert "The verdict is published." in page and f'href="/c/{claim["id"]}"' in page
    assert ">Withdraw<" in page

    withdraw = f"/claims/{claim['id']}/withdraw"
    stale = client.post(withdraw, data={"csrf_token": token, "version": "1"})
    assert stale.status_code == 200 and "Someone else changed this claim" in stale.text
    assert client.get(f"/c/{claim['id']}").status_code == 200  # still published
    gone = client.post(withdraw, data={"csrf_token": token, "version": _version(
        client, auth, claim["id"])}, follow_redirects=False)
    assert gone.status_code == 303, gone.text
    assert client.get(f"/c/{claim['id']}").status_code == 410
    history = get_json(client, f"/v1/claims/{claim['id']}/history", auth("reader"))["items"]
    assert [e["action"] for e in history][-2:] == ["claim.published", "claim.withdrawn"]
    again = client.post(withdraw, data={"csrf_token": token, "version": _version(
        client, auth, claim["id"])})
    assert again.status_code == 200 and "no published verdict to withdraw" in again.text


def test_desk_publish_needs_a_verdict_and_a_checker(client, signed_in, auth):
    claim = make_claim(client, auth("ingester"), "Minsk has closed its airspace.")
    form = {"version": "1", "url": "https://factcheck.example/air", "headline": "Airspace"}
    token = signed_in()
    response = client.post(f"/claims/{claim['id']}/publish", data={**form, "csrf_token": token})
    assert response.status_code == 200
    assert "only a verdict can be published" in response.text
    assert "https://factcheck.example/air" in response.text  # what was typed is kept
    assert _version(client, auth, claim["id"]) == "1"
    token = signed_in("ingester")
    assert "Publish the verdict" not in client.get(f"/claims/{claim['id']}").text
    for action in ("publish", "withdraw"):
        refused = client.post(f"/claims/{claim['id']}/{action}",
                              data={**form, "csrf_token": token})
        assert refused.status_code == 403 and "checker role" in refused.text


def test_desk_list_published_filter(client, signed_in, auth):
    shown = make_claim(client, auth("ingester"), "Published: Minsk sold its tanks.")
    hidden = make_claim(client, auth("ingester"), "Unpublished: Minsk bought new tanks.")
    review(client, auth("checker"), shown["id"], "false")
    response = client.post(f"/v1/claims/{shown['id']}/publish", headers=auth("checker"),
                           json={"url": "https://factcheck.example/t", "headline": "Tanks"})
    assert response.status_code == 200, response.text
    signed_in("reader")
    published = client.get("/", params={"published": "yes"}).text
    assert shown["text"] in published and hidden["text"] not in published
    assert '<option value="yes" selected>Published</option>' in published
    unpublished = client.get("/", params={"published": "no"}).text
    assert hidden["text"] in unpublished and shown["text"] not in unpublished
    assert "Choose published, not published or either." in client.get(
        "/", params={"published": "maybe"}).text


def _batch(client, token, body: bytes, content_type="application/x-ndjson", **headers):
    return client.post("/import/batch", content=body, headers={
        "Content-Type": content_type, security.CSRF_HEADER: token, **headers})


def test_desk_import_claimreview_file(client, signed_in, auth):
    token = signed_in("ingester")
    body = (DATA / "schemaorg-claimreview.json").read_bytes()
    response = _batch(client, token, body, "application/json")
    assert response.status_code == 200, response.text
    assert response.json()["summary"]["created"] == 1 and response.json()["replayed"] is False
    claim_id = response.json()["items"][0]["claim_id"]
    claim = get_json(client, f"/v1/claims/{claim_id}", auth("reader"))
    assert (claim["text"], claim["status"]) == ("The world is flat", "false")
    assert client.get(f"/c/{claim_id}").status_code == 200  # its verdict, published
    google = json.loads((DATA / "google-claims-search.json").read_text())
    response = _batch(client, token, json.dumps(google).encode(), "application/json")
    assert response.status_code == 200, response.text
    assert response.json()["summary"]["created"] == 2


def test_desk_import_batch_sent_twice_replays(client, signed_in, auth):
    token = signed_in("ingester")
    body = b'{"text": "Replayed: Belarus opened a second airbase."}\n{"text": ""}'
    key = {"X-Import-Key": "page-1", "X-Import-Batch": "0"}
    first = _batch(client, token, body, **key)
    assert first.status_code == 200, first.text
    assert first.json()["replayed"] is False
    events = get_json(client, "/v1/events", auth("reader"), limit=200)["items"]
    second = _batch(client, token, body, **key)
    assert second.status_code == 200 and second.json()["replayed"] is True
    assert second.json()["items"] == first.json()["items"]  # the first answer, again
    assert get_json(client, "/v1/events", auth("reader"), limit=200)["items"] == events
    found = get_json(client, "/v1/claims", auth("reader"), q="Replayed second airbase")
    assert len(found["items"]) == 1
    # Another file from the same page imports; so does the same file from a new page.
    other = _batch(client, token, b'{"text": "Replayed: a third airbase."}', **key)
    assert other.status_code == 200 and other.json()["summary"]["created"] == 1
    fresh = _batch(client, token, body, **{**key, "X-Import-Key": "page-2"})
    assert fresh.json()["replayed"] is False and fresh.json()["summary"]["duplicate"] == 1
    assert _batch(client, token, body, **{**key, "X-Import-Batch": "x"}).status_code == 400


@pytest.mark.parametrize("value", ["x", "", "-1", "\u00b2", "\u0663", "1" * 10])
def test_desk_import_batch_number_refuses_what_is_not_ascii_digits(value):
    # "\u00b2" (superscript two) and "\u0663" (Arabic-Indic three) are str.isdigit()
    # but int() refuses the first: each must be a 400, never a 500.
    with pytest.raises(BadRequest):
        imports.batch_number(value)
    assert imports.batch_number("12") == 12
