"""Near-duplicate claims: word-set Jaccard similarity, with MinHash LSH bands as the index.

Each claim stores BANDS band keys; two claims whose word sets have Jaccard similarity J
share at least one band with probability 1 - (1 - J**ROWS)**BANDS (0.99 at J = 0.5,
0.9999 at J = 0.625), and the candidates are then scored exactly.
"""

import hashlib
import json
import random
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Sequence
from functools import lru_cache
from typing import NamedTuple, TypeVar

import sqlalchemy as sa
from sqlmodel import Session, col

from app.bulk import pg_array
from app.models import ClaimBand, SimilarClaim
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
    """The distinct band keys of a claim's text.

    A fixed function of the text (words(), fold(), the permutations): a claim's stored
    rows are found again from its text alone (`delete_bands`), so any change to it needs
    a migration that rebuilds claim_band (tests/test_similar.py pins some keys)."""
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


# The candidates of each new claim, ranked by the database: the first `per_band` holders
# of each of its bands (an index seek that stops there, so a phrase thousands of claims
# share costs no more than a rare one), counted per claim, the `cap` sharing the most
# bands (ties by id) joined to their text. One statement per batch instead of fetching
# every holder (up to 128 rows per new claim), counting them in Python and reading the
# texts in a second query. Merged claims are dropped in Python: a `duplicate_of IS NULL`
# condition led PostgreSQL to scan that column's index instead of looking ids up.
# `{claims}` ends in `WHERE true`, so that the rank condition can follow with AND. Ties
# go by id in byte order on both databases (SQLite's default; on PostgreSQL `COLLATE "C"`,
# whose sort took half the time of the database's locale: the whole query 15.6 -> 14.9 ms
# for a 48-claim batch).
_RANKED = """
shared AS (SELECT item, claim_id, count(*) AS n FROM holders WHERE {exclude}
           GROUP BY item, claim_id),
ranked AS (SELECT item, claim_id,
                  row_number() OVER (PARTITION BY item ORDER BY n DESC, claim_id {byte_order})
                  AS r
           FROM shared)
SELECT ranked.item, c.id, c.text, c.status, c.fingerprint, c.duplicate_of
FROM ranked {claims} AND ranked.r <= {cap}"""

# PostgreSQL: a lateral join over two arrays plans once (a UNION of hundreds of
# subqueries was planned anew each time, ~50 ms); each claim is looked up by id in a
# lateral subquery too, with a LIMIT that keeps the planner from flattening it into a
# hash join over a scan of all of `claim` (which it chose at 6,000 claims).
_RANKED_PG = sa.text(
    "WITH holders AS (SELECT k.item, b.claim_id "
    "FROM unnest(CAST(:keys AS bigint[]), CAST(:items AS integer[])) AS k(band, item) "
    "CROSS JOIN LATERAL (SELECT claim_id FROM claim_band WHERE band = k.band "
    "LIMIT :per_band) AS b)," + _RANKED.format(
        exclude="claim_id <> ALL(CAST(:exclude AS varchar[]))", cap=":cap",
        byte_order='COLLATE "C"',
        claims="CROSS JOIN LATERAL (SELECT id, text, status, fingerprint, duplicate_of "
               "FROM claim WHERE id = ranked.claim_id LIMIT 1) AS c WHERE true"))

# SQLite: a UNION of per-band lookups, one shape per bucket of sizes so that its prepared
# statement is reused (preparing 400 subqueries cost 2 ms, six times running it); the
# unused places get band -1, which no band key is (they are masked to 63 bits).
_BUCKETS = (16, 64, 128, 256, 400)  # SQLite allows 500 terms in a UNION


@lru_cache(maxsize=32)
def _ranked_sqlite(size: int, per_band: int, cap: int) -> str:
    holders = " UNION ALL ".join(
        f"SELECT ? AS item, claim_id FROM (SELECT claim_id FROM claim_band WHERE band = ? "
        f"LIMIT {int(per_band)})" for _ in range(size))
    return f"WITH holders AS ({holders})," + _RANKED.format(
        exclude="claim_id NOT IN (SELECT value FROM json_each(?))", cap=int(cap),
        byte_order="",
        claims="JOIN claim AS c ON c.id = ranked.claim_id WHERE true")


