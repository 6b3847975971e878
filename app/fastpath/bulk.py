"""Bulk inserts: on PostgreSQL, one statement over arrays (or a COPY) instead of an executemany.

An executemany of a batch's rows is one execution per row on PostgreSQL and psycopg
dumps every parameter in Python. `INSERT ... SELECT FROM unnest(...)` with one array
literal per column, built here in C-speed joins, is one execution, and takes less of the
PostgreSQL writer's CPU (bench P2; bench/RESULTS.md, "Array inserts"). Past a few thousand
rows, parsing those literals is most of the server's work: there a COPY of the same values
as text takes less (bench P9). SQLite keeps the driver's executemany, which is already a
loop in C, fed tuples converted a column at a time.
"""

import json
import operator
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from enum import Enum
from functools import lru_cache
from itertools import repeat
from typing import Any

import sqlalchemy as sa
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

from app.db import Interrupted
from app.models.events import JsonText


def ascending(ids: Iterable[str]) -> list[str]:
    """Random ids, sorted: given to a batch's rows in the order they are inserted, each
    index on them (a primary key, a foreign key's) takes the batch at neighbouring places
    instead of all over its pages, and a row's foreign-key check finds its parent in pages
    just read. The ids stay as random as they were; only their order within the batch is
    chosen (bench P9: 100,000 new sources and their attributions)."""
    return sorted(ids)


def _loaded(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows with any `JsonText` value parsed back, for SQLAlchemy's own insert."""
    return [{k: json.loads(v) if isinstance(v, JsonText) else v for k, v in row.items()}
            for row in rows]


def pg_array(values: Iterable[int] | Iterable[str]) -> str:
    """A PostgreSQL array literal of these ints or strings, for a `CAST(:p AS type[])`.

    psycopg dumps a list element by element in Python, with a regular-expression search on
    each to decide its quoting (bench/RESULTS.md, "Array literals"), band keys and claim ids
    being some twenty elements per new claim. This is the same literal, joined in C. Strings are
    always quoted (backslash and double quote escaped), so any text is safe.
    """
    items = list(values)
    if not items:
        return "{}"
    if isinstance(items[0], int):
        return "{" + ",".join(map(str, items)) + "}"
    return "{" + ",".join(map(_quoted, items)) + "}"  # type: ignore[arg-type]


def _text(value: Any, is_json: bool) -> str | None:
    """A value as PostgreSQL's input text, as SQLAlchemy and psycopg would bind it."""
    if is_json:
        return json.dumps(value)  # SQLAlchemy's JSON type: None is JSON null, too
    if value is None:
        return None
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):  # `timestamptz` columns (sqlmodel's UTCDateTime)
        if value.utcoffset() is None:
            raise ValueError("datetime values must have timezone information")
        return value.astimezone(UTC).isoformat()  # with its offset: any session zone
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _json_text(value: Any) -> str:
    return value if isinstance(value, JsonText) else json.dumps(value)


def _pg_text(value: Any) -> str | None:
    return value if type(value) is str else _text(value, False)


def _column_literal(values: list[str | None]) -> str:
    if None in values:
        return "{" + ",".join("NULL" if v is None else _quoted(v) for v in values) + "}"
    # Every value quoted: escaped all at once (a call a value was most of a large batch's
    # time here), then split apart on NULs, which no value holds (PostgreSQL text cannot).
    joined = "\0".join(values)  # type: ignore[arg-type]
    if joined.count("\0") != len(values) - 1:
        return "{" + ",".join(map(_quoted, values)) + "}"  # type: ignore[arg-type]
    escaped = joined.replace("\\", "\\\\").replace('"', '\\"')
    return '{"' + escaped.replace("\0", '","') + '"}'


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# The types whose binding `_text` reproduces; a column of any other TypeDecorator (which
# may convert values its own way) goes through the executemany.
_KNOWN_DECORATORS = (UTCDateTime, AutoString)


def _plain(column: sa.Column) -> sa.types.TypeEngine | None:
    kind = column.type
    if isinstance(kind, sa.TypeDecorator):
        if isinstance(kind.impl_instance, sa.LargeBinary):  # bytes from its own processor
            return kind.impl_instance
        return kind.impl_instance if isinstance(kind, _KNOWN_DECORATORS) else None
    return kind


