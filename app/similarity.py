"""Near-duplicate claims: word-set Jaccard similarity, with MinHash LSH bands as the index.

Each claim stores BANDS band keys; two claims whose word sets have Jaccard similarity J
share at least one band with probability 1 - (1 - J**ROWS)**BANDS (0.99 at J = 0.5,
0.9999 at J = 0.625), and the candidates are then scored exactly.
"""

import hashlib
import random
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Sequence
from functools import lru_cache
from typing import NamedTuple, TypeVar

import sqlalchemy as sa
from sqlmodel import Session, col

from app.db import pg_array
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


@lru_cache(maxsize=20_000)
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
    shared = len(a & b)
    return shared / (len(a) + len(b) - shared)  # the union's size, without building it


def _token_hash(word: str) -> int:
    return int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big") % _PRIME


@lru_cache(maxsize=8192)  # ~1.5 KB each; words recur, and this was most of a claim's MinHash
def _permuted(word: str) -> tuple[int, ...]:
    """The word's hash under each of the BANDS * ROWS permutations."""
    h = _token_hash(word)
    return tuple((a * h + b) % _PRIME for a, b in _PERMS)


def bands(word_set: Iterable[str]) -> list[int]:
    """The claim's band keys (none for a claim without comparable words)."""
    permuted = [_permuted(w) for w in word_set]
    if not permuted:
        return []
    mins = list(map(min, zip(*permuted, strict=True)))
    return [
        ((mins[i * ROWS] * 0x9E3779B97F4A7C15 + mins[i * ROWS + 1]) * 31 + i) & _MASK
        for i in range(BANDS)
    ]


@lru_cache(maxsize=4096)  # looked up, then stored, for each new claim
def text_bands(text: str) -> tuple[int, ...]:
    """The distinct band keys of a claim's text."""
    return tuple(dict.fromkeys(bands(words(text))))


def band_rows(claim_id: str, text: str) -> list[dict[str, object]]:
    return [{"band": b, "claim_id": claim_id} for b in text_bands(text)]


def store_bands(session: Session, claim_id: str, text: str) -> None:
    insert_bands(session.connection(), band_rows(claim_id, text))


def delete_bands(session: Session, claim_id: str, text: str) -> None:
    """Remove the band rows stored for the claim when its text was `text`.

    They are found by primary key: a claim's bands are a fixed function of its text, and
    claim_band has no index on claim_id (migration 0010)."""
    keys = text_bands(text)
    if keys:
        session.execute(sa.delete(ClaimBand).where(
            col(ClaimBand.band).in_(keys), col(ClaimBand.claim_id) == claim_id))


# PostgreSQL: one statement over two arrays. As an executemany, each of a claim's 16 rows
# was an execution of its own (~13 us each: a fifth of a batch's time in the database).
_INSERT_BANDS_PG = sa.text(
    "INSERT INTO claim_band (band, claim_id) "
    "SELECT * FROM unnest(CAST(:bands AS bigint[]), CAST(:ids AS varchar[]))")


_INSERT_BANDS_SQLITE = "INSERT INTO claim_band (band, claim_id) VALUES (?, ?)"


def insert_bands(conn: sa.Connection, rows: list[dict[str, object]]) -> None:
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        conn.execute(_INSERT_BANDS_PG, {"bands": pg_array(r["band"] for r in rows),
                                        "ids": pg_array(r["claim_id"] for r in rows)})
    else:  # the driver's executemany over tuples: the Core statement processed each row
        conn.exec_driver_sql(_INSERT_BANDS_SQLITE, [(r["band"], r["claim_id"]) for r in rows])


def likely_duplicates(
    session: Session, text: str, *, threshold: float, limit: int = 10,
    exclude: Sequence[str] = (),
) -> list[SimilarClaim]:
    """Claims that say the same (exact: same normalized text) or nearly the same.

    A read (`/similar`), so it looks wider than the write path: 20 holders per band bucket,
    50 candidates scored.
    """
    exact_fp = fingerprint(text)
    matches = similar_batch(session, {0: ("", text)}, threshold=threshold, limit=limit,
                            per_band=20, candidates_cap=50, exclude=exclude).get(0, [])
    return [SimilarClaim(claim_id=m.claim_id, text=m.text, status=m.status, score=m.score,
                         exact=m.fingerprint == exact_fp) for m in matches]


_CLAIM = Claim.__table__  # type: ignore[attr-defined]
# Merged claims are dropped in Python: a `duplicate_of IS NULL` condition led PostgreSQL
# to scan that column's index for every live claim instead of looking the ids up.
_TEXT_COLUMNS = (_CLAIM.c.id, _CLAIM.c.text, _CLAIM.c.status, _CLAIM.c.fingerprint,
                 _CLAIM.c.duplicate_of)
_TEXTS_OF = sa.select(*_TEXT_COLUMNS).where(_CLAIM.c.id.in_(sa.bindparam("ids", expanding=True)))
# PostgreSQL: one array parameter, so the statement is the same (and prepared) every time;
# joined, not `id = ANY(:ids)`, whose generic plan could test every row against every id.
_TEXTS_OF_PG = sa.text(
    "SELECT c.id, c.text, c.status, c.fingerprint, c.duplicate_of "
    "FROM unnest(CAST(:ids AS varchar[])) AS k(id) JOIN claim AS c ON c.id = k.id")


