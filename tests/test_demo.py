"""`claimledger demo`: the Belarus article's ledger, loaded once."""


from app.cli import cli
from tests.factories import all_pages, get_json

SOURCES = [
    "Belarus Security Council", "BelTA", "Government of Ukraine", "ISW", "Rochan Consulting",
    "Konrad Muzyka", "United Nations", "OHCHR", "Government of Russia", "Minsk residents",
]




def source_named(client, auth, name: str) -> dict:
    found = get_json(client, "/v1/sources", auth("reader"), name=name)["items"]
    assert len(found) == 1, (name, found)
    return found[0]


def test_load_demo_creates_belarus_ledger(client, auth, runner):
    result = runner.invoke(cli, ["demo"])
    assert result.exit_code == 0, result.output
    assert "demo loaded" in result.output

    claims = all_pages(client, "/v1/claims", auth("reader"))
    assert len(claims) >= 12
    assert all(c["created_by"] == "demo" for c in claims)
    assert all(c["attributions"] for c in claims)

    sources = {name: source_named(client, auth, name) for name in SOURCES}
    assert sources["ISW"]["name"] == "Institute for the Study of War"
    assert sources["Konrad Muzyka"]["affiliation"]["id"] == sources["Rochan Consulting"]["id"]
    assert sources["Konrad Muzyka"]["affiliation"]["name"] == "Rochan Consulting"
    assert sources["Belarus Security Council"]["country"] == "BY"

    reviewed = [c for c in claims if c["status"] != "unverified"]
    assert reviewed and all(c["current_review"] for c in reviewed)
    assert any(c["status"] in ("true", "mostly_true", "false", "mostly_false") for c in reviewed)
    assert all(c["current_review"]["rationale"] for c in reviewed
               if c["status"] not in ("unverified", "in_review"))
    contested = all_pages(client, "/v1/claims", auth("reader"), contested="true")
    assert contested and all(c["contested"] for c in contested)

    links = {lk["id"]: lk for c in claims for lk in c["links"]}
    contradicts = [lk for lk in links.values() if lk["kind"] == "contradicts"]
    assert contradicts
    by_id = {c["id"]: c for c in claims}
    denial = next(lk for lk in contradicts
                  if "intentionally target civilians" in by_id[lk["claim_id"]]["text"])
    assert "441" in by_id[denial["target_id"]]["text"]

    stationed = next(c for c in claims if "stationed in Belarus" in c["text"])
    assert [(a["source"]["name"], a["stance"]) for a in stationed["attributions"]] == [
        ("Government of Ukraine", "asserts")]
    arrival = next(c for c in claims if "arrive in Belarus over the next two days" in c["text"])
    stances = {(a["source"]["name"], a["stance"]) for a in arrival["attributions"]}
    assert {("Belarus Security Council", "asserts"), ("BelTA", "reports")} <= stances

    record = get_json(client, f"/v1/sources/{sources['United Nations']['id']}/record",
                      auth("reader"))
    assert record["asserted_total"] >= 1


def test_load_demo_if_empty_adds_nothing_second_time(client, auth, runner):
    assert runner.invoke(cli, ["demo", "--if-empty"]).exit_code == 0
    claims = all_pages(client, "/v1/claims", auth("reader"), include_merged="true")
    sources = all_pages(client, "/v1/sources", auth("reader"))
    events = all_pages(client, "/v1/events", auth("reader"))
    assert len(claims) >= 12

    again = runner.invoke(cli, ["demo", "--if-empty"])
    assert again.exit_code == 0, again.output
    assert "already has claims" in again.output
    assert all_pages(client, "/v1/claims", auth("reader"), include_merged="true") == claims
    assert all_pages(client, "/v1/sources", auth("reader")) == sources
    assert all_pages(client, "/v1/events", auth("reader")) == events


def test_load_demo_into_ledger_with_claims_is_one_line_and_exit_1(client, auth, runner):
    assert runner.invoke(cli, ["demo"]).exit_code == 0
    claims = all_pages(client, "/v1/claims", auth("reader"), include_merged="true")

    again = runner.invoke(cli, ["demo"])
    assert again.exit_code == 1, again.output
    assert isinstance(again.exception, SystemExit)  # no exception escaped the command
    assert "Traceback" not in again.output and "Error" not in again.output
    message = " ".join(again.output.split())  # the console wraps long lines
    assert "already has claims" in message and "--if-empty" in message
    assert all_pages(client, "/v1/claims", auth("reader"), include_merged="true") == claims


def test_load_demo_source_name_taken_is_one_line_and_nothing_written(client, auth, runner):
    taken = client.post("/v1/sources", json={"name": "Institute for the Study of War"},
                        headers=auth("admin"))
    assert taken.status_code == 201, taken.text
    sources = all_pages(client, "/v1/sources", auth("reader"))

    result = runner.invoke(cli, ["demo"])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    message = " ".join(result.output.split())
    assert message.startswith("the demo could not be loaded:"), message
    assert "Institute for the Study of War" in message
    assert all_pages(client, "/v1/claims", auth("reader")) == []
    assert all_pages(client, "/v1/sources", auth("reader")) == sources
