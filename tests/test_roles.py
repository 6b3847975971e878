"""Roles: every route refuses a missing, unknown or revoked key (401) and a too-weak role (403)."""

import pytest
from fastapi.routing import iter_route_contexts

from app.config import Settings
from app.main import create_app
from tests.factories import assert_problem, make_key

ROLES = ["reader", "ingester", "checker", "admin"]

# (method, path template) -> the weakest role that may call it. Routes that other work adds
# later are listed already; they are tried only once the app has them.
MINIMAL_ROLE: dict[tuple[str, str], str] = {
    ("POST", "/v1/claims"): "ingester",
    ("GET", "/v1/claims"): "reader",
    ("GET", "/v1/claims/{claim_id}"): "reader",
    ("PATCH", "/v1/claims/{claim_id}"): "checker",
    ("DELETE", "/v1/claims/{claim_id}"): "admin",
    ("POST", "/v1/claims/{claim_id}/attributions"): "ingester",
    ("DELETE", "/v1/claims/{claim_id}/attributions/{attribution_id}"): "checker",
    ("POST", "/v1/claims/{claim_id}/reviews"): "checker",
    ("GET", "/v1/claims/{claim_id}/reviews"): "reader",
    ("GET", "/v1/claims/{claim_id}/history"): "reader",
    ("POST", "/v1/claims/{claim_id}/links"): "checker",
    ("POST", "/v1/claims/{claim_id}/merge"): "checker",
    ("PUT", "/v1/claims/{claim_id}/assignee"): "checker",
    ("GET", "/v1/claims/{claim_id}/similar"): "reader",
    ("POST", "/v1/claims/{claim_id}/publish"): "checker",
    ("DELETE", "/v1/claims/{claim_id}/publish"): "checker",
    ("GET", "/v1/claims/{claim_id}/claimreview"): "reader",
    ("POST", "/v1/sources"): "ingester",
    ("GET", "/v1/sources"): "reader",
    ("GET", "/v1/sources/{source_id}"): "reader",
    ("PATCH", "/v1/sources/{source_id}"): "checker",
    ("GET", "/v1/sources/{source_id}/claims"): "reader",
    ("GET", "/v1/sources/{source_id}/record"): "reader",
    ("POST", "/v1/sources/{source_id}/merge"): "checker",
    ("GET", "/v1/origins"): "admin",
    ("PUT", "/v1/origins/{origin}/owner"): "admin",
    ("POST", "/v1/ingest"): "ingester",
    ("GET", "/v1/events"): "reader",
    ("GET", "/v1/events/stream"): "reader",
    ("GET", "/v1/stats"): "reader",
    ("POST", "/v1/keys"): "admin",
    ("GET", "/v1/keys"): "admin",
    ("DELETE", "/v1/keys/{key_id}"): "admin",
    ("POST", "/v1/webhooks"): "admin",
    ("GET", "/v1/webhooks"): "admin",
    ("GET", "/v1/webhooks/{webhook_id}"): "admin",
    ("PATCH", "/v1/webhooks/{webhook_id}"): "admin",
    ("DELETE", "/v1/webhooks/{webhook_id}"): "admin",
    ("POST", "/v1/webhooks/{webhook_id}/rotate-secret"): "admin",
    ("POST", "/v1/webhooks/{webhook_id}/test"): "admin",
    ("GET", "/v1/webhooks/{webhook_id}/deliveries"): "admin",
    ("POST", "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver"): "admin",
    ("GET", "/v1/export"): "admin",
    ("GET", "/v1/claims.csv"): "reader",
}

PUBLIC = [("GET", "/healthz"), ("GET", "/readyz")]

# Ids that exist nowhere: a permitted caller gets 404/422, never 401/403, and a caller
# without a key must get 401 before anything looks the id up.
PATH_VALUES = {
    "claim_id": "clm_00000000000000000000",
    "source_id": "src_00000000000000000000",
    "attribution_id": "att_00000000000000000000",
    "key_id": "key_00000000000000000000",
    "webhook_id": "whk_00000000000000000000",
    "delivery_id": "dlv_00000000000000000000",
    "origin": "no-such-feed",
}


