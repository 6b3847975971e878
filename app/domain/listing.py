"""Listing and searching claims: the filters, the sort orders, cursors, relevance ranking."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import aliased
from sqlmodel import Session, col

from app.domain import search
from app.domain.pagination import (
    Page,
    after_position,
    decode_cursor,
    decode_time_cursor,
    encode_cursor,
    encode_time_cursor,
)
from app.domain.rendering import claims_by_id
from app.domain.sources import get_source
from app.errors import BadRequest
from app.models import (
    AGAINST_STANCES,
    FOR_STANCES,
    Attribution,
    Claim,
    ClaimTopic,
    Stance,
)

_CLAIM_TABLE = Claim.__table__  # type: ignore[attr-defined]
_IDS = sa.bindparam("ids", expanding=True)


def contested_clause(contested: bool = True) -> sa.ColumnElement[bool]:
    """SQL for 'has both a for and an against attribution' (or, `contested=False`, not).

    The claims some source disputes or denies come from an index (stance, claim_id), and
    only those are checked for a backing source: as two EXISTS per claim, a contested
    page tested every claim, newest first, until it was full (bench/RESULTS.md, "Query
    plans"). The negation stays a NOT EXISTS per claim, which PostgreSQL
    runs as an anti-join; NOT IN over the same list it could re-read for every claim.
    """
    against = aliased(Attribution, name="against")
    backing = aliased(Attribution, name="backing")
    backed = sa.exists().where(backing.claim_id == against.claim_id,
                               col(backing.stance).in_(FOR_STANCES))
    if contested:
        return col(Claim.id).in_(sa.select(against.claim_id).where(
            col(against.stance).in_(AGAINST_STANCES), backed))
    return ~sa.exists().where(against.claim_id == Claim.id,
                              col(against.stance).in_(AGAINST_STANCES), backed)


SORTS: dict[str, tuple[Any, bool]] = {
    "-created_at": (Claim.created_at, True),
    "created_at": (Claim.created_at, False),
    "-updated_at": (Claim.updated_at, True),
    "updated_at": (Claim.updated_at, False),
}


def claim_filters(
    *, status: Sequence[str] | None = None, source_id: str | None = None,
    stance: Stance | None = None, topic: str | None = None, language: str | None = None,
    contested: bool | None = None, origin: str | None = None,
    created_after: datetime | None = None, created_before: datetime | None = None,
    updated_after: datetime | None = None, updated_before: datetime | None = None,
    include_merged: bool = False,
) -> list[sa.ColumnElement[bool]]:
    """WHERE clauses for the list endpoint's filters; search adds its own on top."""
    where: list[sa.ColumnElement[bool]] = []
    if status:
        where.append(col(Claim.status).in_(list(status)))
    if source_id is not None or stance is not None:
        cond = [Attribution.claim_id == Claim.id]
        if source_id is not None:
            cond.append(Attribution.source_id == source_id)
        if stance is not None:
            cond.append(Attribution.stance == stance)
        where.append(sa.exists().where(*cond))
    if topic is not None:
        where.append(sa.exists().where(ClaimTopic.claim_id == Claim.id, ClaimTopic.topic == topic))
    if language is not None:
        where.append(sa.func.lower(Claim.language) == language.lower())
    if contested is not None:
        where.append(contested_clause(contested))
    if origin is not None:
        where.append(Claim.origin == origin)
    for column, op, value in (
        (Claim.created_at, ">=", created_after), (Claim.created_at, "<", created_before),
        (Claim.updated_at, ">=", updated_after), (Claim.updated_at, "<", updated_before),
    ):
        if value is not None:
            where.append(column >= value if op == ">=" else column < value)
    if not include_merged:
        where.append(not_merged())
    return where


def not_merged() -> sa.ColumnElement[bool]:
    """`duplicate_of IS NULL`, written so no planner uses the duplicate_of index for it.

    Nearly every claim matches, yet SQLite took that index and then sorted the whole
    table for a page of 50 instead of walking created_at (bench/RESULTS.md, "Query plans").
    """
    return _NOT_MERGED


# Built once: constructing func.coalesce() cost a search that finds a few claims dearly (P5).
_NOT_MERGED = sa.func.coalesce(col(Claim.duplicate_of), "") == ""


Render = Callable[[Session, Sequence[str]], list[Any]]


@dataclass(frozen=True)
class Snapshot:
    """A session's transaction that reads one snapshot of the database (`read_snapshot`)."""

    transaction: Any


def read_snapshot(session: Session) -> Snapshot:
    """Make this session's statements from here on read one snapshot of the database.

    A page is found in one statement and rendered in others: each reading the latest
    commit, a claim reviewed in between would show a status its filter excludes. SQLite
    (WAL) keeps one snapshot for a transaction that BEGIN opened; PostgreSQL does under
    REPEATABLE READ. Call it before the session's first statement: afterwards it is too
    late, and it says so. Pass what it returns to `list_claims` to read the page in it.
    """
    if session.in_transaction():
        raise RuntimeError("read_snapshot() must come before the session's first statement")
    if session.get_bind().dialect.name == "postgresql":
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    else:
        session.connection().exec_driver_sql("BEGIN")
    return Snapshot(session.get_transaction())


def list_claims(
    session: Session, *, where: list[sa.ColumnElement[bool]], sort: str | None = None,
    limit: int, cursor: str | None = None, q: str | None = None, filtered: bool | None = None,
    render: Render = claims_by_id, snapshot: Snapshot | None = None,
) -> Page[Any]:
    """A page of claims in a stable order: by relevance for a search, else by time, then id.

    `filtered`: `where` narrows more than the default (merged duplicates out) does; by
    default, told from `where` itself. `render` turns the page's claim ids into its items
    (app/fastpath/read_cache.py reuses copies). `snapshot`: the one the caller opened
    (else the page opens its own). The page is found reading ids (and the sort column) only.
    """
    if snapshot is None:
        read_snapshot(session)
    elif snapshot.transaction is not session.get_transaction():
        raise RuntimeError("that snapshot belongs to another transaction")
    if filtered is None:
        filtered = any(clause is not _NOT_MERGED for clause in where)
    query = sa.select(_CLAIM_TABLE.c.id).where(*where)
    if q is not None:
        if sort is None or sort == "relevance":
            return _list_by_relevance(session, query, where, q=q, limit=limit, cursor=cursor,
                                      filtered=filtered, render=render)
        found = search.matches(session, q)
        if found is None:  # no words to search for
            return Page(items=[], next_cursor=None)
        query = query.where(col(Claim.id).in_(sa.select(found.c.claim_id)))
    sort = sort if sort in SORTS else "-created_at"
    column, descending = SORTS[sort]
    if cursor:
        after, after_id, cursor_sort = decode_time_cursor(cursor, str)
        if cursor_sort != sort:
            raise BadRequest("this cursor belongs to another sort order")
        query = query.where(after_position(column, col(Claim.id), after, after_id,
                                           descending=descending))
    order = (column.desc(), col(Claim.id).desc()) if descending else (column, Claim.id)
    rows = session.connection().execute(
        query.add_columns(column).order_by(*order).limit(limit + 1)).all()
    page = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last = page[-1]
        next_cursor = encode_time_cursor(getattr(last, column.key), last.id, sort)
    return Page(items=render(session, [row.id for row in page]), next_cursor=next_cursor)


def list_source_claims(
    session: Session, *, source_id: str, stance: Stance | None = None,
    status: Sequence[str] | None = None, limit: int, cursor: str | None = None,
) -> Page[Any]:
    """Claims a source is attributed with, newest first; the source and the page are read
    from one snapshot."""
    snapshot = read_snapshot(session)  # before the source is read
    source = get_source(session, source_id)
    where = claim_filters(source_id=source.id, stance=stance, status=status)
    return list_claims(session, where=where, limit=limit, cursor=cursor, snapshot=snapshot)


def _list_by_relevance(
    session: Session, query: Any, where: list[sa.ColumnElement[bool]], *, q: str, limit: int,
    cursor: str | None, filtered: bool = False, render: Render,
) -> Page[Any]:
    """Search results, best first; the cursor is a position in this query's ranked list.

    A window of search.RANK_WINDOW matches is ranked (fast whatever the term). A filtered
    search whose window is full is ranked in SQL over up to search.RANK_CAP matches
    instead, so the filters see more than the window (whatever the page size); the
    cursor remembers which of the two ranked the first page, so pages never mix them.
    """
    offset, mode = 0, None
    if cursor:
        try:
            offset, cursor_q, mode = decode_cursor(cursor, length=3)
        except BadRequest:  # a cursor from before windows: [offset, q], ranked in SQL
            (offset, cursor_q), mode = decode_cursor(cursor, length=2), "sql"
        if not isinstance(offset, int) or not 0 <= offset <= search.RANK_CAP \
                or cursor_q != q or mode not in ("window", "sql"):
            raise BadRequest("this cursor belongs to another search")
    if mode != "sql":
        scores = search.ranked_window(session, q)
        # A filtered search over a full window is ranked in SQL, over more matches.
        if mode == "window" or not filtered or len(scores) < search.RANK_WINDOW:
            mode = "window"
            rows = _ranked_rows(session, where, scores, wanted=offset + limit + 1)[offset:]
    if mode != "window":
        mode = "sql"
        found = search.matches(session, q)
        rows = [] if found is None else session.connection().execute(
            query.join(found, found.c.claim_id == Claim.id)
            .order_by(found.c.score, found.c.doc_key).offset(offset).limit(limit + 1)).all()
    more = len(rows) > limit
    return Page(items=render(session, [row.id for row in rows[:limit]]),
                next_cursor=encode_cursor(offset + limit, q, mode) if more else None)


def _ranked_rows(session: Session, where: list[sa.ColumnElement[bool]],
                 scores: dict[Any, float], *, wanted: int) -> list[Any]:
    """The ids of the ranked claims that pass the filters (as rows), best first: at least
    `wanted` of them if there are that many. Checked a chunk at a time (the first one just what is
    wanted, later ones larger, as the filters turn rows away), so a first page reads about
    a page's worth of rows, not the whole window."""
    ranked = sorted(scores, key=lambda k: (scores[k], k))
    key, joined = search.document_key(session)  # what the scores are keyed by
    stmt = sa.select(_CLAIM_TABLE.c.id, key.label("doc_key"))
    if joined is not None:
        # The keys come first, then each claim by primary key: left to choose, SQLite
        # walked every claim of the status filtered on (bench/RESULTS.md, "Query plans").
        stmt = stmt.select_from(
            _KeysFirst(joined, _CLAIM_TABLE, joined.c.claim_id == _CLAIM_TABLE.c.id))
    stmt = stmt.where(*where, key.in_(_IDS))
    conn = session.connection()
    kept: list[Any] = []
    start, chunk = 0, wanted
    while start < len(ranked) and len(kept) < wanted:
        keys = ranked[start:start + chunk]
        rows = {row.doc_key: row for row in conn.execute(stmt, {"ids": keys})}
        kept += [rows[k] for k in keys if k in rows]
        start, chunk = start + chunk, 4 * wanted
    return kept


class _KeysFirst(sa.Join):
    """An inner join whose left side SQLite reads first (the outer loop of its plan).

    SQLite never reorders the tables of a CROSS JOIN; other databases get a plain JOIN.
    """

    inherit_cache = True


@compiles(_KeysFirst, "sqlite")
def _cross_join(join: _KeysFirst, compiler: Any, asfrom: bool = False, from_linter: Any = None,
                **kw: Any) -> str:
    assert not (join.isouter or join.full), "_KeysFirst is an inner join"
    if from_linter:
        from_linter.edges.update((a, b) for a in join.left._from_objects
                                 for b in join.right._from_objects)
    left, right = (compiler.process(side, asfrom=True, from_linter=from_linter, **kw)
                   for side in (join.left, join.right))
    on = compiler.process(join.onclause, from_linter=from_linter, **kw)
    return f"{left} CROSS JOIN {right} ON {on}"
