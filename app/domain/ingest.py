"""Batch ingestion: parse, resolve sources, fold duplicates, bulk insert, one transaction.

Each item is a ClaimCreate. Items fail alone (a problem object in their result);
the rest go in. New claims are written with bulk INSERTs (never `add_all`: see
MEASURED.md), with their events, search documents and near-duplicate bands.
"""

import json
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import datetime
from types import SimpleNamespace
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import ValidationError
from sqlmodel import Session, SQLModel, col, select

from app.domain import claims as claim_writes
from app.domain import search, similarity
from app.domain.events import record_claim_event
from app.domain.locks import lock_claims, lock_event_feed, lock_source_keys
from app.domain.rendering import claims_public, is_contested
from app.domain.sources import create_sources_named, sources_keyed
from app.domain.text import fingerprint, name_key
from app.errors import AppError, BadRequest, Unprocessable, problem_dict
from app.fastpath import bulk
from app.models import (
    Attribution,
    AttributionCreate,
    Claim,
    ClaimCreate,
    ClaimPublic,
    ClaimTopic,
    ClaimUpdate,
    Event,
    Source,
    Status,
    new_id,
    utcnow,
)

NDJSON = "application/x-ndjson"
# json.loads recurses once per level of nesting; past Python's recursion limit it raises.
_TOO_DEEP = "it is nested too deeply"


class SimilarRef(SQLModel):
    claim_id: str
    score: float


class IngestResult(SQLModel):
    index: int
    status: Literal["created", "duplicate", "updated", "error"]
    claim_id: str | None = None
    attributions_added: int = 0
    similar: list[SimilarRef] = []
    error: dict[str, Any] | None = None


class IngestSummary(SQLModel):
    received: int
    created: int
    duplicate: int
    updated: int
    error: int


class IngestResponse(SQLModel):
    summary: IngestSummary
    items: list[IngestResult]


# --- parsing ------------------------------------------------------------------


def parse_batch(body: bytes, content_type: str, *, max_items: int) -> list[Any]:
    """Items as parsed JSON values; an NDJSON line that is not JSON becomes an AppError."""
    is_ndjson = content_type.split(";")[0].strip().lower() in (NDJSON, "application/jsonl")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("the request body is not UTF-8") from None
    if is_ndjson:
        lines = [line for line in text.splitlines() if line.strip()]
        _check_count(len(lines), max_items)
        return [_parse_line(line, n) for n, line in enumerate(lines, 1)]
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise BadRequest(f"the request body is not valid JSON: {_TOO_DEEP}") from None
    if isinstance(data, dict) and set(data) == {"items"}:
        data = data["items"]
    if not isinstance(data, list):
        raise Unprocessable("send a JSON array of claims (or {\"items\": [...]}), or NDJSON")
    _check_count(len(data), max_items)
    return data


def _check_count(count: int, max_items: int) -> None:
    if count == 0:
        raise Unprocessable("the batch is empty")
    if count > max_items:
        raise Unprocessable(f"a batch holds at most {max_items} items; this one has {count}")


def _parse_line(line: str, number: int) -> Any:
    try:
        return json.loads(line)
    except ValueError as exc:
        return BadRequest(f"line {number} is not valid JSON: {exc}")
    except RecursionError:
        return BadRequest(f"line {number} is not valid JSON: {_TOO_DEEP}")


def _validate(item: Any) -> ClaimCreate | AppError:
    if isinstance(item, AppError):
        return item
    if not isinstance(item, dict):
        return Unprocessable("each item must be a JSON object (a claim)")
    try:
        return ClaimCreate.model_validate(item)
    except ValidationError as exc:
        errors = [{"loc": [str(p) for p in e["loc"]], "msg": e["msg"], "type": e["type"]}
                  for e in exc.errors()]
        where = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors[:5])
        return Unprocessable(f"invalid claim: {where}", errors=errors)


# --- ingesting ----------------------------------------------------------------


