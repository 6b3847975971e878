"""The ingestion client (app.client) and `claimledger import`, locally and against a server."""

import io
import json
import re
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from app import cli as cli_module
from app.client import (
    ClaimledgerClient,
    ClaimledgerError,
    batch_key,
    batches,
    count_items,
    read_items,
)
from tests.factories import all_claims, event_count, get_json
from tests.live_server import live_auth, live_secrets, live_server  # noqa: F401

SOURCES = ["Government of Ukraine", "ISW", "United Nations", "BelTA", "OHCHR"]
WORDS = (  # noqa: SIM905  (a word list reads better as prose)
    "russian belarusian ukrainian troops soldiers civilians forces equipment border minsk kyiv "
    "sumy chernihiv october november december january regions officials ministry council "
    "agency report counted killed stationed arrived attack operation information exercise "
    "military tanks artillery aircraft drones missiles brigade battalion convoy railway"
).split()


def feed_items(count: int) -> list[dict]:
    """Claims as a scraper would send them: distinct texts, a handful of recurring sources."""
    items = []
    for n in range(count):
        words = [WORDS[(n * 7 + k * 5) % len(WORDS)] for k in range(8)]
        items.append({
            "text": f"Report {n}: " + " ".join(words) + ".",
            "origin": "test-feed", "external_id": f"item-{n}",
            "attributions": [{"source": SOURCES[n % len(SOURCES)], "stance": "asserts"}],
        })
    return items


def write_ndjson(path: Path, items: list, *, bad_lines: dict[int, str] | None = None) -> Path:
    lines = [json.dumps(item) for item in items]
    for at, raw in sorted((bad_lines or {}).items()):
        lines.insert(at, raw)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --- the client against a real server ---------------------------------------------------


def test_ingest_client_file_in_batches_against_live_server(
        live_server, live_secrets, live_auth, tmp_path):  # noqa: F811
    items = feed_items(25)
    path = write_ndjson(tmp_path / "feed.ndjson", items)
    results = []
    with ClaimledgerClient(live_server.url, live_secrets["ingester"]) as client:
        for batch in batches(read_items(path), 10):
            results.append(client.ingest(batch))
    assert [r["summary"]["received"] for r in results] == [10, 10, 5]
    assert sum(r["summary"]["created"] for r in results) == 25
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        claims = all_claims(http, live_auth("reader"))
        assert sorted(c["text"] for c in claims) == sorted(i["text"] for i in items)
        sources = http.get("/v1/sources", headers=live_auth("reader")).json()["items"]
        assert sorted(s["name"] for s in sources) == sorted(SOURCES)
        found = list(ClaimledgerClient(live_server.url, live_secrets["reader"]).search("report"))
        assert len(found) == 25


def test_ingest_client_same_batch_twice_is_replayed(
        live_server, live_secrets, live_auth):  # noqa: F811
    batch = feed_items(5)
    with ClaimledgerClient(live_server.url, live_secrets["ingester"]) as client, \
            httpx.Client(base_url=live_server.url, timeout=30) as http:
        first = client.ingest(batch)
        assert first["summary"]["created"] == 5
        events = event_count(http, live_auth("reader"))
        second = client.ingest(batch)
        # The first answer again ("created", the same ids), not a second run ("updated").
        assert second == first
        raw = client.request("POST", "/v1/ingest", idempotency_key=batch_key(batch),
                             content=json.dumps(batch, ensure_ascii=False).encode(),
                             headers={"Content-Type": "application/json"})
        assert raw.headers["idempotent-replayed"] == "true"
        assert len(all_claims(http, live_auth("reader"))) == 5
        assert event_count(http, live_auth("reader")) == events
        # Without the key, a rerun is folded by origin + external_id: unchanged, still 5 claims.
        again = client.ingest(batch, idempotency_key="another-run")
        assert again["summary"]["unchanged"] == 5
        assert len(all_claims(http, live_auth("reader"))) == 5


# --- retries, with a scripted server ------------------------------------------------------


