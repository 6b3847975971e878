"""Claim and attribution writes: create, edit, delete, attach and detach sources.

Every function takes the session first, adds and flushes, records its event, and
never commits: the caller owns the transaction.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from app.domain import search, similarity, verdicts
from app.domain.events import jsonable, record_claim_event, record_event
from app.domain.locks import lock_claims, lock_event_feed, lock_source_names
from app.domain.preconditions import IfMatch, check_version
from app.domain.rendering import claim_public, new_claim_json, source_ref
from app.domain.sources import (
    Cited,
    SourceIds,
    check_source_ids,
    resolve_source,
    resolve_source_names,
    source_of,
)
from app.domain.text import fingerprint
from app.errors import AppError, Conflict, NotFound, Unprocessable
from app.fastpath import bulk
from app.models import (
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
    Source,
    Status,
    new_id,
    utcnow,
)


def get_claim(session: Session, claim_id: str, *, for_update: bool = False) -> Claim:
    query = select(Claim).where(Claim.id == claim_id)
    if for_update:
        query = query.with_for_update()
    claim = session.exec(query).first()
    if claim is None:
        raise NotFound(f"claim {claim_id} does not exist")
    return claim


def set_topics(session: Session, claim_id: str, topics: Sequence[str]) -> None:
    session.execute(sa.delete(ClaimTopic).where(col(ClaimTopic.claim_id) == claim_id))
    for topic in dict.fromkeys(topics):
        session.add(ClaimTopic(claim_id=claim_id, topic=topic))


def touch(claim: Claim) -> None:
    claim.version += 1
    claim.updated_at = utcnow()


def update_claim(
    session: Session, *, claim: Claim, claim_in: ClaimUpdate, expected_version: IfMatch | None,
    actor: str,
) -> ClaimPublic:
    """Edit a claim's own fields; the ETag it was read at must still be current. Returns
    the claim as it now stands."""
    ensure_not_merged(claim)
    check_version(claim.version, expected_version, f"claim {claim.id}")
    changed = change_claim(session, claim=claim, claim_in=claim_in, actor=actor)
    return changed or claim_public(session, claim)


def change_claim(session: Session, *, claim: Claim, claim_in: ClaimUpdate,
                 actor: str) -> ClaimPublic | None:
    """`update_claim`'s change, unchecked: the claim as it now stands, or None when nothing
    changed (no event, no new version; ingest re-sends items that change nothing)."""
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
            set_topics(session, claim.id, new_topics)
    for field, value in data.items():
        if field == "places" and value is None:
            value = []
        old = getattr(claim, field)
        if old != value:
            changes[field] = {"from": jsonable(old), "to": jsonable(value)}
            setattr(claim, field, value)
    start, end = claim.period_start_date, claim.period_end_date
    if start and end and end < start:
        raise Unprocessable("period_end_date is before period_start_date")
    if not changes:
        return None
    if "text" in changes:
        claim.fingerprint = fingerprint(claim.text)
        similarity.delete_bands(session, claim.id, old_text)
        similarity.store_bands(session, claim.id, claim.text)
    touch(claim)
    session.add(claim)
    public = record_claim_event(session, claim, actor=actor, action="claim.updated",
                                changes=changes)
    # A verdict does not stand on other text: the claim goes back to review.
    if "text" in changes and verdicts.reopen_after_text_change(session, claim, actor=actor):
        public = claim_public(session, claim)
    return public


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
    record_link_changes(session, unlinked, actor=actor)


def ensure_not_merged(claim: Claim) -> None:
    if claim.duplicate_of is not None:
        raise Conflict(
            f"claim {claim.id} was merged into {claim.duplicate_of}; change that one instead",
            duplicate_of=claim.duplicate_of,
        )


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


def attribution_key(att: Attribution) -> tuple[Any, ...]:
    return (att.source_id, att.stance, att.quote, att.citation_url)


def record_link_changes(session: Session, changes: list[tuple[str, str, dict[str, Any]]], *,
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


# --- creating claims ----------------------------------------------------------


class NewClaim(SimpleNamespace):
    """A claim about to be bulk-inserted: its column values, without the ORM's machinery
    (validating a table model costs more than inserting its row)."""

    id: str
    text: str
    updated_at: datetime


def _new_claim(claim_in: ClaimCreate, *, actor: str, claim_id: str | None) -> NewClaim:
    now = utcnow()
    return NewClaim(
        **claim_in.model_dump(exclude={"topics", "attributions"}),
        id=claim_id or new_id("clm"), fingerprint=fingerprint(claim_in.text), version=1,
        status=Status.unverified, duplicate_of=None, assignee=None, created_by=actor,
        created_at=now, updated_at=now)


def attribution_values(att: AttributionCreate, claim_id: str, source_id: str,
                       actor: str) -> dict[str, Any]:
    """An attribution's row, for a bulk insert."""
    return {**att.model_dump(exclude={"source_id", "source"}), "id": new_id("att"),
            "claim_id": claim_id, "source_id": source_id, "created_by": actor,
            "created_at": utcnow()}


