"""Batch ingestion for automated jobs: many claims per request, JSON array or NDJSON."""

from fastapi import APIRouter, Request

from app.api import WRITE_ERRORS
from app.deps import IdempotencyDep, IngesterKey, SettingsDep, WriteSessionDep
from app.domain import batches
from app.domain.ingest import IngestResponse

router = APIRouter(prefix="/v1/ingest", tags=["ingest"], responses=WRITE_ERRORS)

# maxItems is the app's Settings.max_batch_items (app/api/openapi.py), and the largest body
# its max_ingest_body_bytes (main.py includes this router with it).
_ITEMS = {"type": "array", "items": {"$ref": "#/components/schemas/ClaimCreate"},
          "minItems": 1}


@router.post("", openapi_extra={"requestBody": {
    "required": True,
    "content": {
        "application/json": {"schema": _ITEMS},
        "application/x-ndjson": {"schema": {"type": "string",
                                            "description": "one claim object per line"}},
    },
}})
async def ingest_claims(
    request: Request, key: IngesterKey, idem: IdempotencyDep, session: WriteSessionDep,
    settings: SettingsDep,
) -> IngestResponse:
    """Ingest a batch: one result per item, in order: created, duplicate, updated, unchanged
    or error.

    Exact duplicates (same normalized text) fold into the existing claim, adding any new
    attributions; the same `origin` + `external_id` updates the claim seen before
    (`unchanged` when it brings nothing new); near duplicates are created and listed in
    `similar`. `attributions_added` counts the attributions each item brought. Sources are
    named by id, name or alias; unknown names are created once. Items fail alone; if every
    item fails the whole request is 422 and nothing is written.

    An origin belongs to the first key that ingests with it: another key's items for it
    (new claims or updates) fail with 403 unless that key is an admin's (`/v1/origins`).
    An update that changes the text of a claim with a verdict puts it back to `in_review`
    (a review and an event say the text changed); one under a published verdict fails
    with 409. Refused updates are recorded in the claim's history.

    The body may instead be schema.org ClaimReview JSON-LD (an object, an array, a
    `@graph`, NDJSON of them, or the microdata-derived form) or Google Fact Check Tools
    `claims:search` responses: each review becomes a claim (its `url` identifies it, so
    sending it again changes nothing), its claimant sources and attributions, and its verdict.
    """
    batch = batches.parse(await request.body(), request.headers.get("content-type", ""),
                          max_items=settings.max_batch_items)

    def run() -> IngestResponse:
        result = batches.write(session, batch, key=key, threshold=settings.similarity_threshold)
        idem.save(session, status=200, body=result)
        session.commit()
        return result

    return await request.app.state.db.run_writing(session, run)