def ingest(session: Session, *, items: list[Any], actor: str, threshold: float) -> IngestResponse:
    """Ingest a parsed batch in the caller's transaction; the caller commits."""
    results: list[IngestResult | None] = [None] * len(items)
    claims: dict[int, ClaimCreate] = {}
    for index, item in enumerate(items):
        checked = _validate(item)
        if isinstance(checked, AppError):
            results[index] = _error(index, checked)
        else:
            claims[index] = checked
    _reject_repeated_external_ids(claims, results)
    lock_claims(session, claims.values())  # first: overlapping batches queue here
    sources, failed = check_source_ids(session, claims)
    for index, error in failed.items():
        results[index] = _error(index, error)
    sources.update(resolve_names(session, claims, lambda _: actor))
    by_external = existing_by_external_id(session, claims.values())
    by_fingerprint = _existing_by_fingerprint(session, claims.values())

    new: dict[int, NewClaim] = {}
    pending: dict[str, ClaimCreate] = {}  # created in this batch, not inserted yet
    folds: list[tuple[int, str, ClaimCreate]] = []  # exact duplicates of stored claims
    for index, claim_in in claims.items():
        fp = fingerprint(claim_in.text)
        external = (claim_in.origin, claim_in.external_id)
        if claim_in.origin is not None and external in by_external:
            claim = session.get(Claim, by_external[external])
            try:
                results[index] = _update(session, index, claim, claim_in, sources, actor=actor)
            except AppError as exc:  # raised before anything of this item was written
                results[index] = _error(index, exc)
        elif by_fingerprint.get(fp) in pending:  # created earlier in this batch
            claim_id = by_fingerprint[fp]
            try:
                added = _extend_pending(pending[claim_id], claim_id, claim_in, sources)
            except AppError as exc:  # raised before anything of this item was written
                results[index] = _error(index, exc)
                continue
            results[index] = IngestResult(index=index, status="duplicate", claim_id=claim_id,
                                          attributions_added=added)
        elif fp in by_fingerprint:
            folds.append((index, by_fingerprint[fp], claim_in))
        else:
            claim = new_claim(claim_in, actor=actor)
            new[index] = claim
            pending[claim.id] = claim_in
            by_fingerprint[fp] = claim.id
            if claim_in.origin is not None:
                by_external[external] = claim.id
            results[index] = IngestResult(index=index, status="created", claim_id=claim.id)
    _fold_duplicates(session, folds, sources, actor=actor, results=results)
    near = _near_duplicates(session, new, threshold=threshold)
    for index, similar in near.items():
        results[index].similar = similar  # type: ignore[union-attr]
    insert_new(session, new, claims, sources, actor=actor)
    final = [r for r in results if r is not None]
    counts = defaultdict(int, {s: 0 for s in ("created", "duplicate", "updated", "error")})
    for result in final:
        counts[result.status] += 1
    return IngestResponse(summary=IngestSummary(received=len(items), **counts), items=final)


def _error(index: int, error: AppError) -> IngestResult:
    return IngestResult(index=index, status="error", error=problem_dict(error))


def _reject_repeated_external_ids(
    claims: dict[int, ClaimCreate], results: list[IngestResult | None]
) -> None:
    seen: dict[tuple[str, str], int] = {}
    for index, claim_in in list(claims.items()):
        if claim_in.origin is None:
            continue
        key = (claim_in.origin, claim_in.external_id)
        if key in seen:
            results[index] = _error(index, Unprocessable(
                f"external_id {claim_in.external_id} from {claim_in.origin} is repeated in this "
                f"batch (first at item {seen[key]})"))
            del claims[index]
        else:
            seen[key] = index  # type: ignore[index]


def check_source_ids(session: Session, claims: dict[int, ClaimCreate]
                     ) -> tuple[dict[str, str], dict[int, AppError]]:
    """The source ids the batch names that exist (as `source_of` keys), and the items
    naming one that does not (422), which are taken out of `claims`."""
    ids = {a.source_id for c in claims.values() for a in c.attributions
           if a.source_id is not None}
    known = set(session.exec(select(Source.id).where(col(Source.id).in_(ids)))) if ids else set()
    failed: dict[int, AppError] = {}
    for index, claim_in in list(claims.items()):
        missing = [a.source_id for a in claim_in.attributions
                   if a.source_id is not None and a.source_id not in known]
        if missing:
            failed[index] = Unprocessable(f"source {missing[0]} does not exist")
            del claims[index]
    return {f"id:{i}": i for i in known}, failed


def resolve_names(session: Session, claims: dict[int, ClaimCreate],
                  actor_of: Callable[[int], str]) -> dict[str, str]:
    """Sources named by name or alias (as `source_of` keys); unknown names create their
    sources, in bulk, each once, on behalf of the first item naming it. Call it with the
    items still standing: a failed item must not leave a new source behind."""
    first: dict[str, int] = {}  # each name as spelled, and the first item naming it
    for i, claim_in in claims.items():
        for att in claim_in.attributions:
            if att.source is not None:
                first.setdefault(att.source, i)
    keys = {name: name_key(name) for name in first}  # folding is the costly part: once
    lock_source_keys(session, keys.values())
    known = sources_keyed(session, set(keys.values()))
    known.update(create_sources_named(session, [
        (name, keys[name], actor_of(first[name])) for name in sorted(first)
        if keys[name] not in known]))
    return {f"name:{name}": known[key] for name, key in keys.items()}


