"""Concurrency through a real uvicorn server: If-Match races and many parallel writers."""

import asyncio
import random
import threading
import time

import httpx

from tests.live_server import live_auth, live_secrets, live_server  # noqa: F401

WRITERS = 64
# 64 x 5 POSTs: every POST costs the server CPU (similarity, search index, event
# snapshot), so more would only take longer on 2 cores without testing anything more.
CLAIMS_PER_WRITER = 5
# Bounds, so a deadlock fails the test instead of hanging it (generous: other test runs
# may share the 2 cores).
REQUEST_TIMEOUT = 30.0
ANY = {"If-Match": "*"}  # links and merges need If-Match; any current version will do
OVERALL_TIMEOUT = 90.0
# Distinct claims, as a feed would send them: a few common words and mostly rare ones.
# (Near-identical texts would make every POST score up to 200 near-duplicate candidates,
# which measures the similarity search, not concurrency.)
COMMON = ["troops", "civilians", "border", "forces", "officials", "report"]
SYLLABLES = [consonant + vowel for consonant in "bdklmnrstvz" for vowel in "aeiou"]


def claim_text(rng: random.Random, n: int) -> str:
    rare = ["".join(rng.choices(SYLLABLES, k=4)) for _ in range(9)]
    return f"Claim {n}: " + " ".join(rng.sample(COMMON, 3) + rare) + "."


def test_update_claim_concurrent_same_etag_one_wins(live_server, live_auth):  # noqa: F811
    checker = live_auth("checker")
    with httpx.Client(base_url=live_server.url, timeout=30.0) as client:
        for round_ in range(5):
            created = client.post("/v1/claims", headers=live_auth("ingester"), json={
                "text": f"Troops and military equipment will arrive in Belarus ({round_})."})
            assert created.status_code == 201, created.text
            claim_id = created.json()["id"]
            etag = created.headers["etag"]
            texts = [f"Troops will arrive within two days (editor {n}, round {round_})."
                     for n in range(2)]
            responses = _patch_at_once(live_server.url, claim_id, etag, texts, checker)
            statuses = sorted(r.status_code for r in responses)
            assert statuses == [200, 412], [r.text for r in responses]
            winner = next(n for n, r in enumerate(responses) if r.status_code == 200)
            loser = responses[1 - winner]
            assert loser.headers["content-type"].startswith("application/problem+json")
            problem = loser.json()
            assert problem["status"] == 412 and "version 2" in problem["detail"], problem
            assert responses[winner].headers["etag"] == '"2"'
            assert responses[winner].json()["text"] == texts[winner]
            final = client.get(f"/v1/claims/{claim_id}", headers=live_auth("reader"))
            assert final.status_code == 200
            assert final.json()["text"] == texts[winner]
            assert final.json()["version"] == 2
            assert final.headers["etag"] == '"2"'