def _texts(session: Session, ids: list[str]) -> dict[str, tuple[str, str, str]]:
    """{claim_id: (text, status, fingerprint)} of those of these claims not merged away."""
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        rows = conn.execute(_TEXTS_OF_PG, {"ids": pg_array(ids)}).fetchall()
    else:
        rows = [row for start in range(0, len(ids), 500)
                for row in conn.execute(_TEXTS_OF, {"ids": ids[start:start + 500]}).fetchall()]
    return {cid: (text, status, fp) for cid, text, status, fp, merged in rows if merged is None}


# SQLite: a UNION of per-band lookups, one shape per bucket of sizes so that its prepared
# statement is reused (preparing 400 subqueries cost 2 ms, six times running it); the
# unused places get -1, which no band key is (they are masked to 63 bits).
_BUCKETS = (16, 64, 128, 256, 400)  # SQLite allows 500 terms in a UNION


@lru_cache(maxsize=16)
def _holders_sql(size: int, per_band: int) -> str:
    return " UNION ALL ".join(
        f"SELECT * FROM (SELECT band, claim_id FROM claim_band WHERE band = ? "
        f"LIMIT {int(per_band)}) AS b{n}" for n in range(size))


# PostgreSQL plans a UNION of hundreds of subqueries slowly (~50 ms for 400, planned
# anew each time); one lateral join over an array of the keys plans once and seeks the
# same index per key (~3 ms).
_HOLDERS_PG = sa.text(
    "SELECT k.band, b.claim_id FROM unnest(CAST(:keys AS bigint[])) AS k(band) "
    "CROSS JOIN LATERAL (SELECT claim_id FROM claim_band WHERE band = k.band "
    "LIMIT :per_band) AS b")


def _holders(session: Session, band_keys: list[int], per_band: int) -> list[tuple[int, str]]:
    """(band, claim_id) for up to `per_band` holders of each band, each read with an index
    seek that stops there: a phrase thousands of claims share costs no more than a rare one.
    fetchall(): up to 128 rows per new claim, and fetching them one at a time through the
    result was a tenth of the write path."""
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        return conn.execute(_HOLDERS_PG, {"keys": pg_array(band_keys),
                                         "per_band": per_band}).fetchall()
    rows: list[tuple[int, str]] = []
    for start in range(0, len(band_keys), _BUCKETS[-1]):
        chunk = band_keys[start:start + _BUCKETS[-1]]
        size = next(b for b in _BUCKETS if b >= len(chunk))
        rows += conn.exec_driver_sql(_holders_sql(size, per_band),
                                     (*chunk, *[-1] * (size - len(chunk)))).fetchall()
    return rows


class Match(NamedTuple):
    claim_id: str
    text: str
    status: str
    fingerprint: str
    score: float


K = TypeVar("K", bound=Hashable)


def similar_batch(
    session: Session, new: dict[K, tuple[str, str]], *, threshold: float, limit: int,
    per_band: int = 8, candidates_cap: int = 20, exclude: Sequence[str] = (),
) -> dict[K, list[Match]]:
    """Near duplicates for a batch of new claims, `{key: (claim_id, text)}`, best first.

    One band lookup and one text fetch for the whole batch; a claim earlier in the batch
    counts as a candidate for later ones (it is being created with them); `exclude`d ids
    never are. On this write
    path each band bucket is read up to 8 holders and only the 20 candidates sharing the
    most bands are scored (fetching each one's text is a random read: 22% of a mixed
    load's time at 1,000,000 claims with 50); `/similar` looks further. A crowded bucket
    is a common phrase, whose first holders are no likelier near duplicates than others.
    """
    words_of = {k: words(text) for k, (_, text) in new.items()}
    bands_of = {k: text_bands(text) for k, (_, text) in new.items()}
    all_bands = list(set().union(*bands_of.values())) if bands_of else []
    holders: dict[int, list[str]] = defaultdict(list)
    for band, claim_id in _holders(session, all_bands, per_band) if all_bands else ():
        holders[band].append(claim_id)
    earlier: dict[int, list[str]] = defaultdict(list)  # band -> new claims before this one
    candidates: dict[K, set[str]] = {}
    for key, item_bands in bands_of.items():
        shared = Counter(cid for b in item_bands for cid in (*holders[b], *earlier[b])
                         if cid not in exclude)
        candidates[key] = {cid for cid, _ in shared.most_common(candidates_cap)}
        for band in item_bands:
            earlier[band].append(new[key][0])
    known = {cid: (text, "unverified", fingerprint(text)) for cid, text in new.values()}
    wanted = list(set().union(*candidates.values()) - set(known)) if candidates else []
    if wanted:
        known.update(_texts(session, wanted))
    out: dict[K, list[Match]] = {}
    for key, ids in candidates.items():
        scored = []
        for cid in ids:
            if cid in known:
                text, status, fp = known[cid]
                score = round(jaccard(words_of[key], words(text)), 4)
                if score >= threshold:
                    scored.append(Match(cid, text, str(status), fp, score))
        if scored:
            scored.sort(key=lambda m: (-m.score, m.claim_id))
            out[key] = scored[:limit]
    return out