class Script:
    """A MockTransport handler answering from a list of (status, headers, body)."""

    def __init__(self, *answers: tuple[int, dict[str, str], object]):
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status, headers, body = self.answers.pop(0)
        if isinstance(body, Exception):
            raise body
        return httpx.Response(status, headers=headers, json=body)


RESULT = {"summary": {"received": 1, "created": 1, "duplicate": 0, "updated": 0,
                      "unchanged": 0, "error": 0},
          "items": [{"index": 0, "status": "created", "claim_id": "clm_1",
                     "attributions_added": 0, "similar": [], "error": None}]}
BUSY = {"type": "about:blank", "title": "Service Unavailable", "status": 503,
        "detail": "the database is busy; retry shortly"}


def scripted_client(script: Script, **options) -> ClaimledgerClient:
    return ClaimledgerClient("http://claimledger.test", "clk_secret", backoff=0,
                             transport=httpx.MockTransport(script), **options)


def test_ingest_client_retries_503_then_succeeds(client):
    script = Script((503, {"Retry-After": "0"}, BUSY), (503, {"Retry-After": "0"}, BUSY),
                    (200, {}, RESULT))
    with scripted_client(script) as ledger:
        assert ledger.ingest([{"text": "A claim."}]) == RESULT
    assert len(script.requests) == 3
    keys = {r.headers["Idempotency-Key"] for r in script.requests}
    assert keys == {batch_key([{"text": "A claim."}])}
    assert {r.headers["Authorization"] for r in script.requests} == {"Bearer clk_secret"}
    assert len({r.content for r in script.requests}) == 1


def test_ingest_client_retries_429_409_and_network_errors(client):
    script = Script((429, {"Retry-After": "0"}, {"status": 429, "detail": "slow down"}),
                    (0, {}, httpx.ConnectError("connection refused")),
                    (409, {"Retry-After": "0"}, {"status": 409, "detail": "in progress"}),
                    (200, {}, RESULT))
    with scripted_client(script) as ledger:
        assert ledger.ingest([{"text": "A claim."}], idempotency_key="k-1") == RESULT
    assert [r.headers["Idempotency-Key"] for r in script.requests] == ["k-1"] * 4


def test_ingest_client_gives_up_after_retries(client):
    script = Script(*[(503, {"Retry-After": "0"}, BUSY)] * 3)
    with scripted_client(script, retries=2) as ledger, \
            pytest.raises(ClaimledgerError) as refused:
        ledger.ingest([{"text": "A claim."}])
    assert refused.value.status == 503
    assert len(script.requests) == 3


def test_ingest_client_does_not_retry_client_errors(client):
    problem = {"status": 403, "title": "Forbidden", "detail": "this needs the ingester role"}
    script = Script((403, {}, problem))
    with scripted_client(script) as ledger, pytest.raises(ClaimledgerError) as refused:
        ledger.ingest([{"text": "A claim."}])
    assert refused.value.status == 403 and "ingester" in str(refused.value)
    assert len(script.requests) == 1


def test_create_claim_client_does_not_retry_a_real_conflict(client):
    # A 409 with Retry-After is a request still in flight: worth retrying. One without it
    # (the external id is taken, the name belongs to another source) will never succeed.
    problem = {"status": 409, "title": "Conflict", "detail": "external_id 7 already exists"}
    script = Script((409, {}, problem))
    with scripted_client(script) as ledger, pytest.raises(ClaimledgerError) as refused:
        ledger.create_claim({"text": "A claim.", "origin": "feed", "external_id": "7"})
    assert refused.value.status == 409
    assert len(script.requests) == 1


def test_ingest_client_all_failed_batch_gives_item_results(client, auth):
    # Through the app itself, so the 422's results are the real ones.
    ledger = ClaimledgerClient("http://testserver", "", transport=client._transport)
    ledger.http.headers.update(auth("ingester"))
    result = ledger.ingest([{"text": ""}, {"nope": 1}])
    assert result["summary"] == {"received": 2, "created": 0, "duplicate": 0, "updated": 0,
                                 "unchanged": 0,
                                 "error": 2}
    assert [r["status"] for r in result["items"]] == ["error", "error"]


