"""Near-duplicate claims: word-set Jaccard similarity, with MinHash LSH bands as the index.

Each claim stores BANDS band keys; two claims whose word sets have Jaccard similarity J
share at least one band with probability 1 - (1 - J**ROWS)**BANDS (0.94 at J = 0.5,
0.993 at J = 0.625), and the candidates are then scored exactly. Ten bands, not the 16
there were: the rows were a large share of a ledger's bytes (bench P11), and pairs of
generated claims (bench/corpus.py) with J from 0.5 to 0.55 still share a band nine times
in ten and more (tests/test_similar.py; by band count in bench/RESULTS.md, "P11").
"""

import hashlib
import json
import random
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Sequence
from functools import lru_cache
from itertools import chain
from typing import NamedTuple, TypeVar

import sqlalchemy as sa
from sqlmodel import Session, col

from app.domain.text import fingerprint, fold
from app.fastpath.bulk import pg_array
from app.models import ClaimBand, SimilarClaim

BANDS, ROWS = 10, 2
_PRIME = (1 << 61) - 1
_rng = random.Random(20221207)  # fixed: stored band keys must not change between runs
# 16 bands' worth, the first BANDS used: migration 0016b_narrow_bands computes the keys
# stored before it from all of them.
_ALL_PERMS = [(_rng.randrange(1, _PRIME), _rng.randrange(0, _PRIME)) for _ in range(16 * ROWS)]
_PERMS = _ALL_PERMS[:BANDS * ROWS]
# 31 bits: a 4-byte integer on SQLite and in PostgreSQL's `integer` (8 bytes less a row and
# its index entry than `bigint`), where 63 bits took 8. Keys of unrelated bands collide
# once in 2**31: at 10,000,000 stored keys a bucket holds a stranger once in 200 lookups,
# and a candidate is scored exactly anyway.
_MASK = (1 << 31) - 1

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


# Words recur, and this was most of a claim's MinHash (bench/RESULTS.md, "Permutation
# cache"; its memory counts in bench P6).
@lru_cache(maxsize=8192)
def _permuted(word: str) -> tuple[int, ...]:
    """The word's hash under each of the BANDS * ROWS permutations."""
    h = _token_hash(word)
    return tuple((a * h + b) % _PRIME for a, b in _PERMS)