@dataclass(frozen=True)
class Created:
    """A claim `create_claims` wrote: as the API shows it (JSON, as its event keeps it:
    `rendering.new_claim_json`), and its likely duplicates."""

    claim: dict[str, Any]
    similar: list[similarity.Match]

    @property
    def id(self) -> str:
        return self.claim["id"]


def create_claims(
    session: Session, items: Sequence[tuple[ClaimCreate, str]], *, via: str | None = None,
    ids: Sequence[str] | None = None, sources: SourceIds | None = None,
    cited: dict[str, Cited] | None = None, similar: int = 0, threshold: float = 1.0,
) -> list[Created | AppError]:
    """Create claims, one or many, as `unverified`: the one way a claim is made (POST
    /v1/claims through the writer, POST /v1/ingest and `claimledger import`, the demo).

    Each item is `(claim_in, actor)`; its outcome is `Created` or, for an item that fails
    alone, the error: a source id that does not exist (422), an origin + external_id
    already taken by a stored claim or an earlier item (409). Items are taken in order,
    each seeing the ones before it as if they had committed first. The rest are written
    with one bulk insert a table (bench P9), events, search documents and bands included.

    `via`: noted in each event's changes. `ids`: the ids to give the claims (ingest names
    them before they are written). `sources`: their sources, already resolved
    (`sources.check_source_ids` and `resolve_source_names`). `cited`: those of them
    created in this transaction, as `resolve_source_names` gives them (not read back).
    `similar`: how many likely duplicates to find for each, scoring at least `threshold`.
    """
    outcomes: list[Created | AppError | None] = [None] * len(items)
    standing = {i: claim_in for i, (claim_in, _) in enumerate(items)}
    lock_claims(session, standing.values())  # first: overlapping batches queue here
    resolve = sources is None
    cited = {} if cited is None else cited
    if sources is None:
        sources, failed = check_source_ids(session, standing)
        for i, error in failed.items():
            outcomes[i] = error
    new = {i: _new_claim(claim_in, actor=items[i][1], claim_id=ids[i] if ids else None)
           for i, claim_in in standing.items()}
    _reject_taken_external_ids(session, standing, new, outcomes)
    if resolve:  # after the checks: a failed item must not leave a new source behind
        sources.update(resolve_source_names(session, standing, lambda i: items[i][1],
                                            cited=cited))
    near = similarity.similar_batch(session, {i: (c.id, c.text) for i, c in new.items()},
                                    threshold=threshold, limit=similar) if similar else {}
    created = insert_claims(session, new, standing, sources,
                            actors={i: items[i][1] for i in new}, via=via, cited=cited)
    for i, claim in zip(new, created, strict=True):
        outcomes[i] = Created(claim, near.get(i, []))
    return outcomes  # type: ignore[return-value]


def create_claim(session: Session, *, claim_in: ClaimCreate, actor: str) -> Claim:
    """One claim through `create_claims`, as the ORM row; its failure raised."""
    (created,) = create_claims(session, [(claim_in, actor)])
    if isinstance(created, AppError):
        raise created
    return get_claim(session, created.id)


def existing_by_external_id(session: Session, claims: Iterable[ClaimCreate]
                            ) -> dict[tuple[str, str], str]:
    """`{(origin, external_id): claim_id}` for those of these claims already stored."""
    wanted = {(c.origin, c.external_id) for c in claims if c.origin is not None}
    if not wanted:
        return {}
    rows = session.exec(select(Claim.origin, Claim.external_id, Claim.id).where(
        col(Claim.external_id).in_([e for _, e in wanted])))
    return {(o, e): i for o, e, i in rows if (o, e) in wanted}


def _reject_taken_external_ids(session: Session, claims: dict[int, ClaimCreate],
                               new: dict[int, NewClaim], outcomes: list[Any]) -> None:
    """origin + external_id must be new: taken ones (or repeated in the items) are 409."""
    taken = existing_by_external_id(session, claims.values())
    for i, claim_in in list(claims.items()):
        if claim_in.origin is None:
            continue
        key = (claim_in.origin, claim_in.external_id)
        if key in taken:
            outcomes[i] = Conflict(
                f"a claim from {claim_in.origin} with external_id {claim_in.external_id} "
                f"already exists: {taken[key]}", claim_id=taken[key])
            del claims[i], new[i]
        else:
            taken[key] = new[i].id


