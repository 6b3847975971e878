"""Claim and attribution writes: create, edit, delete, attach and detach sources.

Every function takes the session first, adds and flushes, records its event, and
never commits: the caller owns the transaction.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from app.domain import search, similarity
from app.domain.events import jsonable, record_claim_event, record_event
from app.domain.locks import lock_claims, lock_source_names
from app.domain.preconditions import IfMatch, check_version
from app.domain.rendering import claim_public, source_ref
from app.domain.sources import resolve_source
from app.domain.text import fingerprint
from app.errors import Conflict, NotFound, Unprocessable
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
    Source,
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
    set_topics(session, claim.id, topics)
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
