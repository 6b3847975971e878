"""Sources: look up by name or alias, create (one or in bulk), edit, list."""

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlmodel import Session, col, select

from app.domain import search
from app.domain.events import jsonable, record_event
from app.domain.locks import lock_event_feed, lock_source_keys, lock_source_names
from app.domain.pagination import Page, decode_cursor, encode_cursor
from app.domain.preconditions import IfMatch, check_version
from app.domain.rendering import source_public
from app.domain.text import name_key
from app.errors import AppError, Conflict, NotFound, Unprocessable
from app.fastpath import bulk
from app.models import (
    Attribution,
    AttributionCreate,
    ClaimCreate,
    Event,
    Source,
    SourceCreate,
    SourceKind,
    SourceMerge,
    SourceName,
    SourcePublic,
    SourceUpdate,
    new_id,
    utcnow,
)
from app.models.events import JsonText


def get_source(session: Session, source_id: str) -> Source:
    """The source with this id, or the one it was merged into."""
    source = session.get(Source, source_id) or merged_into(session, source_id)
    if source is None:
        raise NotFound(f"source {source_id} does not exist")
    return source


def merged_into(session: Session, source_id: str) -> Source | None:
    """The source that a merged-away source id now resolves to (source_merge.py)."""
    merge = session.get(SourceMerge, source_id)
    return session.get(Source, merge.survivor_id) if merge is not None else None


def survivors_of(session: Session, source_ids: Iterable[str]) -> dict[str, str]:
    """`{merged-away id: survivor id}` for those of these ids that were merged away."""
    ids = list(source_ids)
    if not ids:
        return {}
    return dict(session.exec(select(SourceMerge.duplicate_id, SourceMerge.survivor_id).where(
        col(SourceMerge.duplicate_id).in_(ids))).all())


def find_source(session: Session, name_or_alias: str) -> Source | None:
    """The source with this name or alias, ignoring case, accents, punctuation and spacing."""
    row = session.get(SourceName, name_key(name_or_alias))
    return session.get(Source, row.source_id) if row else None


_NAMES, _KEYS = SourceName.__table__, sa.bindparam("keys")  # type: ignore[attr-defined]
_KEYED_PG = sa.select(_NAMES.c.key, _NAMES.c.source_id).where(
    _NAMES.c.key == sa.func.any(sa.cast(_KEYS, sa.ARRAY(sa.String))))


def sources_keyed(session: Session, keys: Iterable[str]) -> dict[str, str]:
    """`{name_key: source_id}` for the keyed names and aliases that exist: on PostgreSQL in
    one query (one array, however many: a batch may name 100,000, bench P9), on SQLite
    one query per 500."""
    keys = list(keys)
    out: dict[str, str] = {}
    if keys and session.get_bind().dialect.name == "postgresql":
        return dict(session.execute(_KEYED_PG, {"keys": bulk.pg_array(keys)}).all())
    for start in range(0, len(keys), 500):
        out.update(session.exec(select(SourceName.key, SourceName.source_id).where(
            col(SourceName.key).in_(keys[start:start + 500]))).all())
    return out


def resolve_source(
    session: Session, *, source_id: str | None, name: str | None, actor: str
) -> tuple[Source, bool]:
    """The source an attribution names; an unknown name creates it. Returns (source, created)."""
    if source_id is not None:
        source = session.get(Source, source_id) or merged_into(session, source_id)
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


class Cited(NamedTuple):
    """What a claim's representation and search document show of a source it cites (the
    columns `claims.insert_claims` would otherwise read back)."""

    name: str
    kind: str
    reliability: str
    aliases: list[str]


def create_sources_named(session: Session, names: Iterable[tuple[str, str, str]], *,
                         cited: dict[str, Cited] | None = None) -> dict[str, str]:
    """Create a source for each `(name, name_key(name), actor)`, none of which exists yet
    (the caller looked them up under lock_source_keys); returns `{name_key: source_id}`,
    and adds each new source to `cited` if given. Names with the same key make one source,
    named by the first.

    Each is what `create_source(SourceCreate(name=...))` makes, event included, but written
    with one bulk insert a table: one at a time (a lookup, flushes and an event each), a
    batch naming many new sources ran past the request deadline (bench P9). The sources
    differ only in id and name, so their rows and their events' JSON come from one
    template each. Their ids, random as any, ascend in the order given (bulk.ascending).
    """
    chosen: dict[str, tuple[str, str]] = {}  # key: (name, actor), the first of each key
    for name, key, actor in names:
        chosen.setdefault(key, (name, actor))
    if not chosen:
        return {}
    session.flush()
    now = utcnow()
    template = Source(name="-", created_at=now, updated_at=now)  # the model's defaults
    changes = _changes_template(source_public(session, template).model_dump(mode="json"))
    count = len(chosen)
    ids = bulk.ascending(new_id("src") for _ in range(count))
    labels = [name for name, _ in chosen.values()]
    conn = session.connection()
    bulk.insert_columns(conn, _SOURCE, {
        **{c.key: [getattr(template, c.key)] * count for c in _SOURCE.columns},
        "id": ids, "name": labels})
    bulk.insert_columns(conn, _SOURCE_NAME, {
        "key": list(chosen), "source_id": ids, "label": labels, "is_name": [True] * count})
    lock_event_feed(session)
    bulk.insert_columns(conn, _EVENT, {
        "actor": [actor for _, actor in chosen.values()], "action": ["source.created"] * count,
        "entity_type": ["source"] * count, "entity_id": ids, "claim_id": [None] * count,
        "changes": [JsonText(changes.format(_quoted(source_id), _quoted(name)))
                    for source_id, name in zip(ids, labels, strict=True)],
        "snapshot": [None] * count, "at": [now] * count})
    if cited is not None:
        kind, reliability = template.kind.value, template.reliability.value
        cited.update((source_id, Cited(name, kind, reliability, template.aliases))
                     for source_id, name in zip(ids, labels, strict=True))
    return dict(zip(chosen, ids, strict=True))


