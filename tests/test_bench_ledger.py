"""The bench ledger (bench/ledger.py) holds the rows a new claim is written among, as the app
makes them: each claim's band keys and its `claim.created` event (bench P13); its
PostgreSQL copy takes new events after the copied ones."""

import contextlib
import sqlite3

import pytest
import sqlalchemy as sa

from app import migrate
from app.config import Settings
from app.db import Database
from app.domain import claims, similarity
from app.models import ClaimCreate
from app.models.events import unpack_json
from bench import ledger

CLAIMS = 150


@pytest.fixture
def small_ledger(tmp_path):
    path = tmp_path / "ledger.db"
    migrate.upgrade(f"sqlite:///{path}")
    meta = ledger._fill_sqlite(path, CLAIMS)
    return path, meta


def test_ledger_has_the_apps_band_keys_and_one_event_a_claim(small_ledger):
    path, _ = small_ledger
    with contextlib.closing(sqlite3.connect(path)) as conn:
        stored = dict(conn.execute("SELECT id, text FROM claim"))
        bands = set(conn.execute("SELECT band, claim_id FROM claim_band"))
        events = conn.execute(
            "SELECT id, action, entity_id, claim_id, changes FROM event ORDER BY id").fetchall()
    assert len(stored) == CLAIMS
    expected = {(row["band"], row["claim_id"]) for claim_id, text in stored.items()
                for row in similarity.band_rows(claim_id, text)}
    assert len(expected) > CLAIMS  # several keys a claim
    assert bands == expected
    assert [e[0] for e in events] == list(range(1, CLAIMS + 1))
    for _, action, entity_id, claim_id, changes in events:
        assert action == "claim.created" and entity_id == claim_id
        assert unpack_json(changes) == {"text": stored[claim_id]}  # packed, as the app stores it


def test_postgresql_copy_takes_new_events_after_the_copied_ones(small_ledger, databases,
                                                                monkeypatch):
    if databases.kind != "postgresql":
        pytest.skip("needs PostgreSQL (CLAIMLEDGER_TEST_DATABASE_URL)")
    path, _ = small_ledger

    @contextlib.contextmanager
    def test_database(_tag):
        yield databases.empty_url()

    monkeypatch.setattr(ledger, "pg_database", test_database)
    with ledger.pg_ledger(path, "test") as url:
        db = Database(Settings(database_url=url))
        try:
            with db.write_session() as session:
                source_id = session.execute(sa.text("SELECT id FROM source LIMIT 1")).scalar()
                (created,) = claims.create_claims(session, [(ClaimCreate.model_validate({
                    "text": "A claim written after the copy, about a new bridge.",
                    "attributions": [{"source_id": source_id, "stance": "asserts"}]}), "t")])
                session.commit()
            with db.engine.connect() as conn:
                event_id = conn.execute(sa.text(
                    "SELECT id FROM event WHERE claim_id = :c"), {"c": created.id}).scalar()
                bands = conn.execute(sa.text("SELECT count(*) FROM claim_band")).scalar()
        finally:
            db.dispose()
    assert event_id == CLAIMS + 1
    assert bands > CLAIMS
