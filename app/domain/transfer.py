"""Moving a ledger: the lossless NDJSON export and its import, driven by one list of record kinds.

An export is a header line (format and schema version), one line per record, then an end
line. A record line is `{"kind": …, "data": {column: value}, "check": …}`: every column of
its table, serialised generically, and a checksum of kind and data, so an edited line is
named on import. The end line counts the records and carries a digest of every check in
order, so a file cut short or with lines lost is refused. Lines are written in the order
of `KINDS`, which imports without forward references, and within a kind by key.

Derived data is not exported but rebuilt on import: the search index and the near-duplicate
bands. API keys are not exported at all (a key without its secret authenticates nobody; the
new ledger's operator mints its own); their events stay in the event log.
"""

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from app.domain import search, similarity
from app.domain.listing import read_snapshot
from app.domain.locks import lock_event_feed
from app.errors import Conflict, Unprocessable
from app.models import (
    Attribution,
    Claim,
    ClaimLink,
    ClaimTopic,
    Event,
    Publication,
    Review,
    Source,
    SourceMerge,
    SourceName,
    to_utc,
)
from app.models.base import rfc3339

FORMAT = "claimledger-export"
# Bump when a kind's columns change meaning or a kind is removed; adding a kind or a
# nullable column keeps older exports importable.
SCHEMA_VERSION = 1
CHUNK = 1000  # rows read (keyset pages) or written (one INSERT) at a time


@dataclass(frozen=True)
class Kind:
    """One kind of exported record: its name in the file and the table it comes from."""

    name: str
    table: sa.Table
    omit: tuple[str, ...] = ()  # columns never exported

    @property
    def columns(self) -> list[sa.Column]:
        return [c for c in self.table.columns if c.name not in self.omit]

    @property
    def key(self) -> list[sa.Column]:
        return list(self.table.primary_key.columns)

    @property
    def self_references(self) -> list[str]:
        """Columns pointing at the same table: set once all of the kind's rows are in."""
        return [fk.parent.name for fk in self.table.foreign_keys if fk.column.table is self.table]


def _table(model: Any) -> sa.Table:
    return model.__table__


# The whole ledger, in import order: each kind refers only to kinds above it (or to itself).
KINDS: list[Kind] = [
    Kind("source", _table(Source)),
    Kind("source_name", _table(SourceName)),
    Kind("claim", _table(Claim)),
    Kind("claim_topic", _table(ClaimTopic)),
    Kind("attribution", _table(Attribution)),
    Kind("review", _table(Review)),
    Kind("claim_link", _table(ClaimLink)),
    Kind("publication", _table(Publication)),
    Kind("source_merge", _table(SourceMerge)),
    Kind("event", _table(Event)),
]
BY_NAME = {kind.name: kind for kind in KINDS}
ORDER = {kind.name: n for n, kind in enumerate(KINDS)}


# --- values -------------------------------------------------------------------


def _python_type(column: sa.Column) -> type | None:
    kind = column.type
    if isinstance(kind, sa.TypeDecorator):  # sqlmodel's UTCDateTime says `object`
        kind = kind.impl_instance
    try:
        return kind.python_type
    except NotImplementedError:
        return None


def to_json(column: sa.Column, value: Any) -> Any:
    """A column's value as the file holds it: times RFC 3339 UTC with microseconds."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, date):
        return value.isoformat()
    if hasattr(value, "value") and isinstance(value, str):  # a StrEnum
        return str(value.value)
    return value


def from_json(column: sa.Column, value: Any) -> Any:
    """The file's value back as the column's Python value; ValueError when it cannot be."""
    if value is None:
        if not column.nullable and not isinstance(column.type, sa.JSON):
            raise ValueError(f"{column.name} must not be null")
        return None
    kind = _python_type(column)
    if isinstance(column.type, sa.JSON) or kind is dict:
        return value
    if kind is datetime:
        if not isinstance(value, str):
            raise ValueError(f"{column.name} must be an RFC 3339 time")
        return to_utc(datetime.fromisoformat(value))
    if kind is date:
        if not isinstance(value, str):
            raise ValueError(f"{column.name} must be an ISO date")
        return date.fromisoformat(value)
    if kind is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{column.name} must be true or false")
        return value
    if kind is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{column.name} must be an integer")
        return value
    if kind is str and not isinstance(value, str):
        raise ValueError(f"{column.name} must be a string")
    return value


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def check_of(kind: str, data_json: str) -> str:
    return hashlib.blake2b(f"{kind}\n{data_json}".encode(), digest_size=8).hexdigest()


def record_line(kind: str, data: dict[str, Any]) -> tuple[str, str]:
    """One record's line (with its newline) and its check."""
    data_json = _dumps(data)
    check = check_of(kind, data_json)
    return f'{{"kind":{_dumps(kind)},"data":{data_json},"check":"{check}"}}\n', check