def _bytea(value: bytes | None) -> str | None:
    """bytea's hex input form; in an array literal its backslash is escaped again."""
    return None if value is None else "\\x" + value.hex()


def _element_type(kind: sa.types.TypeEngine, dialect: Any) -> str:
    """The array's element type. Strings without their length: an explicit cast to
    VARCHAR(200) would cut a longer value, where the insert's own cast rejects it."""
    if isinstance(kind, sa.String):
        return "VARCHAR"
    return kind.compile(dialect=dialect)


@lru_cache(maxsize=64)
def _unnest_insert(table: sa.Table, names: tuple[str, ...], dialect: Any) -> sa.TextClause:
    casts = ", ".join(
        f"CAST(:c{n} AS {_element_type(_plain(table.c[name]), dialect)}[])"  # type: ignore[arg-type]
        for n, name in enumerate(names))
    quoted = ", ".join(dialect.identifier_preparer.quote(table.c[name].name) for name in names)
    return sa.text(f"INSERT INTO {dialect.identifier_preparer.format_table(table)} "
                   f"({quoted}) SELECT * FROM unnest({casts})")


@lru_cache(maxsize=64)
def _qmark_insert(table: sa.Table, names: tuple[str, ...], dialect: Any) -> str:
    quote = dialect.identifier_preparer.quote
    return (f"INSERT INTO {dialect.identifier_preparer.format_table(table)} "
            f"({', '.join(quote(table.c[name].name) for name in names)}) "
            f"VALUES ({', '.join('?' * len(names))})")


def _each_once(process: Callable[[Any], Any], values: list[Any]) -> list[Any]:
    """`process` of each value, called once per distinct object: a batch's rows share many
    (one time, one empty list for 100,000 new sources: bench P9). Keyed by identity, so
    lists and dicts are shared too; every value stays alive meanwhile, so no id is reused."""
    if not values:
        return []
    if all(map(operator.is_, values, repeat(values[0]))):  # a constant column, checked in C
        return [process(values[0])] * len(values)
    done: dict[int, Any] = {}
    out = []
    for value in values:
        key = id(value)
        if key in done:
            out.append(done[key])
        else:
            out.append(done.setdefault(key, process(value)))
    return out


