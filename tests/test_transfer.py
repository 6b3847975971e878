"""Moving a ledger: export (CLI and GET /v1/export), import into an empty database, the
byte-for-byte round trip on both databases and across them, and every bad file refused."""

import json
import os
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from app import demo, migrate
from app.cli import cli
from app.config import Settings, get_settings
from app.db import Database
from app.domain import transfer_format, transfer_import
from app.main import create_app
from tests.conftest import PG_URL, mint_role_keys
from tests.factories import assert_problem, make_claim, review, with_version


def run_cli(url: str, *args: str):
    """The CLI's result with its database at `url`."""
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(cli, list(args), env={"CLAIMLEDGER_DATABASE_URL": url})
    finally:
        get_settings.cache_clear()


def empty_database(databases, kind: str | None = None) -> str:
    """A new migrated database with nothing in it: of the suite's kind, or a SQLite file."""
    if kind == "sqlite" and databases.kind != "sqlite":
        url = f"sqlite:///{databases.tmp if hasattr(databases, 'tmp') else '/tmp'}" \
              f"/moved-{os.urandom(4).hex()}.db"
    else:
        url = databases.empty_url()
    migrate.upgrade(url)
    return url


def export_of(url: str, tmp_path: Path) -> bytes:
    out = tmp_path / f"export-{os.urandom(4).hex()}.ndjson"
    result = run_cli(url, "export", "-o", str(out))
    assert result.exit_code == 0, result.output
    return out.read_bytes()


def import_file(url: str, path: Path, *args: str):
    return run_cli(url, "import", str(path), *args)


@pytest.fixture
def ledger(client, auth, db):
    """The demo ledger (its verdicts published) plus an edit, reviews, a link, a merge, a
    publication withdrawn and republished, a source merge and a deleted claim."""
    with db.write_session() as session:
        demo.load_demo(session)
        session.commit()
    admin = auth("admin")
    first = make_claim(client, admin, "Belarus has moved troops to the Ukrainian border.",
                       topics=["belarus"], attributions=[
                           {"source": "ISW", "stance": "asserts", "quote": "=1+1"},
                           {"source": "Minsk residents", "stance": "disputes"}])
    edited = client.patch(f"/v1/claims/{first['id']}", headers=with_version(admin, 1),
                          json={"text": "Belarus has moved troops and armour to the border."})
    assert edited.status_code == 200, edited.text
    review(client, admin, first["id"], "mostly_false")
    duplicate = make_claim(client, admin, "Belarusian troops have gone to the Ukrainian border.")
    merged = client.post(f"/v1/claims/{first['id']}/merge", headers={**admin, "If-Match": "*"},
                         json={"duplicate_id": duplicate["id"]})
    assert merged.status_code == 200, merged.text
    other = make_claim(client, admin, "Russian aircraft were moved to southern Belarus.")
    linked = client.post(f"/v1/claims/{first['id']}/links", headers={**admin, "If-Match": "*"},
                         json={"target_id": other["id"], "kind": "related"})
    assert linked.status_code == 201, linked.text
    for step in ("publish", "withdraw", "publish"):
        answer = client.request(
            "POST" if step == "publish" else "DELETE", f"/v1/claims/{first['id']}/publish",
            headers=admin, json={"url": "https://factcheck.example.org/troops",
                                 "headline": "Troops, not armour"} if step == "publish" else None)
        assert answer.status_code in (200, 204), answer.text
    typo = client.post("/v1/sources", headers=admin, json={"name": "Insitute for the Study of War"})
    assert typo.status_code == 201, typo.text
    isw = client.get("/v1/sources", headers=admin, params={"name": "ISW"}).json()["items"][0]
    folded = client.post(f"/v1/sources/{isw['id']}/merge", headers={**admin, "If-Match": "*"},
                         json={"duplicate_id": typo.json()["id"]})
    assert folded.status_code == 200, folded.text
    gone = make_claim(client, admin, "A claim registered by mistake.")
    deleted = client.delete(f"/v1/claims/{gone['id']}", headers=with_version(admin, 1))
    assert deleted.status_code == 204, deleted.text
    return {"first": first, "duplicate": duplicate, "other": other, "gone": gone}


def http_export(client: TestClient, headers, **params) -> bytes:
    response = client.get("/v1/export", headers=headers, params=params or None)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    return response.content


