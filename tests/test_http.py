"""HTTP semantics (RFC 9110): If-Match in every form, 405 with the path's methods, HEAD,
no redirect to a client's Host, request ids, and 415 for a body sent as the wrong type."""

import json
import re
import threading

import httpx
import pytest

from tests.factories import (
    NO_FORCES,
    SOLDIERS,
    assert_problem,
    ledger_state,
    make_claim,
    make_source,
    with_version,
)
from tests.live_server import live_auth, live_secrets, live_server  # noqa: F401

ID = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def claim(client, auth):
    return make_claim(client, auth("ingester"))


@pytest.fixture
def source(client, auth):
    return make_source(client, auth("ingester"), "Institute for the Study of War")


def _targets(claim, source):
    """(url, an edit) for a claim and for a source; both need If-Match."""
    return [(f"/v1/claims/{claim['id']}", {"topics": ["belarus"]}),
            (f"/v1/sources/{source['id']}", {"description": "A think tank."})]


def _version(client, auth, url) -> int:
    response = client.get(url, headers=auth("reader"))
    assert response.status_code == 200, response.text
    return int(response.headers["ETag"].strip('"'))


# --- If-Match ------------------------------------------------------------------------


def test_if_match_star_matches_a_current_claim_and_source(client, auth, claim, source):
    for url, edit in _targets(claim, source):
        before = _version(client, auth, url)
        response = client.patch(url, json=edit, headers={**auth("checker"), "If-Match": "*"})
        assert response.status_code == 200, (url, response.text)
        assert response.headers["ETag"] == f'"{before + 1}"'
    response = client.delete(f"/v1/claims/{claim['id']}",
                             headers={**auth("admin"), "If-Match": "*"})
    assert response.status_code == 204, response.text
    # No current representation: the request's own 404 comes first (RFC 9110 §13.2.1).
    assert_problem(client.patch(f"/v1/claims/{claim['id']}", json={"topics": []},
                                headers={**auth("checker"), "If-Match": "*"}), 404)


def test_if_match_tag_that_is_not_current_is_412(client, auth, claim, source):
    for url, edit in _targets(claim, source):
        current = _version(client, auth, url)
        before = ledger_state(client, auth("reader"))
        for value in ('"stale-0"', '""', '"-1"', '"1.0"', '"abc"', f'"{current + 1}"',
                      f'"0{current}"', f'"{current + 1}", "{current + 2}"', '"a,b"'):
            response = client.patch(url, json=edit,
                                    headers={**auth("checker"), "If-Match": value})
            body = assert_problem(response, 412, contains=f"at version {current}")
            assert value in body["detail"], body["detail"]
        assert ledger_state(client, auth("reader")) == before


def test_if_match_list_matches_when_any_member_does(client, auth, claim, source):
    for url, edit in _targets(claim, source):
        for n, template in enumerate(('"{7}", "{0}"', '"stale-0",W/"{0}",  "{0}"',
                                      ' , "{9}", ,"{0}" ')):
            current = _version(client, auth, url)
            value = template.format(current, *range(current + 1, current + 10))
            response = client.patch(url, json={"topics": [f"t{n}"]} if "claims" in url
                                    else {"description": f"Edit {n}."},
                                    headers={**auth("checker"), "If-Match": value})
            assert response.status_code == 200, (value, response.text)
            assert response.headers["ETag"] == f'"{current + 1}"'
        current += 1  # the last edit's version
        # Two If-Match lines are one list (RFC 9110 §5.3).
        response = client.patch(url, json=edit, headers=[
            *auth("checker").items(), ("If-Match", '"99"'), ("If-Match", f'"{current}"')])
        assert response.status_code == 200, response.text


def test_if_match_weak_tag_never_matches(client, auth, claim, source):
    for url, edit in _targets(claim, source):
        current = _version(client, auth, url)
        response = client.patch(url, json=edit,
                                headers={**auth("checker"), "If-Match": f'W/"{current}"'})
        assert_problem(response, 412, contains="weak")
        assert _version(client, auth, url) == current
    # On a route where If-Match is optional too.
    response = client.post(f"/v1/claims/{claim['id']}/attributions",
                           json={"source": "BelTA", "stance": "reports"},
                           headers={**auth("checker"), "If-Match": f'W/"{current}"'})
    assert_problem(response, 412, contains="weak")


def test_if_match_optional_routes_take_every_form(client, auth, claim):
    url = f"/v1/claims/{claim['id']}/attributions"
    current = _version(client, auth, f"/v1/claims/{claim['id']}")
    assert_problem(client.post(url, json={"source": "BelTA", "stance": "reports"},
                               headers={**auth("checker"), "If-Match": '"stale-0"'}), 412)
    response = client.post(url, json={"source": "BelTA", "stance": "reports"},
                           headers={**auth("checker"), "If-Match": f'"9", "{current}"'})
    assert response.status_code == 201, response.text
    response = client.post(url, json={"source": "OHCHR", "stance": "asserts"},
                           headers={**auth("checker"), "If-Match": "*"})
    assert response.status_code == 201, response.text
    response = client.post(url, json={"source": "ISW", "stance": "asserts"},
                           headers=auth("checker"))
    assert response.status_code == 201, response.text


