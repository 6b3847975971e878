"""API keys: the secret is shown once and stored only as a hash; revoked keys stop working."""

import contextlib
import hashlib
import subprocess
import sys
import time

import httpx
import pytest
from rich.console import Console

from app import cli as cli_module
from app.cli import cli
from tests.factories import assert_problem, bearer, get_json, make_key
from tests.live_server import ROOT, free_port, settings_env, stop_process


def test_create_key_returns_secret_once(client, auth):
    response = client.post("/v1/keys", json={"name": "feed-scraper", "role": "ingester"},
                           headers=auth("admin"))
    assert response.status_code == 201, response.text
    created = response.json()
    secret = created["secret"]
    assert secret.startswith("clk_") and len(secret) >= 40
    assert (created["name"], created["role"], created["created_by"]) == (
        "feed-scraper", "ingester", "test-admin")
    assert secret.startswith(created["prefix"]) and created["prefix"] != secret
    assert created["revoked_at"] is None

    digest = hashlib.sha256(secret.encode()).hexdigest()
    for url, params in (("/v1/keys", {}), ("/v1/keys", {"include_revoked": "true"}),
                        ("/v1/events", {"limit": 200})):
        text = client.get(url, params=params, headers=auth("admin")).text
        assert secret not in text and digest not in text, url
        assert "secret" not in text, url
    listed = get_json(client, "/v1/keys", auth("admin"))
    mine = next(k for k in listed if k["id"] == created["id"])
    assert set(mine) == {"id", "name", "role", "prefix", "created_by", "created_at",
                         "revoked_at"}
    assert mine == {k: v for k, v in created.items() if k != "secret"}


def test_create_key_works_with_its_role(client, auth):
    secret = make_key(client, auth("admin"), "desk-reader", "reader")["secret"]
    assert client.get("/v1/claims", headers=bearer(secret)).status_code == 200
    assert_problem(client.post("/v1/claims", json={"text": "A claim."}, headers=bearer(secret)),
                   403)
    checker = make_key(client, auth("admin"), "desk-checker", "checker")["secret"]
    created = client.post("/v1/claims", json={"text": "A claim."}, headers=bearer(checker))
    assert created.status_code == 201, created.text
    assert created.json()["created_by"] == "desk-checker"
    assert_problem(client.get("/v1/keys", headers=bearer(checker)), 403)


def test_delete_key_revokes_it(client, auth):
    created = make_key(client, auth("admin"), "departing-checker", "checker")
    assert client.get("/v1/claims", headers=bearer(created["secret"])).status_code == 200
    response = client.delete(f"/v1/keys/{created['id']}", headers=auth("admin"))
    assert response.status_code == 204, response.text
    assert_problem(client.get("/v1/claims", headers=bearer(created["secret"])), 401)
    assert_problem(client.post("/v1/claims", json={"text": "A claim."},
                               headers=bearer(created["secret"])), 401)

    active = get_json(client, "/v1/keys", auth("admin"))
    assert created["id"] not in {k["id"] for k in active}
    every = get_json(client, "/v1/keys", auth("admin"), include_revoked="true")
    revoked = next(k for k in every if k["id"] == created["id"])
    assert revoked["revoked_at"] is not None
    assert client.delete(f"/v1/keys/{created['id']}", headers=auth("admin")).status_code == 204
    events = get_json(client, "/v1/events", auth("admin"), action="key.revoked")["items"]
    assert [(e["entity_id"], e["actor"]) for e in events] == [(created["id"], "test-admin")]


def test_create_key_duplicate_active_name_is_409(client, auth):
    first = make_key(client, auth("admin"), "ingest-bot", "ingester")
    before = get_json(client, "/v1/keys", auth("admin"), include_revoked="true")
    for role in ("ingester", "reader"):
        assert_problem(client.post("/v1/keys", json={"name": "ingest-bot", "role": role},
                                   headers=auth("admin")), 409, contains="ingest-bot")
    assert get_json(client, "/v1/keys", auth("admin"), include_revoked="true") == before
    assert client.delete(f"/v1/keys/{first['id']}", headers=auth("admin")).status_code == 204
    again = make_key(client, auth("admin"), "ingest-bot", "ingester")
    assert again["id"] != first["id"]
    assert client.get("/v1/claims", headers=bearer(again["secret"])).status_code == 200


def test_delete_own_key_locks_caller_out(client, auth):
    admin = make_key(client, auth("admin"), "second-admin", "admin")
    response = client.delete(f"/v1/keys/{admin['id']}", headers=bearer(admin["secret"]))
    assert response.status_code == 204, response.text
    assert_problem(client.get("/v1/keys", headers=bearer(admin["secret"])), 401)


# --- the CLI -------------------------------------------------------------------------




