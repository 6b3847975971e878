"""Near-duplicate claims: word-set Jaccard similarity, with MinHash LSH bands as the index.

Each claim stores BANDS band keys; two claims whose word sets have Jaccard similarity J
share at least one band with probability 1 - (1 - J**ROWS)**BANDS (0.99 at J = 0.5,
0.9999 at J = 0.625), and the candidates are then scored exactly.
"""

import hashlib
import random
from collections.abc import Iterable, Sequence

import sqlalchemy as sa
from sqlmodel import Session, col, select

from app.models import Claim, ClaimBand, SimilarClaim
from app.text import fingerprint, fold

BANDS, ROWS = 16, 2
_PRIME = (1 << 61) - 1
_rng = random.Random(20221207)  # fixed: stored band keys must not change between runs
_PERMS = [(_rng.randrange(1, _PRIME), _rng.randrange(0, _PRIME)) for _ in range(BANDS * ROWS)]
_MASK = (1 << 63) - 1

STOPWORDS = frozenset((  # noqa: SIM905  (a word list reads better as prose)
    "a an and are as at be been being but by for from had has have having he her his i in "
    "into is it its of on or our she so than that the their them there these they this to "
    "was we were which who will with would not no do does did over said says"
).split())


def words(text: str) -> frozenset[str]:
    """The comparable words of a claim: folded, stop words out, a plain plural 's' off."""
    out = set()
    for word in fold(text).split():
        if word in STOPWORDS or len(word) < 2:
            continue
        if len(word) > 4 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        out.add(word)
    return frozenset(out)


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


def _token_hash(word: str) -> int:
    return int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big") % _PRIME


def bands(word_set: Iterable[str]) -> list[int]:
    """The claim's band keys (none for a claim without comparable words)."""
    hashes = [_token_hash(w) for w in word_set]
    if not hashes:
        return []
    mins = [min((a * h + b) % _PRIME for h in hashes) for a, b in _PERMS]
    return [
        ((mins[i * ROWS] * 0x9E3779B97F4A7C15 + mins[i * ROWS + 1]) * 31 + i) & _MASK
        for i in range(BANDS)
    ]


def band_rows(claim_id: str, text: str) -> list[dict[str, object]]:
    return [{"band": b, "claim_id": claim_id} for b in dict.fromkeys(bands(words(text)))]


def store_bands(session: Session, claim_id: str, text: str, *, replace: bool = False) -> None:
    if replace:
        session.execute(sa.delete(ClaimBand).where(col(ClaimBand.claim_id) == claim_id))
    rows = band_rows(claim_id, text)
    if rows:
        session.execute(sa.insert(ClaimBand), rows)


def similar(
    session: Session, text: str, *, threshold: float, limit: int = 10,
    exclude: Sequence[str] = (), candidates_cap: int = 200,
) -> list[tuple[Claim, float]]:
    """Claims whose words overlap this text's by at least `threshold`, best first."""
    word_set = words(text)
    keys = list(dict.fromkeys(bands(word_set)))
    if not keys:
        return []
    shared = sa.func.count().label("shared")
    query = (select(ClaimBand.claim_id, shared).where(col(ClaimBand.band).in_(keys))
             .group_by(ClaimBand.claim_id).order_by(shared.desc()).limit(candidates_cap))
    candidate_ids = [cid for cid, _ in session.exec(query) if cid not in exclude]
    if not candidate_ids:
        return []
    scored = []
    for claim in session.exec(select(Claim).where(col(Claim.id).in_(candidate_ids),
                                                  col(Claim.duplicate_of).is_(None))):
        score = jaccard(word_set, words(claim.text))
        if score >= threshold:
            scored.append((claim, round(score, 4)))
    scored.sort(key=lambda pair: (-pair[1], pair[0].id))
    return scored[:limit]


def likely_duplicates(
    session: Session, text: str, *, threshold: float, limit: int = 10,
    exclude: Sequence[str] = (),
) -> list[SimilarClaim]:
    """Claims that say the same (exact: same normalized text) or nearly the same."""
    exact_fp = fingerprint(text)
    return [
        SimilarClaim(claim_id=claim.id, text=claim.text, status=claim.status, score=score,
                     exact=claim.fingerprint == exact_fp)
        for claim, score in similar(session, text, threshold=threshold, limit=limit,
                                    exclude=exclude)
    ]