def test_export_ledger_lines_kinds_in_order(client, auth, ledger):
    body = http_export(client, auth("admin"))
    lines = [json.loads(line) for line in body.decode().splitlines()]
    assert lines[0] == {"kind": "header", "format": "claimledger-export",
                        "schema_version": transfer_format.SCHEMA_VERSION, "as_of": None}
    assert lines[-1]["kind"] == "end" and lines[-1]["records"] == len(lines) - 2
    kinds = [line["kind"] for line in lines[1:-1]]
    order = [k.name for k in transfer_format.KINDS]
    assert kinds == sorted(kinds, key=order.index)  # no forward references
    assert {"source", "source_name", "claim", "claim_topic", "attribution", "review",
            "claim_link", "event"} <= set(kinds)
    assert "api_key" not in kinds and b"secret_hash" not in body
    events = [line["data"]["id"] for line in lines if line["kind"] == "event"]
    assert events == sorted(events)
    actions = {line["data"]["action"] for line in lines if line["kind"] == "event"}
    assert {"claim.merged", "claim.deleted", "key.created", "link.created"} <= actions


def test_export_needs_admin(client, auth):
    assert_problem(client.get("/v1/export", headers=auth("checker")), 403)
    assert_problem(client.get("/v1/export"), 401)
    assert_problem(client.get("/v1/export", headers=auth("admin"),
                              params={"as_of": "yesterday"}), 422)