def test_if_match_malformed_is_400(client, auth, claim, source):
    for url, edit in _targets(claim, source):
        for value in ("1", "abc", "W/1", '"1', '"1" "2"', '*, "1"', "**", '"a"b"', ",",
                      'w/"1"', '"1";', "'1'"):
            response = client.patch(url, json=edit,
                                    headers={**auth("checker"), "If-Match": value})
            assert response.status_code == 400, (value, response.text)
            assert_problem(response, 400, contains="If-Match")


# --- 405 and HEAD --------------------------------------------------------------------


def _allow(response) -> list[str]:
    return [m.strip() for m in response.headers["Allow"].split(",")]


def test_method_not_allowed_names_every_method_of_the_path(client, auth, claim):
    cases = [("PUT", f"/v1/claims/{claim['id']}", ["GET", "HEAD", "PATCH", "DELETE"]),
             ("PUT", "/v1/claims", ["GET", "HEAD", "POST"]),
             ("DELETE", "/healthz", ["GET", "HEAD"]),
             ("GET", "/v1/ingest", ["POST"]),
             ("HEAD", "/v1/ingest", ["POST"])]
    for method, url, allowed in cases:
        response = client.request(method, url, headers=auth("admin"))
        assert response.status_code == 405, (method, url, response.text)
        assert _allow(response) == allowed, (method, url)
        if method != "HEAD":
            assert_problem(response, 405, contains=allowed[-1])


def test_head_answers_wherever_get_does(client, auth, claim):
    for url, headers in (("/healthz", {}), ("/readyz", {}),
                         (f"/v1/claims/{claim['id']}", auth("reader")),
                         ("/v1/claims", auth("reader"))):
        got = client.get(url, headers=headers)
        head = client.head(url, headers=headers)
        assert head.status_code == got.status_code == 200, (url, head.text)
        assert head.content == b""
        for name in ("content-type", "content-length", "etag"):
            assert head.headers.get(name) == got.headers.get(name), (url, name)
        assert ID.fullmatch(head.headers["X-Request-ID"])


def test_head_without_a_key_is_401_without_body(client, claim):
    response = client.head(f"/v1/claims/{claim['id']}")
    assert response.status_code == 401
    assert response.content == b""
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.headers["content-type"].startswith("application/problem+json")


def test_head_on_the_event_stream_ends(client, auth):
    done: list[int] = []
    thread = threading.Thread(target=lambda: done.append(client.head(
        "/v1/events/stream", params={"poll_seconds": 0.1}, headers=auth("reader")).status_code),
        daemon=True)
    thread.start()
    thread.join(timeout=10)
    assert done == [200], "HEAD on the stream did not end"


def test_head_is_counted_under_its_route(client, auth, claim):
    client.head(f"/v1/claims/{claim['id']}", headers=auth("reader"))
    metrics = client.get("/metrics", headers=auth("admin")).text
    assert re.search(r'claimledger_http_requests_total\{method="HEAD",'
                     r'route="/v1/claims/\{claim_id\}",status="200"\} 1\.0', metrics), metrics


# --- no redirect to the client's Host --------------------------------------------------


def test_trailing_slash_is_404_not_a_redirect_to_the_clients_host(client, auth):
    for url in ("/v1/claims/", "/healthz/"):
        response = client.get(url, headers={**auth("reader"), "Host": "evil.example"},
                              follow_redirects=False)
        assert "location" not in response.headers
        assert_problem(response, 404, contains=f"without the trailing slash: {url[:-1]}")
    response = client.post("/v1/claims/", json={"text": "A claim with a slash."},
                           headers={**auth("ingester"), "Host": "evil.example"},
                           follow_redirects=False)
    assert "location" not in response.headers
    assert_problem(response, 404)
    assert_problem(client.get("/v1/nothing/", headers=auth("reader")), 404,
                   contains="no route matches /v1/nothing/")


# --- X-Request-ID ----------------------------------------------------------------------


def test_request_id_kept_only_when_short_and_plain(client):
    for sent in ("abc-123", "trace:01H.x_Y-9", "a" * 128):
        assert client.get("/healthz", headers={"X-Request-ID": sent}).headers[
            "X-Request-ID"] == sent
    for sent in ("<script>" + "x" * 4992, "a" * 129, "two words", "id\u00e9", "a/b", "a;b",
                 '"quoted"'):
        response = client.get("/healthz", headers={"X-Request-ID": sent.encode("utf-8")})
        assert ID.fullmatch(response.headers["X-Request-ID"]), sent[:20]


def test_unexpected_error_is_a_500_with_the_request_id(app, client):
    async def fail() -> None:
        raise RuntimeError("forced by the test")

    app.add_api_route("/test-only/fail", fail)
    response = client.get("/test-only/fail", headers={"X-Request-ID": "boom-1"})
    assert_problem(response, 500)
    assert response.headers["X-Request-ID"] == "boom-1"
    assert "forced" not in response.text
    response = client.get("/test-only/fail")
    assert ID.fullmatch(response.headers["X-Request-ID"])


