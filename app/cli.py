"""`claimledger`: serve, migrate, demo, keys. Thin commands over the functions routes use."""

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


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes (PostgreSQL for >1).")] = 1,
    migrate_first: Annotated[bool, typer.Option("--migrate/--no-migrate",
                                                help="Apply migrations before serving.")] = True,
) -> None:
    """Serve the API with uvicorn."""
    import uvicorn

    if migrate_first:
        migrate.upgrade(get_settings().database_url)
    uvicorn.run("app.asgi:app", host=host, port=port, workers=workers,
                timeout_graceful_shutdown=20, access_log=False)


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
