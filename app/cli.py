"""`claimledger`: serve, start, migrate, demo, import, keys; thin commands over the domain."""

import os
import shutil
import sys
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
from app.models import ApiKeyCreate, Role, to_utc

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
        # none). With several workers, the supervisor kills one that misses a health ping: its
        # answering thread needs the GIL, so a saturated but healthy worker gets 30 s, not the
        # default 5.
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
    merge: Annotated[bool, typer.Option(help="An export into a database that is not empty: "
                                        "skip the records already there.")] = False,
    keep_going: Annotated[bool, typer.Option("--continue", help="An export or ClaimReview "
                                             "data: report bad records, import the rest.")
                          ] = False,
) -> None:
    """Import claims in batches, locally or through a server's /v1/ingest (safe to rerun).

    Also takes a `claimledger export` (the whole ledger, into an empty database unless
    --merge), schema.org ClaimReview JSON-LD and Google Fact Check Tools claims:search JSON.
    """
    if url and not key:
        raise typer.BadParameter("--url needs --key (or CLAIMLEDGER_KEY)")
    if _import_other_formats(file, url=url, key=key, merge=merge, keep_going=keep_going):
        return
    import httpx

    from app.client import ClaimledgerClient, ClaimledgerError, batches, count_items, read_items

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


def _parse_time(value: str, option: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{option} takes an RFC 3339 time such as "
                                 "2026-12-01T12:00:00Z") from None
    return to_utc(moment)


def _import_other_formats(file: Path, *, url: str | None, key: str | None, merge: bool,
                          keep_going: bool) -> bool:
    """Import `file` if it is an export or ClaimReview / Google data; False if it is neither
    (claims as items, for the batch importer)."""
    from app.domain import claimreview_in, transfer_format

    with file.open("rb") as stream:
        first = stream.readline(1 << 20)
        stream.seek(0)
        head = stream.read(claimreview_in.SNIFF_BYTES)
    try:
        is_export = transfer_format.is_export(first.decode("utf-8"))
    except UnicodeDecodeError:
        is_export = False
    if is_export:
        if url:
            raise typer.BadParameter("an export is imported into the local database only "
                                     "(CLAIMLEDGER_DATABASE_URL), not through --url")
        _import_export(file, merge=merge, keep_going=keep_going)
        return True
    if not claimreview_in.sniff(head):  # claims for the batch importer: not read here
        return False
    try:
        body = file.read_bytes()
        reviews = claimreview_in.detect(body)
    except AppError as exc:  # not UTF-8, say
        console.print(f"[red]{exc.detail}[/red]")
        raise typer.Exit(1) from None
    if reviews is None:
        return False
    summary, failed = (_send_reviews(url, key or "", body) if url
                       else _import_reviews(reviews, keep_going=keep_going))
    for index, detail in failed:
        console.print(f"[yellow]record {index + 1}: {detail}[/yellow]")
    console.print(", ".join(f"{n} {what}" for what, n in summary.items()))
    if summary["error"]:
        raise typer.Exit(2)
    return True


def _import_reviews(reviews: list, *, keep_going: bool) -> tuple[dict, list]:
    from app.domain import claimreview_in

    migrate.upgrade(get_settings().database_url)
    db = _database()
    try:
        with db.write_session() as session:
            result = claimreview_in.import_reviews(
                session, reviews, actor=ACTOR, keep_going=keep_going,
                threshold=get_settings().similarity_threshold)
            session.commit()
    except AppError as exc:
        console.print(f"[red]nothing was imported: {exc.detail}[/red]")
        raise typer.Exit(1) from None
    finally:
        db.dispose()
    return result.summary.model_dump(), [(r.index, (r.error or {}).get("detail"))
                                         for r in result.items if r.status == "error"]