# --- export -------------------------------------------------------------------


def _ordered(column: sa.Column, dialect: str) -> sa.ColumnElement[Any]:
    """Byte order on both databases (PostgreSQL's default collation is not)."""
    if dialect == "postgresql" and _python_type(column) is str:
        return column.collate("C")
    return column


def _keyset(session: Session, kind: Kind, where: Iterable[sa.ColumnElement[bool]] = ()
            ) -> Iterator[sa.Row]:
    """Every row of the kind's table, in key order, a page at a time: each page is a
    statement of its own (within the caller's snapshot), so no statement runs for long
    and no more than a page is held."""
    dialect = session.get_bind().dialect.name
    key = [_ordered(c, dialect) for c in kind.key]
    query = sa.select(*kind.columns).where(*where).order_by(*key).limit(CHUNK)
    after: tuple[Any, ...] | None = None
    conn = session.connection()
    while True:
        page = query
        if after is not None:
            page = query.where(sa.tuple_(*key) > sa.tuple_(*[sa.literal(v) for v in after]))
        rows = conn.execute(page).all()
        yield from rows
        if len(rows) < CHUNK:
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
    header = {"kind": "header", "format": FORMAT, "schema_version": SCHEMA_VERSION,
              "as_of": rfc3339(as_of) if as_of else None}
    yield _dumps(header) + "\n"
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
    yield _dumps({"kind": "end", "records": count, "digest": digest.hexdigest()}) + "\n"


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
        src = _table(Source)
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
    ev = _table(Event)
    conn = session.connection()
    ordered = _ordered(ev.c.claim_id, session.get_bind().dialect.name)
    last = None
    while True:
        ids_query = sa.select(ordered.label("claim_id")).distinct().where(
            ev.c.claim_id.is_not(None), ev.c.snapshot.is_not(None), ev.c.at <= as_of)
        if last is not None:
            ids_query = ids_query.where(ordered > last)
        ids = [r[0] for r in conn.execute(ids_query.order_by(ordered).limit(
            max(1, CHUNK // 4)))]
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


class ImportFailed(Unprocessable):
    """An import refused: nothing of it was written."""


@dataclass
class LineError:
    line: int
    detail: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.detail}"


@dataclass
class ImportSummary:
    imported: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)  # --merge: already there by key
    errors: list[LineError] = field(default_factory=list)  # --continue: records left out
    as_of: str | None = None

    @property
    def total(self) -> int:
        return sum(self.imported.values())


def is_export(first_line: str) -> bool:
    """Whether a file's first line is an export's header."""
    try:
        header = json.loads(first_line)
    except ValueError:
        return False
    return isinstance(header, dict) and header.get("format") == FORMAT


def ledger_counts(session: Session) -> dict[str, int]:
    """Records of each exported kind the database holds now (kinds with none left out)."""
    conn = session.connection()
    counts = {kind.name: conn.execute(sa.select(sa.func.count()).select_from(kind.table))
              .scalar_one() for kind in KINDS}
    return {name: n for name, n in counts.items() if n}


@cache
def _loading_table(table: sa.Table) -> sa.Table:
    """The table as inserts see it, with a null JSON value stored as SQL NULL (as the ORM
    stores an event without a snapshot), not as JSON `null`."""
    columns = [sa.Column(c.name, sa.JSON(none_as_null=True) if isinstance(c.type, sa.JSON)
                         else c.type, key=c.key) for c in table.columns]
    return sa.Table(table.name, sa.MetaData(), *columns)


class _Loader:
    """Writes records of one kind at a time, a chunk per INSERT."""

    def __init__(self, session: Session, *, merge: bool, keep_going: bool,
                 summary: ImportSummary):
        self.session, self.merge, self.keep_going = session, merge, keep_going
        self.summary = summary
        self.kind: Kind | None = None
        self.rows: list[tuple[int, dict[str, Any]]] = []
        self.deferred: list[tuple[int, dict[str, Any], dict[str, Any]]] = []
        self.failed_keys: set[tuple[Any, ...]] = set()

    def add(self, number: int, kind: Kind, row: dict[str, Any]) -> None:
        if kind is not self.kind:
            self.finish_kind()
            self.kind = kind
        later = {name: row[name] for name in kind.self_references if row.get(name) is not None}
        if later:
            self.deferred.append((number, {c.name: row[c.name] for c in kind.key}, later))
            row = {**row, **dict.fromkeys(later)}
        self.rows.append((number, row))
        if len(self.rows) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        if not self.rows or self.kind is None:
            return
        kind, rows = self.kind, self.rows
        self.rows = []
        if self.merge:
            there = self._existing(kind, [r for _, r in rows])
            kept = [(n, r) for n, r in rows if self._key(kind, r) not in there]
            skipped = len(rows) - len(kept)
            if skipped:
                self.summary.skipped[kind.name] = self.summary.skipped.get(kind.name, 0) + skipped
                there_keys = there
                self.deferred = [d for d in self.deferred
                                 if tuple(d[1][c.name] for c in kind.key) not in there_keys]
            rows = kept
        if not rows:
            return
        table = _loading_table(kind.table)
        conn = self.session.connection()
        try:  # a savepoint a chunk; on a failure, again a row at a time to find the bad ones
            with conn.begin_nested():
                conn.execute(table.insert(), [r for _, r in rows])
            self._count(kind, len(rows))
            return
        except sa.exc.DBAPIError:
            pass
        for number, row in rows:
            try:
                with conn.begin_nested():
                    conn.execute(table.insert(), [row])
                self._count(kind, 1)
            except sa.exc.DBAPIError as exc:
                if not self.keep_going:
                    raise ImportFailed(f"line {number}: {_db_detail(kind, exc)}",
                                       line=number) from None
                self.failed_keys.add(self._key(kind, row))
                self.summary.errors.append(LineError(number, _db_detail(kind, exc)))

    def finish_kind(self) -> None:
        """The kind's last rows, then the self references held back until all were in."""
        self.flush()
        kind = self.kind
        if kind is None or not self.deferred:
            return
        conn = self.session.connection()
        table = kind.table
        for number, key, values in self.deferred:
            if tuple(key[c.name] for c in kind.key) in self.failed_keys:
                continue
            statement = table.update().where(*[c == key[c.name] for c in kind.key]) \
                .values(**values)
            try:
                with conn.begin_nested():
                    conn.execute(statement)
            except sa.exc.DBAPIError as exc:
                if not self.keep_going:
                    raise ImportFailed(f"line {number}: {_db_detail(kind, exc)}",
                                       line=number) from None
                self.summary.errors.append(LineError(number, _db_detail(kind, exc)))
        self.deferred = []

    def _count(self, kind: Kind, n: int) -> None:
        self.summary.imported[kind.name] = self.summary.imported.get(kind.name, 0) + n

    @staticmethod
    def _key(kind: Kind, row: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(row[c.name] for c in kind.key)

    def _existing(self, kind: Kind, rows: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
        key = kind.key
        wanted = [self._key(kind, r) for r in rows]
        where = key[0].in_([k[0] for k in wanted]) if len(key) == 1 \
            else sa.tuple_(*key).in_(wanted)
        return {tuple(r) for r in self.session.connection().execute(
            sa.select(*key).where(where))}


def _db_detail(kind: Kind, exc: sa.exc.DBAPIError) -> str:
    reason = str(exc.orig).splitlines()[0] if exc.orig is not None else type(exc).__name__
    return f"the {kind.name} record could not be stored ({reason[:200]})"


def _parse(number: int, text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise LineErrorSignal(number, f"not valid JSON ({exc.msg}); the file may have "
                              "been cut short or edited") from None
    except RecursionError:
        raise LineErrorSignal(number, "not valid JSON (nested too deeply)") from None


class LineErrorSignal(Exception):
    def __init__(self, line: int, detail: str):
        super().__init__(detail)
        self.error = LineError(line, detail)


def _read_header(number: int, text: str) -> dict[str, Any]:
    header = _parse(number, text)
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ImportFailed(f"line {number}: this is not a Claimledger export (its first line "
                           "is not an export header)")
    version = header.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ImportFailed(f"line {number}: the export header has no valid schema_version")
    if version > SCHEMA_VERSION:
        raise ImportFailed(
            f"line {number}: the export is of schema version {version}, newer than this "
            f"Claimledger reads ({SCHEMA_VERSION}); import it with a newer Claimledger")
    return header


def _record(number: int, item: Any, current: int) -> tuple[Kind, dict[str, Any], str]:
    """A record line checked: its kind, its row as Python values, its check."""
    if not isinstance(item, dict) or set(item) != {"kind", "data", "check"}:
        raise LineErrorSignal(number, "not an export record (kind, data and check)")
    kind = BY_NAME.get(item["kind"]) if isinstance(item["kind"], str) else None
    if kind is None:
        raise LineErrorSignal(number, f"an unknown kind of record: {item['kind']!r}")
    data = item["data"]
    if not isinstance(data, dict) or check_of(kind.name, _dumps(data)) != item["check"]:
        raise LineErrorSignal(number, f"the {kind.name} record does not match its check: "
                              "the line was edited or damaged")
    if ORDER[kind.name] < current:
        raise LineErrorSignal(number, f"a {kind.name} record comes after records of a later "
                              f"kind ({KINDS[current].name}): the file is out of order")
    columns = {c.name: c for c in kind.columns}
    unknown = set(data) - set(columns)
    if unknown:
        raise LineErrorSignal(number, f"the {kind.name} record has unknown fields: "
                              f"{', '.join(sorted(unknown))}")
    row = {}
    try:
        for name, column in columns.items():
            if name not in data and not column.nullable and column.default is None \
                    and not column.primary_key:
                raise ValueError(f"{name} is missing")
            row[name] = from_json(column, data.get(name))
        for column in kind.key:
            if row[column.name] is None:
                raise ValueError(f"{column.name} (its key) is missing")
    except ValueError as exc:
        raise LineErrorSignal(number, f"the {kind.name} record is invalid: {exc}") from None
    return kind, row, item["check"]


def import_lines(session: Session, lines: Iterable[tuple[int, str | bytes]], *, merge: bool = False,
                 keep_going: bool = False,
                 progress: Callable[[int], None] | None = None) -> ImportSummary:
    """Import an export, given as (line number, text) pairs, in the caller's transaction.

    Into an empty database unless `merge` (records already there by key are skipped). Any
    bad record refuses the whole import (ImportFailed, naming its line) unless
    `keep_going`: then each is reported in the summary and the rest imported. The caller
    commits (or rolls back on an error).
    """
    if not merge:
        there = ledger_counts(session)
        if there:
            held = ", ".join(f"{n} {name}" for name, n in there.items())
            raise Conflict(f"the database already holds a ledger ({held}): import into an "
                           "empty database, or merge (--merge) to skip the records already "
                           "there")
    lock_event_feed(session)
    _begin(session)
    summary = ImportSummary()
    loader = _Loader(session, merge=merge, keep_going=keep_going, summary=summary)
    digest = hashlib.blake2b(digest_size=16)
    count, current, last = 0, 0, 0
    header_seen = ended = False
    for number, text in lines:
        last = number
        if not text.strip():  # bytes or str
            continue
        try:
            if isinstance(text, bytes):
                text = _decoded(number, text)
            if ended:
                raise LineErrorSignal(number, "a line after the end record")
            if not header_seen:
                try:
                    header = _read_header(number, text)
                except LineErrorSignal as signal:  # no header, nothing to go on with
                    raise ImportFailed(str(signal.error), line=number) from None
                summary.as_of = header.get("as_of")
                header_seen = True
                continue
            item = _parse(number, text)
            if isinstance(item, dict) and item.get("kind") == "end":
                ended = True
                _check_end(number, item, count, digest.hexdigest(), keep_going, summary)
                continue
            kind, row, check = _record(number, item, current)
        except LineErrorSignal as signal:
            if not keep_going:
                raise ImportFailed(str(signal.error), line=signal.error.line) from None
            summary.errors.append(signal.error)
            continue
        digest.update(check.encode())
        count += 1
        current = ORDER[kind.name]
        loader.add(number, kind, row)
        if progress is not None:
            progress(number)
    if not header_seen:
        raise ImportFailed("the file is empty: an export starts with its header line")
    loader.finish_kind()
    if not ended:
        detail = (f"the file ends at line {last} without its end record: it was cut short")
        if not keep_going:
            raise ImportFailed(detail, line=last)
        summary.errors.append(LineError(last, detail))
    rebuild_derived(session)
    advance_sequences(session)
    return summary


def _begin(session: Session) -> None:
    """SQLite: open the transaction now. The driver begins one only before a write, and a
    SAVEPOINT outside one would start and (released) commit a transaction of its own."""
    conn = session.connection()
    if conn.dialect.name == "sqlite" and not conn.connection.dbapi_connection.in_transaction:
        conn.exec_driver_sql("BEGIN")


def _check_end(number: int, item: dict[str, Any], count: int, digest: str, keep_going: bool,
               summary: ImportSummary) -> None:
    if item.get("records") == count and item.get("digest") == digest:
        return
    detail = (f"the end record says {item.get('records')} records but {count} were read "
              "intact, or they are not the ones exported (lines lost, added or reordered)")
    if item.get("records") == count:
        detail = "the records are not the ones exported (lines changed or reordered)"
    if keep_going and summary.errors:  # the bad records already reported explain it
        return
    raise LineErrorSignal(number, detail)


def rebuild_derived(session: Session) -> None:
    """Index the claims the search index lacks, and store their bands (unless merged),
    oldest first as they were first indexed."""
    claim = _table(Claim)
    if session.get_bind().dialect.name == "postgresql":
        indexed = sa.table("claim_search", sa.column("claim_id"))
    else:
        indexed = sa.table("claim_search_doc", sa.column("claim_id"))
    conn = session.connection()
    after: tuple[Any, Any] | None = None
    while True:
        query = sa.select(claim.c.id, claim.c.text, claim.c.duplicate_of, claim.c.created_at) \
            .where(~sa.exists().where(indexed.c.claim_id == claim.c.id)) \
            .order_by(claim.c.created_at, claim.c.id).limit(max(1, CHUNK // 2))
        if after is not None:
            query = query.where(sa.tuple_(claim.c.created_at, claim.c.id) > sa.tuple_(
                sa.literal(after[0], claim.c.created_at.type), sa.literal(after[1])))
        rows = conn.execute(query).all()
        if not rows:
            return
        search.index_claims(session, [r.id for r in rows])
        similarity.insert_bands(conn, [band for r in rows if r.duplicate_of is None
                                       for band in similarity.band_rows(r.id, r.text)])
        after = (rows[-1].created_at, rows[-1].id)


def advance_sequences(session: Session) -> None:
    """PostgreSQL: move each imported kind's id sequence past the ids it now holds."""
    if session.get_bind().dialect.name != "postgresql":
        return  # SQLite's next rowid is the largest plus one
    for kind in KINDS:
        key = kind.key
        if len(key) == 1 and _python_type(key[0]) is int and key[0].autoincrement in (True,
                                                                                       "auto"):
            name, column = kind.table.name, key[0].name
            session.execute(sa.text(
                f"SELECT setval(pg_get_serial_sequence('{name}', '{column}'), "
                f"COALESCE((SELECT max({column}) FROM {name}), 0) + 1, false)"))


def _decoded(number: int, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LineErrorSignal(number, f"not UTF-8 (byte {exc.start + 1} of the line); an "
                              "export is UTF-8 throughout") from None


def read_lines(stream: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    """(number, bytes) of each line of a binary stream, for `import_lines` (which decodes
    them, naming a line that is not UTF-8)."""
    yield from enumerate(stream, 1)
