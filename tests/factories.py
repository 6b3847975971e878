"""Small builders for test data, going through the HTTP API like a user would."""

from typing import Any

from fastapi.testclient import TestClient


def claim_body(text: str = "Thousands of Russian soldiers have been stationed in Belarus since "
               "October.", **fields: Any) -> dict[str, Any]:
    return {"text": text, **fields}


def make_source(client: TestClient, headers: dict[str, str], name: str = "Government of Ukraine",
                **fields: Any) -> dict[str, Any]:
    response = client.post("/v1/sources", json={"name": name, **fields}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def make_claim(client: TestClient, headers: dict[str, str], text: str | None = None,
               **fields: Any) -> dict[str, Any]:
    body = claim_body(**fields) if text is None else claim_body(text, **fields)
    response = client.post("/v1/claims", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def review(client: TestClient, headers: dict[str, str], claim_id: str, status: str,
           rationale: str | None = "checked against the OHCHR report") -> dict[str, Any]:
    response = client.post(f"/v1/claims/{claim_id}/reviews",
                           json={"status": status, "rationale": rationale}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def assert_problem(response, status: int, *, contains: str | None = None) -> dict[str, Any]:
    """The response is an RFC 9457 problem with this status and a useful detail."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert body["title"] and body["detail"]
    if contains is not None:
        assert contains.lower() in body["detail"].lower(), body["detail"]
    return body