def source_of(att: AttributionCreate, sources: dict[str, str]) -> str:
    """The id of the source an attribution names, from `check_source_ids` and
    `resolve_names`."""
    if att.source_id is not None:
        return sources[f"id:{att.source_id}"]
    return sources[f"name:{att.source}"]


def existing_by_external_id(session: Session, claims) -> dict[tuple[str, str], str]:
    """`{(origin, external_id): claim_id}` for those of these claims already stored."""
    wanted = {(c.origin, c.external_id) for c in claims if c.origin is not None}
    if not wanted:
        return {}
    rows = session.exec(select(Claim.origin, Claim.external_id, Claim.id).where(
        col(Claim.external_id).in_([e for _, e in wanted])))
    return {(o, e): i for o, e, i in rows if (o, e) in wanted}


def _existing_by_fingerprint(session: Session, claims) -> dict[str, str]:
    fps = list({fingerprint(c.text) for c in claims})
    out: dict[str, str] = {}
    for start in range(0, len(fps), 500):
        rows = session.exec(
            select(Claim.fingerprint, Claim.id)
            .where(col(Claim.fingerprint).in_(fps[start:start + 500]),
                   col(Claim.duplicate_of).is_(None))
            .order_by(Claim.created_at, Claim.id))
        for fp, claim_id in rows:
            out.setdefault(fp, claim_id)
    return out


def _extend_pending(first: ClaimCreate, claim_id: str, claim_in: ClaimCreate,
                    sources: dict[str, str]) -> int:
    """Add to a claim created earlier in this batch (not inserted yet) the attributions
    this duplicate brings that it lacks; returns how many."""
    have = {(source_of(a, sources), a.stance, a.quote, a.citation_url)
            for a in first.attributions}
    extra = [a for a in claim_in.attributions
             if (source_of(a, sources), a.stance, a.quote, a.citation_url) not in have]
    if len(first.attributions) + len(extra) > claim_writes.MAX_ATTRIBUTIONS:
        raise claim_writes.too_many(claim_id, "attributions", claim_writes.MAX_ATTRIBUTIONS)
    first.attributions.extend(extra)
    return len(extra)


_ATTRIBUTION = Attribution.__table__  # type: ignore[attr-defined]
_KEYS_OF = sa.select(_ATTRIBUTION.c.claim_id, _ATTRIBUTION.c.source_id, _ATTRIBUTION.c.stance,
                     _ATTRIBUTION.c.quote, _ATTRIBUTION.c.citation_url
                     ).where(_ATTRIBUTION.c.claim_id.in_(sa.bindparam("ids", expanding=True)))


def _fold_duplicates(session: Session, folds: list[tuple[int, str, ClaimCreate]],
                     sources: dict[str, str], *, actor: str,
                     results: list[IngestResult | None]) -> None:
    """Attach to each stored claim the attributions its exact duplicates bring that it
    lacks, for the whole batch at once: one read of what they have, one insert, and one
    event per claim that gained any (done one item at a time, with a read-back each, this
    was a fifth of an ingest). An item that would take its claim past the cap fails alone.
    They run after the batch's other items: an update (same origin + external_id) of the
    same claim that brings the same source is credited with it, whatever the items' order.
    """
    if not folds:
        return
    session.flush()  # updates earlier in the batch may have attached some already
    conn = session.connection()
    ids = list({claim_id for _, claim_id, _ in folds})
    have: dict[str, set[tuple[Any, ...]]] = defaultdict(set)
    count: Counter[str] = Counter()
    for start in range(0, len(ids), 500):
        for row in conn.execute(_KEYS_OF, {"ids": ids[start:start + 500]}):
            have[row.claim_id].add(claim_writes.attribution_key(row))
            count[row.claim_id] += 1
    rows: list[dict[str, Any]] = []
    added: Counter[str] = Counter()
    for index, claim_id, claim_in in folds:
        mine: dict[tuple[Any, ...], dict[str, Any]] = {}
        for att in claim_in.attributions:
            values = _attribution_values(att, claim_id, source_of(att, sources), actor)
            key = claim_writes.attribution_key(SimpleNamespace(**values))
            if key not in have[claim_id]:
                mine.setdefault(key, values)
        if mine and count[claim_id] + len(mine) > claim_writes.MAX_ATTRIBUTIONS:
            results[index] = _error(index, claim_writes.too_many(
                claim_id, "attributions", claim_writes.MAX_ATTRIBUTIONS))
            continue
        if mine:
            have[claim_id].update(mine)
            count[claim_id] += len(mine)
            added[claim_id] += len(mine)
            rows += mine.values()
        results[index] = IngestResult(index=index, status="duplicate", claim_id=claim_id,
                                      attributions_added=len(mine))
    if not rows:
        return
    bulk.insert_rows(conn, _ATTRIBUTION, rows)
    claims = list(session.exec(select(Claim).where(col(Claim.id).in_(list(added)))))
    for claim in claims:
        claim_writes.touch(claim)
    session.flush()
    search.index_claims(session, [claim.id for claim in claims])
    lock_event_feed(session)
    bulk.insert_rows(conn, _EVENT, [
        {"actor": actor, "action": "attribution.created", "entity_type": "claim",
         "entity_id": claim.id, "claim_id": claim.id, "at": claim.updated_at,
         "changes": {"attributions_added": added[claim.id], "via": "ingest"},
         "snapshot": public.model_dump(mode="json")}
        for claim, public in zip(claims, claims_public(session, claims), strict=True)
    ])