def _unless_json(process: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: value if isinstance(value, JsonText) else process(value)


def _insert_sqlite(conn: sa.Connection, table: sa.Table, columns: dict[str, list[Any]]) -> None:
    """The driver's executemany of tuples, each column's values converted by its type's
    own bind processor: what `conn.execute(table.insert(), rows)` sends, without SQLAlchemy
    building and processing a parameter dict a row (most of the time of a large batch)."""
    converted = []
    for name, values in columns.items():
        process = table.c[name].type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
        if process is not None and isinstance(_plain(table.c[name]), sa.JSON):
            process = _unless_json(process)
        converted.append(_each_once(process, values) if process is not None else values)
    conn.exec_driver_sql(_qmark_insert(table, tuple(columns), conn.dialect),
                         list(zip(*converted, strict=True)))


def insert_rows(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Insert these rows (each with the same keys, all of them columns of `table`)."""
    if not rows:
        return
    keys = rows[0].keys()
    if any(row.keys() != keys for row in rows):
        conn.execute(table.insert(), _loaded(rows))
        return
    insert_columns(conn, table, {name: [row[name] for row in rows] for name in keys})


def insert_columns(conn: sa.Connection, table: sa.Table, columns: dict[str, list[Any]]) -> None:
    """Insert rows given column by column: `{column key: its values, one a row}`, every
    list as long. A batch's rows built as columns skip a dict a row, and a column of one
    value repeated (`[value] * n`) is converted once (bench P9)."""
    names = tuple(column.key for column in table.columns if column.key in columns)
    count = len(next(iter(columns.values()), []))
    if not count:
        return
    if len(names) != len(columns) or any(len(v) != count for v in columns.values()):
        raise ValueError(f"columns of unequal lengths, or not all of {table.name}'s")
    columns = {name: columns[name] for name in names}  # in the table's order
    if conn.dialect.name == "sqlite" and conn.dialect.paramstyle == "qmark":
        _insert_sqlite(conn, table, columns)
        return
    if conn.dialect.name != "postgresql" or any(_plain(table.c[name]) is None for name in names):
        rows = [dict(zip(names, row, strict=True))
                for row in zip(*columns.values(), strict=True)]
        conn.execute(table.insert(), _loaded(rows))
        return
    texts = []
    for name, values in columns.items():
        plain = _plain(table.c[name])
        if isinstance(plain, sa.JSON):
            values = _each_once(_json_text, values)
        elif isinstance(plain, sa.LargeBinary):  # e.g. the event log's packed JSON
            kind = table.c[name].type
            if isinstance(kind, sa.TypeDecorator):
                values = [kind.process_bind_param(v, conn.dialect) for v in values]
            values = [_bytea(v) for v in values]
        elif set(map(type, values)) != {str}:  # most columns hold strings only
            values = _each_once(_pg_text, values)
        texts.append(values)
    if count >= COPY_FROM_ROWS or sum(
            len(v) for values in texts for v in values if v is not None) >= COPY_FROM_BYTES:
        _copy_pg(conn, table, names, texts)
        return
    params = {f"c{n}": _column_literal(values) for n, values in enumerate(texts)}
    conn.execute(_unnest_insert(table, names, conn.dialect), params)


# From this many rows (or this much text), PostgreSQL gets a COPY: it costs a round trip
# more than the array insert (the writer's batches of a few claims keep the arrays: bench
# P2), and for a batch's 100,000 sources, events and attributions, or its 1,000 claims'
# events, each carrying the claim with its 100 attributions, the server's work less (P9).
COPY_FROM_ROWS = 2000
COPY_FROM_BYTES = 1_000_000
_COPY_CHUNK_ROWS = 10_000  # sent this many rows at a time: a few MB at most


def _copy_pg(conn: sa.Connection, table: sa.Table, names: tuple[str, ...],
             columns: list[list[str | None]]) -> None:
    """`COPY table (names) FROM STDIN` of these columns' text, on the connection's
    transaction (a raw cursor: SQLAlchemy's statement hooks do not see it, so an
    interrupted connection is refused here as they would). The data is escaped and joined
    a column at a time (psycopg's `write_row` is a Python call a row)."""
    if conn.info.get("interrupted"):
        raise Interrupted("the request was cancelled; its work was stopped")
    preparer = conn.dialect.identifier_preparer
    statement = (f"COPY {preparer.format_table(table)} "
                 f"({', '.join(preparer.quote(table.c[name].name) for name in names)}) "
                 "FROM STDIN")
    dbapi = conn.dialect.loaded_dbapi
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        with cursor.copy(statement) as copy:
            for start in range(0, len(columns[0]), _COPY_CHUNK_ROWS):
                chunk = [_copy_texts(values[start:start + _COPY_CHUNK_ROWS])
                         for values in columns]
                copy.write("\n".join(map("\t".join, zip(*chunk, strict=True))) + "\n")
    except dbapi.Error as exc:  # as SQLAlchemy raises it (a timeout is an OperationalError)
        raise sa.exc.DBAPIError.instance(statement, None, exc, dbapi.Error,
                                         dialect=conn.dialect) from exc
    finally:
        cursor.close()


def _copy_texts(values: list[str | None]) -> list[str]:
    """Values as fields of COPY's text format: NULL as `\\N`; backslash, newline, carriage
    return and tab escaped, all values of a column at once (see `_column_literal`)."""
    present = [v for v in values if v is not None]
    if not present:
        return ["\\N"] * len(values)
    joined = "\0".join(present)  # type: ignore[arg-type]
    if joined.count("\0") != len(present) - 1:  # a NUL in a value: PostgreSQL
        escaped = [_copy_escape(v) for v in present]  # refuses it, whichever way it is sent
    else:
        escaped = _copy_escape(joined).split("\0")
    if len(present) == len(values):
        return escaped
    rest = iter(escaped)
    return ["\\N" if v is None else next(rest) for v in values]


def _copy_escape(text: str) -> str:
    return (text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
            .replace("\t", "\\t"))
