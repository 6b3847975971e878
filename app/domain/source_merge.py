"""Source duplicates: suggest them by name (case, accents, transliteration, edit distance)
and fold one into another, as claims merge.

A merge moves the duplicate's attributions to the survivor (one that would repeat an
attribution the survivor already has on that claim is folded away), makes the duplicate's
name and aliases the survivor's aliases, and deletes the duplicate's row; `source_merge`
keeps its id resolving to the survivor (sources.get_source). Every claim whose attributions
moved gets a version and an event, so its history shows the merge and `as_of` before it
still shows the old source.
"""

import re

from rapidfuzz import fuzz, process
from sqlmodel import Session, col, select
from unidecode import unidecode

from app.domain import claims as claim_writes
from app.domain.events import record_claim_event, record_event
from app.domain.locks import lock_source_names
from app.domain.preconditions import IfMatch, check_version
from app.domain.rendering import source_public
from app.domain.sources import _claim_names, _dedupe_aliases
from app.errors import Conflict, Unprocessable
from app.models import (
    Attribution,
    SimilarSource,
    Source,
    SourceMerge,
    SourceName,
    utcnow,
)

MAX_ALIASES = 50


def merge_sources(session: Session, *, source: Source, duplicate_id: str,
                  expected_version: IfMatch | None, actor: str,
                  note: str | None = None) -> Source:
    """Fold the duplicate source into `source` (the survivor)."""
    check_version(source.version, expected_version, f"source {source.id}")
    if duplicate_id == source.id:
        raise Unprocessable("a source cannot be merged into itself")
    duplicate = session.get(Source, duplicate_id)
    if duplicate is None:
        merged = session.get(SourceMerge, duplicate_id)
        if merged is not None:
            raise Conflict(f"source {duplicate_id} was already merged into "
                           f"{merged.survivor_id}", survivor_id=merged.survivor_id)
        raise Unprocessable(f"source {duplicate_id} does not exist")
    names = [source.name, *source.aliases, duplicate.name, *duplicate.aliases]
    lock_source_names(session, names)
    aliases = _dedupe_aliases(source.name, names[1:])
    if len(aliases) > MAX_ALIASES:
        raise Conflict(f"merged, source {source.id} would have {len(aliases)} aliases, more "
                       f"than the {MAX_ALIASES} a source may have; remove some first")
    moved, folded, claim_ids = _move_attributions(session, duplicate, source)
    # Sources affiliated with the duplicate now are with the survivor.
    for child in session.exec(select(Source).where(Source.affiliation_id == duplicate.id)):
        child.affiliation_id = source.id if child.id != source.id else duplicate.affiliation_id
        if child.affiliation_id == child.id:
            child.affiliation_id = None
        session.add(child)
    session.flush()
    session.execute(SourceName.__table__.delete().where(  # type: ignore[attr-defined]
        SourceName.__table__.c.source_id == duplicate.id))  # type: ignore[attr-defined]
    session.flush()
    before_aliases = list(source.aliases)
    source.aliases = aliases
    _claim_names(session, source, [source.name, *aliases])
    for merge in session.exec(select(SourceMerge).where(SourceMerge.survivor_id == duplicate.id)):
        merge.survivor_id = source.id  # earlier merges into the duplicate resolve here too
        session.add(merge)
    session.add(SourceMerge(duplicate_id=duplicate.id, survivor_id=source.id,
                            duplicate_name=duplicate.name, merged_by=actor))
    snapshot = source_public(session, duplicate).model_dump(mode="json")
    session.flush()
    session.delete(duplicate)
    source.version += 1
    source.updated_at = utcnow()
    session.add(source)
    session.flush()
    reason = note or f"source {duplicate.name!r} was merged into {source.name!r}"
    changes = {"survivor": source.id, "duplicate": duplicate.id,
               "duplicate_name": duplicate.name, "attributions_moved": moved,
               "attributions_folded": folded, "reason": reason}
    record_event(session, actor=actor, action="source.merged", entity_type="source",
                 entity_id=source.id, at=source.updated_at,
                 changes={**changes, "aliases": {"from": before_aliases, "to": aliases}})
    record_event(session, actor=actor, action="source.merged_into", entity_type="source",
                 entity_id=duplicate.id, at=source.updated_at, changes=changes,
                 snapshot=snapshot)
    for claim_id in sorted(claim_ids):
        claim = claim_writes.get_claim(session, claim_id, for_update=True)
        claim_writes.touch(claim)
        session.add(claim)
        record_claim_event(session, claim, actor=actor, action="source.merged",
                           entity_type="source", entity_id=source.id, changes=changes)
    return source


def _move_attributions(session: Session, duplicate: Source, survivor: Source
                       ) -> tuple[int, int, set[str]]:
    """Repoint the duplicate's attributions; returns (moved, folded, claims touched)."""
    atts = list(session.exec(select(Attribution).where(Attribution.source_id == duplicate.id)))
    claim_ids = {a.claim_id for a in atts}
    have = set()
    if claim_ids:
        have = {(*claim_writes.attribution_key(a)[1:], a.claim_id) for a in session.exec(
            select(Attribution).where(Attribution.source_id == survivor.id,
                                      col(Attribution.claim_id).in_(sorted(claim_ids))))}
    moved = folded = 0
    for att in sorted(atts, key=lambda a: (a.created_at, a.id)):
        key = (*claim_writes.attribution_key(att)[1:], att.claim_id)
        if key in have:
            session.delete(att)
            folded += 1
            continue
        have.add(key)
        att.source_id = survivor.id
        session.add(att)
        moved += 1
    return moved, folded, claim_ids


# --- likely duplicates ----------------------------------------------------------

_NOT_WORD = re.compile(r"[^a-z0-9]+")


def fold_name(name: str) -> str:
    """A name as compared for likeness: transliterated to ASCII, lowercase, words only."""
    return _NOT_WORD.sub(" ", unidecode(name).lower()).strip()


def _score(query: str, choice: str, **_: object) -> float:
    # Plain edit distance for misspellings, word order ignored for "War, Institute for…".
    return max(fuzz.ratio(query, choice), fuzz.token_sort_ratio(query, choice))


def similar_sources(session: Session, *, name: str, limit: int,
                    min_score: float = 0.6) -> list[SimilarSource]:
    """Sources whose name or an alias is like `name`, best first (score 0..1)."""
    query = fold_name(name)
    if not query:
        raise Unprocessable("similar_to needs a letter or digit")
    labels = session.exec(select(SourceName.source_id, SourceName.label)).all()
    choices = [fold_name(label) for _, label in labels]
    best: dict[str, tuple[float, str]] = {}
    for _, score, i in process.extract(query, choices, scorer=_score, limit=None,
                                       score_cutoff=min_score * 100):
        source_id, label = labels[i]
        if source_id not in best or score > best[source_id][0]:
            best[source_id] = (score, label)
    ranked = sorted(best.items(), key=lambda item: (-item[1][0], item[0]))[:limit]
    out = []
    for source_id, (score, label) in ranked:
        public = source_public(session, session.get(Source, source_id))
        out.append(SimilarSource.model_validate(
            public.model_dump(), update={"score": round(score / 100, 3), "matched": label}))
    return out