def _send_reviews(url: str, key: str, body: bytes) -> tuple[dict, list]:
    """The whole file in one POST /v1/ingest; its content is its idempotency key."""
    import hashlib

    import httpx

    from app.client import ClaimledgerClient, ClaimledgerError

    idempotency_key = "claimreview-" + hashlib.sha256(body).hexdigest()
    try:
        with ClaimledgerClient(url, key) as client:
            result = client.request("POST", "/v1/ingest", content=body,
                                    idempotency_key=idempotency_key,
                                    headers={"Content-Type": "application/json"}).json()
    except ClaimledgerError as exc:
        if exc.status == 422 and "results" in exc.problem:
            items = exc.problem["results"]
            return ({"received": len(items), "created": 0, "duplicate": 0, "updated": 0,
                     "error": len(items)},
                    [(r["index"], r["error"]["detail"]) for r in items])
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    except httpx.HTTPError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    return result["summary"], [(r["index"], r["error"]["detail"]) for r in result["items"]
                               if r["status"] == "error"]


def _import_export(file: Path, *, merge: bool, keep_going: bool) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from app.domain import transfer_import

    migrate.upgrade(get_settings().database_url)
    with file.open("rb") as stream:
        total = sum(1 for _ in stream)
    db = _database()
    try:
        with db.write_session() as session, file.open("rb") as stream, Progress(
                TextColumn("importing"), BarColumn(), MofNCompleteColumn(), console=console,
                disable=not console.is_terminal, transient=True) as progress:
            task = progress.add_task("import", total=total)

            def advance(line: int) -> None:
                if line % 1000 == 0:
                    progress.update(task, completed=line)

            summary = transfer_import.import_lines(
                session, transfer_import.read_lines(stream), merge=merge,
                keep_going=keep_going, progress=advance)
            session.commit()
    except AppError as exc:
        console.print(f"[red]nothing was imported: {exc.detail}[/red]")
        raise typer.Exit(1) from None
    finally:
        db.dispose()
    for error in summary.errors[:50]:
        console.print(f"[yellow]left out: {error}[/yellow]")
    if len(summary.errors) > 50:
        console.print(f"[yellow]… and {len(summary.errors) - 50} more left out[/yellow]")
    imported = ", ".join(f"{n} {kind}" for kind, n in summary.imported.items()) or "nothing"
    console.print(f"imported {imported}")
    if summary.skipped:
        console.print("skipped, already there: " + ", ".join(
            f"{n} {kind}" for kind, n in summary.skipped.items()))
    if summary.errors:
        console.print(f"{len(summary.errors)} records left out (--continue)")
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


@cli.command(name="export")
def export_cmd(
    output: Annotated[Path | None, typer.Option("--output", "-o", dir_okay=False,
                                                help="File to write; default: stdout.")] = None,
    as_of: Annotated[str | None, typer.Option(help="The ledger as it stood at this RFC 3339 "
                                              "time (UTC if no offset).")] = None,
) -> None:
    """Export the whole ledger as NDJSON (lossless; API keys' secrets never leave)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from app.domain import transfer_export

    moment = _parse_time(as_of, "--as-of") if as_of else None
    err = Console(stderr=True)
    db = _database()
    partial = output.with_name(output.name + ".partial") if output else None
    try:
        with db.session() as session, Progress(
                TextColumn("exporting {task.fields[kind]}"), BarColumn(), MofNCompleteColumn(),
                console=err, disable=not err.is_terminal, transient=True) as progress:
            total = transfer_export.count_records(session)
            task = progress.add_task("export", total=total, kind="")
            session.rollback()  # the export reads its own snapshot, from its first statement

            def advance(kind: str, done: int) -> None:
                if done % 1000 == 0:
                    progress.update(task, completed=done, kind=kind)

            lines = transfer_export.export_lines(session, as_of=moment, progress=advance)
            if partial is None:
                out = sys.stdout.buffer
                for line in lines:
                    out.write(line.encode("utf-8"))
                out.flush()
            else:  # written whole, then renamed: a crash never leaves a cut file named FILE
                with partial.open("wb") as out:
                    for line in lines:
                        out.write(line.encode("utf-8"))
                partial.replace(output)
    except OSError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    finally:
        if partial is not None:
            partial.unlink(missing_ok=True)
        db.dispose()
    if output:
        err.print(f"exported the ledger to {output}")


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
