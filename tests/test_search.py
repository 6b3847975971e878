"""Full-text search (GET /v1/claims?q=): ranking, filters, paging, index sync, hostile input."""

import pytest

from app.domain import search
from app.domain.pagination import encode_cursor
from tests.factories import (
    add_attribution,
    all_pages,
    assert_problem,
    get_json,
    ingest,
    make_claim,
    make_source,
    review,
    search_ids,
    with_version,
)

NEAR = "Russian troops are massing in Belarus."
FAR = ("Troops were seen near the border according to residents of several towns across the "
       "region who described long convoys moving at night, and officials in Minsk later said "
       "the movements were part of exercises planned long ago with partners in Belarus.")


def test_search_claims_better_match_ranks_first(client, auth):
    far = make_claim(client, auth("ingester"), FAR)
    near = make_claim(client, auth("ingester"), NEAR)
    make_claim(client, auth("ingester"), "Troops will arrive over the next two days.")
    assert search_ids(client, auth("reader"), "troops Belarus") == [near["id"], far["id"]]
    assert search_ids(client, auth("reader"), "Belarus troops") == [near["id"], far["id"]]
    # The other order by time still holds only the matches.
    newest = search_ids(client, auth("reader"), "troops belarus", sort="-created_at")
    assert newest == [near["id"], far["id"]]


def test_search_claims_every_word_must_match(client, auth):
    make_claim(client, auth("ingester"), "Belarus is running an information operation.")
    both = make_claim(client, auth("ingester"), "Belarus troops are on the border.")
    assert search_ids(client, auth("reader"), "belarus troops") == [both["id"]]
    assert search_ids(client, auth("reader"), "belarus submarines") == []


def test_search_claims_finds_quotes_and_source_names_and_aliases(client, auth):
    isw = make_source(client, auth("ingester"), "Institute for the Study of War",
                      aliases=["ISW"])
    claim = make_claim(client, auth("ingester"),
                       "Belarus is running an information operation aimed at fixing Ukrainian "
                       "forces on the border.",
                       attributions=[{"source_id": isw["id"], "stance": "asserts",
                                      "quote": "pontoon bridges were moved to the Pripyat"}])
    make_claim(client, auth("ingester"), "Russia does not intentionally target civilians.",
               attributions=[{"source": "Government of Russia", "stance": "asserts"}])
    for q in ("pontoon", "Pripyat bridges", "ISW", "isw", "Study of War",
              "institute war information"):
        assert search_ids(client, auth("reader"), q) == [claim["id"]], q


def test_search_claims_combines_with_filters(client, auth):
    isw = make_source(client, auth("ingester"), "Institute for the Study of War")
    contested = make_claim(client, auth("ingester"), "Belarus will join the war on Russia's side.",
                           topics=["belarus"], attributions=[
                               {"source_id": isw["id"], "stance": "asserts"},
                               {"source": "Government of Belarus", "stance": "denies"}])
    in_review = make_claim(client, auth("ingester"), "Belarus has moved tanks to the border.",
                           topics=["military"],
                           attributions=[{"source_id": isw["id"], "stance": "asserts"}])
    review(client, auth("checker"), in_review["id"], "in_review", rationale=None)
    plain = make_claim(client, auth("ingester"), "Belarus reported a grain harvest.",
                       attributions=[{"source": "BelTA", "stance": "reports"}])
    make_claim(client, auth("ingester"), "Tanks were moved to the Kyiv region.",
               topics=["military"], attributions=[{"source_id": isw["id"], "stance": "asserts"}])
    reader = auth("reader")
    assert set(search_ids(client, reader, "belarus")) == {contested["id"], in_review["id"],
                                                          plain["id"]}
    assert search_ids(client, reader, "belarus", topic="belarus") == [contested["id"]]
    assert search_ids(client, reader, "belarus", topic="military") == [in_review["id"]]
    assert search_ids(client, reader, "belarus", status="in_review") == [in_review["id"]]
    assert set(search_ids(client, reader, "belarus", status="unverified")) == {
        contested["id"], plain["id"]}
    assert set(search_ids(client, reader, "belarus", source_id=isw["id"])) == {
        contested["id"], in_review["id"]}
    assert search_ids(client, reader, "belarus", contested="true") == [contested["id"]]
    assert set(search_ids(client, reader, "belarus", contested="false")) == {
        in_review["id"], plain["id"]}
    assert search_ids(client, reader, "tanks", topic="military", source_id=isw["id"],
                      status="in_review") == [in_review["id"]]