Candidate = tuple[str, str, str, str]  # claim id, text, status, fingerprint


def _whole_items(pairs: list[tuple[int, int]], most: int) -> Iterable[list[tuple[int, int]]]:
    """(item, band) pairs in chunks of at most `most`, an item's bands never split (they
    are counted together); an item has at most BANDS bands."""
    chunk: list[tuple[int, int]] = []
    for n, pair in enumerate(pairs):
        if len(chunk) >= most - BANDS and pair[0] != pairs[n - 1][0]:
            yield chunk
            chunk = []
        chunk.append(pair)
    if chunk:
        yield chunk


def _ranked(session: Session, bands_of: list[tuple[int, ...]], *, per_band: int, cap: int,
            exclude: Sequence[str]) -> dict[int, list[Candidate]]:
    """{position in bands_of: its stored candidates}, at most `cap` each, merged ones out."""
    conn = session.connection()
    pairs = [(item, band) for item, bands_ in enumerate(bands_of) for band in bands_]
    if not pairs:
        return {}
    if conn.dialect.name == "postgresql":
        rows = conn.execute(_RANKED_PG, {
            "keys": pg_array(band for _, band in pairs),
            "items": pg_array(item for item, _ in pairs), "per_band": per_band, "cap": cap,
            "exclude": pg_array(list(exclude))}).fetchall()
    else:
        rows, excluded = [], json.dumps(list(exclude))
        for chunk in _whole_items(pairs, _BUCKETS[-1]):
            size = next(b for b in _BUCKETS if b >= len(chunk))
            params = [value for pair in chunk for value in pair] + [-1, -1] * (size - len(chunk))
            rows += conn.exec_driver_sql(_ranked_sqlite(size, per_band, cap),
                                         (*params, excluded)).fetchall()
    found: dict[int, list[Candidate]] = defaultdict(list)
    for item, cid, text, status, fp, merged in rows:
        if merged is None:
            found[item].append((cid, text, status, fp))
    return found


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

    One statement for the whole batch (on SQLite, one per 25 claims) finds each claim's
    stored candidates with their texts (`_ranked`); a claim earlier in the batch counts
    as a candidate for later ones (it is being created with them); `exclude`d ids never
    are. On this write path each band bucket is read up to 8 holders and only the 20
    stored candidates sharing the most bands (ties by id) are scored, with up to 20 of
    the batch's own (fetching each one's text is a random read: 22% of a mixed load's
    time at 1,000,000 claims with 50); `/similar` looks further. A crowded bucket is a
    common phrase, whose first holders are no likelier near duplicates than others.
    """
    keys = list(new)
    words_of = [words(new[k][1]) for k in keys]
    bands_of = [text_bands(new[k][1]) for k in keys]
    stored = _ranked(session, bands_of, per_band=per_band, cap=candidates_cap,
                     exclude=exclude)
    earlier: dict[int, list[int]] = defaultdict(list)  # band -> batch positions before
    out: dict[K, list[Match]] = {}
    for n, key in enumerate(keys):
        shared = Counter(m for b in bands_of[n] for m in earlier[b])
        for band in bands_of[n]:
            earlier[band].append(n)
        batch = [(new[keys[m]][0], new[keys[m]][1], "unverified", fingerprint(new[keys[m]][1]))
                 for m, _ in shared.most_common(candidates_cap)]
        scored = []
        for cid, text, status, fp in (*stored.get(n, ()), *batch):
            if cid in exclude:
                continue
            score = round(jaccard(words_of[n], words(text)), 4)
            if score >= threshold:
                scored.append(Match(cid, text, str(status), fp, score))
        if scored:
            scored.sort(key=lambda m: (-m.score, m.claim_id))
            out[key] = scored[:limit]
    return out
