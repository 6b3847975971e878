"""Create, read, update and delete for sources, claims, attributions and links.

Every function takes the session first, adds and flushes, records its event, and
never commits: the caller owns the transaction.
"""

import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from app.db import WRITE_LOCK_ID
from app.domain import search, similarity
from app.domain.pagination import Page, decode_cursor, encode_cursor
from app.domain.preconditions import IfMatch
from app.domain.text import fingerprint, name_key
from app.errors import BadRequest, Conflict, NotFound, PreconditionFailed, Unprocessable
from app.fastpath import bulk
from app.fastpath.bulk import pg_array
from app.models import (
    AGAINST_STANCES,
    FOR_STANCES,
    Attribution,
    AttributionCreate,
    AttributionPublic,
    Claim,
    ClaimCreate,
    ClaimLink,
    ClaimPublic,
    ClaimTopic,
    ClaimUpdate,
    Event,
    LinkCreate,
    Review,
    Source,
    SourceCreate,
    SourceKind,
    SourceName,
    SourcePublic,
    SourceRef,
    SourceUpdate,
    Stance,
    new_id,
    utcnow,
)

# --- events -------------------------------------------------------------------


def lock_event_feed(session: Session) -> None:
    """Hold the feed's ordering lock until commit (PostgreSQL; SQLite has one writer anyway).

    Event ids come from a sequence, which hands them out before commit; holding this
    lock until commit makes ids visible in order, so a feed reader that resumes after
    id N can never miss an N-1 that committed late.
    """
    if session.get_bind().dialect.name == "postgresql" and not session.info.get("event_lock"):
        session.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": WRITE_LOCK_ID})
        session.info["event_lock"] = True


_SOURCE_NAME_LOCK_BUCKETS = 64  # as for claims: a batch may name 100,000 new sources


def lock_source_names(session: Session, names: Iterable[str]) -> None:
    """Serialise transactions creating sources of the same names (PostgreSQL)."""
    lock_source_keys(session, {name_key(n) for n in names})


def lock_source_keys(session: Session, keys: Iterable[str]) -> None:
    """`lock_source_names` of names already keyed (`name_key`).

    Taken before anything but the claim locks in the transaction, so two batches naming
    the same new sources queue instead of both creating them or deadlocking. Keys are
    hashed into buckets locked in order, in one statement: one lock a name was a round
    trip each and overflowed the lock table for a batch of many new names.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    buckets = sorted({_bucket(key, _SOURCE_NAME_LOCK_BUCKETS) for key in keys})
    if buckets:
        session.execute(sa.text("SELECT count(pg_advisory_xact_lock(7262, b)) "
                                "FROM unnest(CAST(:b AS integer[])) AS b"),
                        {"b": pg_array(buckets)})


def _bucket(key: str, buckets: int) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") % buckets


_CLAIM_LOCK_BUCKETS = 64  # a batch holds at most this many claim locks, whatever its size


def lock_claims(session: Session, claims: Iterable[ClaimCreate]) -> None:
    """Serialise transactions creating claims of the same text or origin + external_id (PostgreSQL).

    Without it, two overlapping batches both insert a shared item: a duplicate, or a 500 on
    the unique origin + external_id. Keys are hashed into buckets locked in order, before
    source names and the event feed, so nothing deadlocks and the lock table stays small.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    keys = set()
    for claim_in in claims:
        keys.add(f"text:{fingerprint(claim_in.text)}")
        if claim_in.origin is not None:
            keys.add(f"external:{claim_in.origin}\n{claim_in.external_id}")
    buckets = sorted({_bucket(k, _CLAIM_LOCK_BUCKETS) for k in keys})
    if buckets:
        session.execute(sa.text("SELECT count(pg_advisory_xact_lock(7263, b)) "
                                "FROM unnest(CAST(:b AS integer[])) AS b"),
                        {"b": pg_array(buckets)})


