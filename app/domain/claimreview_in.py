"""ClaimReview in: schema.org ClaimReview (JSON-LD or microdata-derived) and Google Fact Check
Tools `claims:search` responses, turned into claims, sources, attributions and a verdict.

Parsing is pure (`detect`, `parse`): each record becomes a `Reviewed` (a ClaimCreate as
batch ingestion takes it, the claimant sources with their kinds, and the verdict) or an
AppError saying what is wrong with it. `import_reviews` writes them through batch ingestion,
so a record's `url` (origin "claimreview", external_id = url) identifies it: imported again,
it changes nothing.
"""

import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from pydantic import ValidationError
from sqlmodel import Session

from app.domain import ingest, publishing, reviews
from app.domain.claims import get_claim
from app.domain.sources import create_source, find_source
from app.errors import AppError, BadRequest, Unprocessable
from app.models import (
    Claim,
    ClaimCreate,
    Publication,
    PublicationCreate,
    ReviewCreate,
    SourceCreate,
    SourceKind,
    Status,
)

ORIGIN = "claimreview"
MAX_DEPTH = 32  # levels of @graph, arrays and nodes walked; deeper is refused
_SCHEMA = re.compile(r"^(?:https?://schema\.org/|schema:)", re.IGNORECASE)
_ABSOLUTE_URL = re.compile(r"^https?://[^\s/$.?#][^\s]*$", re.IGNORECASE)

# A claimant's schema.org @type -> the kind of source it becomes when it is new.
KINDS = {
    "GovernmentOrganization": SourceKind.government,
    "GovernmentOffice": SourceKind.government,
    "GovernmentService": SourceKind.government,
    "NewsMediaOrganization": SourceKind.media,
    "NGO": SourceKind.ngo,
    "ResearchOrganization": SourceKind.think_tank,
    "Organization": SourceKind.other,
    "Corporation": SourceKind.other,
    "EducationalOrganization": SourceKind.other,
    "CollegeOrUniversity": SourceKind.other,
    "PoliticalParty": SourceKind.other,
    "Person": SourceKind.other,
}

# Textual ratings (alternateName, Google's textualRating), lowercased, punctuation dropped.
RATINGS: dict[str, Status] = {}
for _status, _names in {
    Status.true: ("true", "correct", "accurate", "verdadero", "vrai", "wahr", "geppetto checkmark"),
    Status.mostly_true: ("mostly true", "mostly correct", "largely true", "largely accurate",
                         "mostly accurate"),
    Status.mixed: ("half true", "mixed", "mixture", "partly true", "partly false",
                   "partially true", "partially false", "half truth", "medio verdadero"),
    Status.mostly_false: ("mostly false", "largely false", "mostly inaccurate"),
    Status.false: ("false", "incorrect", "inaccurate", "wrong", "pants on fire",
                   "pants on fire!", "fake", "four pinocchios", "falso", "faux", "falsch"),
    Status.misleading: ("misleading", "missing context", "out of context", "distorted",
                        "exaggerated", "needs context", "cherry picks", "spin"),
    Status.unverifiable: ("unverifiable", "unproven", "unsupported", "no evidence",
                          "unsubstantiated", "cannot be verified", "not verifiable",
                          "research in progress"),
}.items():
    for _name in _names:
        RATINGS[re.sub(r"[^\w ]+", "", _name)] = _status


@dataclass
class Reviewed:
    """One ClaimReview, ready to import."""

    claim: dict[str, Any]  # a ClaimCreate body
    sources: dict[str, SourceKind]  # claimant names -> kind for a new source
    verdict: Status
    rationale: str
    url: str
    headline: str | None = None
    evidence: list[str] = field(default_factory=list)


# --- reading the input --------------------------------------------------------


def detect(body: bytes) -> list[Any] | None:
    """The records of ClaimReview or claims:search data in `body` (each a `Reviewed` or the
    AppError that refuses it), or None when the body is something else (claim items).
    Raises when it is ours but cannot be read at all (nested too deeply, say)."""
    if not sniff(body):  # a batch of claims is not parsed twice
        return None
    try:
        text, utf8 = body.decode("utf-8-sig"), True
    except UnicodeDecodeError:  # refused below if it is ClaimReview data at all
        text, utf8 = body.decode("utf-8-sig", errors="replace"), False
    try:
        data: Any = json.loads(text)
        values = [data]
    except RecursionError:
        raise BadRequest("the ClaimReview data is nested too deeply to read") from None
    except ValueError:  # NDJSON, one value a line?
        values = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    values.append(json.loads(line))
                except RecursionError:
                    raise BadRequest("the ClaimReview data is nested too deeply to read"
                                     ) from None
                except ValueError as exc:
                    values.append(Unprocessable(f"line {number} is not valid JSON: {exc}"))
    if not any(_is_ours(v) for v in values):
        return None
    if not utf8:
        raise BadRequest("the ClaimReview data is not UTF-8")
    records: list[Any] = []
    for value in values:
        records.extend([value] if isinstance(value, AppError) else parse(value))
    return records