def app_routes() -> set[tuple[str, str]]:
    """(method, path template) of every route the app serves."""
    app = create_app(Settings(database_url="sqlite:///./never-opened.db"))
    out = set()
    for route in iter_route_contexts(app.routes):
        for method in route.methods or ():
            if method != "HEAD" and route.path:
                out.add((method, route.path.replace(":path}", "}")))  # as OpenAPI names it
    return out


APP_ROUTES = app_routes()
PRESENT = sorted(r for r in MINIMAL_ROLE if r in APP_ROUTES)


def call(client, method: str, template: str, headers: dict[str, str]):
    """Send a minimal request; a successful body is left unread (it may be a live stream)."""
    url = template.format(**PATH_VALUES)
    kwargs = {"json": {}} if method in ("POST", "PATCH", "PUT") else {}
    with client.stream(method, url, headers=headers, **kwargs) as response:
        if response.status_code < 200 or response.status_code >= 300:
            response.read()  # errors are short; a success may be an endless event stream
        return response


def route_id(route: tuple[str, str]) -> str:
    return f"{route[0]} {route[1]}"


def test_list_routes_covers_every_v1_route_in_the_app():
    v1 = {r for r in APP_ROUTES if r[1].startswith("/v1/") or r[1] == "/v1"}
    missing = sorted(v1 - set(MINIMAL_ROLE))
    assert not missing, f"routes without a role in MINIMAL_ROLE: {missing}"
    assert all(role in ROLES for role in MINIMAL_ROLE.values())
    for route in PUBLIC:
        assert route in APP_ROUTES


@pytest.fixture
def revoked(client, auth) -> str:
    """The secret of an admin key that has been revoked."""
    created = make_key(client, auth("admin"), "revoked-admin", "admin")
    assert client.get("/v1/keys", headers={"Authorization": f"Bearer {created['secret']}"}
                      ).status_code == 200
    response = client.delete(f"/v1/keys/{created['id']}", headers=auth("admin"))
    assert response.status_code == 204, response.text
    return created["secret"]


@pytest.mark.parametrize("route", PRESENT, ids=route_id)
def test_call_route_without_key_is_401(client, route):
    response = call(client, *route, {})
    body = assert_problem(response, 401)
    assert response.headers["www-authenticate"].lower().startswith("bearer")
    assert "clk_" not in body["detail"]


@pytest.mark.parametrize("route", PRESENT, ids=route_id)
def test_call_route_with_bad_key_is_401(client, route):
    for header in ("Bearer clk_not-a-key-this-service-issued", "Basic dXNlcjpwYXNz",
                   "Bearer", "clk_no-scheme"):
        response = call(client, *route, {"Authorization": header})
        assert_problem(response, 401)
        assert response.headers["www-authenticate"].lower().startswith("bearer")


@pytest.mark.parametrize("route", PRESENT, ids=route_id)
def test_call_route_with_revoked_key_is_401(client, revoked, route):
    response = call(client, *route, {"Authorization": f"Bearer {revoked}"})
    assert_problem(response, 401)
    assert response.headers["www-authenticate"].lower().startswith("bearer")


@pytest.mark.parametrize("route", PRESENT, ids=route_id)
def test_call_route_with_each_role_is_allowed_from_minimal_role_up(client, auth, route):
    minimal = ROLES.index(MINIMAL_ROLE[route])
    for rank, role in enumerate(ROLES):
        response = call(client, *route, auth(role))
        if rank < minimal:
            body = assert_problem(response, 403)
            assert MINIMAL_ROLE[route] in body["detail"], body["detail"]
        else:
            assert response.status_code not in (401, 403), (role, response.status_code)
            assert response.status_code < 500, (role, response.status_code)


@pytest.mark.parametrize("route", PUBLIC, ids=route_id)
def test_call_health_route_needs_no_key(client, route):
    response = client.request(*route)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ok"
