"""The demo ledger from the Belarus article, loaded through the same functions the API uses."""

import json
from importlib import resources
from typing import Any

from sqlmodel import Session, select

from app.domain import claims, links, sources
from app.domain import reviews as verification
from app.models import (
    AttributionCreate,
    Claim,
    ClaimCreate,
    LinkCreate,
    ReviewCreate,
    SourceCreate,
)

ACTOR = "demo"


def demo_data() -> dict[str, Any]:
    return json.loads(resources.files("app").joinpath("data/demo.json").read_text("utf-8"))


def load_demo(session: Session) -> dict[str, int]:
    """Add the article's sources, claims, reviews and links; the caller commits."""
    data = demo_data()
    article = data["article"]
    source_ids: dict[str, str] = {}
    pending = list(data["sources"])
    while pending:  # parents before the sources affiliated to them
        ready = [s for s in pending if s["affiliation"] is None or s["affiliation"] in source_ids]
        if not ready:
            raise ValueError("demo sources have an affiliation cycle or a missing parent")
        for spec in ready:
            fields = {k: v for k, v in spec.items() if k != "affiliation"}
            source_in = SourceCreate.model_validate(
                fields | {"affiliation_id": source_ids.get(spec["affiliation"])}
            )
            source_ids[spec["name"]] = sources.create_source(session, source_in=source_in,
                                                             actor=ACTOR).id
            pending.remove(spec)
    claim_ids: dict[str, str] = {}
    reviews = 0
    for spec in data["claims"]:
        attributions = [
            AttributionCreate(
                source_id=source_ids[a["source"]], stance=a["stance"], quote=a["quote"],
                credibility=a["credibility"], note=a["note"],
                citation_title=article["title"], citation_publisher=article["publisher"],
                citation_url=article["url"], citation_published_date=article["published_date"],
                stated_at=spec["first_stated_at"],
            )
            for a in spec["attributions"]
        ]
        fields = {k: v for k, v in spec.items() if k not in ("ref", "reviews", "attributions")}
        claim_in = ClaimCreate.model_validate(fields | {"attributions": attributions})
        claim = claims.create_claim(session, claim_in=claim_in, actor=ACTOR)
        claim_ids[spec["ref"]] = claim.id
        for review in spec["reviews"]:
            verification.set_status(session, claim=claim, review_in=ReviewCreate(**review),
                                    expected_version=None, reviewer=ACTOR)
            reviews += 1
    for spec in data["links"]:
        claim = claims.get_claim(session, claim_ids[spec["from"]])
        links.create_link(session, claim=claim, expected_version=None, actor=ACTOR,
                          link_in=LinkCreate(target_id=claim_ids[spec["to"]], kind=spec["kind"],
                                             note=spec["note"]))
    return {"sources": len(source_ids), "claims": len(claim_ids), "reviews": reviews,
            "links": len(data["links"])}


def has_claims(session: Session) -> bool:
    return session.exec(select(Claim.id).limit(1)).first() is not None
