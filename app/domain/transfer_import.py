"""Importing a ledger: an export's lines checked (format, version, checks, order, the end
record's count and digest), its records written a chunk at a time in the caller's
transaction, then the derived data (search index, near-duplicate bands) rebuilt."""

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from app.domain import search, similarity
from app.domain import transfer_format as fmt
from app.domain.locks import lock_event_feed
from app.domain.transfer_format import BY_NAME, KINDS, ORDER, Kind, check_of, dumps, from_json
from app.errors import Conflict, Unprocessable
from app.models import Claim


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
        if len(self.rows) >= fmt.CHUNK:
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
    if not isinstance(header, dict) or header.get("format") != fmt.FORMAT:
        raise ImportFailed(f"line {number}: this is not a Claimledger export (its first line "
                           "is not an export header)")
    version = header.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ImportFailed(f"line {number}: the export header has no valid schema_version")
    if version > fmt.SCHEMA_VERSION:
        raise ImportFailed(
            f"line {number}: the export is of schema version {version}, newer than this "
            f"Claimledger reads ({fmt.SCHEMA_VERSION}); import it with a newer Claimledger")
    return header


def _record(number: int, item: Any, current: int) -> tuple[Kind, dict[str, Any], str]:
    """A record line checked: its kind, its row as Python values, its check."""
    if not isinstance(item, dict) or set(item) != {"kind", "data", "check"}:
        raise LineErrorSignal(number, "not an export record (kind, data and check)")
    kind = BY_NAME.get(item["kind"]) if isinstance(item["kind"], str) else None
    if kind is None:
        raise LineErrorSignal(number, f"an unknown kind of record: {item['kind']!r}")
    data = item["data"]
    if not isinstance(data, dict) or check_of(kind.name, dumps(data)) != item["check"]:
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
    claim = fmt.table_of(Claim)
    if session.get_bind().dialect.name == "postgresql":
        indexed = sa.table("claim_search", sa.column("claim_id"))
    else:
        indexed = sa.table("claim_search_doc", sa.column("claim_id"))
    conn = session.connection()
    after: tuple[Any, Any] | None = None
    while True:
        query = sa.select(claim.c.id, claim.c.text, claim.c.duplicate_of, claim.c.created_at) \
            .where(~sa.exists().where(indexed.c.claim_id == claim.c.id)) \
            .order_by(claim.c.created_at, claim.c.id).limit(max(1, fmt.CHUNK // 2))
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
        if len(key) == 1 and fmt.python_type(key[0]) is int and key[0].autoincrement in (True,
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