def test_import_cli_file_with_byte_order_mark(client, auth, run_cli, tmp_path):
    # Editors and spreadsheet exports on Windows start UTF-8 files with a BOM.
    items = feed_items(3)
    for name, text in (("feed.ndjson", "\n".join(json.dumps(i) for i in items)),
                       ("feed.json", json.dumps(items))):
        path = tmp_path / name
        path.write_text("\ufeff" + text, encoding="utf-8")
        assert list(read_items(path)) == items
    result = run_cli("import", str(tmp_path / "feed.ndjson"))
    assert result.exit_code == 0, result.output
    assert len(all_claims(client, auth("reader"))) == 3


def test_read_items_json_array_and_ndjson(tmp_path):
    items = feed_items(3)
    array = tmp_path / "items.json"
    array.write_text("\n  " + json.dumps(items), encoding="utf-8")
    assert list(read_items(array)) == items
    ndjson = write_ndjson(tmp_path / "items.ndjson", items, bad_lines={1: "{broken"})
    read = list(read_items(ndjson))
    assert read[0] == items[0] and read[2:] == items[1:]
    assert isinstance(read[1], ValueError) and "line 2" in str(read[1])


# --- claimledger import -------------------------------------------------------------------


def test_import_cli_local_file_and_rerun_creates_nothing(client, auth, run_cli, tmp_path):
    items = feed_items(12)
    path = write_ndjson(tmp_path / "feed.ndjson", items)
    result = run_cli("import", str(path), "--batch-size", "5")
    assert result.exit_code == 0, result.output
    assert "12 received, 12 created, 0 duplicate, 0 updated, 0 unchanged, 0 error" in result.output
    claims = all_claims(client, auth("reader"))
    assert sorted(c["text"] for c in claims) == sorted(i["text"] for i in items)
    assert {c["created_by"] for c in claims} == {"cli"}
    names = [s["name"] for s in get_json(client, "/v1/sources", auth("reader"))["items"]]
    assert sorted(names) == sorted(SOURCES)
    events = event_count(client, auth("reader"))
    rerun = run_cli("import", str(path), "--batch-size", "5")
    assert rerun.exit_code == 0, rerun.output
    # Known by origin + external_id, unchanged: nothing new, nothing rewritten.
    assert "12 received, 0 created, 0 duplicate, 0 updated, 12 unchanged, 0 error" in rerun.output
    assert [c["version"] for c in all_claims(client, auth("reader"))] == [1] * 12
    assert len(get_json(client, "/v1/sources", auth("reader"))["items"]) == len(SOURCES)
    assert event_count(client, auth("reader")) == events


def test_import_cli_json_array_file(client, auth, run_cli, tmp_path):
    path = tmp_path / "feed.json"
    path.write_text(json.dumps(feed_items(4)), encoding="utf-8")
    result = run_cli("import", str(path))
    assert result.exit_code == 0, result.output
    assert len(all_claims(client, auth("reader"))) == 4


def test_import_cli_bad_line_reported_rest_imported(client, auth, run_cli, tmp_path):
    items = feed_items(6)
    path = write_ndjson(tmp_path / "feed.ndjson", items,
                        bad_lines={2: '{"text": "half a line', 5: "<html>"})
    result = run_cli("import", str(path), "--batch-size", "3")
    assert result.exit_code == 2, result.output
    assert "line 3 is not JSON" in result.output
    assert "line 6 is not JSON" in result.output
    assert "8 received, 6 created, 0 duplicate, 0 updated, 0 unchanged, 2 error" in result.output
    assert sorted(c["text"] for c in all_claims(client, auth("reader"))) == sorted(
        i["text"] for i in items)


def test_import_cli_invalid_items_reported(client, auth, run_cli, tmp_path):
    items = feed_items(3)
    path = write_ndjson(tmp_path / "feed.ndjson", [items[0], {"text": ""}, items[1],
                                                   {"text": "No source", "attributions": [
                                                       {"stance": "asserts"}]}, items[2]])
    result = run_cli("import", str(path))
    assert result.exit_code == 2, result.output
    assert "item 2" in result.output and "item 4" in result.output
    assert len(all_claims(client, auth("reader"))) == 3


