"""A small HTTP client for ingestion jobs: batches, retries with backoff, idempotency keys.

    from app.client import ClaimledgerClient
    with ClaimledgerClient("http://127.0.0.1:8000", key) as client:
        result = client.ingest([{"text": "…", "attributions": [...]}])

Each batch carries an Idempotency-Key derived from its content, so re-sending it after a
timeout or a crash replays the first answer instead of ingesting twice.
"""

import hashlib
import json
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

RETRY_STATUSES = {409, 429, 502, 503, 504}


class ClaimledgerError(Exception):
    """The server refused a request (a problem+json body is in `problem`)."""

    def __init__(self, status: int, problem: dict[str, Any], *, replayed: bool = False):
        super().__init__(f"{status}: {problem.get('detail', problem)}")
        self.status, self.problem, self.replayed = status, problem, replayed


@dataclass
class Ingested:
    """One batch's answer; `replayed` when the server had already ingested that batch."""

    result: dict[str, Any]
    replayed: bool = False


class ClaimledgerClient:
    def __init__(self, base_url: str, key: str, *, timeout: float = 60.0, retries: int = 6,
                 backoff: float = 0.5, transport: httpx.BaseTransport | None = None):
        self.retries, self.backoff = retries, backoff
        self.http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout,
                                 headers={"Authorization": f"Bearer {key}"}, transport=transport)

    def __enter__(self) -> "ClaimledgerClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, path: str, *, idempotency_key: str | None = None,
                **kwargs: Any) -> httpx.Response:
        """Send, retrying network errors, 409 (in flight), 429 and 5xx with backoff."""
        headers = dict(kwargs.pop("headers", {}) or {})
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        for attempt in range(self.retries + 1):
            try:
                response = self.http.request(method, path, headers=headers, **kwargs)
            except httpx.TransportError:
                if attempt == self.retries:
                    raise
                time.sleep(self.backoff * 2**attempt)
                continue
            # A 409 is retried only when it is a request in flight (it says Retry-After);
            # one naming a conflict with the data will not go away.
            retry = response.status_code in RETRY_STATUSES and (
                response.status_code != 409 or "Retry-After" in response.headers)
            if retry and attempt < self.retries:
                delay = _retry_after(response)
                time.sleep(self.backoff * 2**attempt if delay is None else delay)
                continue
            if response.status_code >= 400:
                raise ClaimledgerError(response.status_code, _problem(response),
                                       replayed=_replayed(response))
            return response
        raise AssertionError("unreachable")

    def ingest(self, items: list[dict[str, Any]], *,
               idempotency_key: str | None = None) -> dict[str, Any]:
        """POST one batch to /v1/ingest; per-item results come back in order."""
        return self.ingest_batch(items, idempotency_key=idempotency_key).result

    def ingest_batch(self, items: list[dict[str, Any]], *,
                     idempotency_key: str | None = None) -> Ingested:
        """As `ingest`, also saying whether the answer is a replay of an earlier run's."""
        key = idempotency_key or batch_key(items)
        body = json.dumps(items, ensure_ascii=False).encode()
        try:
            response = self.request("POST", "/v1/ingest", content=body, idempotency_key=key,
                                    headers={"Content-Type": "application/json"})
        except ClaimledgerError as exc:
            if exc.status == 422 and "results" in exc.problem:
                return Ingested({"summary": {"received": len(items), "created": 0,
                                             "duplicate": 0, "updated": 0, "unchanged": 0,
                                             "error": len(items)},
                                 "items": exc.problem["results"]},
                                replayed=exc.replayed)
            raise
        return Ingested(response.json(), replayed=_replayed(response))

    def create_claim(self, claim: dict[str, Any], *,
                     idempotency_key: str | None = None) -> dict[str, Any]:
        """Register one claim; retries reuse one idempotency key, so it is created once."""
        return self.request("POST", "/v1/claims", json=claim,
                            idempotency_key=idempotency_key or f"claim-{uuid.uuid4()}").json()

    def get_claim(self, claim_id: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/claims/{claim_id}").json()

    def search(self, q: str, **filters: Any) -> Iterator[dict[str, Any]]:
        """Every claim matching the search, following cursors."""
        params: dict[str, Any] = {"q": q, "limit": 200, **filters}
        while True:
            page = self.request("GET", "/v1/claims", params=params).json()
            yield from page["items"]
            if not page.get("next_cursor"):
                return
            params["cursor"] = page["next_cursor"]


def batch_key(items: list[dict[str, Any]]) -> str:
    """The same batch always gets the same key, so a rerun replays rather than repeats."""
    canonical = json.dumps(items, sort_keys=True, ensure_ascii=False).encode()
    return "batch-" + hashlib.sha256(canonical).hexdigest()


def read_items(path: Path) -> Iterator[Any]:
    """Items from an NDJSON file (one claim per line) or a JSON array file.

    An NDJSON line that is not JSON comes out as a ValueError instance, so the caller can
    report it and go on with the rest.
    """
    with path.open(encoding="utf-8-sig") as handle:  # -sig: a leading BOM is not data
        head = handle.read(1)
        while head and head.isspace():
            head = handle.read(1)
        handle.seek(0)
        if head == "[":
            yield from json.load(handle)
            return
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except ValueError as exc:
                    yield ValueError(f"line {number} is not JSON ({exc})")


def count_items(path: Path) -> int:
    """How many items `read_items` will yield: a JSON array's length, or non-blank lines."""
    with path.open("rb") as handle:
        head = handle.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
        if head.startswith(b"["):
            try:
                handle.seek(0)
                items = json.loads(handle.read().decode("utf-8-sig"))
            except ValueError:
                return 0  # read_items will say what is wrong with it
            return len(items) if isinstance(items, list) else 1
        handle.seek(0)
        return sum(1 for line in handle if line.strip())


def batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _replayed(response: httpx.Response) -> bool:
    return response.headers.get("Idempotent-Replayed", "").lower() == "true"


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return min(float(response.headers.get("Retry-After", "")), 60.0)
    except ValueError:
        return None


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {"detail": response.text[:500]}
    return body if isinstance(body, dict) else {"detail": str(body)[:500]}