def test_responses_of_the_middlewares_carry_the_request_id(client, auth):
    # Starlette's body-size refusal (re-rendered as a problem) and the 415 here.
    response = client.post("/v1/claims", content=b"x" * (2 * 1024 * 1024),
                           headers={**auth("ingester"), "content-type": "application/json",
                                    "X-Request-ID": "big-1"})
    assert_problem(response, 413)
    assert response.headers["X-Request-ID"] == "big-1"
    response = client.post("/v1/claims", content=b"{}",
                           headers={**auth("ingester"), "X-Request-ID": "type-1"})
    assert_problem(response, 415)
    assert response.headers["X-Request-ID"] == "type-1"


# --- 415 -------------------------------------------------------------------------------


def test_json_body_of_another_media_type_is_415(client, auth, claim):
    body = json.dumps({"text": "Troops arrived in Belarus in October."}).encode()
    before = ledger_state(client, auth("reader"))
    for content_type in (None, "text/plain", "application/x-www-form-urlencoded",
                         "multipart/form-data; boundary=x", "application/xml", "json"):
        headers = {**auth("ingester"), **({"content-type": content_type} if content_type
                                          else {})}
        response = client.post("/v1/claims", content=body, headers=headers)
        problem = assert_problem(response, 415, contains="application/json")
        assert response.headers["Accept"] == "application/json"
        assert (content_type or "no Content-Type") in problem["detail"]
        response = client.patch(f"/v1/claims/{claim['id']}", content=b'{"topics": []}',
                                headers={**headers, "If-Match": f'"{claim["version"]}"'})
        assert_problem(response, 415, contains="application/json")
    assert ledger_state(client, auth("reader")) == before


def test_json_with_parameters_or_a_json_suffix_is_json(client, auth, claim):
    for content_type in ("application/json; charset=utf-8", "Application/JSON",
                         "application/vnd.claimledger+json"):
        body = json.dumps({"text": f"Troops arrived in Belarus ({content_type})."}).encode()
        response = client.post("/v1/claims", content=body,
                               headers={**auth("ingester"), "content-type": content_type})
        assert response.status_code == 201, (content_type, response.text)
    response = client.patch(f"/v1/claims/{claim['id']}", content=b'{"topics": ["a"]}',
                            headers={**auth("checker"), "If-Match": f'"{claim["version"]}"',
                                     "content-type": "application/merge-patch+json"})
    assert response.status_code == 200, response.text


def test_ingest_takes_json_and_ndjson_only(client, auth):
    line = json.dumps({"text": "Troops will arrive in Belarus over the next two days."})
    for content_type in (None, "text/plain", "application/x-www-form-urlencoded"):
        headers = {**auth("ingester"), **({"content-type": content_type} if content_type
                                          else {})}
        response = client.post("/v1/ingest", content=f"[{line}]".encode(), headers=headers)
        assert_problem(response, 415, contains="application/x-ndjson")
        assert "application/json" in response.headers["Accept"]
    for content_type, body in (("application/x-ndjson", line), ("application/jsonl", line),
                               ("application/json; charset=utf-8", f"[{line}]")):
        response = client.post("/v1/ingest", content=body.encode(),
                               headers={**auth("ingester"), "content-type": content_type})
        assert response.status_code == 200, (content_type, response.text)


def test_routes_without_a_body_ignore_the_content_type(client, auth, claim):
    response = client.request("DELETE", f"/v1/claims/{claim['id']}", content=b"x",
                             headers={**auth("admin"), "content-type": "text/plain",
                                      "If-Match": "*"})
    assert response.status_code == 204, response.text


def test_head_and_trailing_slash_through_uvicorn(live_server, live_auth):  # noqa: F811
    with httpx.Client(base_url=live_server.url, timeout=10) as http:
        got, head = http.get("/healthz"), http.head("/healthz")
        assert head.status_code == got.status_code == 200
        assert head.content == b"" and head.headers["content-length"] == str(len(got.content))
        # The feed never ends by itself; its HEAD does, and the connection serves on.
        head = http.head("/v1/events/stream", params={"poll_seconds": 0.1},
                         headers=live_auth("reader"))
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-type"].startswith("text/event-stream")
        assert http.head("/v1/claims").status_code == 401
        response = http.get("/v1/claims/", headers={**live_auth("reader"),
                                                    "Host": "evil.example"})
        assert "location" not in response.headers
        assert_problem(response, 404, contains="without the trailing slash: /v1/claims")
        assert http.get("/healthz").status_code == 200


def test_openapi_lists_415_with_accept_on_every_operation_with_a_body(client):
    """The 415 answered for a body of another media type is documented where it can happen."""
    schema = client.get("/openapi.json").json()
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            has_body = "requestBody" in operation
            assert ("415" in operation["responses"]) == has_body, f"{method} {path}"
            if has_body:
                assert "Accept" in operation["responses"]["415"]["headers"]


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
