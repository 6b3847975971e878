"""Links between claims and merges of duplicates."""

from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from app.domain import similarity
from app.domain.claims import (
    attribution_key,
    check_room,
    ensure_not_merged,
    record_link_changes,
    set_topics,
    touch,
)
from app.domain.events import record_claim_event
from app.domain.preconditions import IfMatch, check_version
from app.errors import Conflict, Unprocessable
from app.models import (
    Attribution,
    Claim,
    ClaimLink,
    ClaimTopic,
    LinkCreate,
)


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
    set_topics(session, claim.id, sorted(topics))
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
    record_link_changes(session, relinked, actor=actor)
    return claim


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