# The keys that start ClaimReview and claims:search data, looked for before parsing.
_SNIFF = re.compile(rb'"(?:@context|@type|@graph|claims|json-ld|microdata|properties)"\s*:')
SNIFF_BYTES = 65536


def sniff(head: bytes) -> bool:
    """Whether data starting with `head` may be ClaimReview or claims:search data."""
    return _SNIFF.search(head[:SNIFF_BYTES]) is not None


def check_count(records: list[Any], max_items: int) -> None:
    if len(records) > max_items:
        raise Unprocessable(f"a batch holds at most {max_items} ClaimReviews; this one has "
                            f"{len(records)}")


def _is_ours(value: Any) -> bool:
    if isinstance(value, list):
        return bool(value) and _is_ours(value[0])
    if not isinstance(value, dict):
        return False
    if "@context" in value or "@graph" in value or "@type" in value:
        return True
    if isinstance(value.get("claims"), list):  # claims:search
        return True
    if "json-ld" in value or "microdata" in value:  # an extraction library's output
        return True
    return "properties" in value and "type" in value  # one microdata item


def parse(value: Any) -> list[Reviewed | AppError]:
    """The records in one parsed JSON value (an object, an array, a @graph, a response)."""
    out: list[Reviewed | AppError] = []
    _walk(value, out, depth=0, in_graph=False)
    if not out:
        out.append(Unprocessable("no ClaimReview found (nothing of @type ClaimReview, and "
                                 "no claims:search `claims`)"))
    return out


def _walk(value: Any, out: list[Reviewed | AppError], *, depth: int, in_graph: bool) -> None:
    if depth > MAX_DEPTH:
        raise BadRequest(f"the ClaimReview data nests @graph or arrays more than {MAX_DEPTH} "
                         "levels deep")
    if isinstance(value, list):
        for item in value:
            _walk(item, out, depth=depth + 1, in_graph=in_graph)
        return
    if not isinstance(value, dict):
        out.append(Unprocessable(f"a record must be a JSON object, not {type(value).__name__}"))
        return
    if "json-ld" in value or "microdata" in value:
        for name in ("json-ld", "microdata"):
            _walk(value.get(name, []), out, depth=depth + 1, in_graph=True)
        return
    if isinstance(value.get("claims"), list) and "@type" not in value:
        for claim in value["claims"]:
            out.append(_google(claim))
        return
    if "@graph" in value:
        _walk(value["@graph"], out, depth=depth + 1, in_graph=True)
        return
    node = normalise(value)
    kind = _type_of(node)
    if kind == "ClaimReview":
        out.append(_claim_review(node))
    elif not in_graph:  # a graph holds other nodes too (the page, the publisher)
        shown = node.get("@type") or "none"
        out.append(Unprocessable(f"the record's @type is {shown!r}, not ClaimReview"))