def test_run_keys_cli_create_list_revoke(client, auth, runner):
    result = runner.invoke(cli, ["keys", "create", "--name", "cli-bot", "--role", "checker",
                                 "--quiet"])
    assert result.exit_code == 0, result.output
    secret = result.output.strip()
    assert secret.startswith("clk_") and "\n" not in secret
    assert client.get("/v1/claims", headers=bearer(secret)).status_code == 200
    key = next(k for k in get_json(client, "/v1/keys", auth("admin")) if k["name"] == "cli-bot")
    assert key["role"] == "checker"
    assert key["created_by"] == "cli"

    listing = runner.invoke(cli, ["keys", "list"])
    assert listing.exit_code == 0, listing.output
    assert "cli-bot" in listing.output
    assert secret not in listing.output
    assert hashlib.sha256(secret.encode()).hexdigest() not in listing.output

    duplicate = runner.invoke(cli, ["keys", "create", "--name", "cli-bot", "--role", "reader"])
    assert duplicate.exit_code == 1
    assert "cli-bot" in duplicate.output

    revoked = runner.invoke(cli, ["keys", "revoke", key["id"]])
    assert revoked.exit_code == 0, revoked.output
    assert_problem(client.get("/v1/claims", headers=bearer(secret)), 401)
    missing = runner.invoke(cli, ["keys", "revoke", "key_missing"])
    assert missing.exit_code == 1

    verbose = runner.invoke(cli, ["keys", "create", "--name", "cli-bot", "--role", "admin"])
    assert verbose.exit_code == 0, verbose.output
    new_secret = verbose.output.strip().splitlines()[-1]
    assert client.get("/v1/keys", headers=bearer(new_secret)).status_code == 200


def test_run_keys_cli_create_replace_revokes_old_key(client, auth, runner):
    old = runner.invoke(cli, ["keys", "create", "--name", "nightly", "--role", "ingester",
                              "--quiet"]).output.strip()
    result = runner.invoke(cli, ["keys", "create", "--name", "nightly", "--role", "ingester",
                                 "--replace", "--quiet"])
    assert result.exit_code == 0, result.output
    new = result.output.strip()
    assert new != old
    assert_problem(client.get("/v1/claims", headers=bearer(old)), 401)
    assert client.get("/v1/claims", headers=bearer(new)).status_code == 200


LONG_NAME = "nightly-ingest-of-the-regional-election-feeds-from-three-partner-newsrooms"


def listed_ids(client, auth) -> list[str]:
    return [k["id"] for k in get_json(client, "/v1/keys", auth("admin"))]


def test_run_keys_cli_list_piped_prints_whole_ids(client, auth, runner):
    make_key(client, auth("admin"), LONG_NAME, "ingester")
    listing = runner.invoke(cli, ["keys", "list"])
    assert listing.exit_code == 0, listing.output
    rows = [line.split("\t") for line in listing.output.splitlines()]
    assert [row[0] for row in rows] == listed_ids(client, auth)
    assert LONG_NAME in [row[-1] for row in rows]


def test_run_keys_cli_list_terminal_80_columns_keeps_ids_whole(client, auth, runner,
                                                                monkeypatch):
    make_key(client, auth("admin"), LONG_NAME, "ingester")
    monkeypatch.setattr(cli_module, "console",
                        Console(force_terminal=True, width=80, color_system=None))
    listing = runner.invoke(cli, ["keys", "list", "--include-revoked"])
    assert listing.exit_code == 0, listing.output
    lines = listing.output.splitlines()
    for key_id in listed_ids(client, auth):
        assert any(line.split()[:1] == [key_id] for line in lines), (key_id, listing.output)
    assert any(LONG_NAME in line for line in lines), listing.output


def first_admin_start(settings, tmp_path, log_name: str):
    """`claimledger start` as the container runs it, until /healthz answers."""
    port = free_port()
    log = (tmp_path / log_name).open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "start", "--port", str(port)], cwd=ROOT,
        env=settings_env(settings) | {"COLUMNS": "200"}, stdin=subprocess.DEVNULL,
        stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    try:
        with httpx.Client(base_url=url, timeout=2) as http:
            while time.monotonic() < deadline:
                assert process.poll() is None, (tmp_path / log_name).read_text()
                with contextlib.suppress(httpx.TransportError):
                    if http.get("/healthz").status_code == 200:
                        return process, url
                time.sleep(0.1)
        raise AssertionError("no /healthz:\n" + (tmp_path / log_name).read_text())
    except BaseException:
        stop_process(process)
        raise
    finally:
        log.close()


def test_start_cli_first_start_prints_admin_key_later_starts_keep_it(settings, tmp_path):
    process, url = first_admin_start(settings, tmp_path, "first.log")
    try:
        output = (tmp_path / "first.log").read_text()
        exported = [line.split("=", 1)[1] for line in output.splitlines()
                    if line.strip().startswith("export CLAIMLEDGER_KEY=")]
        assert len(exported) == 1, output
        with httpx.Client(base_url=url, timeout=10, headers=bearer(exported[0])) as http:
            assert http.get("/v1/keys").status_code == 200  # an admin key
            assert http.get("/v1/claims").json()["items"], "the demo ledger is loaded"
    finally:
        stop_process(process)

    process, url = first_admin_start(settings, tmp_path, "again.log")
    try:
        output = (tmp_path / "again.log").read_text()
        assert "export CLAIMLEDGER_KEY=" not in output, output
        assert "an admin key exists already" in output
        assert "already has claims" in output
        with httpx.Client(base_url=url, timeout=10, headers=bearer(exported[0])) as http:
            assert http.get("/v1/keys").status_code == 200  # the first key still works
            assert [k["name"] for k in http.get("/v1/keys").json()] == ["first-admin"]
    finally:
        stop_process(process)


@pytest.mark.parametrize("name", ["...", "\u200b", "   "])
def test_run_keys_cli_create_wordless_name_is_refused(client, auth, runner, name):
    """The CLI holds a key's name to the API's rule: at least one letter or digit."""
    result = runner.invoke(cli, ["keys", "create", "--name", name, "--role", "reader"])
    assert result.exit_code == 1, result.output
    assert "letter or digit" in result.output or "blank" in result.output, result.output
    assert name not in [k["name"] for k in client.get("/v1/keys", headers=auth("admin")).json()]
