"""Ledger statistics (GET /v1/stats) and the cache that answers them while nothing changes."""

import threading
import time
from datetime import date, timedelta

from fastapi.testclient import TestClient

from app.domain import stats as stats_module
from app.main import create_app
from tests.factories import assert_problem, get_json, make_claim, review


def day_of(claim: dict) -> date:
    return date.fromisoformat(claim["created_at"][:10])


def test_get_stats_counts_by_status_source_kind_topic(client, auth, reviewed_ledger):
    today = day_of(reviewed_ledger["claims"]["soldiers"])
    stats = get_json(client, "/v1/stats", auth("reader"), since=today.isoformat(),
                     until=today.isoformat())
    assert stats["claims"] == 6
    assert stats["contested"] == 2
    assert stats["by_status"] == {"true": 1, "false": 2, "mostly_true": 1, "in_review": 1,
                                  "unverified": 1}
    assert [(s["source"]["name"], s["claims"]) for s in stats["by_source"]] == [
        ("Government of Ukraine", 3), ("Government of Russia", 2), ("BelTA", 1),
        ("Institute for the Study of War", 1), ("United Nations", 1)]
    assert stats["by_source"][0]["source"]["id"] == reviewed_ledger["ukraine"]["id"]
    assert stats["by_source_kind"] == {"government": 3, "intergovernmental": 1,
                                       "think_tank": 1, "news_agency": 1}
    assert [(t["key"], t["count"]) for t in stats["by_topic"]] == [
        ("belarus", 2), ("civilians", 2), ("casualties", 1), ("military", 1)]
    assert stats["per_day"] == [{"date": today.isoformat(), "claims": 6, "reviews": 6}]


def test_get_stats_top_limits_lists(client, auth, reviewed_ledger):
    stats = get_json(client, "/v1/stats", auth("reader"), top=2)
    assert [s["source"]["name"] for s in stats["by_source"]] == ["Government of Ukraine",
                                                                 "Government of Russia"]
    assert [t["key"] for t in stats["by_topic"]] == ["belarus", "civilians"]


def test_get_stats_per_day_covers_since_to_until(client, auth, reviewed_ledger):
    today = day_of(reviewed_ledger["claims"]["soldiers"])
    reader = auth("reader")
    before = get_json(client, "/v1/stats", reader, since=(today - timedelta(days=3)).isoformat(),
                      until=(today - timedelta(days=1)).isoformat())
    assert before["per_day"] == [
        {"date": (today - timedelta(days=n)).isoformat(), "claims": 0, "reviews": 0}
        for n in (3, 2, 1)]
    assert before["claims"] == 6  # the totals are not limited to the window
    around = get_json(client, "/v1/stats", reader, since=(today - timedelta(days=1)).isoformat(),
                      until=(today + timedelta(days=1)).isoformat())
    assert [(d["claims"], d["reviews"]) for d in around["per_day"]] == [(0, 0), (6, 6), (0, 0)]
    default = get_json(client, "/v1/stats", reader, until=today.isoformat())
    assert len(default["per_day"]) == 30
    assert default["per_day"][-1] == {"date": today.isoformat(), "claims": 6, "reviews": 6}
    assert sum(d["claims"] for d in default["per_day"]) == 6


def test_get_stats_since_after_until_is_422(client, auth):
    reader = auth("reader")
    assert_problem(client.get("/v1/stats", params={"since": "2026-12-02", "until": "2026-12-01"},
                              headers=reader), 422, contains="since")
    assert_problem(client.get("/v1/stats", params={"since": "2000-01-01", "until": "2026-12-01"},
                              headers=reader), 422)
    for bad in ({"since": "yesterday"}, {"until": "2026-13-01"}, {"top": 0}, {"top": 101}):
        assert_problem(client.get("/v1/stats", params=bad, headers=reader), 422)
    assert_problem(client.get("/v1/stats"), 401)


