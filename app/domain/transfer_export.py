"""Exporting a ledger: every record of every kind, in file order, read from one snapshot,
as the lines `app/domain/transfer_format.py` describes; or the ledger as it stood at a past
moment."""

import hashlib
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from app.domain import transfer_format as fmt
from app.domain.listing import read_snapshot
from app.domain.transfer_format import KINDS, Kind, dumps, from_json, record_line, to_json
from app.models import Event, Source
from app.models.base import rfc3339


def _ordered(column: sa.Column, dialect: str) -> sa.ColumnElement[Any]:
    """Byte order on both databases (PostgreSQL's default collation is not)."""
    if dialect == "postgresql" and fmt.python_type(column) is str:
        return column.collate("C")
    return column


def _keyset(session: Session, kind: Kind, where: Iterable[sa.ColumnElement[bool]] = ()
            ) -> Iterator[sa.Row]:
    """Every row of the kind's table, in key order, a page at a time: each page is a
    statement of its own (within the caller's snapshot), so no statement runs for long
    and no more than a page is held."""
    dialect = session.get_bind().dialect.name
    key = [_ordered(c, dialect) for c in kind.key]
    query = sa.select(*kind.columns).where(*where).order_by(*key).limit(fmt.CHUNK)
    after: tuple[Any, ...] | None = None
    conn = session.connection()
    while True:
        page = query
        if after is not None:
            page = query.where(sa.tuple_(*key) > sa.tuple_(*[sa.literal(v) for v in after]))
        rows = conn.execute(page).all()
        yield from rows
        if len(rows) < fmt.CHUNK:
            return
        last = rows[-1]._mapping
        after = tuple(last[c.name] for c in kind.key)


def export_lines(session: Session, *, as_of: datetime | None = None,
                 progress: Callable[[str, int], None] | None = None) -> Iterator[str]:
    """The whole ledger as export lines (each ending in a newline), read from one snapshot.

    `as_of`: the ledger as it stood then (claims from their event snapshots; see
    `_as_of_rows`). `progress(kind, records_so_far)` is told after each record.
    """
    read_snapshot(session)
    header = {"kind": "header", "format": fmt.FORMAT, "schema_version": fmt.SCHEMA_VERSION,
              "as_of": rfc3339(as_of) if as_of else None}
    yield dumps(header) + "\n"
    digest = hashlib.blake2b(digest_size=16)
    count = 0
    for kind in KINDS:
        rows = _as_of_rows(session, kind, as_of) if as_of else (
            r._mapping for r in _keyset(session, kind))
        for row in rows:
            data = {c.name: to_json(c, row[c.name]) for c in kind.columns}
            line, check = record_line(kind.name, data)
            digest.update(check.encode())
            count += 1
            yield line
            if progress is not None:
                progress(kind.name, count)
    yield dumps({"kind": "end", "records": count, "digest": digest.hexdigest()}) + "\n"


def count_records(session: Session) -> int:
    """How many records an export of the current ledger holds (for a progress bar)."""
    return sum(session.connection().execute(
        sa.select(sa.func.count()).select_from(kind.table)).scalar_one() for kind in KINDS)


# As of a past moment: claims, their topics, attributions and links are their state in the
# newest event snapshot at or before it; reviews and events are those made by then; sources
# (and their names) those created by then, as they are now (source edits carry no snapshot).
_SNAPSHOT_KINDS = {"claim", "claim_topic", "attribution", "claim_link"}


def _as_of_rows(session: Session, kind: Kind, as_of: datetime) -> Iterator[dict[str, Any]]:
    if kind.name in _SNAPSHOT_KINDS:
        yield from _snapshot_rows(session, kind, as_of)
        return
    t = kind.table.c
    if kind.name == "source":
        where = [t.created_at <= as_of]
    elif kind.name == "source_name":
        src = fmt.table_of(Source)
        where = [t.source_id.in_(sa.select(src.c.id).where(src.c.created_at <= as_of))]
    elif kind.name == "review":
        where = [t.created_at <= as_of]
    elif kind.name == "event":
        where = [t.at <= as_of]
    elif kind.name == "publication":  # live then, as it stands now (its copy is not dated)
        where = [t.published_at <= as_of, sa.or_(t.withdrawn_at.is_(None), t.withdrawn_at > as_of)]
    elif kind.name == "source_merge":
        where = [t.merged_at <= as_of]
    else:  # a kind added later: its rows made by then, if it says when
        stamp = next((c for c in ("created_at", "at") if c in t), None)
        where = [t[stamp] <= as_of] if stamp else []
    for row in _keyset(session, kind, where):
        yield dict(row._mapping)


def _snapshot_rows(session: Session, kind: Kind, as_of: datetime) -> Iterator[dict[str, Any]]:
    for snapshot in _snapshots(session, as_of):
        if kind.name == "claim":
            yield {c.name: from_json(c, snapshot.get(c.name)) for c in kind.columns}
        elif kind.name == "claim_topic":
            for topic in snapshot["topics"]:
                yield {"claim_id": snapshot["id"], "topic": topic}
        elif kind.name == "attribution":
            for att in snapshot["attributions"]:
                att = {**att, "source_id": att["source"]["id"]}
                yield {c.name: from_json(c, att.get(c.name)) for c in kind.columns}
        else:  # links: from the snapshot of the claim they start from
            for link in snapshot["links"]:
                if link["claim_id"] == snapshot["id"]:
                    yield {c.name: from_json(c, link.get(c.name)) for c in kind.columns}


def _snapshots(session: Session, as_of: datetime) -> Iterator[dict[str, Any]]:
    """Each claim's newest snapshot at `as_of` (claims deleted by then left out), by id."""
    ev = fmt.table_of(Event)
    conn = session.connection()
    ordered = _ordered(ev.c.claim_id, session.get_bind().dialect.name)
    last = None
    while True:
        ids_query = sa.select(ordered.label("claim_id")).distinct().where(
            ev.c.claim_id.is_not(None), ev.c.snapshot.is_not(None), ev.c.at <= as_of)
        if last is not None:
            ids_query = ids_query.where(ordered > last)
        ids = [r[0] for r in conn.execute(ids_query.order_by(ordered).limit(
            max(1, fmt.CHUNK // 4)))]
        if not ids:
            return
        rank = sa.func.row_number().over(partition_by=ev.c.claim_id,
                                         order_by=(ev.c.at.desc(), ev.c.id.desc()))
        newest = sa.select(ev.c.claim_id, ev.c.action, ev.c.snapshot, rank.label("rank")).where(
            ev.c.claim_id.in_(ids), ev.c.snapshot.is_not(None), ev.c.at <= as_of).subquery()
        found = {r.claim_id: r for r in conn.execute(
            sa.select(newest).where(newest.c.rank == 1))}
        for claim_id in ids:
            row = found[claim_id]
            if row.action != "claim.deleted":
                yield row.snapshot
        last = ids[-1]


# --- import -------------------------------------------------------------------
