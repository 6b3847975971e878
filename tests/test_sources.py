"""Sources: register, look up by name or alias however it is spelled, edit, claims, track record."""

from tests.factories import (
    add_attribution,
    all_pages,
    assert_problem,
    get_json,
    make_claim,
    make_source,
    review,
    with_version,
)


def lookup(client, auth, **params) -> list[str]:
    """Names of the sources a lookup finds."""
    return [s["name"] for s in get_json(client, "/v1/sources", auth("reader"), **params)["items"]]


def test_create_source_returns_it_with_etag_and_location(client, auth):
    response = client.post("/v1/sources", headers=auth("ingester"), json={
        "name": "Institute for the Study of War", "aliases": ["ISW", "I.S.W.", "isw"],
        "kind": "think_tank", "country": "US", "homepage": "https://www.understandingwar.org",
        "description": "Washington-based think tank.", "reliability": "B",
    })
    assert response.status_code == 201, response.text
    source = response.json()
    assert source["id"].startswith("src_")
    assert source["aliases"] == ["ISW"]  # spellings of one alias are kept once
    assert (source["kind"], source["country"], source["reliability"]) == ("think_tank", "US", "B")
    assert source["affiliation"] is None
    assert source["version"] == 1
    assert response.headers["etag"] == '"1"'
    assert response.headers["location"] == f"/v1/sources/{source['id']}"
    fetched = client.get(f"/v1/sources/{source['id']}", headers=auth("reader"))
    assert fetched.json() == source
    assert fetched.headers["etag"] == '"1"'
    assert make_source(client, auth("ingester"), "Minsk residents")["reliability"] == "F"


def test_list_sources_finds_name_or_alias_however_spelled(client, auth):
    make_source(client, auth("ingester"), "Institute for the Study of War", aliases=["ISW"])
    make_source(client, auth("ingester"), "United Nations", aliases=["UN"])
    make_source(client, auth("ingester"), "Organización de las Naciones Unidas")
    make_source(client, auth("ingester"), "Government of Ukraine", aliases=["Kyiv"])
    isw = ["Institute for the Study of War"]
    for spelling in ("isw", "ISW", "I.S.W.", " isw ", "Institute for the study of war ",
                     "INSTITUTE FOR THE STUDY OF WAR", "institute  for the study of war.",
                     "Institute-for-the-Study-of-War", "Ínstitute for the Study of Wär"):
        assert lookup(client, auth, name=spelling) == isw, spelling
    assert lookup(client, auth, name="U.N.") == ["United Nations"]
    assert lookup(client, auth, name="  united   NATIONS ") == ["United Nations"]
    assert lookup(client, auth, name="organizacion de las naciones unidas") == [
        "Organización de las Naciones Unidas"]
    assert lookup(client, auth, name="KYIV") == ["Government of Ukraine"]
    assert lookup(client, auth, name="Institute") == []
    assert lookup(client, auth, name="nobody at all") == []


def test_list_sources_by_prefix_of_name_or_alias(client, auth):
    make_source(client, auth("ingester"), "Institute for the Study of War", aliases=["ISW"])
    make_source(client, auth("ingester"), "Ukrainian officials")
    make_source(client, auth("ingester"), "United Nations", aliases=["UN"])
    make_source(client, auth("ingester"), "Government of Ukraine", aliases=["Ukraine"])
    assert lookup(client, auth, prefix="inst") == ["Institute for the Study of War"]
    assert lookup(client, auth, prefix="IS") == ["Institute for the Study of War"]
    assert lookup(client, auth, prefix="Institute for the") == ["Institute for the Study of War"]
    assert lookup(client, auth, prefix="u") == [
        "Government of Ukraine", "Ukrainian officials", "United Nations"]
    assert lookup(client, auth, prefix="Ukr") == ["Government of Ukraine", "Ukrainian officials"]
    assert lookup(client, auth, prefix="study") == []
    for wildcard in ("%", "_", "%a", "_n", "\\"):
        assert lookup(client, auth, prefix=wildcard) == [], wildcard