@pytest.mark.parametrize("sort", [None, "-created_at", "updated_at"])
def test_search_claims_pages_have_no_repeats_or_gaps(client, auth, sort):
    ids = [make_claim(client, auth("ingester"),
                      f"Convoy number {n} crossed the border" + " near Mazyr" * (n % 3))["id"]
           for n in range(7)]
    make_claim(client, auth("ingester"), "Nothing about the border here.")
    params = {"sort": sort} if sort else {}
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page = get_json(client, "/v1/claims", auth("reader"), q="convoy border", limit=2,
                        **params, **({"cursor": cursor} if cursor else {}))
        assert len(page["items"]) <= 2
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 7
    assert set(seen) == set(ids)
    whole = search_ids(client, auth("reader"), "convoy border", **params)
    assert seen == whole


def test_search_claims_cursor_of_another_search_is_400(client, auth):
    for n in range(3):
        make_claim(client, auth("ingester"), f"Convoy {n} crossed the border.")
    page = get_json(client, "/v1/claims", auth("reader"), q="convoy", limit=1)
    response = client.get("/v1/claims", params={"q": "border", "cursor": page["next_cursor"]},
                          headers=auth("reader"))
    assert_problem(response, 400)


def test_search_claims_more_mentions_rank_higher(client, auth):
    once = make_claim(client, auth("ingester"), "Mobilisation in Gomel went on; trains left.")
    twice = make_claim(client, auth("ingester"), "Mobilisation in Gomel, then mobilisation again.")
    assert search_ids(client, auth("reader"), "mobilisation") == [twice["id"], once["id"]]


@pytest.fixture
def word_weights(settings):
    """Tests of SQLite's BM25 word weights; PostgreSQL ranks without them."""
    if not settings.database_url.startswith("sqlite"):
        pytest.skip("PostgreSQL ranks with ts_rank_cd, which gives words no weights")


def test_search_claims_rarer_word_weighs_more(client, auth, word_weights):
    # Every claim has both words; a second mention of the rare one beats two of the common one.
    for n in range(6):
        make_claim(client, auth("ingester"), f"Drills near Brest, report {n}.")
    common = make_claim(client, auth("ingester"), "Drills, drills near Brest: reservists called.")
    rare = make_claim(client, auth("ingester"), "Drills near Brest: reservists, reservists called.")
    assert search_ids(client, auth("reader"), "drills reservists") == [rare["id"], common["id"]]


def test_search_claims_beyond_the_rank_window(client, auth, monkeypatch):
    """More matches than search.RANK_WINDOW: the newest window is ranked and paged to its
    end (both databases); a filtered search over a full window is ranked in SQL, and every
    page of it stays in the same ranking, whatever the page size."""
    monkeypatch.setattr(search, "RANK_WINDOW", 3)
    old = [make_claim(client, auth("ingester"), f"Column {n} of armour seen near Yelsk.")["id"]
           for n in range(3)]
    for cid in old:
        review(client, auth("checker"), cid, "false")
    new = [make_claim(client, auth("ingester"), f"Column {n} of trucks seen near Yelsk.")["id"]
           for n in range(4)]
    for cid in new[2:]:  # two of the window's claims are false as well
        review(client, auth("checker"), cid, "false")
    reader = auth("reader")
    found = search_ids(client, reader, "column yelsk")
    assert len(found) == len(set(found))
    assert set(found) == set(new[1:])  # the newest 3 matches
    # A change re-indexes a claim; it stays as old as it was (no newer, no older).
    add_attribution(client, auth("ingester"), old[0], source="BelTA", stance="reports")
    add_attribution(client, auth("ingester"), new[1], source="BelTA", stance="reports")
    assert set(search_ids(client, reader, "column yelsk")) == set(new[1:])
    # Filtered, every false match is found (three of them older than the window), whatever
    # the page size, and pages of one neither repeat nor skip.
    for limit in (1, 2, 5):
        pages = [c["id"] for c in all_pages(client, "/v1/claims", reader, limit=limit,
                                            q="column yelsk", status="false")]
        assert sorted(pages) == sorted(old + new[2:]) and len(pages) == 5, limit


def test_search_claims_cursor_from_before_windows_still_pages(client, auth):
    for n in range(3):
        make_claim(client, auth("ingester"), f"Convoy {n} reached Mazyr.")
    whole = search_ids(client, auth("reader"), "convoy mazyr")
    old_style = encode_cursor(1, "convoy mazyr")  # [offset, q]: ranked in SQL
    page = get_json(client, "/v1/claims", auth("reader"), q="convoy mazyr", limit=5,
                    cursor=old_style)
    assert [c["id"] for c in page["items"]] == whole[1:]


def test_search_claims_accented_word_weighs_the_same_in_any_order(client, auth, word_weights):
    for n in range(5):
        make_claim(client, auth("ingester"), f"Minsk report {n}.")
    many_minsk = make_claim(client, auth("ingester"), "Minsk, Minsk, Minsk: a Škoda parade.")
    many_skoda = make_claim(client, auth("ingester"), "Minsk watched Škoda after Škoda.")
    for q in ("Škoda Minsk", "Minsk Škoda", "skoda minsk", "minsk skoda"):
        assert search_ids(client, auth("reader"), q) == [many_skoda["id"], many_minsk["id"]], q