@pytest.mark.parametrize("chunk", [1000, 7])  # 7: every kind read and written in pages
def test_export_import_export_same_bytes_and_same_ledger(client, auth, ledger, databases,
                                                         tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(transfer_format, "CHUNK", chunk)
    exported = http_export(client, auth("admin"))
    path = tmp_path / "ledger.ndjson"
    path.write_bytes(exported)
    target = empty_database(databases)
    result = import_file(target, path)
    assert result.exit_code == 0, result.output
    assert "imported" in result.output
    assert export_of(target, tmp_path) == exported
    _same_ledger(client, auth("admin"), target, ledger)


def _same_ledger(client: TestClient, headers, url: str, ledger) -> None:
    """Reads on the imported ledger answer as on the original; new writes follow on."""
    settings = Settings(database_url=url, key_cache_seconds=0, threads=4,
                        rate_limit_per_minute=1_000_000)
    moved_keys = mint_role_keys(settings, "moved")
    moved_headers = {"Authorization": f"Bearer {moved_keys['admin']}"}
    database = Database(settings)
    try:
        with TestClient(create_app(settings, database=database),
                        raise_server_exceptions=False) as moved:
            first = ledger["first"]["id"]
            for path in (f"/v1/claims/{first}", f"/v1/claims/{first}/history",
                         "/v1/claims?limit=200", "/v1/claims?q=belarus+troops",
                         "/v1/claims?contested=true", f"/v1/claims/{first}/similar",
                         "/v1/sources?limit=200", "/v1/events?limit=200"):
                mine = client.get(path, headers=headers)
                theirs = moved.get(path, headers=moved_headers)
                assert theirs.status_code == mine.status_code == 200, (path, theirs.text)
                if path.startswith("/v1/events"):  # the new keys' events come after
                    n = len(mine.json()["items"])
                    assert theirs.json()["items"][:n] == mine.json()["items"]
                elif "q=" in path:
                    # The index is rebuilt: the same matches, though on PostgreSQL a tie in
                    # rank may fall the other way (a document's word positions can differ).
                    def found(response):
                        return sorted(c["id"] for c in response.json()["items"])
                    assert found(theirs) == found(mine)
                else:
                    assert theirs.json() == mine.json(), path
            gone = moved.get(f"/v1/claims/{ledger['gone']['id']}", headers=moved_headers)
            assert gone.status_code == 404
            # Events and claims written after the import follow the imported ones.
            last = max(e["id"] for e in client.get("/v1/events?limit=200",
                                                   headers=headers).json()["items"])
            new = moved.post("/v1/claims", headers=moved_headers,
                             json={"text": "A claim made in the new home of the ledger."})
            assert new.status_code == 201, new.text
            events = moved.get("/v1/events", headers=moved_headers,
                               params={"claim_id": new.json()["id"]}).json()["items"]
            assert events and events[0]["id"] > last
    finally:
        database.dispose()


def test_round_trip_across_databases(client, auth, ledger, databases, tmp_path):
    if not PG_URL:
        pytest.skip("needs CLAIMLEDGER_TEST_DATABASE_URL (PostgreSQL) for the other database")
    exported = http_export(client, auth("admin"))  # from PostgreSQL
    path = tmp_path / "from-pg.ndjson"
    path.write_bytes(exported)
    sqlite_url = f"sqlite:///{tmp_path / 'moved.db'}"
    migrate.upgrade(sqlite_url)
    assert import_file(sqlite_url, path).exit_code == 0
    from_sqlite = export_of(sqlite_url, tmp_path)
    assert from_sqlite == exported
    _same_ledger(client, auth("admin"), sqlite_url, ledger)
    back = tmp_path / "from-sqlite.ndjson"
    back.write_bytes(from_sqlite)
    pg_again = empty_database(databases)
    result = import_file(pg_again, back)
    assert result.exit_code == 0, result.output
    assert export_of(pg_again, tmp_path) == exported


def test_round_trip_sqlite_to_postgresql(tmp_path, databases):
    if not PG_URL:
        pytest.skip("needs CLAIMLEDGER_TEST_DATABASE_URL (PostgreSQL) for the other database")
    sqlite_url = f"sqlite:///{tmp_path / 'origin.db'}"
    migrate.upgrade(sqlite_url)
    database = Database(Settings(database_url=sqlite_url))
    try:
        with database.write_session() as session:
            demo.load_demo(session)
            session.commit()
    finally:
        database.dispose()
    exported = export_of(sqlite_url, tmp_path)
    path = tmp_path / "from-sqlite.ndjson"
    path.write_bytes(exported)
    pg = empty_database(databases)
    assert import_file(pg, path).exit_code == 0
    assert export_of(pg, tmp_path) == exported


def test_export_as_of_before_changes(client, auth, ledger, databases, tmp_path, monkeypatch):
    monkeypatch.setattr(transfer_format, "CHUNK", 5)  # claims' snapshots found a page at a time
    admin = auth("admin")
    first = ledger["first"]["id"]
    history = client.get(f"/v1/claims/{first}/history", headers=admin).json()
    created_at = client.get(f"/v1/events?claim_id={first}", headers=admin
                            ).json()["items"][0]["at"]
    body = http_export(client, admin, as_of=created_at)
    lines = [json.loads(line) for line in body.decode().splitlines()]
    assert lines[0]["as_of"] == created_at
    claims = {line["data"]["id"]: line["data"] for line in lines if line["kind"] == "claim"}
    assert claims[first]["text"] == ledger["first"]["text"]  # before the edit
    assert claims[first]["status"] == "unverified" and claims[first]["version"] == 1
    assert ledger["other"]["id"] not in claims  # registered later
    assert all(line["data"]["at"] <= created_at for line in lines if line["kind"] == "event")
    assert history  # the history itself was not changed by the export
    path = tmp_path / "past.ndjson"
    path.write_bytes(body)
    target = empty_database(databases)
    result = import_file(target, path)
    assert result.exit_code == 0, result.output
    # The same records (snapshot-derived kinds come claim by claim, not in key order).
    again = export_of(target, tmp_path).splitlines()
    assert sorted(again[1:]) == sorted(body.splitlines()[1:-1] + again[-1:])


def test_export_cli_to_stdout_as_of(client, auth, ledger, settings):
    result = run_cli(settings.database_url, "export", "--as-of", "2000-01-01T00:00:00Z")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[0]["as_of"] == "2000-01-01T00:00:00.000000Z"
    assert [line["kind"] for line in lines[1:]] == ["end"]
    bad = run_cli(settings.database_url, "export", "--as-of", "yesterday")
    assert bad.exit_code != 0 and "RFC 3339" in bad.output


# --- refused ----------------------------------------------------------------------------


@pytest.fixture
def exported(client, auth, ledger, tmp_path) -> Path:
    path = tmp_path / "ledger.ndjson"
    path.write_bytes(http_export(client, auth("admin")))
    return path


def _count(url: str, table: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
    finally:
        engine.dispose()


def _refused(url: str, path: Path, *fragments: str, args: tuple[str, ...] = ()) -> None:
    result = import_file(url, path, *args)
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert "nothing was imported" in text
    for fragment in fragments:
        assert fragment in text, text
    for table in ("claim", "source", "event", "claim_band"):
        assert _count(url, table) == 0, table  # nothing half-imported


def test_import_into_non_empty_database_refused_unless_merge(exported, settings, databases,
                                                             tmp_path):
    result = import_file(settings.database_url, exported)
    assert result.exit_code == 1
    assert "already holds a ledger" in " ".join(result.output.split())
    # --merge: every record is there already by id, so all are skipped.
    merged = import_file(settings.database_url, exported, "--merge")
    assert merged.exit_code == 0, merged.output
    assert "skipped, already there" in merged.output
    assert "imported nothing" in merged.output
    # Into a database holding part of it: the rest goes in.
    target = empty_database(databases)
    lines = exported.read_bytes().splitlines(keepends=True)
    # Every other attribution left out (nothing refers to one, so the rest imports whole).
    part = [line for line in lines
            if b'"kind":"attribution"' not in line or lines.index(line) % 2]
    partial = tmp_path / "part.ndjson"
    partial.write_bytes(b"".join(part))
    assert import_file(target, partial, "--continue").exit_code in (0, 2)
    again = import_file(target, exported, "--merge")
    assert again.exit_code == 0, again.output
    assert export_of(target, tmp_path) == exported.read_bytes()


def test_import_file_cut_in_the_middle_refused(exported, databases, tmp_path):
    data = exported.read_bytes()
    cut = tmp_path / "cut.ndjson"
    cut.write_bytes(data[: len(data) // 2])
    n = data[: len(data) // 2].count(b"\n") + 1
    _refused(empty_database(databases), cut, f"line {n}", "cut short")
    whole_lines = tmp_path / "cut-at-line.ndjson"
    whole_lines.write_bytes(b"".join(data.splitlines(keepends=True)[:-1]))
    _refused(empty_database(databases), whole_lines, "without its end record")


def test_import_line_edited_refused(exported, databases, tmp_path):
    lines = exported.read_bytes().splitlines(keepends=True)
    n = next(i for i, line in enumerate(lines) if b'"kind":"claim"' in line)
    record = json.loads(lines[n])
    record["data"]["text"] = "Something nobody said."
    lines[n] = (json.dumps(record) + "\n").encode()
    edited = tmp_path / "edited.ndjson"
    edited.write_bytes(b"".join(lines))
    _refused(empty_database(databases), edited, f"line {n + 1}", "does not match its check")


def test_import_line_removed_refused(exported, databases, tmp_path):
    lines = exported.read_bytes().splitlines(keepends=True)
    n = next(i for i, line in enumerate(lines) if b'"kind":"review"' in line)
    removed = tmp_path / "removed.ndjson"
    removed.write_bytes(b"".join(lines[:n] + lines[n + 1:]))
    _refused(empty_database(databases), removed, "end record says")


def test_import_newer_schema_version_refused(exported, databases, tmp_path):
    lines = exported.read_bytes().splitlines(keepends=True)
    header = json.loads(lines[0])
    header["schema_version"] = transfer_format.SCHEMA_VERSION + 1
    lines[0] = (json.dumps(header) + "\n").encode()
    newer = tmp_path / "newer.ndjson"
    newer.write_bytes(b"".join(lines))
    _refused(empty_database(databases), newer, "line 1", "newer than this Claimledger reads")


def test_import_not_utf8_refused(exported, databases, tmp_path):
    lines = exported.read_bytes().splitlines(keepends=True)
    lines[3] = lines[3].replace(b'"data":', b'"data":\xff', 1)
    latin = tmp_path / "latin1.ndjson"
    latin.write_bytes(b"".join(lines))
    _refused(empty_database(databases), latin, "line 4: not UTF-8")


def test_import_continue_reports_bad_records_imports_the_rest(exported, databases, tmp_path):
    lines = exported.read_bytes().splitlines(keepends=True)
    n = next(i for i, line in enumerate(lines) if b'"kind":"event"' in line)
    lines[n] = lines[n].replace(b'"check":"', b'"check":"0', 1)
    damaged = tmp_path / "damaged.ndjson"
    damaged.write_bytes(b"".join(lines))
    target = empty_database(databases)
    _refused(target, damaged, f"line {n + 1}")
    result = import_file(target, damaged, "--continue")
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert f"left out: line {n + 1}" in text and "1 records left out" in text
    assert _count(target, "event") == sum(b'"kind":"event"' in line for line in lines) - 1
    assert _count(target, "claim") == sum(b'"kind":"claim"' in line for line in lines)


def test_import_dangling_reference_refused_naming_line(databases, tmp_path):
    header = json.dumps({"kind": "header", "format": transfer_format.FORMAT,
                         "schema_version": 1, "as_of": None})
    row = {"id": "rev_1", "claim_id": "clm_missing", "from_status": "unverified",
           "to_status": "in_review", "rationale": None, "evidence_urls": [],
           "reviewer": "x", "created_at": "2026-12-01T00:00:00.000000Z"}
    line, check = transfer_format.record_line("review", row)
    import hashlib
    digest = hashlib.blake2b(check.encode(), digest_size=16).hexdigest()
    path = tmp_path / "dangling.ndjson"
    path.write_text(header + "\n" + line + json.dumps(
        {"kind": "end", "records": 1, "digest": digest}) + "\n")
    _refused(empty_database(databases), path, "line 2", "review record could not be stored")


def _synthetic_export(path: Path, claims: int) -> None:
    """An export of `claims` claims, each with a topic and an event (no database needed)."""
    import hashlib

    digest = hashlib.blake2b(digest_size=16)
    count = 0
    at = "2026-12-01T00:00:00.000000Z"
    with path.open("w", encoding="utf-8") as out:
        out.write(json.dumps({"kind": "header", "format": transfer_format.FORMAT,
                              "schema_version": 1, "as_of": None}) + "\n")

        def put(kind: str, data: dict) -> None:
            nonlocal count
            line, check = transfer_format.record_line(kind, data)
            digest.update(check.encode())
            count += 1
            out.write(line)

        ids = [f"clm_{n:020d}" for n in range(claims)]
        for n, claim_id in enumerate(ids):
            put("claim", {"id": claim_id, "text": f"Claim {n} about troops in region {n}.",
                          "language": "en", "places": [], "period_start_date": None,
                          "period_end_date": None, "first_stated_at": None, "origin": None,
                          "external_id": None, "fingerprint": f"{n:064x}", "version": 1,
                          "status": "unverified", "duplicate_of": None, "created_by": "t",
                          "created_at": at, "updated_at": at})
        for claim_id in ids:
            put("claim_topic", {"claim_id": claim_id, "topic": "belarus"})
        for n, claim_id in enumerate(ids, 1):
            put("event", {"id": n, "at": at, "actor": "t", "action": "claim.created",
                          "entity_type": "claim", "entity_id": claim_id, "claim_id": claim_id,
                          "changes": {}, "snapshot": None})
        out.write(json.dumps({"kind": "end", "records": count,
                              "digest": digest.hexdigest()}) + "\n")


def test_import_memory_does_not_grow_with_the_file(databases, tmp_path, monkeypatch):
    import functools
    import tracemalloc

    from app.domain import similarity, text

    # The process's own bounded caches (words, MinHash, fingerprints) hold thousands of
    # entries: kept small here, so what is measured is the import's own memory.
    for module, name in ((similarity, "words"), (similarity, "_permuted"),
                         (similarity, "text_bands"), (text, "fingerprint")):
        original = getattr(module, name)
        monkeypatch.setattr(module, name, functools.lru_cache(maxsize=8)(
            getattr(original, "__wrapped__", original)))
    peaks = {}
    for claims in (1500, 6000):
        path = tmp_path / f"{claims}.ndjson"
        _synthetic_export(path, claims)
        url = empty_database(databases)
        database = Database(Settings(database_url=url))
        try:
            with database.write_session() as session, path.open("rb") as stream:
                tracemalloc.start()
                summary = transfer_import.import_lines(session, transfer_import.read_lines(stream))
                peaks[claims] = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
                session.commit()
        finally:
            database.dispose()
        assert summary.imported == {"claim": claims, "claim_topic": claims, "event": claims}
        assert _count(url, "claim_band") > claims  # derived rows rebuilt
    # Four times the file, about the same memory (a chunk of records at a time).
    assert peaks[6000] < 1.5 * peaks[1500], peaks
