"""GET /v1/claims.csv: every claim GET /v1/claims would list, one row each, safe to open in a
spreadsheet."""

import csv
import io

from app.domain import claims_csv
from tests.factories import assert_problem, get_json, make_claim, review


def rows_of(response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    text = response.content.decode("utf-8")
    assert text.startswith("\ufeff")  # spreadsheets then read it as UTF-8
    reader = csv.DictReader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    assert reader.fieldnames == claims_csv.COLUMNS
    return list(reader)


def test_claims_csv_every_claim_one_row(client, auth, monkeypatch):
    monkeypatch.setattr(claims_csv, "PAGE", 3)  # several pages, one file
    admin = auth("admin")
    made = [make_claim(client, admin, f"Claim number {n} about Belarus and troops.",
                       topics=["belarus"]) for n in range(7)]
    rows = rows_of(client.get("/v1/claims.csv", headers=auth("reader")))
    assert [r["id"] for r in rows] == [c["id"] for c in reversed(made)]  # newest first
    assert rows[0]["text"] == made[-1]["text"] and rows[0]["topics"] == "belarus"
    assert rows[0]["status"] == "unverified" and rows[0]["language"] == "en"
    assert rows[0]["created_at"] == made[-1]["created_at"]
    assert rows[0]["published_url"] == ""
    # A published verdict's page is in its row; withdrawn, it is gone again.
    review(client, admin, made[0]["id"], "false")
    url = "https://factcheck.example.org/claim-0"
    published = client.post(f"/v1/claims/{made[0]['id']}/publish", headers=admin,
                            json={"url": url, "headline": "Claim 0 is false"})
    assert published.status_code == 200, published.text
    rows = rows_of(client.get("/v1/claims.csv", headers=auth("reader")))
    assert {r["id"]: r["published_url"] for r in rows}[made[0]["id"]] == url
    assert client.delete(f"/v1/claims/{made[0]['id']}/publish", headers=admin).status_code == 204
    rows = rows_of(client.get("/v1/claims.csv", headers=auth("reader")))
    assert {r["id"]: r["published_url"] for r in rows}[made[0]["id"]] == ""


def test_claims_csv_same_filters_and_search_as_list(client, auth):
    admin = auth("admin")
    a = make_claim(client, admin, "Russia does not intentionally target civilians.",
                   attributions=[{"source": "Government of Russia", "stance": "asserts"},
                                 {"source": "OHCHR", "stance": "disputes"}])
    b = make_claim(client, admin, "441 civilians were killed in the Kyiv region.",
                   language="uk")
    review(client, admin, b["id"], "true")
    for params in ({"contested": "true"}, {"status": "true"}, {"language": "uk"},
                   {"q": "civilians"}, {"q": "civilians", "sort": "created_at"},
                   {"stance": "disputes"}, {"published": "false"}, {"assignee": "nobody"}):
        listed = get_json(client, "/v1/claims", admin, **params)["items"]
        rows = rows_of(client.get("/v1/claims.csv", headers=admin, params=params))
        assert [r["id"] for r in rows] == [c["id"] for c in listed], params
    (row,) = rows_of(client.get("/v1/claims.csv", headers=admin, params={"contested": "true"}))
    assert row["id"] == a["id"] and row["contested"] == "true"
    assert row["sources"] == "Government of Russia (asserts); OHCHR (disputes)"


def test_claims_csv_neutralises_formulas_keeps_unicode(client, auth):
    admin = auth("admin")
    for text in ("=HYPERLINK(\"http://evil.example\")", "+1 more soldiers", "-5 tanks",
                 "@SUM(A1) troops", "Лукашенко: «войска» прибудут"):
        make_claim(client, admin, text, attributions=[{"source": "=cmd|' /C calc'!A0",
                                                       "stance": "asserts"}])
    rows = rows_of(client.get("/v1/claims.csv", headers=admin))
    texts = {r["text"] for r in rows}
    assert texts == {"'=HYPERLINK(\"http://evil.example\")", "'+1 more soldiers", "'-5 tanks",
                     "'@SUM(A1) troops", "Лукашенко: «войска» прибудут"}
    assert all(r["sources"].startswith("'=cmd") for r in rows)


def test_claims_csv_header_only_when_nothing_matches(client, auth):
    assert rows_of(client.get("/v1/claims.csv", headers=auth("reader"),
                              params={"q": "nothing"})) == []


def test_claims_csv_bad_input_and_roles(client, auth):
    assert_problem(client.get("/v1/claims.csv"), 401)
    assert_problem(client.get("/v1/claims.csv", headers=auth("reader"),
                              params={"status": "bogus"}), 422)
    assert_problem(client.get("/v1/claims.csv", headers=auth("reader"),
                              params={"created_after": "yesterday"}), 422)
