"""Sources: look up by name or alias, create (one or in bulk), edit, list."""

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from app.domain import search
from app.domain.events import jsonable, record_event
from app.domain.locks import lock_event_feed, lock_source_names
from app.domain.pagination import Page, decode_cursor, encode_cursor
from app.domain.preconditions import IfMatch, check_version
from app.domain.rendering import source_public
from app.domain.text import name_key
from app.errors import Conflict, NotFound, Unprocessable
from app.fastpath import bulk
from app.models import (
    Attribution,
    Event,
    Source,
    SourceCreate,
    SourceKind,
    SourceName,
    SourcePublic,
    SourceUpdate,
    new_id,
    utcnow,
)


def get_source(session: Session, source_id: str) -> Source:
    source = session.get(Source, source_id)
    if source is None:
        raise NotFound(f"source {source_id} does not exist")
    return source


def find_source(session: Session, name_or_alias: str) -> Source | None:
    """The source with this name or alias, ignoring case, accents, punctuation and spacing."""
    row = session.get(SourceName, name_key(name_or_alias))
    return session.get(Source, row.source_id) if row else None


def sources_keyed(session: Session, keys: Iterable[str]) -> dict[str, str]:
    """`{name_key: source_id}` for the keyed names and aliases that exist, one query per 500."""
    keys = list(keys)
    out: dict[str, str] = {}
    for start in range(0, len(keys), 500):
        out.update(session.exec(select(SourceName.key, SourceName.source_id).where(
            col(SourceName.key).in_(keys[start:start + 500]))).all())
    return out


def resolve_source(
    session: Session, *, source_id: str | None, name: str | None, actor: str
) -> tuple[Source, bool]:
    """The source an attribution names; an unknown name creates it. Returns (source, created)."""
    if source_id is not None:
        source = session.get(Source, source_id)
        if source is None:
            raise Unprocessable(f"source {source_id} does not exist")
        return source, False
    assert name is not None
    found = find_source(session, name)
    if found is not None:
        return found, False
    return create_source(session, source_in=SourceCreate(name=name), actor=actor), True


_SOURCE, _SOURCE_NAME, _EVENT = (Source.__table__, SourceName.__table__,  # type: ignore[attr-defined]
                                  Event.__table__)  # type: ignore[attr-defined]


def create_sources_named(session: Session, names: Iterable[tuple[str, str, str]]
                         ) -> dict[str, str]:
    """Create a source for each `(name, name_key(name), actor)`, none of which exists yet
    (the caller looked them up under lock_source_keys); returns `{name_key: source_id}`.
    Names with the same key make one source, named by the first.

    Each is what `create_source(SourceCreate(name=...))` makes, event included, but written
    with one bulk insert a table: one at a time (a lookup, flushes and an event each), a
    batch naming many new sources ran past the request deadline (bench P9).
    """
    names = list(names)
    if not names:
        return {}
    session.flush()
    now = utcnow()
    template = Source(name="-", created_at=now, updated_at=now)  # the model's defaults
    columns = {c.key: getattr(template, c.key) for c in _SOURCE.columns}
    public = source_public(session, template).model_dump(mode="json")
    created: dict[str, str] = {}
    sources, keys, events = [], [], []
    for name, key, actor in names:
        if key in created:
            continue
        source_id = new_id("src")
        created[key] = source_id
        sources.append({**columns, "id": source_id, "name": name, "aliases": []})
        keys.append({"key": key, "source_id": source_id, "label": name, "is_name": True})
        events.append({"actor": actor, "action": "source.created", "entity_type": "source",
                       "entity_id": source_id, "claim_id": None,
                       "changes": {**public, "id": source_id, "name": name},
                       "snapshot": None, "at": now})
    conn = session.connection()
    bulk.insert_rows(conn, _SOURCE, sources)
    bulk.insert_rows(conn, _SOURCE_NAME, keys)
    lock_event_feed(session)
    bulk.insert_rows(conn, _EVENT, events)
    return created


def _names_of(source_in: SourceCreate | SourceUpdate, source: Source | None) -> list[str]:
    name = source_in.name or (source.name if source else None)
    aliases = source_in.aliases if source_in.aliases is not None else (
        source.aliases if source else []
    )
    return [name or "", *aliases]


def _claim_names(session: Session, source: Source, names: list[str]) -> None:
    """Point every name and alias of a source at it; a key another source holds is a 409."""
    keys: dict[str, str] = {}
    for label in names:
        keys.setdefault(name_key(label), label)
    taken = session.exec(
        select(SourceName).where(
            col(SourceName.key).in_(list(keys)), SourceName.source_id != source.id
        )
    ).first()
    if taken is not None:
        other = session.get(Source, taken.source_id)
        raise Conflict(
            f"'{taken.label}' is already a name or alias of source {taken.source_id}"
            f" ({other.name if other else '?'})",
            source_id=taken.source_id,
        )
    session.execute(sa.delete(SourceName).where(col(SourceName.source_id) == source.id))
    session.flush()
    primary = name_key(source.name)
    for key, label in keys.items():
        session.add(SourceName(key=key, source_id=source.id, label=label, is_name=key == primary))


