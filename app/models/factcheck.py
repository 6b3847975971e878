"""Google Fact Check Tools API (v1alpha1) shapes."""

from typing import Annotated

from pydantic import (
    ConfigDict,
    StringConstraints,
)
from sqlmodel import Field, SQLModel

from app.models.base import ClaimText, LongText, Name, ShortText, Url

# --- Google Fact Check Tools API (v1alpha1) shapes ------------------------------
# Google's names (camelCase) and protobuf JSON: fields with no value are left out of
# responses (routes exclude None). Inputs refuse unknown fields, as Google does.


class GoogleShape(SQLModel):
    model_config = ConfigDict(extra="forbid")


class FactCheckPublisher(GoogleShape):
    name: str | None = None
    site: str | None = None


class FactCheckReview(GoogleShape):
    publisher: FactCheckPublisher | None = None
    url: str | None = None
    title: str | None = None
    reviewDate: str | None = None
    textualRating: str | None = None
    languageCode: str | None = None


class FactCheckClaim(GoogleShape):
    text: str | None = None
    claimant: str | None = None
    claimDate: str | None = None
    claimReview: list[FactCheckReview] | None = None


class FactCheckSearchResponse(GoogleShape):
    claims: list[FactCheckClaim] | None = None
    nextPageToken: str | None = None


# Names and texts are checked as a claim's and a source's are when the page makes them
# (app/domain/pages.py: 400), not here: the pages API answers 400, never 422.
class ClaimAuthor(GoogleShape):
    name: Name | None = None
    imageUrl: Url | None = None
    jobTitle: ShortText | None = None
    sameAs: Url | None = None


class ClaimRating(GoogleShape):
    textualRating: ShortText | None = None
    ratingValue: int | None = Field(default=None, ge=-2**31, lt=2**31)
    worstRating: int | None = Field(default=None, ge=-2**31, lt=2**31)
    bestRating: int | None = Field(default=None, ge=-2**31, lt=2**31)
    ratingExplanation: LongText | None = None
    imageUrl: Url | None = None


class ClaimReviewMarkup(GoogleShape):
    claimReviewed: ClaimText | None = None
    url: Url | None = None
    rating: ClaimRating | None = None
    claimAuthor: ClaimAuthor | None = None
    claimDate: ShortText | None = None
    claimLocation: ShortText | None = None
    claimFirstAppearance: Url | None = None
    claimAppearances: list[Url] | None = Field(default=None, max_length=100)


class ClaimReviewAuthor(GoogleShape):
    name: ShortText | None = None
    imageUrl: Url | None = None


class ClaimReviewMarkupPage(GoogleShape):
    """A page of ClaimReview markup (Google's pages API): here, one published verdict."""

    name: Annotated[str, StringConstraints(max_length=200)] | None = None
    pageUrl: Url | None = None
    publishDate: ShortText | None = None
    claimReviewAuthor: ClaimReviewAuthor | None = None
    claimReviewMarkups: list[ClaimReviewMarkup] | None = Field(default=None, max_length=100)
    versionId: Annotated[str, StringConstraints(max_length=100)] | None = None


class ClaimReviewMarkupPageList(GoogleShape):
    claimReviewMarkupPages: list[ClaimReviewMarkupPage] | None = None
    nextPageToken: str | None = None


class GoogleErrorBody(SQLModel):
    code: int
    message: str
    status: str


class GoogleError(SQLModel):
    """Google's error shape, which /v1alpha1 answers with instead of problem+json."""

    error: GoogleErrorBody
