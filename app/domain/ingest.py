"""Batch ingestion: parse, resolve sources, fold duplicates, bulk insert, one transaction.

Each item is a ClaimCreate. Items fail alone (a problem object in their result);
the rest go in. New claims are made by `claims.create_claims`, as every claim is; exact
duplicates fold into the stored claim, and a known origin + external_id updates it.
"""

import json
from collections import Counter, defaultdict
from types import SimpleNamespace
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import ValidationError
from sqlmodel import Session, SQLModel, col, select

from app.domain import claims as claim_writes
from app.domain import origins, search, verdicts
from app.domain.claims import attribution_values, create_claims, existing_by_external_id
from app.domain.events import record_claim_event, record_event
from app.domain.locks import lock_claims, lock_event_feed
from app.domain.rendering import claims_public
from app.domain.sources import (
    Cited,
    check_source_ids,
    name_keys,
    resolve_source_names,
    source_of,
)
from app.domain.text import fingerprint
from app.errors import AppError, BadRequest, Unprocessable, problem_dict
from app.fastpath import bulk
from app.models import (
    ApiKey,
    Attribution,
    Claim,
    ClaimCreate,
    ClaimUpdate,
    Event,
    new_id,
)

NDJSON = "application/x-ndjson"
# json.loads recurses once per level of nesting; past Python's recursion limit it raises.
_TOO_DEEP = "it is nested too deeply"


class SimilarRef(SQLModel):
    claim_id: str
    score: float


class IngestResult(SQLModel):
    index: int
    status: Literal["created", "duplicate", "updated", "unchanged", "error"]
    claim_id: str | None = None
    attributions_added: int = 0
    similar: list[SimilarRef] = []
    error: dict[str, Any] | None = None


class IngestSummary(SQLModel):
    received: int
    created: int
    duplicate: int
    updated: int
    unchanged: int
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


def ingest(session: Session, *, items: list[Any], actor: str, threshold: float,
           key: ApiKey | None = None) -> IngestResponse:
    """Ingest a parsed batch in the caller's transaction; the caller commits. If every item
    fails, the whole batch is a 422 (its results in `results`) and nothing may be kept. With
    the caller's `key`, items of origins another key owns are refused (origins.check_batch)."""
    results: list[IngestResult | None] = [None] * len(items)
    claims: dict[int, ClaimCreate] = {}
    for index, item in enumerate(items):
        checked = _validate(item)
        if isinstance(checked, AppError):
            results[index] = _error(index, checked)
        else:
            claims[index] = checked
    _reject_repeated_external_ids(claims, results)
    keyed = name_keys(claims.values())  # before the first statement takes the write lock
    lock_claims(session, claims.values())  # first: overlapping batches queue here
    if key is not None:
        for index, error in origins.check_batch(session, claims, key=key).items():
            results[index] = _error(index, error)
    sources, failed = check_source_ids(session, claims)
    for index, error in failed.items():
        results[index] = _error(index, error)
    cited: dict[str, Cited] = {}  # the sources created here, not read back (bench P9)
    sources.update(resolve_source_names(session, claims, lambda _: actor, cited=cited,
                                        keyed=keyed))
    by_external = existing_by_external_id(session, claims.values())
    by_fingerprint = _existing_by_fingerprint(session, claims.values())

    new: dict[int, str] = {}  # the items that make a claim, and its id
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
                _refused(session, claim, exc, actor=actor)
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
            claim_id = new[index] = new_id("clm")
            pending[claim_id] = claim_in
            by_fingerprint[fp] = claim_id
            if claim_in.origin is not None:
                by_external[external] = claim_id
            results[index] = IngestResult(index=index, status="created", claim_id=claim_id,
                                          attributions_added=len(claim_in.attributions))
    _fold_duplicates(session, folds, sources, actor=actor, results=results)
    created = create_claims(session, [(claims[i], actor) for i in new], ids=list(new.values()),
                            sources=sources, cited=cited, via="ingest", similar=5,
                            threshold=threshold)
    for index, outcome in zip(new, created, strict=True):
        if isinstance(outcome, AppError):  # not expected: the checks above came first
            results[index] = _error(index, outcome)
        else:
            results[index].similar = [  # type: ignore[union-attr]
                SimilarRef(claim_id=m.claim_id, score=m.score) for m in outcome.similar]
    final = [r for r in results if r is not None]
    counts = defaultdict(int, {s: 0 for s in ("created", "duplicate", "updated", "unchanged",
                                              "error")})
    for result in final:
        counts[result.status] += 1
    if counts["error"] == len(items):
        first = final[0].error or {}
        raise Unprocessable(f"every item failed; the first: {first.get('detail')}",
                            results=[r.model_dump(mode="json") for r in final])
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


_ATTRIBUTION, _EVENT = Attribution.__table__, Event.__table__  # type: ignore[attr-defined]
_KEYS_OF = sa.select(_ATTRIBUTION.c.claim_id, _ATTRIBUTION.c.source_id, _ATTRIBUTION.c.stance,
                     _ATTRIBUTION.c.quote, _ATTRIBUTION.c.citation_url
                     ).where(_ATTRIBUTION.c.claim_id.in_(sa.bindparam("ids", expanding=True)))


def _fold_duplicates(session: Session, folds: list[tuple[int, str, ClaimCreate]],
                     sources: dict[str, str], *, actor: str,
                     results: list[IngestResult | None]) -> None:
    """Attach to each stored claim the attributions its exact duplicates bring that it
    lacks, for the whole batch at once: one read of what they have, one insert, and one
    event per claim that gained any (one item at a time, with a read-back each, was a
    large share of an ingest: bench P4). An item that would take its claim past the cap
    fails alone.
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
            values = attribution_values(att, claim_id, source_of(att, sources), actor)
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
        row = Attribution(**attribution_values(att, claim_id, source_of(att, sources), actor))
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


def _refused(session: Session, claim: Claim, error: AppError, *, actor: str) -> None:
    """A refused update is part of the claim's story: who tried, and why not."""
    record_event(session, actor=actor, action="claim.update_refused", entity_type="claim",
                 entity_id=claim.id, claim_id=claim.id,
                 changes={"reason": error.detail, "status": error.status, "via": "ingest"})


def _update(session: Session, index: int, claim: Claim, claim_in: ClaimCreate,
            sources: dict[str, str], *, actor: str) -> IngestResult:
    verdicts.check_ingest_update(session, claim, claim_in.text)  # may 409 first
    fields = claim_in.model_dump(include=set(ClaimUpdate.model_fields))
    update = ClaimUpdate.model_validate(fields)
    target = claim
    while target.duplicate_of is not None:  # merged away: new sources go to the survivor
        target = session.get(Claim, target.duplicate_of)
    rows = _missing_rows(session, target.id, claim_in, sources, actor=actor)  # may 409 first
    version = claim.version
    if claim.duplicate_of is None:
        claim_writes.change_claim(session, claim=claim, claim_in=update, actor=actor)
    added = _attach(session, target, rows, actor=actor)
    changed = added or claim.version != version
    return IngestResult(index=index, status="updated" if changed else "unchanged",
                        claim_id=target.id, attributions_added=added)
