"""Counts: a source's track record and the ledger's statistics."""

from collections import defaultdict

import sqlalchemy as sa
from sqlmodel import Session, SQLModel, col, select

from app.crud import source_ref
from app.models import AGAINST_STANCES, FOR_STANCES, Attribution, Claim, SourceRef, Stance, Status


class SourceRecord(SQLModel):
    source: SourceRef
    # status -> number of distinct claims, for each way the source related to them
    asserted: dict[Status, int]
    disputed: dict[Status, int]
    reported: dict[Status, int]
    asserted_total: int
    disputed_total: int
    reported_total: int
    # verdicts only: how often the source was right (asserted true-ish or disputed false-ish)
    asserted_proved_true: int
    asserted_proved_false: int
    disputed_proved_true: int
    disputed_proved_false: int


_TRUE = (Status.true, Status.mostly_true)
_FALSE = (Status.false, Status.mostly_false)


def source_record(session: Session, source) -> SourceRecord:
    """How the claims a source asserted, disputed or reported ended up."""
    groups = {"asserted": FOR_STANCES, "disputed": AGAINST_STANCES, "reported": (Stance.reports,)}
    counts: dict[str, dict[Status, int]] = defaultdict(dict)
    for group, stances in groups.items():
        rows = session.exec(
            select(Claim.status, sa.func.count(sa.distinct(Claim.id)))
            .join(Attribution, Attribution.claim_id == Claim.id)
            .where(Attribution.source_id == source.id, col(Attribution.stance).in_(stances),
                   col(Claim.duplicate_of).is_(None))
            .group_by(Claim.status)
        ).all()
        counts[group] = {Status(s): n for s, n in rows}

    def total(group: str, statuses: tuple[Status, ...]) -> int:
        return sum(counts[group].get(s, 0) for s in statuses)

    return SourceRecord(
        source=source_ref(source),
        asserted=counts["asserted"], disputed=counts["disputed"], reported=counts["reported"],
        asserted_total=sum(counts["asserted"].values()),
        disputed_total=sum(counts["disputed"].values()),
        reported_total=sum(counts["reported"].values()),
        asserted_proved_true=total("asserted", _TRUE),
        asserted_proved_false=total("asserted", _FALSE),
        disputed_proved_true=total("disputed", _TRUE),
        disputed_proved_false=total("disputed", _FALSE),
    )