def normalise(value: Any) -> Any:
    """A microdata-derived item (`{"type": …, "properties": {…}}`) as JSON-LD, deeply."""
    if isinstance(value, list):
        return [normalise(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "properties" in value and "type" in value and "@type" not in value:
        node = {k: normalise(v) for k, v in value["properties"].items()}
        node["@type"] = value["type"]
        return node
    return {k: normalise(v) for k, v in value.items()}


def _type_of(node: Any) -> str | None:
    if not isinstance(node, dict):
        return None
    kind = node.get("@type")
    if isinstance(kind, list):
        kind = next((k for k in kind if isinstance(k, str)), None)
    return _SCHEMA.sub("", kind) if isinstance(kind, str) else None


def _one(value: Any) -> Any:
    """The first of a repeated property (JSON-LD and microdata repeat freely)."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _many(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _text(value: Any) -> str | None:
    value = _one(value)
    if isinstance(value, dict):
        value = value.get("name") or value.get("@value")
    if isinstance(value, str | int | float) and str(value).strip():
        return str(value).strip()
    return None


class _Bad(Exception):
    pass


def _url(value: Any, what: str) -> str | None:
    url = _text(value)
    if url is None:
        return None
    if not _ABSOLUTE_URL.match(url):
        raise _Bad(f"{what} {url!r} is not an absolute http(s) URL")
    return url


def _date(value: Any, what: str) -> str | None:
    """An ISO 8601 date or RFC 3339 time, as the date it names."""
    raw = _text(value)
    if raw is None:
        return None
    try:
        if len(raw) == 10:
            return date.fromisoformat(raw).isoformat()
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise _Bad(f"{what} {raw!r} is not an ISO 8601 date (YYYY-MM-DD) or RFC 3339 "
                   "time") from None
    return moment.date().isoformat()


def _number(value: Any, what: str) -> float | None:
    value = _one(value)
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise _Bad(f"{what} {value!r} is not a number") from None


def verdict_of(rating: Any) -> tuple[Status, str]:
    """The verdict a reviewRating maps to, and the rating as text: `alternateName` if this
    service knows it, else `ratingValue` on its own worstRating…bestRating scale."""
    rating = _one(rating)
    if not isinstance(rating, dict):
        raise _Bad("the ClaimReview has no reviewRating")
    name = _text(rating.get("alternateName")) or _text(rating.get("name"))
    if name is not None:
        known = RATINGS.get(re.sub(r"[^\w ]+", "", name.lower()).strip())
        if known is not None:
            return known, name
    value = _number(rating.get("ratingValue"), "ratingValue")
    if value is None:
        if name is None:
            raise _Bad("the reviewRating has neither alternateName nor ratingValue")
        raise _Bad(f"the rating {name!r} is not one this service can map to a verdict, and "
                   "there is no ratingValue")
    worst = _number(rating.get("worstRating"), "worstRating")
    best = _number(rating.get("bestRating"), "bestRating")
    worst = 1.0 if worst is None else worst
    best = 5.0 if best is None else best
    if best == worst:
        raise _Bad(f"worstRating and bestRating are both {worst:g}: the scale is empty")
    low, high = sorted((worst, best))
    if not low <= value <= high:
        raise _Bad(f"ratingValue {value:g} is outside its scale ({worst:g} worst … "
                   f"{best:g} best)")
    share = (value - worst) / (best - worst)  # 0 worst … 1 best, whichever way it runs
    for floor, status in ((0.9, Status.true), (0.65, Status.mostly_true), (0.4, Status.mixed),
                          (0.15, Status.mostly_false)):
        if share >= floor:
            return status, name or f"{value:g} of {worst:g}…{best:g}"
    return Status.false, name or f"{value:g} of {worst:g}…{best:g}"


def _claim_review(node: dict[str, Any]) -> Reviewed | AppError:
    try:
        return _reviewed(node)
    except _Bad as exc:
        return Unprocessable(f"a ClaimReview{_named(node)}: {exc}")


def _named(node: dict[str, Any]) -> str:
    url = _text(node.get("url"))
    return f" ({url})" if url else ""


def _reviewed(node: dict[str, Any]) -> Reviewed:
    text = _text(node.get("claimReviewed"))
    item = _one(node.get("itemReviewed"))
    item = item if isinstance(item, dict) else {}
    if text is None:  # some publishers put the claim's words in the Claim itself
        text = _text(item.get("text")) if _type_of(item) == "Claim" else None
    if text is None:
        raise _Bad("claimReviewed (the words of the claim) is missing")
    url = _url(node.get("url"), "url")
    if url is None:
        raise _Bad("url is missing: it identifies the ClaimReview")
    verdict, rating = verdict_of(node.get("reviewRating"))
    reviewed_on = _date(node.get("datePublished"), "datePublished")
    stated = _date(item.get("datePublished"), "itemReviewed.datePublished")
    checker = _text(_one(node.get("author")) or {}) or _text(node.get("publisher")) \
        or "the fact-checker"
    sources: dict[str, SourceKind] = {}
    for author in _many(item.get("author")) or _many(item.get("creator")):
        name = _text(author)
        if name is None:
            continue
        kind = _type_of(author) if isinstance(author, dict) else None
        sources.setdefault(name, KINDS.get(kind or "", SourceKind.other))
    appearances = [a for a in _many(item.get("appearance")) + _many(item.get("firstAppearance"))
                   if isinstance(a, dict | str)]
    attributions = []
    for name in sources:
        cited = False
        for appearance in appearances:
            if isinstance(appearance, str):
                appearance = {"url": appearance}
            publisher = _text(appearance.get("publisher")) or _text(appearance.get("author"))
            attributions.append(_drop_none({
                "source": name, "stance": "asserts",
                "citation_url": _url(appearance.get("url"), "appearance url"),
                "citation_title": _text(appearance.get("headline"))
                or _text(appearance.get("name")),
                "citation_publisher": publisher,
                "citation_published_date": _date(appearance.get("datePublished"),
                                                 "appearance datePublished"),
                "stated_at": f"{stated}T00:00:00Z" if stated else None,
            }))
            cited = True
        if not cited:
            attributions.append(_drop_none({
                "source": name, "stance": "asserts",
                "stated_at": f"{stated}T00:00:00Z" if stated else None}))
    body = _text(node.get("reviewBody")) or _text(node.get("description"))
    when = f" on {reviewed_on}" if reviewed_on else ""
    rationale = f"{checker} rated it “{rating}”{when} ({url})." + (f" {body}" if body else "")
    claim = _drop_none({
        "text": text, "language": _text(node.get("inLanguage")) or "en",
        "origin": ORIGIN, "external_id": url, "attributions": attributions,
        "first_stated_at": f"{stated}T00:00:00Z" if stated else None,
    })
    return Reviewed(claim=claim, sources=sources, verdict=verdict, rationale=rationale[:5000],
                    url=url, headline=_text(node.get("headline")) or _text(node.get("name")),
                    evidence=[url])


def _google(claim: Any) -> Reviewed | AppError:
    """One claim of a claims:search response: its first review gives the verdict."""
    if not isinstance(claim, dict):
        return Unprocessable("a claims:search claim must be a JSON object")
    reviews = [r for r in _many(claim.get("claimReview")) if isinstance(r, dict)]
    if not reviews:
        return Unprocessable("a claims:search claim has no claimReview")
    first = reviews[0]
    node = {
        "@type": "ClaimReview", "claimReviewed": claim.get("text"), "url": first.get("url"),
        "reviewRating": {"alternateName": first.get("textualRating")},
        "datePublished": first.get("reviewDate"), "inLanguage": first.get("languageCode"),
        "author": first.get("publisher"), "headline": first.get("title"),
        "itemReviewed": {"@type": "Claim", "datePublished": claim.get("claimDate"),
                         "author": {"@type": "Person", "name": claim.get("claimant")}
                         if claim.get("claimant") else None},
    }
    try:
        reviewed = _reviewed(node)
        reviewed.evidence = [reviewed.url] + [u for u in (_url(r.get("url"), "url")
                                                          for r in reviews[1:]) if u]
    except _Bad as exc:
        return Unprocessable(f"a claims:search claim{_named(node)}: {exc}")
    return reviewed


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


# --- writing ------------------------------------------------------------------


def publish_verdict(session: Session, *, claim: Claim, reviewed: Reviewed, actor: str) -> None:
    """Publish the claim's verdict at the review's `url`, unless exactly that is already
    published (importing the same ClaimReview again changes nothing)."""
    if not Status(claim.status).is_verdict:
        return
    headline = (reviewed.headline or f"Fact check: {claim.text}")[:500]
    current = session.get(Publication, claim.id)
    if current is not None and current.withdrawn_at is None and (
            current.url, current.headline, current.status) == (reviewed.url, headline,
                                                                claim.status):
        return
    publishing.publish(session, claim=claim, expected_version=None, actor=actor,
                       pub_in=PublicationCreate(url=reviewed.url, headline=headline))


def import_reviews(session: Session, records: list[Any], *, actor: str, threshold: float = 0.5,
                   keep_going: bool = True) -> ingest.IngestResponse:
    """Write parsed records in the caller's transaction: claims through batch ingestion
    (deduplicated by url), new claimant sources with their kinds, and each verdict.

    `keep_going` False: the first bad record raises (naming it) and the caller rolls back.
    """
    items: list[Any] = []
    for index, record in enumerate(records):
        if isinstance(record, Reviewed):
            try:
                ClaimCreate.model_validate(record.claim)
            except ValidationError as exc:
                error = exc.errors()[0]
                where = ".".join(str(p) for p in error["loc"])
                record = Unprocessable(f"a ClaimReview ({record.url}): {where}: {error['msg']}")
        if isinstance(record, AppError) and not keep_going:
            raise Unprocessable(f"record {index + 1}: {record.detail}")
        items.append(record)
    for record in items:  # claimants that are new are created with their kind
        if isinstance(record, Reviewed):
            for name, kind in record.sources.items():
                if find_source(session, name) is None:
                    create_source(session, source_in=SourceCreate(name=name, kind=kind),
                                       actor=actor)
    result = ingest.ingest(session, items=[r.claim if isinstance(r, Reviewed) else r
                                           for r in items], actor=actor, threshold=threshold)
    for outcome in result.items:
        if outcome.status == "error" and not keep_going:
            raise Unprocessable(f"record {outcome.index + 1}: "
                                f"{(outcome.error or {}).get('detail')}")
        record = items[outcome.index]
        if outcome.status == "error" or not isinstance(record, Reviewed):
            continue
        claim = get_claim(session, outcome.claim_id or "")
        # The claim this review's url made carries its verdict; a claim already there with
        # the same words takes it only if nobody has given it a verdict yet.
        owned = outcome.status in ("created", "updated")
        if claim.duplicate_of is None and claim.status != record.verdict \
                and (owned or not Status(claim.status).is_verdict):
            reviews.create_review(session, claim=claim, expected_version=None, reviewer=actor,
                                  review_in=ReviewCreate(status=record.verdict,
                                                         rationale=record.rationale,
                                                         evidence_urls=record.evidence))
        if claim.duplicate_of is None:
            publish_verdict(session, claim=claim, reviewed=record, actor=actor)
    return result
