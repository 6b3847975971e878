"""`claimledger`: serve, start, migrate, demo, import, keys; thin commands over the domain."""

import os
import shutil
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from app import demo, migrate
from app.config import get_settings
from app.db import Database
from app.domain import keys
from app.errors import AppError
from app.models import ApiKeyCreate, Role

cli = typer.Typer(help="Claimledger: a ledger of factual claims.", no_args_is_help=True)
keys_cli = typer.Typer(help="Manage API keys.", no_args_is_help=True)
cli.add_typer(keys_cli, name="keys")
console = Console()
ACTOR = "cli"
FIRST_ADMIN = "first-admin"  # the key `claimledger start` mints when there is no admin key


def _database() -> Database:
    return Database(get_settings())


# app.middleware.observability.SHARED_DIR_ENV, named here so that serve sets it before that import.
SHARED_METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"


# What `serve` and `start` take alike.
Host = Annotated[str, typer.Option(help="Address to bind.")]
Port = Annotated[int, typer.Option(help="Port to listen on.")]
Workers = Annotated[int, typer.Option(help="Worker processes (PostgreSQL for >1).")]


@cli.command()
def serve(
    host: Host = "127.0.0.1",
    port: Port = 8000,
    workers: Workers = 1,
    migrate_first: Annotated[bool, typer.Option("--migrate/--no-migrate",
                                                help="Apply migrations before serving.")] = True,
) -> None:
    """Serve the API with uvicorn."""
    # Several workers count into files in a directory of this run's own (never one left by
    # an earlier run, nor another server's), so whichever worker answers /metrics can report
    # them all. Set before prometheus-client is imported: it reads the variable once. One
    # worker keeps its metrics in memory, as an app built in-process does.
    metrics_dir = tempfile.mkdtemp(prefix="claimledger-metrics-") if workers > 1 else None
    os.environ.pop(SHARED_METRICS_ENV, None)
    if metrics_dir:
        os.environ[SHARED_METRICS_ENV] = metrics_dir
    import uvicorn

    from app.middleware.observability import configure_logging

    settings = get_settings()
    try:
        configure_logging(settings.log_level)
        if migrate_first:
            migrate.upgrade(settings.database_url)
        # Idle keep-alive connections stay open 75 s (longer than common load-balancer idle
        # timeouts, and than clients that reuse a connection after 5 s); graceful shutdown
        # lets in-flight requests finish (SIGTERM) for graceful_shutdown_seconds (then they
        # are answered 503: app/middleware/deadlines.py).
        # Request headers have a deadline too (app/server/header_deadline.py: uvicorn has
        # none). With
        # several workers, the supervisor kills one that misses a health ping: its answering
        # thread needs the GIL, so a saturated but healthy worker gets 30 s, not the default 5.
        uvicorn.run("app.server.asgi:app", host=host, port=port, workers=workers,
                    timeout_graceful_shutdown=settings.graceful_shutdown_seconds,
                    timeout_keep_alive=75, access_log=False,
                    log_config=None, http="app.server.header_deadline:HeaderTimeoutProtocol",
                    timeout_worker_healthcheck=30)
    finally:
        if metrics_dir:  # the workers have all been joined by now
            shutil.rmtree(metrics_dir, ignore_errors=True)


@cli.command()
def start(
    host: Host = "127.0.0.1",
    port: Port = 8000,
    workers: Workers = 1,
    load_demo: Annotated[bool, typer.Option("--demo/--no-demo",
                                            help="Load the demo ledger if it is empty.")] = True,
) -> None:
    """First start and every start after: migrate, demo if empty, an admin key if none, serve.

    The container's command: the first start prints an admin key (`docker compose logs app`);
    later starts find one and mint none.
    """
    migrate.upgrade(get_settings().database_url)
    if load_demo and not _load_demo(if_empty=True):
        raise typer.Exit(1)
    db = _database()
    try:
        with db.write_session() as session:
            created = keys.create_first_admin(session, name=FIRST_ADMIN, actor=ACTOR)
            session.commit()
    finally:
        db.dispose()
    if created is None:
        console.print("an admin key exists already; mint another with "
                      "`claimledger keys create --name NAME --role admin`")
    else:
        console.print(f"created admin key {created.id} ({FIRST_ADMIN}); the secret is shown "
                      "only now:")
        print(f"  export CLAIMLEDGER_KEY={created.secret}", flush=True)
    serve(host=host, port=port, workers=workers, migrate_first=False)