# --- the index follows every write ----------------------------------------------------


def test_search_claims_follows_create_and_patch(client, auth):
    claim = make_claim(client, auth("ingester"), "Thousands of Russian soldiers are in Belarus.")
    assert search_ids(client, auth("reader"), "soldiers") == [claim["id"]]
    response = client.patch(f"/v1/claims/{claim['id']}", headers=with_version(auth("checker"), 1),
                            json={"text": "Several battalions of paratroopers are in Belarus."})
    assert response.status_code == 200, response.text
    assert search_ids(client, auth("reader"), "soldiers") == []
    assert search_ids(client, auth("reader"), "thousands") == []
    assert search_ids(client, auth("reader"), "paratroopers") == [claim["id"]]
    assert search_ids(client, auth("reader"), "belarus") == [claim["id"]]


def test_search_claims_follows_attributions(client, auth):
    claim = make_claim(client, auth("ingester"), "Troops will arrive in Belarus in two days.")
    att = add_attribution(client, auth("ingester"), claim["id"], source="BelTA",
                          stance="reports", quote="echelons are already unloading at Asipovichy")
    assert search_ids(client, auth("reader"), "Asipovichy") == [claim["id"]]
    assert search_ids(client, auth("reader"), "belta") == [claim["id"]]
    response = client.delete(f"/v1/claims/{claim['id']}/attributions/{att['id']}",
                             headers={**auth("checker"), "If-Match": "*"})
    assert response.status_code == 204, response.text
    assert search_ids(client, auth("reader"), "Asipovichy") == []
    assert search_ids(client, auth("reader"), "belta") == []
    assert search_ids(client, auth("reader"), "troops") == [claim["id"]]


def test_search_claims_follows_source_rename_and_aliases(client, auth):
    source = make_source(client, auth("ingester"), "Rochan Consultancy")
    claim = make_claim(client, auth("ingester"),
                       "Belarus has been getting ready to join the conflict for months.",
                       attributions=[{"source_id": source["id"], "stance": "asserts"}])
    assert search_ids(client, auth("reader"), "consultancy") == [claim["id"]]
    response = client.patch(f"/v1/sources/{source['id']}",
                            headers=with_version(auth("checker"), source["version"]),
                            json={"name": "Muzyka Analytics", "aliases": ["Rochan"]})
    assert response.status_code == 200, response.text
    assert search_ids(client, auth("reader"), "consultancy") == []
    assert search_ids(client, auth("reader"), "Muzyka") == [claim["id"]]
    assert search_ids(client, auth("reader"), "rochan") == [claim["id"]]
    response = client.patch(f"/v1/sources/{source['id']}",
                            headers=with_version(auth("checker"), response.json()["version"]),
                            json={"aliases": []})
    assert response.status_code == 200, response.text
    assert search_ids(client, auth("reader"), "rochan") == []


def test_search_claims_follows_merge(client, auth):
    target = make_claim(client, auth("ingester"),
                        "Thousands of Russian soldiers have been stationed in Belarus.")
    duplicate = make_claim(client, auth("ingester"),
                           "Russian servicemen, thousands of them, are garrisoned in Belarus.",
                           attributions=[{"source": "Hajun project", "stance": "asserts",
                                          "quote": "trainloads counted at Luninets"}])
    assert search_ids(client, auth("reader"), "Luninets") == [duplicate["id"]]
    response = client.post(f"/v1/claims/{target['id']}/merge",
                           headers={**auth("checker"), "If-Match": "*"},
                           json={"duplicate_id": duplicate["id"]})
    assert response.status_code == 200, response.text
    assert search_ids(client, auth("reader"), "Luninets") == [target["id"]]
    assert search_ids(client, auth("reader"), "hajun") == [target["id"]]
    assert search_ids(client, auth("reader"), "garrisoned") == []
    assert search_ids(client, auth("reader"), "garrisoned", include_merged="true") == [
        duplicate["id"]]


def test_search_claims_follows_delete(client, auth):
    claim = make_claim(client, auth("ingester"), "A pontoon bridge was built over the Pripyat.",
                       attributions=[{"source": "Hajun project", "stance": "asserts"}])
    keep = make_claim(client, auth("ingester"), "Another bridge was blown up.")
    assert set(search_ids(client, auth("reader"), "bridge")) == {claim["id"], keep["id"]}
    assert client.delete(f"/v1/claims/{claim['id']}",
                         headers={**auth("admin"), "If-Match": "*"}).status_code == 204
    assert search_ids(client, auth("reader"), "pontoon") == []
    assert search_ids(client, auth("reader"), "hajun") == []
    assert search_ids(client, auth("reader"), "bridge") == [keep["id"]]