def _check_affiliation(session: Session, source_id: str, affiliation_id: str | None) -> None:
    seen = {source_id}
    current = affiliation_id
    while current is not None:
        if current in seen:
            raise Unprocessable("that affiliation would make a cycle of sources")
        seen.add(current)
        parent = session.get(Source, current)
        if parent is None:
            raise Unprocessable(f"affiliated source {current} does not exist")
        current = parent.affiliation_id


def create_source(session: Session, *, source_in: SourceCreate, actor: str) -> Source:
    """Register a source with its aliases; names are unique ignoring case and spacing."""
    lock_source_names(session, [source_in.name, *source_in.aliases])
    aliases = _dedupe_aliases(source_in.name, source_in.aliases)
    source = Source.model_validate(source_in.model_dump(exclude={"aliases"}) | {"aliases": aliases})
    if source_in.affiliation_id is not None:
        _check_affiliation(session, source.id, source_in.affiliation_id)
    session.add(source)
    _claim_names(session, source, [source.name, *aliases])
    session.flush()
    record_event(
        session, actor=actor, action="source.created", entity_type="source",
        entity_id=source.id, changes=source_public(session, source).model_dump(mode="json"),
        at=source.created_at,
    )
    return source


def _dedupe_aliases(name: str, aliases: Sequence[str]) -> list[str]:
    seen = {name_key(name)}
    out = []
    for alias in aliases:
        key = name_key(alias)
        if key not in seen:
            seen.add(key)
            out.append(alias)
    return out


def update_source(
    session: Session, *, source: Source, source_in: SourceUpdate, expected_version: IfMatch | None,
    actor: str,
) -> Source:
    """Edit a source; renames and alias changes keep the lookup index in step."""
    lock_source_names(session, [n for n in [source_in.name, *(source_in.aliases or [])] if n])
    check_version(source.version, expected_version, f"source {source.id}")
    data = source_in.model_dump(exclude_unset=True)
    changes: dict[str, Any] = {}
    if "affiliation_id" in data and data["affiliation_id"] != source.affiliation_id:
        _check_affiliation(session, source.id, data["affiliation_id"])
    if "aliases" in data and data["aliases"] is None:
        data["aliases"] = []
    for field in ("name", "kind", "reliability"):
        if field in data and data[field] is None:
            raise Unprocessable(f"a source's {field} cannot be removed")
    for field, value in data.items():
        if field == "aliases":
            value = _dedupe_aliases(data.get("name") or source.name, value)
        old = getattr(source, field)
        if old != value:
            changes[field] = {"from": jsonable(old), "to": jsonable(value)}
            setattr(source, field, value)
    if not changes:
        return source
    if "name" in changes or "aliases" in changes:
        _claim_names(session, source, [source.name, *source.aliases])
        session.flush()
        search.index_claims(session, session.exec(
            select(Attribution.claim_id).where(Attribution.source_id == source.id)).all())
    source.version += 1
    source.updated_at = utcnow()
    session.add(source)
    session.flush()
    record_event(
        session, actor=actor, action="source.updated", entity_type="source",
        entity_id=source.id, changes=changes, at=source.updated_at,
    )
    return source


def list_sources(
    session: Session, *, name: str | None = None, prefix: str | None = None,
    kind: SourceKind | None = None, country: str | None = None, limit: int,
    cursor: str | None = None,
) -> Page[SourcePublic]:
    """Sources by name, with exact lookup by name or alias, or by prefix of either."""
    query = select(Source)
    if name is not None:
        query = query.where(
            Source.id == select(SourceName.source_id)
            .where(SourceName.key == name_key(name)).scalar_subquery()
        )
    if prefix:
        key = name_key(prefix).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(
            col(Source.id).in_(
                select(SourceName.source_id).where(
                    col(SourceName.key).like(key + "%", escape="\\")
                )
            )
        )
    if kind is not None:
        query = query.where(Source.kind == kind)
    if country is not None:
        query = query.where(Source.country == country)
    if cursor:
        after_name, after_id = decode_cursor(cursor, length=2, types=(str, str))
        query = query.where(
            sa.or_(Source.name > after_name, sa.and_(Source.name == after_name,
                                                      Source.id > after_id))
        )
    rows = session.exec(query.order_by(Source.name, Source.id).limit(limit + 1)).all()
    items = [source_public(session, s) for s in rows[:limit]]
    next_cursor = encode_cursor(rows[limit - 1].name, rows[limit - 1].id) if len(rows) > limit \
        else None
    return Page(items=items, next_cursor=next_cursor)
