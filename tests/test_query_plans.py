"""Query plans that must hold at any size: a list page walks an index in order.

SQLite once answered `GET /v1/claims?limit=50` by the duplicate_of index for
`duplicate_of IS NULL` (true of nearly every claim) and sorted the whole table: seconds at
1,000,000 claims (bench/RESULTS.md, "Query plans"). The plan is checked here on the
statements the API really sends.
"""

import pytest
from sqlalchemy import event

from app.domain import similarity
from tests.factories import make_claim


def _sent(db, client, auth, url: str, wanted) -> list[tuple[str, object]]:
    """The statements (with parameters) serving `url` ran that `wanted(statement)` keeps."""
    seen: list[tuple[str, object]] = []

    def record(_conn, _cursor, statement, parameters, _context, _many):
        if wanted(statement):
            seen.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        assert client.get(url, headers=auth("reader")).status_code == 200
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    return seen


def _plans(db, client, auth, url: str) -> list[str]:
    """EXPLAIN QUERY PLAN of every SELECT on the claim table that serving `url` ran."""
    seen = _sent(db, client, auth, url, lambda statement: statement.lstrip().upper()
                 .startswith("SELECT") and ("FROM claim " in statement
                                            or "JOIN claim " in statement))
    plans = []
    with db.engine.connect() as conn:
        for statement, parameters in seen:
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
            plans.append("\n".join(row[-1] for row in rows))
    return plans


@pytest.fixture
def sqlite_planner(db):
    if not db.is_sqlite:
        pytest.skip("SQLite's planner (PostgreSQL plans from statistics ANALYZE keeps)")


def _claims(client, auth, count: int = 3, text: str = "Claim {} about troops in Belarus.",
            **fields) -> None:
    for i in range(count):
        make_claim(client, auth("checker"), text.format(i), **fields)


def test_a_list_page_walks_the_created_at_index(sqlite_planner, db, client, auth):
    _claims(client, auth)
    plans = _plans(db, client, auth, "/v1/claims?limit=50")
    assert plans, "no statement on the claim table was seen"
    page = plans[0]
    assert "ix_claim_duplicate_of" not in page, page
    assert "TEMP B-TREE FOR ORDER BY" not in page, page
    assert "ix_claim_created_at_id" in page, page


def test_a_page_of_one_status_needs_no_sort(sqlite_planner, db, client, auth):
    _claims(client, auth)
    page = _plans(db, client, auth, "/v1/claims?limit=50&status=unverified")[0]
    assert "TEMP B-TREE FOR ORDER BY" not in page, page
    assert "ix_claim_status_created_at_id" in page, page


def test_a_filtered_search_starts_from_the_matches(sqlite_planner, db, client, auth):
    # From about 8 keys on, SQLite preferred walking every claim of the status to looking
    # up the few claims the search found (bench/RESULTS.md, "Query plans").
    _claims(client, auth, 12, "Claim {} about a pontoon bridge.")
    plans = _plans(db, client, auth, "/v1/claims?q=pontoon&status=unverified&limit=50")
    ranked = [plan for plan in plans if "claim_search_doc" in plan]
    assert ranked, plans
    for plan in ranked:
        assert "ix_claim_status_created_at_id" not in plan, plan
        first, second = plan.splitlines()[:2]
        assert first.startswith("SEARCH claim_search_doc USING INTEGER PRIMARY KEY"), plan
        assert second.startswith("SEARCH claim USING INDEX sqlite_autoindex_claim_1 (id=?)"), \
            plan


def test_contested_claims_are_found_from_the_disputing_side(sqlite_planner, db, client, auth):
    # Tested claim by claim (two EXISTS each), a contested page was slow when few claims
    # were contested (bench/RESULTS.md, "Query plans").
    _claims(client, auth, attributions=[{"source": "BelTA", "stance": "asserts"}])
    contested = _plans(db, client, auth, "/v1/claims?limit=50&contested=true")[0]
    # The claims come from the list of disputed ones, each looked up by id...
    assert contested.splitlines()[0].startswith("SEARCH claim USING INDEX"), contested
    assert "SEARCH against USING COVERING INDEX ix_attribution_stance_claim_id (stance=?)" \
        in contested, contested
    # ...and the uncontested walk the time index, each claim probed by (stance, claim_id).
    uncontested = _plans(db, client, auth, "/v1/claims?limit=50&contested=false")[0]
    assert "SCAN claim USING INDEX ix_claim_created_at_id" in uncontested, uncontested
    assert "SEARCH against USING INDEX ix_attribution_stance_claim_id (stance=? AND " \
        "claim_id=?)" in uncontested, uncontested