def _missing_rows(session: Session, claim_id: str, claim_in: ClaimCreate,
                  sources: dict[str, str], *, actor: str) -> list[Attribution]:
    """The item's attributions the stored claim lacks; 409 (before any write) past the cap."""
    existing = {claim_writes.attribution_key(a) for a in session.exec(
        select(Attribution).where(Attribution.claim_id == claim_id))}
    rows = []
    for att in claim_in.attributions:
        row = Attribution(**_attribution_values(att, claim_id, source_of(att, sources), actor))
        if claim_writes.attribution_key(row) not in existing:
            existing.add(claim_writes.attribution_key(row))
            rows.append(row)
    if rows:
        claim_writes.check_room(session, claim_id, attributions=len(rows))
    return rows


def _attach(session: Session, claim: Claim, rows: list[Attribution], *, actor: str) -> int:
    for row in rows:
        session.add(row)
    if rows:
        claim_writes.touch(claim)
        session.add(claim)
        record_claim_event(session, claim, actor=actor, action="attribution.created",
                           changes={"attributions_added": len(rows), "via": "ingest"})
    return len(rows)


def _update(session: Session, index: int, claim: Claim, claim_in: ClaimCreate,
            sources: dict[str, str], *, actor: str) -> IngestResult:
    fields = claim_in.model_dump(include=set(ClaimUpdate.model_fields))
    update = ClaimUpdate.model_validate(fields)
    target = claim
    while target.duplicate_of is not None:  # merged away: new sources go to the survivor
        target = session.get(Claim, target.duplicate_of)
    rows = _missing_rows(session, target.id, claim_in, sources, actor=actor)  # may 409 first
    if claim.duplicate_of is None:
        claim_writes.update_claim(session, claim=claim, claim_in=update, expected_version=None,
                                  actor=actor)
    added = _attach(session, target, rows, actor=actor)
    return IngestResult(index=index, status="updated", claim_id=target.id,
                        attributions_added=added)


class NewClaim(SimpleNamespace):
    """A claim about to be bulk-inserted: its column values, without the ORM's machinery
    (validating a table model costs more than inserting its row)."""

    id: str
    text: str
    updated_at: datetime


def new_claim(claim_in: ClaimCreate, *, actor: str) -> NewClaim:
    now = utcnow()
    return NewClaim(
        **claim_in.model_dump(exclude={"topics", "attributions"}),
        id=new_id("clm"), fingerprint=fingerprint(claim_in.text), version=1,
        status=Status.unverified, duplicate_of=None, created_by=actor,
        created_at=now, updated_at=now)


def _attribution_values(att: AttributionCreate, claim_id: str, source_id: str,
                        actor: str) -> dict[str, Any]:
    return {**att.model_dump(exclude={"source_id", "source"}), "id": new_id("att"),
            "claim_id": claim_id, "source_id": source_id, "created_by": actor,
            "created_at": utcnow()}


def _near_duplicates(
    session: Session, new: dict[int, NewClaim], *, threshold: float
) -> dict[int, list[SimilarRef]]:
    """Existing (or earlier in the batch) claims close to each new one, best five."""
    found = similarity.similar_batch(
        session, {i: (c.id, c.text) for i, c in new.items()}, threshold=threshold, limit=5)
    return {i: [SimilarRef(claim_id=m.claim_id, score=m.score) for m in matches]
            for i, matches in found.items()}