def test_list_sources_filters_and_pages_by_name(client, auth):
    # First letters differ, so the order is the same under any collation.
    names = ["BelTA", "Security Council of Belarus", "Government of Russia", "ISW Analysts",
             "Konrad Muzyka", "OHCHR", "United Nations"]
    kinds = ["news_agency", "government", "government", "think_tank", "expert",
             "intergovernmental", "intergovernmental"]
    countries = ["BY", "BY", "RU", "US", "PL", None, None]
    for name, kind, country in zip(names, kinds, countries, strict=True):
        make_source(client, auth("ingester"), name, kind=kind,
                    **({"country": country} if country else {}))
    assert lookup(client, auth, kind="government") == [
        "Government of Russia", "Security Council of Belarus"]
    assert lookup(client, auth, country="BY") == ["BelTA", "Security Council of Belarus"]
    assert lookup(client, auth, kind="intergovernmental", country="BY") == []
    paged = all_pages(client, "/v1/sources", auth("reader"), limit=2)
    assert [s["name"] for s in paged] == sorted(names)
    assert len({s["id"] for s in paged}) == len(names)


def test_update_source_rename_moves_lookup_to_new_name(client, auth):
    rochan = make_source(client, auth("ingester"), "Rochan Consulting", kind="think_tank")
    url = f"/v1/sources/{rochan['id']}"
    response = client.patch(url, json={"name": "Rochan Consulting Sp. z o.o.",
                                       "aliases": ["Rochan"], "country": "PL"},
                            headers=with_version(auth("checker"), rochan["version"]))
    assert response.status_code == 200, response.text
    renamed = response.json()
    assert renamed["name"] == "Rochan Consulting Sp. z o.o."
    assert renamed["version"] == 2
    assert response.headers["etag"] == '"2"'
    assert lookup(client, auth, name="rochan  consulting SP z o.o") == [renamed["name"]]
    assert lookup(client, auth, name="ROCHAN") == [renamed["name"]]
    assert lookup(client, auth, name="Rochan Consulting") == []
    assert get_json(client, url, auth("reader")) == renamed

    stale = client.patch(url, json={"name": "Rochan"}, headers=with_version(auth("checker"), 1))
    assert_problem(stale, 412)
    dropped = client.patch(url, json={"aliases": []}, headers=with_version(auth("checker"), 2))
    assert dropped.status_code == 200, dropped.text
    assert lookup(client, auth, name="Rochan") == []
    same = client.patch(url, json={"name": "ROCHAN CONSULTING SP. Z O.O."},
                        headers=with_version(auth("checker"), 3))
    assert same.status_code == 200, same.text  # a respelling of its own name is no clash

    events = all_pages(client, "/v1/events", auth("reader"), entity_type="source")
    updates = [e for e in events if e["action"] == "source.updated"]
    assert updates[0]["actor"] == "test-checker"
    assert updates[0]["changes"]["name"] == {"from": "Rochan Consulting",
                                             "to": "Rochan Consulting Sp. z o.o."}
    assert updates[0]["changes"]["country"] == {"from": None, "to": "PL"}


def test_create_source_affiliation_shown_as_ref(client, auth):
    rochan = make_source(client, auth("ingester"), "Rochan Consulting", kind="think_tank",
                         reliability="B")
    konrad = make_source(client, auth("ingester"), "Konrad Muzyka", kind="expert",
                         affiliation_id=rochan["id"])
    ref = {"id": rochan["id"], "name": "Rochan Consulting", "kind": "think_tank",
           "reliability": "B"}
    assert konrad["affiliation"] == ref
    assert "affiliation_id" not in konrad
    assert get_json(client, f"/v1/sources/{konrad['id']}", auth("reader"))["affiliation"] == ref

    renamed = client.patch(f"/v1/sources/{rochan['id']}", json={"name": "Rochan Consulting Ltd"},
                           headers=with_version(auth("checker"), 1))
    assert renamed.status_code == 200, renamed.text
    assert get_json(client, f"/v1/sources/{konrad['id']}", auth("reader"))["affiliation"][
        "name"] == "Rochan Consulting Ltd"
    detached = client.patch(f"/v1/sources/{konrad['id']}", json={"affiliation_id": None},
                            headers=with_version(auth("checker"), 1))
    assert detached.status_code == 200, detached.text
    assert detached.json()["affiliation"] is None


