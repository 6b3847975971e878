"""Bulk inserts: on PostgreSQL, one statement over arrays instead of an executemany.

An executemany of a batch's rows is one execution per row on PostgreSQL and psycopg
dumps every parameter in Python. `INSERT ... SELECT FROM unnest(...)` with one array
literal per column, built here in C-speed joins, is one execution, and takes less of the
PostgreSQL writer's CPU (bench P2; bench/RESULTS.md, "Array inserts"). SQLite keeps the
driver's executemany, which is already a loop in C, fed tuples converted a column at a
time.
"""

import json
from collections.abc import Iterable
from datetime import UTC, date, datetime
from enum import Enum
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime


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


def _insert_sqlite(conn: sa.Connection, table: sa.Table, names: tuple[str, ...],
                   rows: list[dict[str, Any]]) -> None:
    """The driver's executemany of tuples, each column's values converted by its type's
    own bind processor: what `conn.execute(table.insert(), rows)` sends, without SQLAlchemy
    building and processing a parameter dict a row (most of the time of a large batch)."""
    columns = []
    for name in names:
        values = [row[name] for row in rows]
        process = table.c[name].type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
        columns.append(list(map(process, values)) if process is not None else values)
    conn.exec_driver_sql(_qmark_insert(table, names, conn.dialect),
                         list(zip(*columns, strict=True)))


def insert_rows(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Insert these rows (each with the same keys, all of them columns of `table`)."""
    if not rows:
        return
    keys = rows[0].keys()
    names = tuple(column.key for column in table.columns if column.key in keys)
    if len(names) != len(keys) or any(row.keys() != keys for row in rows):
        conn.execute(table.insert(), rows)
        return
    if conn.dialect.name == "sqlite" and conn.dialect.paramstyle == "qmark":
        _insert_sqlite(conn, table, names, rows)
        return
    if conn.dialect.name != "postgresql" or any(_plain(table.c[name]) is None for name in names):
        conn.execute(table.insert(), rows)
        return
    params = {}
    for n, name in enumerate(names):
        plain = _plain(table.c[name])
        if isinstance(plain, sa.JSON):
            values = [json.dumps(row[name]) for row in rows]
        elif isinstance(plain, sa.LargeBinary):  # e.g. the event log's packed JSON
            kind = table.c[name].type
            values = [_bytea(kind.process_bind_param(row[name], conn.dialect)
                             if isinstance(kind, sa.TypeDecorator) else row[name])
                      for row in rows]
        else:  # most values are strings already: only the others go through _text
            values = [v if type(v) is str else _text(v, False)
                      for v in (row[name] for row in rows)]
        params[f"c{n}"] = _column_literal(values)
    conn.execute(_unnest_insert(table, names, conn.dialect), params)