_quoted = json.encoder.encode_basestring_ascii  # a str as json.dumps writes it


def _changes_template(public: dict[str, Any]) -> str:
    """`json.dumps({**public, "id": …, "name": …})` as a format string: `{0}` the id's JSON,
    `{1}` the name's."""
    text = json.dumps({**public, "id": "\x01", "name": "\x02"})
    text = text.replace("{", "{{").replace("}", "}}")
    assert text.count('"\\u0001"') == text.count('"\\u0002"') == 1
    return text.replace('"\\u0001"', "{0}").replace('"\\u0002"', "{1}")


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


# --- the sources a batch of claims names ----------------------------------------

# `{"id:<source id>" or "name:<name as spelled>": source id}`, for `source_of`.
SourceIds = dict[str, str]


def check_source_ids(session: Session, claims: dict[int, ClaimCreate]
                     ) -> tuple[SourceIds, dict[int, AppError]]:
    """The source ids the claims name that exist, and the items naming one that does not
    (422), which are taken out of `claims`."""
    ids = {a.source_id for c in claims.values() for a in c.attributions
           if a.source_id is not None}
    known = set(session.exec(select(Source.id).where(col(Source.id).in_(ids)))) if ids else set()
    merged = survivors_of(session, ids - known)  # ids of sources merged away resolve
    failed: dict[int, AppError] = {}
    for index, claim_in in list(claims.items()):
        missing = [a.source_id for a in claim_in.attributions
                   if a.source_id is not None and a.source_id not in known
                   and a.source_id not in merged]
        if missing:
            failed[index] = Unprocessable(f"source {missing[0]} does not exist")
            del claims[index]
    return {f"id:{i}": i for i in known} | {f"id:{i}": s for i, s in merged.items()}, failed


def name_keys(claims: Iterable[ClaimCreate]) -> dict[str, str]:
    """`{name as spelled: name_key(name)}` of the sources the claims name by name: folding
    is the costly part of resolving them, done once each, and before the transaction
    begins when the caller computes it first (bench P9: 100,000 names a batch)."""
    return {att.source: name_key(att.source) for claim_in in claims
            for att in claim_in.attributions if att.source is not None}


def resolve_source_names(session: Session, claims: dict[int, ClaimCreate],
                         actor_of: Callable[[int], str], *,
                         cited: dict[str, Cited] | None = None,
                         keyed: dict[str, str] | None = None) -> SourceIds:
    """Sources named by name or alias; unknown names create their sources, in bulk, each
    once, on behalf of the first item naming it (added to `cited` if given). Call it with
    the items still standing: a failed item must not leave a new source behind. `keyed`:
    `name_keys` of these claims (or more), if already computed."""
    first: dict[str, int] = {}  # each name as spelled, and the first item naming it
    for i, claim_in in claims.items():
        for att in claim_in.attributions:
            if att.source is not None:
                first.setdefault(att.source, i)
    keyed = keyed if keyed is not None else name_keys(claims.values())
    keys = {name: keyed[name] for name in first}
    lock_source_keys(session, keys.values())
    known = sources_keyed(session, set(keys.values()))
    named: dict[str, str] = {}  # each new key's name: of its spellings, the first sorted
    for name in sorted(first):
        if keys[name] not in known:
            named.setdefault(keys[name], name)
    # Created in the order the items name them, so that their ids ascend with the rows that
    # cite them (create_sources_named).
    known.update(create_sources_named(session, [
        (named[key], key, actor_of(first[named[key]]))
        for key in dict.fromkeys(keys.values()) if key in named], cited=cited))
    return {f"name:{name}": known[key] for name, key in keys.items()}


def source_of(att: AttributionCreate, sources: SourceIds) -> str:
    """The id of the source an attribution names."""
    if att.source_id is not None:
        return sources[f"id:{att.source_id}"]
    return sources[f"name:{att.source}"]
