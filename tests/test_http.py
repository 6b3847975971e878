"""HTTP semantics (RFC 9110): If-Match in every form."""


import pytest

from tests.factories import assert_problem, ledger_state, make_claim, make_source


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
    response = client.post(f"/v1/claims/{claim['id']}/reviews", json={"status": "in_review"},
                           headers={**auth("checker"), "If-Match": f'W/"{current}"'})
    assert_problem(response, 412, contains="weak")


def test_if_match_optional_routes_take_every_form(client, auth, claim):
    url = f"/v1/claims/{claim['id']}/reviews"
    current = _version(client, auth, f"/v1/claims/{claim['id']}")
    assert_problem(client.post(url, json={"status": "in_review"},
                               headers={**auth("checker"), "If-Match": '"stale-0"'}), 412)
    response = client.post(url, json={"status": "in_review"},
                           headers={**auth("checker"), "If-Match": f'"9", "{current}"'})
    assert response.status_code == 201, response.text
    response = client.post(url, json={"status": "false", "rationale": "The report says not."},
                           headers={**auth("checker"), "If-Match": "*"})
    assert response.status_code == 201, response.text


def test_if_match_malformed_is_400(client, auth, claim, source):
    for url, edit in _targets(claim, source):
        for value in ("1", "abc", "W/1", '"1', '"1" "2"', '*, "1"', "**", '"a"b"', ",",
                      'w/"1"', '"1";', "'1'"):
            response = client.patch(url, json=edit,
                                    headers={**auth("checker"), "If-Match": value})
            assert response.status_code == 400, (value, response.text)
            assert_problem(response, 400, contains="If-Match")
