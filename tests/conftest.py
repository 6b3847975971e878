"""Each test gets its own empty, migrated database: a copied SQLite file, or PostgreSQL.

Set CLAIMLEDGER_TEST_DATABASE_URL (for example
postgresql+psycopg://postgres@127.0.0.1:5432/postgres) to run the same suite on PostgreSQL:
the suite creates a database of its own there, truncates it between tests and drops it.
"""

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlmodel import SQLModel
from typer.testing import CliRunner

from app import migrate
from app.config import Settings, get_settings
from app.db import Database
from app.domain import keys
from app.main import create_app
from app.models import Role
from tests.factories import NO_FORCES, SOLDIERS, bearer, make_claim, make_source, review

PG_URL = os.environ.get("CLAIMLEDGER_TEST_DATABASE_URL", "")


class Databases:
    """Hands out a fresh migrated database URL per test."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.pg_admin: sa.Engine | None = None
        self.created: list[str] = []  # this session's databases, dropped at the end
        if PG_URL:
            self.name = f"claimledger_test_{uuid.uuid4().hex[:10]}"
            self.pg_admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
            with self.pg_admin.connect() as conn:
                conn.exec_driver_sql(f'CREATE DATABASE "{self.name}"')
            self.created.append(self.name)
            self.url = sa.make_url(PG_URL).set(database=self.name).render_as_string(
                hide_password=False)
            migrate.upgrade(self.url)
            self._engine = sa.create_engine(self.url)
        else:
            self.template = tmp / "template.db"
            migrate.upgrade(f"sqlite:///{self.template}")

    @property
    def kind(self) -> str:
        return "postgresql" if PG_URL else "sqlite"

    def fresh(self) -> str:
        if PG_URL:
            tables = ", ".join(
                f'"{t.name}"' for t in SQLModel.metadata.sorted_tables
            )
            with self._engine.begin() as conn:
                conn.exec_driver_sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
            return self.url
        path = self.tmp / f"{uuid.uuid4().hex}.db"
        shutil.copyfile(self.template, path)
        return f"sqlite:///{path}"

    def empty_url(self) -> str:
        """A database with no tables at all, for migration tests."""
        if PG_URL:
            name = f"claimledger_mig_{uuid.uuid4().hex[:10]}"
            assert self.pg_admin is not None
            with self.pg_admin.connect() as conn:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
            self.created.append(name)
            return sa.make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
        return f"sqlite:///{self.tmp / uuid.uuid4().hex}.db"

    def close(self) -> None:
        if self.pg_admin is not None:
            self._engine.dispose()
            with self.pg_admin.connect() as conn:
                # Only its own: another session may be running (.ci/run runs two at once).
                for name in self.created:
                    conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            self.pg_admin.dispose()


@pytest.fixture(scope="session")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Databases]:
    dbs = Databases(tmp_path_factory.mktemp("db"))
    yield dbs
    dbs.close()


@pytest.fixture
def settings(databases: Databases) -> Settings:
    return Settings(database_url=databases.fresh(), key_cache_seconds=0, threads=16,
                    rate_limit_per_minute=1_000_000)


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    database = Database(settings)
    yield database
    database.dispose()


@pytest.fixture
def app(settings: Settings, db: Database):
    return create_app(settings, database=db)


@pytest.fixture
def client(app) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def mint_role_keys(settings: Settings, prefix: str) -> dict[str, str]:
    """One key per role in the settings' database: role name -> secret."""
    database = Database(settings)
    try:
        with database.write_session() as session:
            out = {role.value: keys.create_key(session, name=f"{prefix}-{role}", role=role,
                                               actor="tests").secret for role in Role}
            session.commit()
    finally:
        database.dispose()
    return out


@pytest.fixture
def secrets(settings: Settings) -> dict[str, str]:
    """One key per role: role name -> secret."""
    return mint_role_keys(settings, "test")


@pytest.fixture
def runner(settings: Settings, monkeypatch: pytest.MonkeyPatch):
    """A CliRunner whose commands use the test database."""
    monkeypatch.setenv("CLAIMLEDGER_DATABASE_URL", settings.database_url)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