def test_list_source_claims_filters_by_stance(client, auth):
    ohchr = make_source(client, auth("ingester"), "OHCHR")
    russia = make_source(client, auth("ingester"), "Government of Russia")
    killed = make_claim(client, auth("ingester"), "441 civilians were killed early in the war.",
                        attributions=[{"source_id": ohchr["id"], "stance": "asserts"}])
    no_target = make_claim(client, auth("ingester"), "Russia does not target civilians.",
                           attributions=[{"source_id": russia["id"], "stance": "asserts"},
                                         {"source_id": ohchr["id"], "stance": "disputes"}])
    toll = make_claim(client, auth("ingester"), "At least 6,700 civilian deaths were counted.",
                      attributions=[{"source_id": ohchr["id"], "stance": "reports"}])
    make_claim(client, auth("ingester"), "Belarus is preparing to join the war.")

    def claims(**params) -> list[str]:
        return [c["id"] for c in all_pages(client, f"/v1/sources/{ohchr['id']}/claims",
                                           auth("reader"), **params)]

    assert claims() == [toll["id"], no_target["id"], killed["id"]]  # newest first
    assert claims(stance="asserts") == [killed["id"]]
    assert claims(stance="disputes") == [no_target["id"]]
    assert claims(stance="reports") == [toll["id"]]
    assert claims(stance="denies") == []
    assert claims(limit=1) == claims()
    review(client, auth("checker"), killed["id"], "true", "documented by the UN mission")
    assert claims(status="true") == [killed["id"]]
    russia_claims = all_pages(client, f"/v1/sources/{russia['id']}/claims", auth("reader"))
    assert [c["id"] for c in russia_claims] == [no_target["id"]]
    assert russia_claims[0]["contested"] is True


def test_get_source_record_counts_verdicts_by_stance(client, auth):
    source = make_source(client, auth("ingester"), "Office of the High Commissioner for Human "
                         "Rights", aliases=["OHCHR"])
    other = make_source(client, auth("ingester"), "Government of Russia")

    def claim(text: str, stance: str, *verdicts: str, also: str | None = None) -> str:
        attributions = [{"source_id": source["id"], "stance": stance}]
        if also:
            attributions.append({"source_id": source["id"], "stance": also,
                                 "quote": "a second quote"})
        created = make_claim(client, auth("ingester"), text, attributions=attributions)
        for verdict in verdicts:
            review(client, auth("checker"), created["id"], verdict,
                   None if verdict == "in_review" else "checked")
        return created["id"]

    claim("441 civilians were killed.", "asserts", "true")
    claim("The killings were all deliberate.", "asserts", "in_review", "mostly_false")
    claim("The true toll is higher.", "supports")
    claim("198 more killings were documented.", "asserts", "mostly_true", also="supports")
    claim("Russia does not target civilians.", "disputes", "false")
    claim("Civilians were evacuated in time.", "denies", "mostly_true")
    claim("6,700 civilian deaths were counted.", "reports", "in_review")
    make_claim(client, auth("ingester"), "Russia's own claim, not OHCHR's.",
               attributions=[{"source_id": other["id"], "stance": "asserts"}])

    record = get_json(client, f"/v1/sources/{source['id']}/record", auth("reader"))
    assert record["source"]["id"] == source["id"]
    assert record["asserted"] == {"true": 1, "mostly_false": 1, "unverified": 1,
                                  "mostly_true": 1}
    assert record["asserted_total"] == 4
    assert record["asserted_proved_true"] == 2
    assert record["asserted_proved_false"] == 1
    assert record["disputed"] == {"false": 1, "mostly_true": 1}
    assert record["disputed_total"] == 2
    assert record["disputed_proved_true"] == 1
    assert record["disputed_proved_false"] == 1
    assert record["reported"] == {"in_review": 1}
    assert record["reported_total"] == 1

    empty = get_json(client, f"/v1/sources/{make_source(client, auth('ingester'), 'BelTA')['id']}"
                     "/record", auth("reader"))
    assert empty["asserted_total"] == empty["disputed_total"] == empty["reported_total"] == 0
    assert empty["asserted"] == empty["disputed"] == empty["reported"] == {}