_CLAIM, _EVENT, _SOURCE = Claim.__table__, Event.__table__, Source.__table__  # type: ignore[attr-defined]
_SOURCE_COLUMNS = (_SOURCE.c.id, _SOURCE.c.name, _SOURCE.c.kind, _SOURCE.c.reliability,
                   _SOURCE.c.aliases)
_SOURCES_OF = sa.select(*_SOURCE_COLUMNS).where(
    _SOURCE.c.id.in_(sa.bindparam("ids", expanding=True)))
_SOURCES_OF_PG = sa.select(*_SOURCE_COLUMNS).where(
    _SOURCE.c.id == sa.func.any(sa.cast(sa.bindparam("ids"), sa.ARRAY(sa.String))))


def insert_claims(session: Session, new: dict[Any, NewClaim], claims: dict[Any, ClaimCreate],
                  sources: SourceIds, *, actors: dict[Any, str], via: str | None,
                  cited: dict[str, Cited] | None = None) -> list[dict[str, Any]]:
    """Bulk-insert new claims with topics, attributions, bands, events and search documents;
    returns their representations (JSON). `cited`: sources known without reading them."""
    if not new:
        return []
    session.flush()
    conn = session.connection()  # Core, not the ORM: its bulk path costs more (bench P4)
    bulk.insert_rows(conn, _CLAIM, [vars(c) for c in new.values()])
    topics: dict[str, list[str]] = {}
    attributions: dict[str, list[dict[str, Any]]] = {}
    bands = []
    for index, claim in new.items():
        claim_in = claims[index]
        topics[claim.id] = list(dict.fromkeys(claim_in.topics))
        attributions[claim.id] = [
            attribution_values(a, claim.id, source_of(a, sources), actors[index])
            for a in claim_in.attributions]
        bands += similarity.band_rows(claim.id, claim.text)
    cites = [a for atts in attributions.values() for a in atts]
    for row, att_id in zip(cites, bulk.ascending(a["id"] for a in cites), strict=True):
        row["id"] = att_id  # in the order inserted (bench P9)
    for table, rows in (
        (ClaimTopic, [{"claim_id": cid, "topic": t} for cid, ts in topics.items() for t in ts]),
        (Attribution, cites),
    ):
        if rows:
            bulk.insert_rows(conn, table.__table__, rows)  # type: ignore[attr-defined]
    similarity.insert_bands(conn, bands)
    shown, documents = _representations(session, new, topics, attributions, cited or {})
    lock_event_feed(session)
    bulk.insert_rows(conn, _EVENT, [
        {"actor": actors[index], "action": "claim.created", "entity_type": "claim",
         "entity_id": claim.id, "claim_id": claim.id, "at": claim.updated_at,
         "changes": {"text": claim.text, **({"via": via} if via else {})},
         "snapshot": snapshot}
        for (index, claim), snapshot in zip(new.items(), shown, strict=True)
    ])
    search.index_documents(session, documents, fresh=True)
    return shown


def _representations(session: Session, new: dict[Any, NewClaim], topics: dict[str, list[str]],
                     attributions: dict[str, list[dict[str, Any]]], known: dict[str, Cited]
                     ) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The new claims as the API shows them (JSON), and their search documents, built from the
    rows just inserted (reading them back cost four queries): a new claim has no links and
    no review yet. One query (on SQLite, per 5,000), for the sources they cite that are not
    `known` (those created with them: bench P9)."""
    source_ids = list({a["source_id"] for atts in attributions.values() for a in atts}
                      - known.keys())
    conn = session.connection()
    cited: dict[str, Any] = dict(known)
    if source_ids and conn.dialect.name == "postgresql":  # one array, however many ids
        cited.update({row.id: row for row in conn.execute(
            _SOURCES_OF_PG, {"ids": bulk.pg_array(source_ids)})})
    elif source_ids:  # drivers cap a statement's parameters
        for start in range(0, len(source_ids), 5000):
            cited.update({row.id: row for row in conn.execute(
                _SOURCES_OF, {"ids": source_ids[start:start + 5000]})})
    shown, documents = [], {}
    for claim in new.values():
        atts = sorted(attributions.get(claim.id, ()), key=lambda a: (a["created_at"], a["id"]))
        shown.append(new_claim_json(vars(claim), topics=topics.get(claim.id, ()), attributions=[
            {**a, "source": {"id": a["source_id"], "name": cited[a["source_id"]].name,
                             "kind": cited[a["source_id"]].kind,
                             "reliability": cited[a["source_id"]].reliability}}
            for a in atts]))
        documents[claim.id] = search.document(claim.text, [
            (a["quote"], cited[a["source_id"]].name, cited[a["source_id"]].aliases or [])
            for a in atts])
    return shown, documents
