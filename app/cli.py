"""`claimledger`: serve, migrate, demo, keys. Thin commands over the functions routes use."""

import os
import shutil
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from app import demo, keys, migrate
from app.config import get_settings
from app.db import Database
from app.errors import AppError
from app.models import Role

cli = typer.Typer(help="Claimledger: a ledger of factual claims.", no_args_is_help=True)
keys_cli = typer.Typer(help="Manage API keys.", no_args_is_help=True)
cli.add_typer(keys_cli, name="keys")
console = Console()
ACTOR = "cli"


def _database() -> Database:
    return Database(get_settings())


# app.observability.SHARED_DIR_ENV, named here so that serve sets it before that import.
SHARED_METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes (PostgreSQL for >1).")] = 1,
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

    from app.observability import configure_logging

    settings = get_settings()
    try:
        configure_logging(settings.log_level)
        if migrate_first:
            migrate.upgrade(settings.database_url)
        # Idle keep-alive connections stay open 75 s (longer than common load-balancer idle
        # timeouts, and than clients that reuse a connection after 5 s); graceful shutdown
        # lets in-flight requests finish (SIGTERM) for graceful_shutdown_seconds (then they
        # are answered 503: app/limits.py).
        # Request headers have a deadline too (app/protocol.py: uvicorn has none). With
        # several workers, the supervisor kills one that misses a health ping: its answering
        # thread needs the GIL, so a saturated but healthy worker gets 30 s, not the default 5.
        uvicorn.run("app.asgi:app", host=host, port=port, workers=workers,
                    timeout_graceful_shutdown=settings.graceful_shutdown_seconds,
                    timeout_keep_alive=75, access_log=False,
                    log_config=None, http="app.protocol:HeaderTimeoutProtocol",
                    timeout_worker_healthcheck=30)
    finally:
        if metrics_dir:  # the workers have all been joined by now
            shutil.rmtree(metrics_dir, ignore_errors=True)


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
    db = _database()
    with db.write_session() as session:
        if if_empty and demo.has_claims(session):
            console.print("the ledger already has claims; demo data not loaded")
            return
        counts = demo.load_demo(session)
        session.commit()
    db.dispose()
    console.print("demo loaded: " + ", ".join(f"{n} {what}" for what, n in counts.items()))


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
    from rich.progress import Progress

    from app.client import ClaimledgerClient, ClaimledgerError, batches, read_items

    if url and not key:
        raise typer.BadParameter("--url needs --key (or CLAIMLEDGER_KEY)")
    totals = {"received": 0, "created": 0, "duplicate": 0, "updated": 0, "error": 0}
    errors: list[str] = []
    client = ClaimledgerClient(url, key or "") if url else None
    db = None if url else _database()
    if db is not None:
        migrate.upgrade(get_settings().database_url)
    try:
        with Progress(console=console) as progress:
            task = progress.add_task("importing", total=None)
            for number, batch in enumerate(batches(read_items(file), batch_size)):
                unreadable = [item for item in batch if isinstance(item, ValueError)]
                batch = [item for item in batch if not isinstance(item, ValueError)]
                errors += [str(e) for e in unreadable]
                totals["received"] += len(unreadable)
                totals["error"] += len(unreadable)
                if batch:
                    result = client.ingest(batch) if client else _ingest_locally(db, batch)
                    for name in totals:
                        totals[name] += result["summary"][name]
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
    if totals["error"]:
        raise typer.Exit(2)


def _ingest_locally(db: Database, batch: list) -> dict:
    from app import ingest

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
    db = _database()
    try:
        with db.write_session() as session:
            created = keys.create_key(session, name=name, role=role, actor=ACTOR,
                                      replace=replace)
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
    """List keys (never their secrets)."""
    db = _database()
    with db.session() as session:
        rows = keys.list_keys(session, include_revoked=include_revoked)
    db.dispose()
    table = Table("id", "name", "role", "prefix", "created", "revoked")
    for k in rows:
        table.add_row(k.id, k.name, k.role, k.prefix + "…", str(k.created_at),
                      str(k.revoked_at or ""))
    console.print(table)


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
