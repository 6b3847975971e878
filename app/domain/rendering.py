"""Claims and sources as the API shows them, each claim in a handful of queries."""

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from enum import Enum
from typing import Any

import sqlalchemy as sa
from pydantic import TypeAdapter
from sqlmodel import Session

from app.domain.similarity import Match
from app.models import (
    AGAINST_STANCES,
    FOR_STANCES,
    Attribution,
    AttributionPublic,
    Claim,
    ClaimCreated,
    ClaimLink,
    ClaimPublic,
    ClaimTopic,
    OutputTime,
    Review,
    SimilarClaim,
    Source,
    SourcePublic,
    SourceRef,
)


def source_ref(source: Source) -> SourceRef:
    return SourceRef(id=source.id, name=source.name, kind=source.kind,
                     reliability=source.reliability)


def source_public(session: Session, source: Source) -> SourcePublic:
    parent = session.get(Source, source.affiliation_id) if source.affiliation_id else None
    return SourcePublic.model_validate(
        source, update={"affiliation": source_ref(parent) if parent else None}
    )


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
    return [render_claim({name: getattr(claim, name) for name in _CLAIM_FIELDS},
                         topics=topics[claim.id], attributions=attributions[claim.id],
                         links=links[claim.id], review=reviews.get(claim.id))
            for claim in claims]


def render_claim(columns: dict[str, Any], *, topics: Iterable[str],
                 attributions: list[dict[str, Any]], links: Sequence[dict[str, Any]] = (),
                 review: dict[str, Any] | None = None) -> ClaimPublic:
    """A claim as the API shows it, from its columns and what hangs off it: attributions
    (each with its `source` as a dict), links and current review. The one place that
    says what a claim's representation holds, `contested` included."""
    return ClaimPublic.model_validate({
        **columns, "topics": sorted(topics), "attributions": attributions,
        "links": list(links), "current_review": review,
        "contested": is_contested({a["stance"] for a in attributions}),
    })


_CLAIM_TABLE = Claim.__table__  # type: ignore[attr-defined]
_CLAIMS_BY_ID = sa.select(_CLAIM_TABLE).where(_CLAIM_TABLE.c.id.in_(_IDS))
_CLAIM_FIELDS = [name for name in ClaimPublic.model_fields if name in Claim.model_fields]


def claim_public(session: Session, claim: Claim) -> ClaimPublic:
    """The claim as the API shows it."""
    return claims_public(session, [claim])[0]


def claims_by_id(session: Session, ids: Sequence[str]) -> list[ClaimPublic]:
    """The claims with these ids, in this order (any since deleted left out)."""
    rows = {row.id: row for row in session.connection().execute(_CLAIMS_BY_ID, {"ids": ids})}
    return claims_public(session, [rows[i] for i in ids if i in rows])


_ATTRIBUTION_FIELDS = [name for name in AttributionPublic.model_fields if name != "source"]
_TIME = TypeAdapter(OutputTime)  # the API's time format, as ClaimPublic writes it


def _json(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, list)):
        return value.value if isinstance(value, Enum) else value
    if isinstance(value, datetime):
        return _TIME.dump_python(value, mode="json")
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"no JSON form for {type(value).__name__}")


def new_claim_json(columns: dict[str, Any], *, topics: Iterable[str],
                   attributions: list[dict[str, Any]]) -> dict[str, Any]:
    """A claim just created as the API shows it, in JSON: what `render_claim(...)
    .model_dump(mode="json")` gives for a claim with no links and no review yet, built
    from the values just written without validating them again (a batch may carry 100,000
    attributions: bench P9). Each attribution carries its `source` as a dict of strings.
    tests/test_write_path.py checks it, field by field, against the claim read back."""
    return {
        **{name: _json(columns[name]) for name in _CLAIM_FIELDS},
        "topics": sorted(topics),
        "attributions": [{**{name: v if (v := a[name]) is None or type(v) is str else _json(v)
                             for name in _ATTRIBUTION_FIELDS},  # most are text (bench P9)
                          "source": {k: v if type(v) is str else _json(v)
                                     for k, v in a["source"].items()}}
                         for a in attributions],
        "links": [], "current_review": None,
        "contested": is_contested({a["stance"] for a in attributions}),
    }


def claim_created(claim: dict[str, Any], similar: Sequence[Match]) -> ClaimCreated:
    """POST /v1/claims's answer: the new claim (`new_claim_json`) and its likely duplicates."""
    return ClaimCreated.model_validate({**claim, "likely_duplicates": [
        SimilarClaim(claim_id=m.claim_id, text=m.text, status=m.status, score=m.score,
                     exact=m.fingerprint == claim["fingerprint"]) for m in similar]})
