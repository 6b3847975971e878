"""Claims: register, read, list, edit with If-Match, delete."""

from tests.factories import assert_problem, make_claim, make_source


def test_create_claim_starts_unverified_with_inline_sources(client, auth):
    isw = make_source(client, auth("ingester"), "Institute for the Study of War", aliases=["ISW"])
    response = client.post("/v1/claims", headers=auth("ingester"), json={
        "text": "Belarus is running an information operation aimed at fixing Ukrainian forces.",
        "topics": ["belarus", "information-operations"],
        "attributions": [
            {"source": "isw", "stance": "asserts"},
            {"source": "Minsk residents", "stance": "disputes"},
        ],
    })
    assert response.status_code == 201, response.text
    claim = response.json()
    assert claim["status"] == "unverified"
    assert claim["version"] == 1
    assert response.headers["etag"] == '"1"'
    assert response.headers["location"] == f"/v1/claims/{claim['id']}"
    names = {a["source"]["name"] for a in claim["attributions"]}
    assert names == {"Institute for the Study of War", "Minsk residents"}
    assert claim["attributions"][0]["source"]["id"] == isw["id"]
    assert claim["contested"] is True
    found = client.get("/v1/sources", params={"name": "minsk RESIDENTS"}, headers=auth("reader"))
    assert len(found.json()["items"]) == 1


def test_update_claim_needs_current_etag(client, auth):
    claim = make_claim(client, auth("ingester"))
    url = f"/v1/claims/{claim['id']}"
    assert_problem(client.patch(url, json={"text": "x"}, headers=auth("checker")), 428)
    ok = client.patch(url, json={"text": "Thousands of Russian troops are in Belarus."},
                      headers={**auth("checker"), "If-Match": '"1"'})
    assert ok.status_code == 200, ok.text
    assert ok.json()["version"] == 2
    assert ok.headers["etag"] == '"2"'
    stale = client.patch(url, json={"text": "Something else entirely."},
                         headers={**auth("checker"), "If-Match": '"1"'})
    assert_problem(stale, 412, contains="version 2")
    assert client.get(url, headers=auth("reader")).json()["text"] == (
        "Thousands of Russian troops are in Belarus.")


def test_create_claim_rejects_unknown_fields(client, auth):
    response = client.post("/v1/claims", headers=auth("ingester"),
                           json={"text": "A claim.", "status": "true", "version": 9})
    body = assert_problem(response, 422)
    assert {tuple(e["loc"][-1:]) for e in body["errors"]} == {("status",), ("version",)}
    assert client.get("/v1/claims", headers=auth("reader")).json()["items"] == []