def test_search_claims_follows_ingest(client, auth):
    created = ingest(client, auth("ingester"), [
        {"text": "Railway wagons carrying tanks arrived in Homel.", "origin": "feed",
         "external_id": "1"},
        {"text": "At least 6,500 civilian deaths have been counted.", "origin": "feed",
         "external_id": "2"},
    ])
    homel, deaths = (r["claim_id"] for r in created["items"])
    assert search_ids(client, auth("reader"), "wagons") == [homel]
    later = ingest(client, auth("ingester"), [
        {"text": "railway wagons carrying tanks arrived in HOMEL!",
         "attributions": [{"source": "Belarusian Railway Workers", "stance": "asserts",
                           "quote": "forty flatcars"}]},
        {"text": "At least 6,700 civilian casualties have been recorded.", "origin": "feed",
         "external_id": "2"},
    ])
    assert [r["status"] for r in later["items"]] == ["duplicate", "updated"]
    assert search_ids(client, auth("reader"), "flatcars") == [homel]
    assert search_ids(client, auth("reader"), "railway workers") == [homel]
    assert search_ids(client, auth("reader"), "deaths") == []
    assert search_ids(client, auth("reader"), "casualties recorded") == [deaths]


# --- input that must never break the search ---------------------------------------------

HOSTILE = [
    '"', '""', "'", '"Belarus', 'Belarus"', "NEAR(", "NEAR(belarus troops, 2)",
    "NEAR(belarus troops)", "*", "belar*", "AND", "OR", "NOT", "belarus AND", "OR troops",
    "belarus NOT troops", "-", "- belarus", "belarus -troops", "^belarus", "body:belarus",
    "claim_search:belarus", "(", ")", "{}", ":", "'; DROP TABLE claim; --", "1' OR '1'='1",
    "belarus'); DELETE FROM claim; --", "\\", "%", "_", "%belarus%", "a" * 1000,
    "troops " * 140, "\U0001f680", "Belarus \U0001f1e7\U0001f1fe troops", "\u200b", "\x00",
    "belarus\x00troops", "!@#$%^&*()", "&", "|", "!", "<->", "troops <-> belarus", "belarus:*",
    "\U0001d56d\U0001d58a\U0001d591\U0001d586\U0001d597\U0001d59a\U0001d598",  # Fraktur
    "Беларусь", "العربية", "中文", "the", "of the a an",
]


def test_search_claims_hostile_input_never_500(client, auth):
    claim = make_claim(client, auth("ingester"),
                       "Troops and military equipment will arrive in Belarus 🇧🇾.")
    for q in HOSTILE:
        response = client.get("/v1/claims", params={"q": q}, headers=auth("reader"))
        assert response.status_code == 200, (q, response.text)
        assert isinstance(response.json()["items"], list)
    assert client.get("/v1/claims", params={"q": "'; DROP TABLE claim; --"},
                      headers=auth("reader")).json()["items"] == []
    for q in ('"Belarus', "(belarus) troops*", "Belarus 🇧🇾 troops", "belarus\x00troops",
              "troops: -belarus!", "{troops} ^belarus"):
        assert search_ids(client, auth("reader"), q) == [claim["id"]], q
    # Still there, and the search still works.
    assert get_json(client, f"/v1/claims/{claim['id']}", auth("reader"))["id"] == claim["id"]
    assert search_ids(client, auth("reader"), "equipment") == [claim["id"]]


def test_search_claims_query_longer_than_1000_chars_is_422(client, auth):
    make_claim(client, auth("ingester"))
    for q in ("b" * 1001, "belarus troops " * 700):  # the last is about 10 KB
        assert_problem(client.get("/v1/claims", params={"q": q}, headers=auth("reader")), 422)
    ok = client.get("/v1/claims", params={"q": "belarus " * 125}, headers=auth("reader"))
    assert ok.status_code == 200, ok.text


def test_search_claims_unicode_case_and_stems(client, auth):
    lodz = make_claim(client, auth("ingester"), "Refugees from Chernihiv reached Łódź by train.")
    kyiv = make_claim(client, auth("ingester"), "Обстріл Києва тривав усю ніч, повідомив Київ.")
    killed = make_claim(client, auth("ingester"),
                        "441 civilians were killed by Russian forces early in the war.")
    reader = auth("reader")
    for q in ("Łódź", "ŁÓDŹ", "łódź", "Chernihiv", "CHERNIHIV", "chernihiv refugees"):
        assert search_ids(client, reader, q) == [lodz["id"]], q
    for q in ("Київ", "КИЇВ", "обстріл"):
        assert search_ids(client, reader, q) == [kyiv["id"]], q
    # English stemming: other forms of the same word.
    for q in ("killing civilian", "kills", "civilians killed"):
        assert search_ids(client, reader, q) == [killed["id"]], q