def test_create_attribution_by_alias_reuses_source(client, auth):
    isw = make_source(client, auth("ingester"), "Institute for the Study of War", aliases=["ISW"])
    claim = make_claim(client, auth("ingester"), "Belarus runs an information operation.")
    attribution = add_attribution(client, auth("ingester"), claim["id"], source="i.s.w.",
                                  stance="asserts")
    assert attribution["source"]["id"] == isw["id"]
    fresh = add_attribution(client, auth("ingester"), claim["id"], source="Konrad Muzyka",
                            stance="disputes")
    assert fresh["source"]["name"] == "Konrad Muzyka"
    assert lookup(client, auth, name="konrad muzyka") == ["Konrad Muzyka"]
    assert len(all_pages(client, "/v1/sources", auth("reader"))) == 2


def test_get_source_record_says_who_proved_right_or_wrong(client, auth, reviewed_ledger):
    reader = auth("reader")
    ukraine = get_json(client, f"/v1/sources/{reviewed_ledger['ukraine']['id']}/record", reader)
    assert ukraine["source"]["id"] == reviewed_ledger["ukraine"]["id"]
    assert ukraine["asserted"] == {"true": 1, "false": 1}
    assert ukraine["disputed"] == {"false": 1}
    assert ukraine["reported"] == {}
    assert (ukraine["asserted_total"], ukraine["disputed_total"],
            ukraine["reported_total"]) == (2, 1, 0)
    assert (ukraine["asserted_proved_true"], ukraine["asserted_proved_false"]) == (1, 1)
    # It disputed a claim that proved false: right.
    assert (ukraine["disputed_proved_true"], ukraine["disputed_proved_false"]) == (0, 1)
    russia = get_json(client, f"/v1/sources/{reviewed_ledger['russia']['id']}/record", reader)
    assert russia["asserted"] == {"false": 1} and russia["disputed"] == {"true": 1}
    assert (russia["asserted_proved_true"], russia["asserted_proved_false"]) == (0, 1)
    # It denied a claim that proved true: wrong.
    assert (russia["disputed_proved_true"], russia["disputed_proved_false"]) == (1, 0)
    un = get_json(client, f"/v1/sources/{reviewed_ledger['un']['id']}/record", reader)
    assert un["asserted"] == {"mostly_true": 1} and un["asserted_proved_true"] == 1
    belta = get_json(client, f"/v1/sources/{reviewed_ledger['belta']['id']}/record", reader)
    assert belta["reported"] == {"in_review": 1} and belta["reported_total"] == 1
    assert belta["asserted_total"] == belta["disputed_total"] == 0

def test_get_source_record_follows_new_verdicts(client, auth, reviewed_ledger):
    url = f"/v1/sources/{reviewed_ledger['isw']['id']}/record"
    assert get_json(client, url, auth("reader"))["asserted"] == {"in_review": 1}
    review(client, auth("checker"), reviewed_ledger["claims"]["info_op"]["id"], "mostly_false")
    record = get_json(client, url, auth("reader"))
    assert record["asserted"] == {"mostly_false": 1}
    assert record["asserted_proved_false"] == 1 and record["asserted_proved_true"] == 0

def test_get_source_record_unknown_source_is_404(client, auth):
    assert_problem(client.get("/v1/sources/src_nope/record", headers=auth("reader")), 404)