def test_get_stats_empty_ledger(client, auth):
    stats = get_json(client, "/v1/stats", auth("reader"))
    assert stats["claims"] == stats["contested"] == 0
    assert stats["by_status"] == {} and stats["by_source"] == [] and stats["by_topic"] == []
    assert len(stats["per_day"]) == 30 and all(d["claims"] == 0 for d in stats["per_day"])


def test_get_stats_leaves_out_merged_duplicates(client, auth, reviewed_ledger):
    dup = make_claim(client, auth("ingester"), "Thousands of Russian troops are in Belarus.")
    assert get_json(client, "/v1/stats", auth("reader"))["claims"] == 7
    merged = client.post(f"/v1/claims/{reviewed_ledger['claims']['soldiers']['id']}/merge",
                         json={"duplicate_id": dup["id"]},
                         headers={**auth("checker"), "If-Match": "*"})
    assert merged.status_code == 200, merged.text
    stats = get_json(client, "/v1/stats", auth("reader"))
    assert stats["claims"] == 6
    assert sum(stats["by_status"].values()) == 6


def test_get_stats_computed_once_while_nothing_changes(client, auth, reviewed_ledger, monkeypatch):
    runs = []
    real = stats_module.ledger_stats
    monkeypatch.setattr(stats_module, "ledger_stats",
                        lambda *a, **k: runs.append(1) or real(*a, **k))
    reader = auth("reader")
    first = get_json(client, "/v1/stats", reader)
    assert get_json(client, "/v1/stats", reader) == first and len(runs) == 1
    assert get_json(client, "/v1/stats", reader, top=1)["by_source"] != first["by_source"]
    assert len(runs) == 2  # other parameters, other answer
    # Every kind of change is seen at once: a new claim, a verdict, a dispute.
    make_claim(client, auth("ingester"), "Minsk ordered a snap readiness check.")
    assert get_json(client, "/v1/stats", reader)["claims"] == 7
    review(client, auth("checker"), reviewed_ledger["claims"]["deaths"]["id"], "false")
    assert get_json(client, "/v1/stats", reader)["by_status"]["false"] == 3
    response = client.post(f"/v1/claims/{reviewed_ledger['claims']['deaths']['id']}/attributions",
                           json={"source_id": reviewed_ledger["russia"]["id"], "stance": "denies"},
                           headers=auth("ingester"))
    assert response.status_code == 201, response.text
    assert get_json(client, "/v1/stats", reader)["contested"] == 3
    assert len(runs) == 5


def test_get_stats_sees_another_workers_change(client, auth, reviewed_ledger, settings, db):
    reader = auth("reader")
    before = get_json(client, "/v1/stats", reader)["claims"]
    with TestClient(create_app(settings, database=db)) as other:  # another worker
        make_claim(other, auth("ingester"), "Gomel's airfield received new helicopters.")
    assert get_json(client, "/v1/stats", reader)["claims"] == before + 1


def test_stats_cache_computes_once_for_callers_asking_together(db):
    cache = stats_module.StatsCache()
    started, calls = threading.Event(), []

    def compute():
        calls.append(1)
        started.set()
        time.sleep(0.3)
        return f"answer {len(calls)}"

    def ask(out: list) -> None:
        with db.session() as session:
            out.append(cache.get(session, "key", compute))

    answers: list = []
    first = threading.Thread(target=ask, args=(answers,))
    first.start()
    started.wait(5)
    others = [threading.Thread(target=ask, args=(answers,)) for _ in range(3)]
    for t in others:
        t.start()
    for t in [first, *others]:
        t.join(10)
    assert answers == ["answer 1"] * 4 and len(calls) == 1


def test_stats_cache_keeps_its_newest_entries(db):
    cache, calls = stats_module.StatsCache(entries=2), []

    def ask(key: str) -> str:
        with db.session() as session:
            return cache.get(session, key, lambda: calls.append(key) or f"for {key}")

    for key in ("a", "b", "a", "c", "a", "b"):  # c evicts b (a was used last); b again
        assert ask(key) == f"for {key}"
    assert calls == ["a", "b", "c", "b"]