def test_uncontested_claims_are_an_anti_join_on_postgresql(db, client, auth):
    if db.is_sqlite:
        pytest.skip("PostgreSQL's plan (SQLite's is checked above)")
    # As NOT IN (list), PostgreSQL could re-read the list for every claim once it no
    # longer fitted work_mem (bench/RESULTS.md, "Query plans").
    make_claim(client, auth("checker"), "Claim about troops in Belarus.",
               attributions=[{"source": "BelTA", "stance": "asserts"}])
    seen = _sent(db, client, auth, "/v1/claims?contested=false",
                 lambda statement: "against" in statement)
    assert seen, "the contested filter was not sent"
    with db.engine.begin() as conn:
        conn.exec_driver_sql("SET LOCAL work_mem = '64kB'")
        plan = "\n".join(row[0] for row in conn.exec_driver_sql(
            "EXPLAIN " + seen[0][0], seen[0][1]).all())
    assert "Anti Join" in plan and "SubPlan" not in plan, plan


def _candidate_plans(db, client, auth) -> tuple[str, str]:
    """The plans of the two near-duplicate candidate statements a new claim's write runs
    (the holders of its bands, then the chosen candidates' texts), with enough claims
    stored (one band each shared) that a scan would look cheap."""
    texts = [f"Troops {i} crossed the Belarus border near Brest at dawn." for i in range(40)]
    response = client.post("/v1/ingest", json=[{"text": t} for t in texts],
                           headers=auth("ingester"))
    assert response.status_code == 200, response.text
    wanted = {str(similarity._HOLDERS[db.engine.dialect.name]): "holders",
              str(similarity._CANDIDATES[db.engine.dialect.name]): "texts"}
    seen: dict[str, tuple[str, object]] = {}

    def record(_conn, _cursor, statement, parameters, context, _many):
        compiled = getattr(context, "compiled", None)
        name = wanted.get(str(compiled.statement)) if compiled is not None else None
        if name is not None:
            seen.setdefault(name, (statement, parameters))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        make_claim(client, auth("checker"), "Troops crossed the Belarus border near Brest.")
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert set(seen) == {"holders", "texts"}, f"the candidate statements were not sent: {seen}"
    explain = "EXPLAIN QUERY PLAN " if db.is_sqlite else "EXPLAIN "
    plans = []
    with db.engine.connect() as conn:
        if not db.is_sqlite:
            conn.exec_driver_sql("ANALYZE claim")
            # At this size a scan of a page or two costs less than an index: forbid it, to
            # see which index each lookup would use.
            conn.exec_driver_sql("SET enable_seqscan = off")
        for name in ("holders", "texts"):
            statement, parameters = seen[name]
            rows = conn.exec_driver_sql(explain + statement, parameters).all()
            plans.append("\n".join(str(row[-1]) for row in rows))
    return plans[0], plans[1]


def test_near_duplicate_candidates_are_looked_up_by_key(db, client, auth):
    # Written as a join, PostgreSQL chose a hash join over a scan of every claim for the
    # candidates' texts; each must be one primary-key lookup, whatever the ledger's size.
    holders, texts = _candidate_plans(db, client, auth)
    if db.is_sqlite:
        assert "SEARCH claim_band USING PRIMARY KEY (band=?)" in holders, holders
        assert "SEARCH claim USING INDEX sqlite_autoindex_claim_1 (id=?)" in texts, texts
        assert "SCAN claim" not in holders + texts, holders + texts
    else:
        # A lookup per band and per candidate: never a hash or merge join, which reads
        # every row.
        for plan in (holders, texts):
            assert "Hash Join" not in plan and "Merge Join" not in plan, plan
            assert "Hash Cond" not in plan, plan
        assert "on claim_band" in holders and "Index Cond: (band = k.band)" in holders, holders
        assert "Index Scan using pk_claim on claim" in texts, texts