@cli.command(name="migrate")
def migrate_cmd(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply database migrations (to `head` unless told otherwise)."""
    migrate.upgrade(get_settings().database_url, revision)
    console.print(f"database at {revision}")


@cli.command(name="demo")
def demo_cmd(
    if_empty: Annotated[bool, typer.Option("--if-empty",
                                           help="Do nothing if the ledger has claims.")] = False,
) -> None:
    """Load the demo ledger (the Belarus article) through the same code the API uses."""
    migrate.upgrade(get_settings().database_url)
    if not _load_demo(if_empty=if_empty):
        raise typer.Exit(1)


def _load_demo(*, if_empty: bool) -> bool:
    """Load the demo unless the ledger has claims; False when that is an error."""
    db = _database()
    try:
        with db.write_session() as session:
            if demo.has_claims(session):
                if if_empty:
                    console.print("the ledger already has claims; demo data not loaded")
                    return True
                console.print("[red]the ledger already has claims: the demo loads into an empty "
                              "database only (--if-empty skips it quietly)[/red]")
                return False
            counts = demo.load_demo(session)
            session.commit()
    except AppError as exc:  # e.g. its sources' names taken by sources already there
        console.print(f"[red]the demo could not be loaded: {exc.detail}[/red]")
        return False
    finally:
        db.dispose()
    console.print("demo loaded: " + ", ".join(f"{n} {what}" for what, n in counts.items()))
    return True


@cli.command(name="import")
def import_cmd(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False,
                                         help="NDJSON (one claim per line) or a JSON array.")],
    url: Annotated[str | None, typer.Option(help="A server to send to; default: the local "
                                            "database, directly.")] = None,
    key: Annotated[str | None, typer.Option(envvar="CLAIMLEDGER_KEY",
                                            help="API key (ingester) for --url.")] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=1000)] = 500,
) -> None:
    """Import claims in batches, locally or through a server's /v1/ingest (safe to rerun)."""
    import httpx

    from app.client import ClaimledgerClient, ClaimledgerError, batches, count_items, read_items

    if url and not key:
        raise typer.BadParameter("--url needs --key (or CLAIMLEDGER_KEY)")
    # replayed: items of batches an earlier run had sent (the server answered its first
    # answer again, Idempotent-Replayed: true); nothing was written for them this time.
    totals = {"received": 0, "created": 0, "duplicate": 0, "updated": 0, "unchanged": 0,
              "error": 0, "replayed": 0}
    errors: list[str] = []
    client = ClaimledgerClient(url, key or "") if url else None
    db = None if url else _database()
    if db is not None:
        migrate.upgrade(get_settings().database_url)
    try:
        with _import_progress() as progress:
            task = progress.add_task("importing", total=count_items(file))
            for number, batch in enumerate(batches(read_items(file), batch_size)):
                unreadable = [item for item in batch if isinstance(item, ValueError)]
                batch = [item for item in batch if not isinstance(item, ValueError)]
                errors += [str(e) for e in unreadable]
                totals["received"] += len(unreadable)
                totals["error"] += len(unreadable)
                if batch:
                    if client:
                        sent = client.ingest_batch(batch)
                        result, replayed = sent.result, sent.replayed
                    else:
                        result, replayed = _ingest_locally(db, batch), False
                    summary = result["summary"]
                    if replayed:
                        for name in ("received", "error"):
                            totals[name] += summary[name]
                        totals["replayed"] += summary["received"] - summary["error"]
                    else:
                        for name in ("received", "created", "duplicate", "updated", "unchanged",
                                     "error"):
                            totals[name] += summary.get(name, 0)
                    errors += [f"batch {number + 1}, item {r['index'] + 1}: "
                               f"{r['error']['detail']}"
                               for r in result["items"] if r["status"] == "error"]
                progress.update(task, advance=len(batch) + len(unreadable))
    except (ValueError, OSError, ClaimledgerError, httpx.HTTPError) as exc:  # refused, or down
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    finally:
        if client:
            client.close()
        if db:
            db.dispose()
    for line in errors[:20]:
        console.print(f"[yellow]{line}[/yellow]")
    console.print(", ".join(f"{n} {what}" for what, n in totals.items()))
    if totals["replayed"]:
        console.print(f"{totals['replayed']} items were imported by an earlier run of this file "
                      "(the server replayed its answers; nothing was written again)")
    if totals["error"]:
        raise typer.Exit(2)


def _import_progress():
    """Items done of the file's items, their rate and the time left."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task) -> Text:
            return Text(f"{task.speed:,.0f} items/s" if task.speed else "? items/s")

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    RateColumn(), TimeElapsedColumn(), TextColumn("ETA"),
                    TimeRemainingColumn(), console=console)


def _ingest_locally(db: Database, batch: list) -> dict:
    from app.domain import ingest

    with db.write_session() as session:
        result = ingest.ingest(session, items=batch, actor=ACTOR,
                               threshold=get_settings().similarity_threshold)
        session.commit()
    return result.model_dump(mode="json")


@keys_cli.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="Who or what uses the key.")],
    role: Annotated[Role, typer.Option(help="reader, ingester, checker or admin.")],
    replace: Annotated[bool, typer.Option(help="Revoke an active key of the same name.")] = False,
    quiet: Annotated[bool, typer.Option(help="Print only the secret.")] = False,
) -> None:
    """Create a key and print its secret (shown only this once)."""
    try:  # the API's rules for a key's name (a letter or digit, at most 200 characters)
        key_in = ApiKeyCreate(name=name, role=role)
    except ValidationError as exc:
        console.print(f"[red]--name {exc.errors()[0]['msg']}[/red]")
        raise typer.Exit(1) from None
    db = _database()
    try:
        with db.write_session() as session:
            created = keys.create_key(session, name=key_in.name, role=key_in.role,
                                      actor=ACTOR, replace=replace)
            session.commit()
    except AppError as exc:
        console.print(f"[red]{exc.detail}[/red]")
        raise typer.Exit(1) from None
    finally:
        db.dispose()
    if quiet:
        print(created.secret)
    else:
        console.print(f"created {created.role} key {created.id} ({created.name}); "
                      "the secret is shown only now:")
        print(created.secret)


@keys_cli.command("list")
def keys_list(include_revoked: bool = False) -> None:
    """List keys (never their secrets); tab-separated when not printed to a terminal."""
    db = _database()
    with db.session() as session:
        rows = keys.list_keys(session, include_revoked=include_revoked)
    db.dispose()
    headers = ["id", "role", "prefix", "created (UTC)", "name"]
    fields = [[k.id, k.role, k.prefix + "…", _when(k.created_at), k.name] for k in rows]
    if include_revoked:
        headers.insert(4, "revoked")
        for row, k in zip(fields, rows, strict=True):
            row.insert(4, k.revoked_at.strftime("%Y-%m-%d") if k.revoked_at else "")
    if not console.is_terminal:  # for scripts: whole values, one key a line
        for row in fields:
            print("\t".join(row))
        return
    # Ids are copied into other commands: on a narrow terminal the table keeps its width
    # (the terminal wraps its lines) rather than cutting or folding any value.
    table = Table(*headers, box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for row in fields:
        table.add_row(*row)
    roomy = Console(width=10_000)
    whole = Measurement.get(roomy, roomy.options, table).maximum
    Console(width=max(console.width, whole)).print(table)


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else ""  # stored in UTC


@keys_cli.command("revoke")
def keys_revoke(key_id: str) -> None:
    """Revoke a key by id."""
    db = _database()
    try:
        with db.write_session() as session:
            keys.revoke_key(session, key=keys.get_key(session, key_id), actor=ACTOR)
            session.commit()
    except AppError as exc:
        console.print(f"[red]{exc.detail}[/red]")
        raise typer.Exit(1) from None
    finally:
        db.dispose()
    console.print(f"revoked {key_id}")


def main() -> None:
    cli()


if __name__ == "__main__":  # python -m app.cli, as the tests start it
    main()