def _patch_at_once(url: str, claim_id: str, etag: str, texts: list[str],
                   headers: dict[str, str]) -> list[httpx.Response]:
    """Two PATCHes with the same If-Match, released together from two threads."""
    start = threading.Barrier(len(texts), timeout=10)
    results: list[httpx.Response | BaseException | None] = [None] * len(texts)

    def edit(n: int) -> None:
        # Its own client: its own connection, so both requests are truly in flight at once.
        try:
            with httpx.Client(base_url=url, timeout=30.0) as own:
                start.wait()
                results[n] = own.patch(f"/v1/claims/{claim_id}", json={"text": texts[n]},
                                       headers={**headers, "If-Match": etag})
        except BaseException as exc:  # handed to the test's thread below
            results[n] = exc

    threads = [threading.Thread(target=edit, args=(n,), daemon=True) for n in range(len(texts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=40)
    assert not any(t.is_alive() for t in threads), "a PATCH hung"
    for result in results:
        if not isinstance(result, httpx.Response):
            raise AssertionError(f"a PATCH failed: {result!r}")
    return results  # type: ignore[return-value]


async def _write_claims(url: str, headers: dict[str, str],
                        source_id: str) -> list[tuple[int, str]]:
    """WRITERS concurrent writers, each POSTing its claims in turn: (status, id or error)."""
    # Idle connections are dropped after 2 s, well before uvicorn closes them (5 s). With
    # httpx's default (also 5 s) a request sent on a connection just as the server times
    # it out fails with ReadError: an HTTP keep-alive race, not a fault of the app.
    limits = httpx.Limits(max_connections=WRITERS, max_keepalive_connections=WRITERS,
                          keepalive_expiry=2.0)
    timeout = httpx.Timeout(REQUEST_TIMEOUT, pool=OVERALL_TIMEOUT)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout) as client:

        async def writer(n: int) -> list[tuple[int, str]]:
            rng = random.Random(n)
            out = []
            for i in range(CLAIMS_PER_WRITER):
                try:
                    response = await client.post("/v1/claims", headers=headers, json={
                        "text": claim_text(rng, n * CLAIMS_PER_WRITER + i),
                        "topics": ["casualties"],
                        "attributions": [{"source_id": source_id, "stance": "asserts"}],
                    })
                except httpx.TransportError as exc:
                    out.append((0, repr(exc)))
                    continue
                out.append((response.status_code,
                            response.json()["id"] if response.status_code == 201
                            else response.text))
            return out

        results = await asyncio.gather(*(writer(n) for n in range(WRITERS)))
    return [item for batch in results for item in batch]


def test_create_claim_64_concurrent_writers_lose_nothing(live_server, live_auth):  # noqa: F811
    ingester = live_auth("ingester")
    source = httpx.post(f"{live_server.url}/v1/sources", headers=ingester, timeout=30.0,
                        json={"name": "United Nations", "kind": "intergovernmental"})
    assert source.status_code == 201, source.text
    source_id = source.json()["id"]

    started = time.monotonic()
    results = asyncio.run(asyncio.wait_for(
        _write_claims(live_server.url, ingester, source_id), timeout=OVERALL_TIMEOUT))
    elapsed = time.monotonic() - started

    with httpx.Client(base_url=live_server.url, timeout=REQUEST_TIMEOUT) as client:
        failures = [(status, body) for status, body in results if status != 201]
        assert not failures, f"{len(failures)} of {len(results)} failed, e.g. {failures[:3]}"
        acknowledged = [body for _, body in results]
        assert len(acknowledged) == WRITERS * CLAIMS_PER_WRITER
        assert len(set(acknowledged)) == len(acknowledged), "two POSTs got the same id"

        stored: dict[str, dict] = {}
        cursor = None
        for _ in range(100):
            params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
            page = client.get("/v1/claims", params=params, headers=live_auth("reader"))
            assert page.status_code == 200, page.text
            stored.update((c["id"], c) for c in page.json()["items"])
            cursor = page.json()["next_cursor"]
            if cursor is None:
                break
        assert set(stored) == set(acknowledged)
        for claim in stored.values():
            assert [a["source"]["id"] for a in claim["attributions"]] == [source_id]
            assert claim["version"] == 1 and claim["topics"] == ["casualties"]

        # ...and the change feed has exactly one `claim.created` per claim, in id order.
        created: list[tuple[int, str]] = []
        cursor = None
        for _ in range(100):
            params = {"limit": 200, "action": "claim.created", **({"cursor": cursor} if cursor
                                                                   else {})}
            page = client.get("/v1/events", params=params, headers=live_auth("reader"))
            assert page.status_code == 200, page.text
            if not page.json()["items"]:
                break
            created += [(e["id"], e["entity_id"]) for e in page.json()["items"]]
            cursor = page.json()["next_cursor"]
        assert [event_id for event_id, _ in created] == sorted({i for i, _ in created})
        assert sorted(claim_id for _, claim_id in created) == sorted(acknowledged)
    print(f"{len(results)} concurrent POSTs in {elapsed:.2f}s "
          f"({len(results) / elapsed:.0f}/s) on {live_server.settings.database_url.split(':')[0]}")


def test_write_same_claims_from_both_ends_concurrently(live_server, live_auth):  # noqa: F811
    """Pairs of writes that lock the same two claims from opposite ends, released together.

    Links X->Y with Y->X, merges X<-Y with Y<-X, and an ingest batch updating P and Q with
    a PATCH of Q: each pair must end in documented answers (2xx, 409 for the losing merge,
    412 for a PATCH that lost to the ingest), never a 5xx.
    """
    admin = live_auth("admin")
    url = live_server.url
    outcomes: list[tuple[str, int, str]] = []
    with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT, headers=admin) as client:

        def new_claim(text: str, **fields) -> str:
            response = client.post("/v1/claims", json={"text": text, **fields})
            assert response.status_code == 201, response.text
            return response.json()["id"]

        for round_ in range(8):
            x = new_claim(f"Round {round_}: Russia massed troops north of Kyiv.")
            y = new_claim(f"Round {round_}: Belarus hosted drills near the border.")
            pairs = {
                "link": [("POST", f"/v1/claims/{x}/links", {"target_id": y, "kind": "related"},
                          ANY),
                         ("POST", f"/v1/claims/{y}/links", {"target_id": x, "kind": "related"},
                          ANY)],
                "merge": [("POST", f"/v1/claims/{x}/merge", {"duplicate_id": y}, ANY),
                          ("POST", f"/v1/claims/{y}/merge", {"duplicate_id": x}, ANY)],
            }
            new_claim(f"Round {round_}: grain exports fell.", origin="feed",
                      external_id=f"p{round_}")
            q = new_claim(f"Round {round_}: fuel prices rose.", origin="feed",
                          external_id=f"q{round_}")
            pairs["ingest+patch"] = [
                ("POST", "/v1/ingest", [
                    {"text": f"Round {round_}: grain exports fell by half.", "origin": "feed",
                     "external_id": f"p{round_}"},
                    {"text": f"Round {round_}: fuel prices rose sharply.", "origin": "feed",
                     "external_id": f"q{round_}"}], {}),
                ("PATCH", f"/v1/claims/{q}", {"topics": ["fuel"]}, {"If-Match": '"1"'}),
            ]
            for kind, requests in pairs.items():
                for n, response in enumerate(_send_at_once(url, admin, requests)):
                    label = kind.split("+")[n] if "+" in kind else kind
                    outcomes.append((label, response.status_code, response.text[:200]))

    # These pairs lock the same rows from opposite ends; on PostgreSQL they deadlocked
    # (503) until write transactions queued on one lock from their first statement.
    server_errors = [o for o in outcomes if o[1] >= 500]
    assert not server_errors, server_errors
    assert {status for kind, status, _ in outcomes if kind == "link"} == {201}
    merges = [status for kind, status, _ in outcomes if kind == "merge"]
    assert sorted(merges) == [200] * 8 + [409] * 8, merges  # one of each pair wins
    assert {status for kind, status, _ in outcomes if kind == "ingest"} == {200}
    # The PATCH read version 1: it wins, or finds the ingest's update first (412).
    assert {status for kind, status, _ in outcomes if kind == "patch"} <= {200, 412}


def _send_at_once(url: str, headers: dict[str, str],
                  requests: list[tuple[str, str, object, dict[str, str]]]) -> list[httpx.Response]:
    """Send each request from its own thread and connection, released by one barrier."""
    start = threading.Barrier(len(requests), timeout=10)
    results: list[httpx.Response | BaseException | None] = [None] * len(requests)

    def send(n: int) -> None:
        method, path, body, extra = requests[n]
        try:
            with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT) as own:
                start.wait()
                results[n] = own.request(method, path, json=body, headers={**headers, **extra})
        except BaseException as exc:  # handed to the test's thread below
            results[n] = exc

    threads = [threading.Thread(target=send, args=(n,), daemon=True)
               for n in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=REQUEST_TIMEOUT + 10)
    assert not any(t.is_alive() for t in threads), "a request hung"
    for result in results:
        if not isinstance(result, httpx.Response):
            raise AssertionError(f"a request failed: {result!r}")
    return results  # type: ignore[return-value]