def test_import_cli_missing_file_or_key(run_cli, tmp_path):
    assert run_cli("import", str(tmp_path / "nope.ndjson")).exit_code == 2
    path = write_ndjson(tmp_path / "feed.ndjson", feed_items(1))
    refused = run_cli("import", str(path), "--url", "http://127.0.0.1:9")
    assert refused.exit_code == 2
    assert "--key" in refused.output


def test_import_cli_through_live_server_and_rerun(
        live_server, live_secrets, live_auth, run_cli, tmp_path):  # noqa: F811
    items = feed_items(9)
    path = write_ndjson(tmp_path / "feed.ndjson", items, bad_lines={4: "not json"})
    args = ("import", str(path), "--url", live_server.url, "--key", live_secrets["ingester"],
            "--batch-size", "4")
    result = run_cli(*args)
    assert result.exit_code == 2, result.output
    assert "line 5 is not JSON" in result.output
    assert "9 created" in result.output
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        claims = all_claims(http, live_auth("reader"))
        assert sorted(c["text"] for c in claims) == sorted(i["text"] for i in items)
        assert {c["created_by"] for c in claims} == {"live-ingester"}
        events = event_count(http, live_auth("reader"))
        rerun = run_cli(*args)
        assert rerun.exit_code == 2, rerun.output
        assert len(all_claims(http, live_auth("reader"))) == 9
        assert event_count(http, live_auth("reader")) == events
    # A reader key may not import.
    refused = run_cli("import", str(path), "--url", live_server.url,
                      "--key", live_secrets["reader"])
    assert refused.exit_code == 1
    assert "403" in refused.output


def test_count_items_ndjson_and_json_array(tmp_path):
    items = feed_items(7)
    ndjson = write_ndjson(tmp_path / "feed.ndjson", items, bad_lines={3: "not json"})
    with ndjson.open("a", encoding="utf-8") as handle:
        handle.write("\n   \n")
    assert count_items(ndjson) == len(list(read_items(ndjson))) == 8
    array = tmp_path / "feed.json"
    array.write_text("\ufeff  " + json.dumps(items), encoding="utf-8")
    assert count_items(array) == 7


def test_import_cli_progress_shows_count_rate_and_time_left(run_cli, tmp_path, monkeypatch):
    screen = io.StringIO()
    monkeypatch.setattr(cli_module, "console", Console(file=screen, force_terminal=True,
                                                       width=160, color_system=None))
    path = write_ndjson(tmp_path / "feed.ndjson", feed_items(12))
    result = run_cli("import", str(path), "--batch-size", "3")
    assert result.exit_code == 0, result.output
    shown = screen.getvalue()
    assert "12/12" in shown, shown  # items done of the items in the file
    assert re.search(r"\d[\d,]* items/s", shown), shown
    assert "ETA" in shown and re.search(r"\d+:\d\d:\d\d", shown), shown
    assert "12 received, 12 created" in shown


def test_import_cli_rerun_through_server_says_replayed(
        live_server, live_secrets, live_auth, run_cli, tmp_path):  # noqa: F811
    items = feed_items(7)
    path = write_ndjson(tmp_path / "feed.ndjson", items)
    args = ("import", str(path), "--url", live_server.url, "--key", live_secrets["ingester"],
            "--batch-size", "3")
    first = run_cli(*args)
    assert first.exit_code == 0, first.output
    assert ("7 received, 7 created, 0 duplicate, 0 updated, 0 unchanged, 0 error, 0 replayed"
            in first.output)
    rerun = run_cli(*args)
    assert rerun.exit_code == 0, rerun.output
    assert ("7 received, 0 created, 0 duplicate, 0 updated, 0 unchanged, 0 error, 7 replayed"
            in rerun.output)
    assert "earlier run" in " ".join(rerun.output.split())
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        assert len(all_claims(http, live_auth("reader"))) == 7