def bands(word_set: Iterable[str], *, count: int = BANDS, mask: int = _MASK) -> list[int]:
    """The claim's band keys (none for a claim without comparable words). `count` and
    `mask`: those of an earlier scheme (16 bands of 63 bits before migration 0016b)."""
    if count * ROWS <= len(_PERMS):
        permuted = [_permuted(w) for w in word_set]
    else:  # an earlier scheme's (a migration): not worth the cache
        permuted = [tuple((a * h + b) % _PRIME for a, b in _ALL_PERMS)
                    for h in map(_token_hash, word_set)]
    if not permuted:
        return []
    mins = list(map(min, zip(*permuted, strict=True)))
    return [
        ((mins[i * ROWS] * 0x9E3779B97F4A7C15 + mins[i * ROWS + 1]) * 31 + i) & mask
        for i in range(count)
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


# PostgreSQL: one statement over two arrays. As an executemany, each of a claim's band rows
# was an execution of its own (bench/RESULTS.md, "Band rows in one statement").
_INSERT_BANDS_PG = sa.text(
    "INSERT INTO claim_band (band, claim_id) "
    "SELECT * FROM unnest(CAST(:bands AS integer[]), CAST(:ids AS varchar[]))")


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


# The candidates of each new claim: the first `per_band` holders of each of its bands in
# id order (an index seek that stops there, so a phrase thousands of claims share costs no
# more than a rare one), counted per claim, the `cap` sharing the most bands (ties by id,
# in byte order), with their texts. Two statements a batch: the holders of every distinct
# band (claims of one batch share many of their bands each), then the texts
# of the chosen candidates, each claim read once however many items it is a candidate of;
# the counting and ranking is Python's: ranked in SQL with a window function over every
# (item, holder) pair, joined pair by pair to the texts, the same took several times longer
# (bench/RESULTS.md, "Candidates ranked in Python"). Merged claims are dropped after the cut: a
# `duplicate_of IS NULL` condition led PostgreSQL to scan that column's index instead of
# looking ids up. (PostgreSQL's first `per_band` are in id order too: without ORDER BY, a
# small table's were any. That order is the database's collation, byte order only for ids
# such as new_id() makes, `clm_` and lowercase hex; `COLLATE "C"` there would sort instead
# of following the index.)
_HOLDERS = {
    "sqlite": sa.text(
        "SELECT k.value, (SELECT group_concat(claim_id) FROM (SELECT claim_id "
        "FROM claim_band WHERE band = k.value LIMIT :per_band)) FROM json_each(:bands) AS k"),
    "postgresql": sa.text(
        "SELECT k.band, h.ids FROM unnest(CAST(:bands AS integer[])) AS k(band) "
        "CROSS JOIN LATERAL (SELECT array_agg(claim_id) AS ids FROM (SELECT claim_id "
        "FROM claim_band WHERE band = k.band ORDER BY claim_id LIMIT :per_band) AS f) AS h"),
}
_CANDIDATES = {
    "sqlite": sa.text("SELECT id, text, status, fingerprint, duplicate_of FROM claim "
                      "WHERE id IN (SELECT value FROM json_each(:ids))"),
    # One lookup by id each, in a lateral subquery whose LIMIT keeps the planner from
    # flattening it: as `id = ANY(:ids)` on a table not analyzed yet, PostgreSQL scanned
    # every claim comparing each with every id (bench/RESULTS.md, "Candidates by lateral
    # lookup").
    "postgresql": sa.text(
        "SELECT c.id, c.text, c.status, c.fingerprint, c.duplicate_of "
        "FROM unnest(CAST(:ids AS varchar[])) AS k(id) CROSS JOIN LATERAL (SELECT id, text, "
        "status, fingerprint, duplicate_of FROM claim WHERE id = k.id LIMIT 1) AS c"),
}

Candidate = tuple[str, str, str, str]  # claim id, text, status, fingerprint


def _ranked(session: Session, bands_of: list[tuple[int, ...]], *, per_band: int, cap: int,
            exclude: Sequence[str]) -> dict[int, list[Candidate]]:
    """{position in bands_of: its stored candidates}, at most `cap` each, merged ones out."""
    conn = session.connection()
    dialect = conn.dialect.name
    pack = pg_array if dialect == "postgresql" else (lambda values: json.dumps(list(values)))
    wanted = {band for bands_ in bands_of for band in bands_}
    if not wanted:
        return {}
    holders: dict[int, list[str]] = {}
    for band, ids in conn.execute(_HOLDERS[dialect], {"bands": pack(wanted),
                                                      "per_band": per_band}).all():
        if ids:  # SQLite: ids joined by commas (none in new_id()'s); PostgreSQL: an array
            holders[band] = ids.split(",") if isinstance(ids, str) else ids
    excluded = set(exclude)
    chosen: dict[int, list[str]] = {}
    for item, bands_ in enumerate(bands_of):
        shared = Counter(chain.from_iterable(holders.get(band, ()) for band in bands_))
        for claim_id in excluded & shared.keys():
            del shared[claim_id]
        if shared:
            # Most shared bands first, ties by id: two sorts without a Python key function
            # (a stable sort keeps the id order among equal counts, reversed or not).
            chosen[item] = sorted(sorted(shared), key=shared.__getitem__, reverse=True)[:cap]
    ids = {claim_id for best in chosen.values() for claim_id in best}
    rows = {row[0]: row for row in conn.execute(
        _CANDIDATES[dialect], {"ids": pack(ids)}).all()} if ids else {}
    found: dict[int, list[Candidate]] = defaultdict(list)
    for item, best in chosen.items():
        for claim_id in best:
            row = rows.get(claim_id)
            if row is not None and row[4] is None:  # merged ones out
                found[item].append((row[0], row[1], row[2], row[3]))
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

    Two statements for the whole batch find each claim's stored candidates with their
    texts (`_ranked`); a claim earlier in the batch counts as a candidate for later ones
    (it is being created with them); `exclude`d ids never are. On this write path each
    band bucket is read up to 8 holders and only the 20 stored candidates sharing the
    most bands (ties by id) are scored, with up to 20 of the batch's own (fetching each
    one's text is a random read: bench P6; bench/RESULTS.md, "Candidates scored");
    `/similar` looks further. A crowded bucket is a common phrase, whose first holders are
    no likelier near duplicates than others.
    """
    keys = list(new)
    words_of = [words(new[k][1]) for k in keys]
    bands_of = [text_bands(new[k][1]) for k in keys]
    stored = _ranked(session, bands_of, per_band=per_band, cap=candidates_cap,
                     exclude=exclude)
    excluded = set(exclude)
    earlier: dict[int, list[int]] = defaultdict(list)  # band -> batch positions before
    out: dict[K, list[Match]] = {}
    for n, key in enumerate(keys):
        shared = Counter(chain.from_iterable(earlier[b] for b in bands_of[n]))
        for band in bands_of[n]:
            earlier[band].append(n)
        batch = [(new[keys[m]][0], new[keys[m]][1], "unverified", fingerprint(new[keys[m]][1]))
                 for m, _ in shared.most_common(candidates_cap)]
        scored = []
        for cid, text, status, fp in (*stored.get(n, ()), *batch):
            if cid in excluded:
                continue
            score = round(jaccard(words_of[n], words(text)), 4)
            if score >= threshold:
                scored.append(Match(cid, text, str(status), fp, score))
        if scored:
            scored.sort(key=lambda m: (-m.score, m.claim_id))
            out[key] = scored[:limit]
    return out