_CLAIM, _EVENT, _SOURCE = Claim.__table__, Event.__table__, Source.__table__  # type: ignore[attr-defined]
_SOURCE_COLUMNS = (_SOURCE.c.id, _SOURCE.c.name, _SOURCE.c.kind, _SOURCE.c.reliability,
                   _SOURCE.c.aliases)
_SOURCES_OF = sa.select(*_SOURCE_COLUMNS).where(
    _SOURCE.c.id.in_(sa.bindparam("ids", expanding=True)))
_SOURCES_OF_PG = sa.select(*_SOURCE_COLUMNS).where(
    _SOURCE.c.id == sa.func.any(sa.cast(sa.bindparam("ids"), sa.ARRAY(sa.String))))


def _representations(session: Session, new: dict[Any, NewClaim], topics: dict[str, list[str]],
                     attributions: dict[str, list[dict[str, Any]]]
                     ) -> tuple[list[ClaimPublic], dict[str, str]]:
    """The new claims as the API shows them, and their search documents, built from the
    rows just inserted (reading them back cost four queries): a new claim has no links and
    no review yet. One query (on SQLite, per 5,000), for the sources they cite."""
    source_ids = list({a["source_id"] for atts in attributions.values() for a in atts})
    conn = session.connection()
    sources = {}
    if source_ids and conn.dialect.name == "postgresql":  # one array, however many ids
        sources = {row.id: row for row in conn.execute(
            _SOURCES_OF_PG, {"ids": bulk.pg_array(source_ids)})}
    elif source_ids:  # drivers cap a statement's parameters
        for start in range(0, len(source_ids), 5000):
            sources.update({row.id: row for row in conn.execute(
                _SOURCES_OF, {"ids": source_ids[start:start + 5000]})})
    publics, documents = [], {}
    for claim in new.values():
        atts = sorted(attributions.get(claim.id, ()), key=lambda a: (a["created_at"], a["id"]))
        publics.append(ClaimPublic.model_validate({
            **vars(claim), "topics": sorted(topics.get(claim.id, ())), "links": [],
            "current_review": None,
            "contested": is_contested({a["stance"] for a in atts}),
            "attributions": [{**a, "source": {
                "id": a["source_id"], "name": sources[a["source_id"]].name,
                "kind": sources[a["source_id"]].kind,
                "reliability": sources[a["source_id"]].reliability}} for a in atts],
        }))
        documents[claim.id] = search.document(claim.text, [
            (a["quote"], sources[a["source_id"]].name, sources[a["source_id"]].aliases or [])
            for a in atts])
    return publics, documents


def insert_new(session: Session, new: dict[Any, NewClaim], claims: dict[Any, ClaimCreate],
               sources: dict[str, str], *, actor: str, via: str | None = "ingest"
               ) -> list[ClaimPublic]:
    """Bulk-insert new claims with topics, attributions, bands, events and search documents;
    returns their representations."""
    if not new:
        return []
    session.flush()
    conn = session.connection()  # Core, not the ORM: its bulk path costs ~2x (MEASURED.md)
    bulk.insert_rows(conn, _CLAIM, [vars(c) for c in new.values()])
    topics: dict[str, list[str]] = {}
    attributions: dict[str, list[dict[str, Any]]] = {}
    bands = []
    for index, claim in new.items():
        claim_in = claims[index]
        topics[claim.id] = list(dict.fromkeys(claim_in.topics))
        attributions[claim.id] = [_attribution_values(a, claim.id, source_of(a, sources), actor)
                                  for a in claim_in.attributions]
        bands += similarity.band_rows(claim.id, claim.text)
    for table, rows in (
        (ClaimTopic, [{"claim_id": cid, "topic": t} for cid, ts in topics.items() for t in ts]),
        (Attribution, [a for atts in attributions.values() for a in atts]),
    ):
        if rows:
            bulk.insert_rows(conn, table.__table__, rows)  # type: ignore[attr-defined]
    similarity.insert_bands(conn, bands)
    snapshots, documents = _representations(session, new, topics, attributions)
    lock_event_feed(session)
    bulk.insert_rows(conn, _EVENT, [
        {"actor": actor, "action": "claim.created", "entity_type": "claim",
         "entity_id": claim.id, "claim_id": claim.id, "at": claim.updated_at,
         "changes": {"text": claim.text, **({"via": via} if via else {})},
         "snapshot": snap.model_dump(mode="json")}
        for claim, snap in zip(new.values(), snapshots, strict=True)
    ])
    search.index_documents(session, documents, fresh=True)
    return snapshots
