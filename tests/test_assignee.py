"""Assigning a claim to a checker: PUT /v1/claims/{claim_id}/assignee, its events and filter."""

from tests.factories import all_pages, assert_problem, get_json, make_claim, with_version


def assign(client, headers, claim_id: str, assignee, version):
    return client.put(f"/v1/claims/{claim_id}/assignee", json={"assignee": assignee},
                      headers=with_version(headers, version))


def test_assign_claim_records_event_and_bumps_version(client, auth):
    claim = make_claim(client, auth("ingester"))
    response = assign(client, auth("checker"), claim["id"], "test-checker", claim["version"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["assignee"] == "test-checker"
    assert body["version"] == claim["version"] + 1
    assert response.headers["ETag"] == f'"{body["version"]}"'
    read = get_json(client, f"/v1/claims/{claim['id']}", auth("reader"))
    assert read["assignee"] == "test-checker"
    events = all_pages(client, f"/v1/claims/{claim['id']}/history", auth("reader"))
    assigned = [e for e in events if e["action"] == "claim.assigned"]
    assert len(assigned) == 1
    assert assigned[0]["changes"] == {"assignee": {"from": None, "to": "test-checker"}}
    assert assigned[0]["actor"] == "test-checker"


def test_unassign_claim_with_null(client, auth):
    claim = make_claim(client, auth("ingester"))
    first = assign(client, auth("checker"), claim["id"], "someone", claim["version"]).json()
    response = assign(client, auth("checker"), claim["id"], None, first["version"])
    assert response.status_code == 200, response.text
    assert response.json()["assignee"] is None


def test_assign_claim_same_assignee_records_nothing(client, auth):
    claim = make_claim(client, auth("ingester"))
    first = assign(client, auth("checker"), claim["id"], "someone", claim["version"]).json()
    again = assign(client, auth("checker"), claim["id"], "someone", first["version"])
    assert again.status_code == 200
    assert again.json()["version"] == first["version"]


def test_assign_claim_stale_or_missing_if_match(client, auth):
    claim = make_claim(client, auth("ingester"))
    assign(client, auth("checker"), claim["id"], "a", claim["version"])
    stale = assign(client, auth("checker"), claim["id"], "b", claim["version"])
    assert_problem(stale, 412)
    missing = client.put(f"/v1/claims/{claim['id']}/assignee", json={"assignee": "b"},
                         headers=auth("checker"))
    assert_problem(missing, 428)


def test_assign_claim_bad_input(client, auth):
    claim = make_claim(client, auth("ingester"))
    url = f"/v1/claims/{claim['id']}/assignee"
    headers = with_version(auth("checker"), claim["version"])
    for body in ({}, {"assignee": ""}, {"assignee": "   "}, {"assignee": "x" * 201},
                 {"assignee": 5}, {"assignee": "a", "extra": 1}, {"assignee": "a\x00b"}):
        assert_problem(client.put(url, json=body, headers=headers), 422)
    assert_problem(client.put("/v1/claims/clm_missing/assignee", json={"assignee": "a"},
                              headers=with_version(auth("checker"), 1)), 404)


def test_assign_claim_needs_checker(client, auth):
    claim = make_claim(client, auth("ingester"))
    for role in ("reader", "ingester"):
        assert_problem(assign(client, auth(role), claim["id"], "a", claim["version"]), 403)
    response = client.put(f"/v1/claims/{claim['id']}/assignee", json={"assignee": "a"})
    assert_problem(response, 401)


def test_list_claims_filtered_by_assignee(client, auth):
    mine = make_claim(client, auth("ingester"), "Troops will arrive in Belarus within two days.")
    make_claim(client, auth("ingester"), "At least 6,700 civilian deaths have been counted.")
    assign(client, auth("checker"), mine["id"], "desk-checker", mine["version"])
    listed = get_json(client, "/v1/claims", auth("reader"), assignee="desk-checker")
    assert [c["id"] for c in listed["items"]] == [mine["id"]]
    assert get_json(client, "/v1/claims", auth("reader"), assignee="nobody")["items"] == []