def record_event(
    session: Session,
    *,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: str,
    claim_id: str | None = None,
    changes: dict[str, Any] | None = None,
    snapshot: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> Event:
    """Append one event to the change log, in the caller's transaction."""
    lock_event_feed(session)
    event = Event(
        actor=actor,
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        claim_id=claim_id,
        changes=changes or {},
        snapshot=snapshot,
        at=at or utcnow(),
    )
    session.add(event)
    return event


def record_claim_event(
    session: Session, claim: Claim, *, actor: str, action: str, changes: dict[str, Any],
    entity_type: str = "claim", entity_id: str | None = None,
    public: ClaimPublic | None = None, document: str | None = None,
) -> Event:
    """An event about a claim, carrying the claim as it now stands (for `as_of`).

    Every change to a claim passes here, so this is also where the search index follows.
    A caller that already holds the claim's representation and search document passes
    them, and nothing is read back.
    """
    session.flush()
    if public is None or document is None:
        search.index_claims(session, [claim.id])
        public = claims_public(session, [claim])[0]
    else:
        search.index_documents(session, {claim.id: document})
    # The route usually answers with this very representation: keep it for claim_public.
    session.info.setdefault("claim_public", {})[claim.id] = public
    snapshot = public.model_dump(mode="json")
    return record_event(
        session, actor=actor, action=action, entity_type=entity_type,
        entity_id=entity_id or claim.id, claim_id=claim.id, changes=changes,
        snapshot=snapshot, at=claim.updated_at,
    )


def _jsonable(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def check_version(current: int, expected: IfMatch | None, what: str) -> None:
    """412 unless the If-Match condition (None: none sent) matches the current version."""
    if expected is not None and not expected.matches(current):
        raise PreconditionFailed(expected.refusal(current, what))


# --- sources ------------------------------------------------------------------


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
            changes[field] = {"from": _jsonable(old), "to": _jsonable(value)}
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


def source_ref(source: Source) -> SourceRef:
    return SourceRef(id=source.id, name=source.name, kind=source.kind,
                     reliability=source.reliability)


def source_public(session: Session, source: Source) -> SourcePublic:
    parent = session.get(Source, source.affiliation_id) if source.affiliation_id else None
    return SourcePublic.model_validate(
        source, update={"affiliation": source_ref(parent) if parent else None}
    )


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


# --- claims: reading ----------------------------------------------------------


def get_claim(session: Session, claim_id: str, *, for_update: bool = False) -> Claim:
    query = select(Claim).where(Claim.id == claim_id)
    if for_update:
        query = query.with_for_update()
    claim = session.exec(query).first()
    if claim is None:
        raise NotFound(f"claim {claim_id} does not exist")
    return claim


# The four reads behind a claim's representation, built once: on the read path, building
# and compiling a statement costs more than SQLite takes to run it.
_TOPIC, _ATT, _SRC = ClaimTopic.__table__, Attribution.__table__, Source.__table__  # type: ignore[attr-defined]
_LINK, _REVIEW = ClaimLink.__table__, Review.__table__  # type: ignore[attr-defined]
_IDS = sa.bindparam("ids", expanding=True)
_TOPICS_OF = sa.select(_TOPIC.c.claim_id, _TOPIC.c.topic).where(
    _TOPIC.c.claim_id.in_(_IDS)).order_by(_TOPIC.c.topic)
_ATTRIBUTIONS_OF = sa.select(
    _ATT, _SRC.c.name.label("source_name"), _SRC.c.kind.label("source_kind"),
    _SRC.c.reliability.label("source_reliability"),
).join_from(_ATT, _SRC, _SRC.c.id == _ATT.c.source_id).where(
    _ATT.c.claim_id.in_(_IDS)).order_by(_ATT.c.created_at, _ATT.c.id)
_LINKS_OF = sa.select(_LINK).where(sa.or_(
    _LINK.c.claim_id.in_(_IDS), _LINK.c.target_id.in_(sa.bindparam("ids2", expanding=True))
)).order_by(_LINK.c.created_at, _LINK.c.id)
_REVIEWS_OF = sa.select(_REVIEW).where(_REVIEW.c.claim_id.in_(_IDS)).order_by(
    _REVIEW.c.created_at, _REVIEW.c.id)
FOR, AGAINST = frozenset(FOR_STANCES), frozenset(AGAINST_STANCES)


def is_contested(stances: set[Any]) -> bool:
    """Some source backs the claim and some source disputes or denies it."""
    return bool(stances & FOR) and bool(stances & AGAINST)


def claims_public(session: Session, claims: Sequence[Any]) -> list[ClaimPublic]:
    """Claims (objects or rows) with their topics, attributions, links and current review,
    in four queries."""
    if not claims:
        return []
    ids = [c.id for c in claims]
    conn = session.connection()
    topics: dict[str, list[str]] = defaultdict(list)
    for claim_id, topic in conn.execute(_TOPICS_OF, {"ids": ids}):
        topics[claim_id].append(topic)
    attributions: dict[str, list[dict[str, Any]]] = defaultdict(list)
    # Row._asdict(), not .mappings(): building a RowMapping's key view per row costs more
    # than the rest of the row handling here.
    for row in conn.execute(_ATTRIBUTIONS_OF, {"ids": ids}):
        att = row._asdict()
        att["source"] = {"id": att.pop("source_id"), "name": att.pop("source_name"),
                         "kind": att.pop("source_kind"),
                         "reliability": att.pop("source_reliability")}
        attributions[att["claim_id"]].append(att)
    links: dict[str, list[dict[str, Any]]] = defaultdict(list)
    wanted = set(ids)
    for row in conn.execute(_LINKS_OF, {"ids": ids, "ids2": ids}):
        link = row._asdict()
        for end in {link["claim_id"], link["target_id"]} & wanted:
            links[end].append(link)
    reviews: dict[str, Any] = {}
    for row in conn.execute(_REVIEWS_OF, {"ids": ids}):
        reviews[row.claim_id] = row._asdict()
    out = []
    for claim in claims:
        atts = attributions[claim.id]
        out.append(ClaimPublic.model_validate({
            **{name: getattr(claim, name) for name in _CLAIM_FIELDS},
            "topics": sorted(topics[claim.id]), "attributions": atts, "links": links[claim.id],
            "current_review": reviews.get(claim.id),
            "contested": is_contested({a["stance"] for a in atts}),
        }))
    return out


_CLAIM_TABLE = Claim.__table__  # type: ignore[attr-defined]
_CLAIMS_BY_ID = sa.select(_CLAIM_TABLE).where(_CLAIM_TABLE.c.id.in_(_IDS))
_CLAIM_FIELDS = [name for name in ClaimPublic.model_fields if name in Claim.model_fields]


def claim_public(session: Session, claim: Claim) -> ClaimPublic:
    """The claim as the API shows it (reusing the one just built for its event, if current)."""
    known = session.info.get("claim_public", {}).get(claim.id)
    if known is not None and known.version == claim.version:
        return known
    return claims_public(session, [claim])[0]


def contested_clause(contested: bool = True) -> sa.ColumnElement[bool]:
    """SQL for 'has both a for and an against attribution' (or, `contested=False`, not).

    The claims some source disputes or denies come from an index (stance, claim_id), and
    only those are checked for a backing source: as two EXISTS per claim, a contested
    page tested every claim, newest first, until it was full (3.9 s at 1,000,000 claims
    with none contested). The negation stays a NOT EXISTS per claim, which PostgreSQL
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
    table for a page of 50 (3.5 s at 1,000,000 claims) instead of walking created_at.
    """
    return _NOT_MERGED


# Built once: constructing func.coalesce() was a tenth of a search that finds a few claims.
_NOT_MERGED = sa.func.coalesce(col(Claim.duplicate_of), "") == ""


Render = Callable[[Session, Sequence[str]], list[Any]]


def claims_by_id(session: Session, ids: Sequence[str]) -> list[ClaimPublic]:
    """The claims with these ids, in this order (any since deleted left out)."""
    rows = {row.id: row for row in session.connection().execute(_CLAIMS_BY_ID, {"ids": ids})}
    return claims_public(session, [rows[i] for i in ids if i in rows])


def read_snapshot(session: Session) -> None:
    """Make this session's statements from here on read one snapshot of the database.

    A page is found in one statement and rendered in others: each reading the latest
    commit, a claim reviewed in between would show a status its filter excludes. SQLite
    (WAL) keeps one snapshot for a transaction that BEGIN opened; PostgreSQL does under
    REPEATABLE READ. Call it before the session's first statement (a second call in the
    same transaction does nothing): afterwards it is too late, and it says so.
    """
    if session.in_transaction():
        if session.info.get("snapshot") is session.get_transaction():
            return
        raise RuntimeError("read_snapshot() must come before the session's first statement")
    if session.get_bind().dialect.name == "postgresql":
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    else:
        session.connection().exec_driver_sql("BEGIN")
    session.info["snapshot"] = session.get_transaction()


def list_claims(
    session: Session, *, where: list[sa.ColumnElement[bool]], sort: str | None = None,
    limit: int, cursor: str | None = None, q: str | None = None, filtered: bool = False,
    render: Render = claims_by_id,
) -> Page[Any]:
    """A page of claims in a stable order: by relevance for a search, else by time, then id.

    `filtered`: `where` narrows more than the default (merged duplicates out) does.
    `render` turns the page's claim ids into its items (app/fastpath/read_cache.py reuses copies).
    The page itself is found reading ids (and the sort column) only.
    """
    read_snapshot(session)
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
        after_value, after_id, cursor_sort = decode_cursor(cursor, length=3,
                                                           types=(str, str, str))
        try:
            after = datetime.fromisoformat(after_value)
        except (TypeError, ValueError):
            raise BadRequest("the cursor is not one this service issued") from None
        if cursor_sort != sort:
            raise BadRequest("this cursor belongs to another sort order")
        if descending:
            query = query.where(sa.or_(column < after, sa.and_(column == after,
                                                                col(Claim.id) < after_id)))
        else:
            query = query.where(sa.or_(column > after, sa.and_(column == after,
                                                                col(Claim.id) > after_id)))
    order = (column.desc(), col(Claim.id).desc()) if descending else (column, Claim.id)
    rows = session.connection().execute(
        query.add_columns(column).order_by(*order).limit(limit + 1)).all()
    page = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last = page[-1]
        next_cursor = encode_cursor(getattr(last, column.key).isoformat(), last.id, sort)
    return Page(items=render(session, [row.id for row in page]), next_cursor=next_cursor)


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
        # walked every claim of the status filtered on (1.2 s for 259 keys at 100,000).
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


# --- claims: writing ----------------------------------------------------------


def _set_topics(session: Session, claim_id: str, topics: Sequence[str]) -> None:
    session.execute(sa.delete(ClaimTopic).where(col(ClaimTopic.claim_id) == claim_id))
    for topic in dict.fromkeys(topics):
        session.add(ClaimTopic(claim_id=claim_id, topic=topic))


def touch(claim: Claim) -> None:
    claim.version += 1
    claim.updated_at = utcnow()


def create_claim(session: Session, *, claim_in: ClaimCreate, actor: str) -> Claim:
    """Register a claim as `unverified`, with any inline attributions."""
    lock_claims(session, [claim_in])
    lock_source_names(session, [a.source for a in claim_in.attributions if a.source])
    if claim_in.origin is not None:
        existing = session.exec(select(Claim.id).where(
            Claim.origin == claim_in.origin, Claim.external_id == claim_in.external_id
        )).first()
        if existing is not None:
            raise Conflict(
                f"a claim from {claim_in.origin} with external_id {claim_in.external_id} "
                f"already exists: {existing}", claim_id=existing,
            )
    now = utcnow()
    claim = Claim.model_validate(
        claim_in.model_dump(exclude={"topics", "attributions"}),
        update={"fingerprint": fingerprint(claim_in.text), "created_by": actor,
                "created_at": now, "updated_at": now},
    )
    session.add(claim)
    session.flush()
    similarity.store_bands(session, claim.id, claim.text)
    topics = sorted(dict.fromkeys(claim_in.topics))
    _set_topics(session, claim.id, topics)
    attributions = [_add_attribution(session, claim, att_in, actor=actor)
                    for att_in in claim_in.attributions]
    # Everything the new claim shows is at hand: build it here instead of reading it back.
    public_atts = sorted(
        (AttributionPublic.model_validate(att, update={"source": source_ref(src)})
         for att, src in attributions), key=lambda a: (a.created_at, a.id))
    stances = {a.stance for a in public_atts}
    public = ClaimPublic.model_validate(claim, update={
        "topics": topics, "attributions": public_atts, "links": [], "current_review": None,
        "contested": bool(stances & set(FOR_STANCES)) and bool(stances & set(AGAINST_STANCES)),
    })
    document = search.document(claim.text, [(att.quote, src.name, src.aliases)
                                            for att, src in attributions])
    record_claim_event(session, claim, actor=actor, action="claim.created",
                       changes={"text": claim.text}, public=public, document=document)
    return claim


def update_claim(
    session: Session, *, claim: Claim, claim_in: ClaimUpdate, expected_version: IfMatch | None,
    actor: str,
) -> Claim:
    """Edit a claim's own fields; the ETag it was read at must still be current."""
    ensure_not_merged(claim)
    check_version(claim.version, expected_version, f"claim {claim.id}")
    data = claim_in.model_dump(exclude_unset=True)
    for field in ("text", "language"):
        if field in data and data[field] is None:
            raise Unprocessable(f"{field} cannot be removed")
    changes: dict[str, Any] = {}
    old_text = claim.text  # its band rows are found from it
    if "topics" in data:
        old_topics = list(session.exec(select(ClaimTopic.topic).where(
            ClaimTopic.claim_id == claim.id).order_by(ClaimTopic.topic)).all())
        new_topics = sorted(dict.fromkeys(data.pop("topics") or []))
        if old_topics != new_topics:
            changes["topics"] = {"from": old_topics, "to": new_topics}
            _set_topics(session, claim.id, new_topics)
    for field, value in data.items():
        if field == "places" and value is None:
            value = []
        old = getattr(claim, field)
        if old != value:
            changes[field] = {"from": _jsonable(old), "to": _jsonable(value)}
            setattr(claim, field, value)
    start, end = claim.period_start_date, claim.period_end_date
    if start and end and end < start:
        raise Unprocessable("period_end_date is before period_start_date")
    if not changes:
        return claim
    if "text" in changes:
        claim.fingerprint = fingerprint(claim.text)
        similarity.delete_bands(session, claim.id, old_text)
        similarity.store_bands(session, claim.id, claim.text)
    touch(claim)
    session.add(claim)
    record_claim_event(session, claim, actor=actor, action="claim.updated", changes=changes)
    return claim


def delete_claim(session: Session, *, claim: Claim, expected_version: IfMatch | None,
                 actor: str) -> None:
    """Delete a claim, leaving a tombstone event that carries its last state."""
    check_version(claim.version, expected_version, f"claim {claim.id}")
    merged = session.exec(select(Claim.id).where(Claim.duplicate_of == claim.id)).first()
    if merged is not None:
        raise Conflict(f"claim {merged} was merged into this one; delete it first")
    session.flush()
    snapshot = claim_public(session, claim).model_dump(mode="json")
    record_event(session, actor=actor, action="claim.deleted", entity_type="claim",
                 entity_id=claim.id, claim_id=claim.id, changes={"deleted": True},
                 snapshot=snapshot)
    search.index_claims(session, [claim.id], removed=True)
    unlinked = []
    for link in session.exec(select(ClaimLink).where(sa.or_(
            ClaimLink.claim_id == claim.id, ClaimLink.target_id == claim.id))).all():
        other = link.target_id if link.claim_id == claim.id else link.claim_id
        unlinked.append((other, "link.deleted", {
            "link_id": link.id, "kind": link.kind, "from": link.claim_id, "to": link.target_id,
            "deleted_claim": claim.id}))
        session.delete(link)
    session.flush()
    similarity.delete_bands(session, claim.id, claim.text)
    session.delete(claim)
    session.flush()
    _record_link_changes(session, unlinked, actor=actor)


def ensure_not_merged(claim: Claim) -> None:
    if claim.duplicate_of is not None:
        raise Conflict(
            f"claim {claim.id} was merged into {claim.duplicate_of}; change that one instead",
            duplicate_of=claim.duplicate_of,
        )


# --- attributions -------------------------------------------------------------


def _add_attribution(
    session: Session, claim: Claim, att_in: AttributionCreate, *, actor: str
) -> tuple[Attribution, Source]:
    source, _ = resolve_source(session, source_id=att_in.source_id, name=att_in.source,
                               actor=actor)
    attribution = Attribution.model_validate(
        att_in.model_dump(exclude={"source_id", "source"}),
        update={"claim_id": claim.id, "source_id": source.id, "created_by": actor},
    )
    session.add(attribution)
    return attribution, source


# One claim's representation carries all its attributions and links, so both are capped
# (the response stays bounded; 100 inline attributions per request are allowed).
MAX_ATTRIBUTIONS = 500
MAX_LINKS = 500


def check_room(session: Session, claim_id: str, *, attributions: int | None = None,
               links: int | None = None) -> None:
    """409 if adding this many attributions or links would take the claim past its cap
    (0: they are already flushed, check the count itself; None: not checked)."""
    for what, adding, cap, count in (
        ("attributions", attributions, MAX_ATTRIBUTIONS, sa.select(sa.func.count()).where(
            Attribution.claim_id == claim_id)),
        ("links", links, MAX_LINKS, sa.select(sa.func.count()).select_from(ClaimLink).where(
            sa.or_(ClaimLink.claim_id == claim_id, ClaimLink.target_id == claim_id))),
    ):
        if adding is not None and session.execute(count).scalar_one() + adding > cap:
            raise too_many(claim_id, what, cap)


def too_many(claim_id: str, what: str, cap: int) -> Conflict:
    return Conflict(f"claim {claim_id} would have more than {cap} {what}, the most one claim "
                    "may have; register a new claim and link it instead")


def add_attribution(
    session: Session, *, claim: Claim, att_in: AttributionCreate, expected_version: IfMatch | None,
    actor: str,
) -> Attribution:
    """Attach a source to a claim with its stance and citation."""
    lock_source_names(session, [att_in.source] if att_in.source else [])
    ensure_not_merged(claim)
    check_version(claim.version, expected_version, f"claim {claim.id}")
    check_room(session, claim.id, attributions=1)
    attribution, _ = _add_attribution(session, claim, att_in, actor=actor)
    touch(claim)
    session.add(claim)
    session.flush()
    record_claim_event(
        session, claim, actor=actor, action="attribution.created", entity_type="attribution",
        entity_id=attribution.id,
        changes={"source_id": attribution.source_id, "stance": attribution.stance},
    )
    return attribution


def delete_attribution(
    session: Session, *, claim: Claim, attribution_id: str, expected_version: IfMatch | None,
    actor: str,
) -> None:
    """Detach a source from a claim; the event keeps what was removed."""
    check_version(claim.version, expected_version, f"claim {claim.id}")
    attribution = session.get(Attribution, attribution_id)
    if attribution is None or attribution.claim_id != claim.id:
        raise NotFound(f"attribution {attribution_id} does not exist on claim {claim.id}")
    removed = AttributionPublic.model_validate(
        attribution, update={"source": source_ref(session.get(Source, attribution.source_id))}
    ).model_dump(mode="json")
    session.delete(attribution)
    touch(claim)
    session.add(claim)
    record_claim_event(session, claim, actor=actor, action="attribution.deleted",
                       entity_type="attribution", entity_id=attribution_id,
                       changes={"removed": removed})


# --- links and merges ---------------------------------------------------------


def create_link(
    session: Session, *, claim: Claim, link_in: LinkCreate, expected_version: IfMatch | None,
    actor: str,
) -> ClaimLink:
    """Relate this claim to another (supports, contradicts, duplicates, updates, related)."""
    ensure_not_merged(claim)
    check_version(claim.version, expected_version, f"claim {claim.id}")
    if link_in.target_id == claim.id:
        raise Unprocessable("a claim cannot be linked to itself")
    target = session.exec(select(Claim).where(Claim.id == link_in.target_id)
                          .with_for_update()).first()
    if target is None:
        raise Unprocessable(f"target claim {link_in.target_id} does not exist")
    ensure_not_merged(target)
    exists = session.exec(select(ClaimLink.id).where(
        ClaimLink.claim_id == claim.id, ClaimLink.target_id == target.id,
        ClaimLink.kind == link_in.kind)).first()
    if exists is not None:
        raise Conflict(f"claim {claim.id} already {link_in.kind} {target.id} (link {exists})",
                       link_id=exists)
    for end in (claim, target):
        check_room(session, end.id, links=1)
    link = ClaimLink(claim_id=claim.id, target_id=target.id, kind=link_in.kind,
                     note=link_in.note, created_by=actor)
    session.add(link)
    changes = {"link_id": link.id, "kind": link.kind, "from": claim.id, "to": target.id}
    for end in (claim, target):
        touch(end)
        session.add(end)
        record_claim_event(session, end, actor=actor, action="link.created",
                           entity_type="link", entity_id=link.id, changes=changes)
    return link


def merge_claims(
    session: Session, *, claim: Claim, duplicate_id: str, expected_version: IfMatch | None,
    actor: str, note: str | None = None,
) -> Claim:
    """Fold a duplicate into this claim: its attributions, topics and links move here."""
    check_version(claim.version, expected_version, f"claim {claim.id}")
    if duplicate_id == claim.id:
        raise Unprocessable("a claim cannot be merged into itself")
    ensure_not_merged(claim)
    duplicate = session.exec(select(Claim).where(Claim.id == duplicate_id)
                             .with_for_update()).first()
    if duplicate is None:
        raise Unprocessable(f"claim {duplicate_id} does not exist")
    if duplicate.duplicate_of is not None:
        raise Conflict(f"claim {duplicate_id} was already merged into {duplicate.duplicate_of}")
    moved = _move_attributions(session, duplicate, claim)
    topics = set(session.exec(select(ClaimTopic.topic).where(
        col(ClaimTopic.claim_id).in_([claim.id, duplicate.id]))).all())
    _set_topics(session, claim.id, sorted(topics))
    relinked = _move_links(session, duplicate, claim)
    session.flush()
    # Counted after the moves (shared attributions and repeated links fold away); a 409
    # here rolls the whole merge back.
    check_room(session, claim.id, attributions=0, links=0)
    duplicate.duplicate_of = claim.id
    # A merged claim is never a near-duplicate candidate again, and can no longer be
    # edited: its band rows would only take candidate places from live claims.
    similarity.delete_bands(session, duplicate.id, duplicate.text)
    for end in (duplicate, claim):
        touch(end)
        session.add(end)
    session.flush()
    changes = {"target": claim.id, "duplicate": duplicate.id, "attributions_moved": moved,
               "note": note}
    record_claim_event(session, duplicate, actor=actor, action="claim.merged_into",
                       changes=changes)
    record_claim_event(session, claim, actor=actor, action="claim.merged", changes=changes)
    _record_link_changes(session, relinked, actor=actor)
    return claim


def attribution_key(att: Attribution) -> tuple[Any, ...]:
    return (att.source_id, att.stance, att.quote, att.citation_url)


def _move_attributions(session: Session, duplicate: Claim, target: Claim) -> int:
    existing = {attribution_key(a) for a in session.exec(
        select(Attribution).where(Attribution.claim_id == target.id))}
    moved = 0
    for att in session.exec(select(Attribution).where(Attribution.claim_id == duplicate.id)):
        if attribution_key(att) in existing:
            session.delete(att)
            continue
        existing.add(attribution_key(att))
        att.claim_id = target.id
        session.add(att)
        moved += 1
    return moved


def _move_links(session: Session, duplicate: Claim,
                target: Claim) -> list[tuple[str, str, dict[str, Any]]]:
    """Repoint the duplicate's links at the target; returns the third claims' link changes."""
    links = session.exec(select(ClaimLink).where(sa.or_(
        ClaimLink.claim_id == duplicate.id, ClaimLink.target_id == duplicate.id))).all()
    kept = {(lk.claim_id, lk.target_id, lk.kind) for lk in session.exec(select(ClaimLink).where(
        sa.or_(ClaimLink.claim_id == target.id, ClaimLink.target_id == target.id)))}
    changed = []
    for link in links:
        src = target.id if link.claim_id == duplicate.id else link.claim_id
        dst = target.id if link.target_id == duplicate.id else link.target_id
        other = link.target_id if link.claim_id == duplicate.id else link.claim_id
        change = {"link_id": link.id, "kind": link.kind, "from": src, "to": dst,
                  "merged_claim": duplicate.id}
        if src == dst or (src, dst, link.kind) in kept:
            session.delete(link)
            if other != target.id:
                changed.append((other, "link.deleted", change))
            continue
        kept.add((src, dst, link.kind))
        link.claim_id, link.target_id = src, dst
        session.add(link)
        changed.append((other, "link.moved", change))
    return changed


def _record_link_changes(session: Session, changes: list[tuple[str, str, dict[str, Any]]], *,
                         actor: str) -> None:
    """A merge or delete changed links of third claims: each change is a version and an event
    of that claim, so its history and `as_of` never show a link it no longer has."""
    session.flush()
    for claim_id, action, change in changes:
        other = get_claim(session, claim_id, for_update=True)
        touch(other)
        session.add(other)
        record_claim_event(session, other, actor=actor, action=action, entity_type="link",
                           entity_id=change["link_id"], changes=change)


# --- history ------------------------------------------------------------------


def list_events(
    session: Session, *, after: int = 0, limit: int, claim_id: str | None = None,
    action: str | None = None, entity_type: str | None = None,
) -> list[Event]:
    query = select(Event).where(col(Event.id) > after)
    if claim_id is not None:
        query = query.where(Event.claim_id == claim_id)
    if action is not None:
        query = query.where(Event.action == action)
    if entity_type is not None:
        query = query.where(Event.entity_type == entity_type)
    return list(session.exec(query.order_by(Event.id).limit(limit)).all())


def claim_as_of(session: Session, *, claim_id: str, as_of: datetime) -> ClaimPublic:
    """The claim as it stood at `as_of`, replayed from the snapshots in its events."""
    event = session.exec(
        select(Event).where(Event.claim_id == claim_id, col(Event.snapshot).is_not(None),
                            Event.at <= as_of)
        .order_by(col(Event.at).desc(), col(Event.id).desc()).limit(1)
    ).first()
    if event is None:
        raise NotFound(f"claim {claim_id} did not exist at {as_of.isoformat()}")
    if event.action == "claim.deleted":
        raise NotFound(f"claim {claim_id} had been deleted by {as_of.isoformat()}")
    return ClaimPublic.model_validate(event.snapshot)


def reviews_of(session: Session, claim_id: str) -> list[Review]:
    return list(session.exec(select(Review).where(Review.claim_id == claim_id)
                             .order_by(Review.created_at, Review.id)).all())
