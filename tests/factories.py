"""Small builders for test data, going through the HTTP API like a user would."""

from typing import Any

from fastapi.testclient import TestClient

# Claims of the Belarus article that many tests write.
SOLDIERS = "Thousands of Russian soldiers have been stationed in Belarus since October."
SOLDIERS_EDITED = "Tens of thousands of Russian soldiers have been stationed in Belarus."
NO_FORCES = "Russia does not currently have enough forces in Belarus to launch an attack."


def bearer(secret: str) -> dict[str, str]:
    """The Authorization header for this key's secret."""
    return {"Authorization": f"Bearer {secret}"}


def claim_body(text: str = SOLDIERS, **fields: Any) -> dict[str, Any]:
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


def current(client: TestClient, headers: dict[str, str], claim_id: str) -> dict[str, str]:
    """These headers plus `If-Match` with the claim's current ETag (as a checker would send)."""
    response = client.get(f"/v1/claims/{claim_id}", headers=headers)
    assert response.status_code == 200, response.text
    return {**headers, "If-Match": response.headers["ETag"]}


def review(client: TestClient, headers: dict[str, str], claim_id: str, status: str,
           rationale: str | None = "checked against the OHCHR report") -> dict[str, Any]:
    response = client.post(f"/v1/claims/{claim_id}/reviews",
                           json={"status": status, "rationale": rationale},
                           headers=current(client, headers, claim_id))
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


# --- helpers for roles, bad input, history, sources, links, keys and demo tests ---------


def with_version(headers: dict[str, str], version: int | str) -> dict[str, str]:
    """These headers plus `If-Match` for the given version (or a raw If-Match value)."""
    value = f'"{version}"' if isinstance(version, int) else version
    return {**headers, "If-Match": value}


def get_json(client: Any, url: str, headers: dict[str, str], **params: Any) -> Any:
    response = client.get(url, params=params or None, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def add_attribution(client: TestClient, headers: dict[str, str], claim_id: str,
                    **fields: Any) -> dict[str, Any]:
    response = client.post(f"/v1/claims/{claim_id}/attributions", json=fields, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def make_link(client: TestClient, headers: dict[str, str], claim_id: str, target_id: str,
              kind: str = "related", **fields: Any) -> dict[str, Any]:
    response = client.post(f"/v1/claims/{claim_id}/links",
                           json={"target_id": target_id, "kind": kind, **fields},
                           headers=current(client, headers, claim_id))
    assert response.status_code == 201, response.text
    return response.json()


def make_key(client: TestClient, headers: dict[str, str], name: str,
             role: str = "reader") -> dict[str, Any]:
    response = client.post("/v1/keys", json={"name": name, "role": role}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def all_pages(client: Any, url: str, headers: dict[str, str], *, limit: int = 200,
              **params: Any) -> list[dict[str, Any]]:
    """Every item of a cursor-paged list (stops when `next_cursor` is null or a page is empty)."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, "limit": limit} | ({"cursor": cursor} if cursor else {})
        page = get_json(client, url, headers, **query)
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if not cursor or not page["items"]:
            return items


def all_claims(client: Any, headers: dict[str, str]) -> list[dict[str, Any]]:
    """Every claim, merged ones too, read page by page (TestClient or httpx.Client)."""
    return all_pages(client, "/v1/claims", headers, include_merged="true")


def ledger_state(client: TestClient, headers: dict[str, str]) -> dict[str, Any]:
    """Everything a write could change, to assert that a refused request changed nothing."""
    return {
        "claims": all_pages(client, "/v1/claims", headers, include_merged="true"),
        "sources": all_pages(client, "/v1/sources", headers),
        "events": all_pages(client, "/v1/events", headers),
    }


# --- helpers for ingest, idempotency, search, similar, stats and client tests ----------

NDJSON = {"content-type": "application/x-ndjson"}


def ingest(client: TestClient, headers: dict[str, str], items: list[Any], *,
           status: int = 200) -> dict[str, Any]:
    """POST a JSON batch to /v1/ingest; returns the response body (a result or a problem)."""
    response = client.post("/v1/ingest", json=items, headers=headers)
    assert response.status_code == status, response.text
    return response.json()


def ledger_counts(client: TestClient, headers: dict[str, str]) -> dict[str, int]:
    """How many claims (merged included), sources and events the ledger holds."""
    return {name: len(rows) for name, rows in ledger_state(client, headers).items()}


def search_ids(client: TestClient, headers: dict[str, str], q: str, **params: Any) -> list[str]:
    """Ids of the claims a search finds, in result order, across every page."""
    return [c["id"] for c in all_pages(client, "/v1/claims", headers, q=q, **params)]


def claim_of(client: TestClient, auth: Any, claim_id: str) -> dict[str, Any]:
    """The claim as a reader sees it (`auth` is the conftest fixture)."""
    return get_json(client, f"/v1/claims/{claim_id}", auth("reader"))


def listed(client: TestClient, auth: Any, **params: Any) -> list[str]:
    """The ids of every claim `GET /v1/claims` lists with these parameters, all pages."""
    return [c["id"] for c in all_pages(client, "/v1/claims", auth("reader"), **params)]


def merge(client: TestClient, auth: Any, target_id: str, duplicate_id: str):
    """Merge `duplicate_id` into `target_id` as a checker; the response."""
    return client.post(f"/v1/claims/{target_id}/merge", json={"duplicate_id": duplicate_id},
                       headers={**auth("checker"), "If-Match": "*"})


def history(client: TestClient, auth: Any, claim_id: str) -> list[dict[str, Any]]:
    """A claim's history, oldest first (its first 200 events)."""
    return get_json(client, f"/v1/claims/{claim_id}/history", auth("reader"),
                    limit=200)["items"]


def event_count(client: Any, headers: dict[str, str]) -> int:
    """How many events the feed's first page of 200 holds (TestClient or httpx.Client)."""
    response = client.get("/v1/events", params={"limit": 200}, headers=headers)
    assert response.status_code == 200, response.text
    return len(response.json()["items"])