@pytest.fixture
def run_cli(settings: Settings) -> Iterator:
    """run_cli(*args) -> the CliRunner result, with the CLI on this test's database."""
    from app.cli import cli

    runner = CliRunner()
    env = {"CLAIMLEDGER_DATABASE_URL": settings.database_url, "CLAIMLEDGER_KEY": ""}

    def run(*args: str):
        get_settings.cache_clear()
        try:
            return runner.invoke(cli, list(args), env=env)
        finally:
            get_settings.cache_clear()

    yield run
    get_settings.cache_clear()


@pytest.fixture
def auth(secrets: dict[str, str]):
    """auth("checker") -> the Authorization header for a key with that role."""

    def header(role: str = "admin") -> dict[str, str]:
        return bearer(secrets[role])

    return header


# --- ledgers to test against ------------------------------------------------------------


@pytest.fixture
def ledger(client, auth):
    """Two claims (one with an attribution), two sources; returns their ids."""
    isw = make_source(client, auth("ingester"), "Institute for the Study of War",
                      aliases=["ISW"], kind="think_tank", country="US")
    rochan = make_source(client, auth("ingester"), "Rochan Consulting", kind="think_tank")
    first = make_claim(client, auth("ingester"), attributions=[
        {"source_id": isw["id"], "stance": "asserts"}])
    second = make_claim(client, auth("ingester"),
                        "Russia does not currently have enough forces in Belarus to attack.")
    return {"isw": isw, "rochan": rochan, "first": first, "second": second}


NOT_TARGET = "Russia does not intentionally target civilians."
DEATHS = "At least 6,700 civilian deaths have been counted in the war."
INFO_OP = ("Belarus is running an information operation aimed at fixing Ukrainian forces on the "
           "border.")
GETTING_READY = ("Belarus has been getting ready to join the conflict on Russia's side for a few "
                 "months.")


@pytest.fixture
def reviewed_ledger(client, auth):
    """Six claims of the Belarus article with sources, stances and verdicts."""
    ing = auth("ingester")
    ukraine = make_source(client, ing, "Government of Ukraine", kind="government")
    russia = make_source(client, ing, "Government of Russia", kind="government")
    un = make_source(client, ing, "United Nations", kind="intergovernmental")
    isw = make_source(client, ing, "Institute for the Study of War", kind="think_tank")
    belta = make_source(client, ing, "BelTA", kind="news_agency")

    def att(source: dict, stance: str) -> dict:
        return {"source_id": source["id"], "stance": stance}

    claims = {
        "soldiers": make_claim(client, ing, SOLDIERS, topics=["belarus", "military"],
                               attributions=[att(ukraine, "asserts"), att(russia, "denies")]),
        "no_forces": make_claim(client, ing, NO_FORCES, topics=["belarus"],
                                attributions=[att(ukraine, "asserts")]),
        "not_target": make_claim(client, ing, NOT_TARGET, topics=["civilians"],
                                 attributions=[att(russia, "asserts"),
                                               att(ukraine, "disputes")]),
        "deaths": make_claim(client, ing, DEATHS, topics=["casualties", "civilians"],
                             attributions=[att(un, "asserts")]),
        "info_op": make_claim(client, ing, INFO_OP,
                              attributions=[att(isw, "asserts"), att(belta, "reports")]),
        "ready": make_claim(client, ing, GETTING_READY),
    }
    check = auth("checker")
    review(client, check, claims["soldiers"]["id"], "true")
    review(client, check, claims["no_forces"]["id"], "in_review", rationale=None)
    review(client, check, claims["no_forces"]["id"], "false")
    review(client, check, claims["not_target"]["id"], "false")
    review(client, check, claims["deaths"]["id"], "mostly_true")
    review(client, check, claims["info_op"]["id"], "in_review", rationale=None)
    return {"claims": claims, "ukraine": ukraine, "russia": russia, "un": un, "isw": isw,
            "belta": belta}
