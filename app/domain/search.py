"""Full-text search over claim text, quotes and source names: SQLite FTS5 or PostgreSQL tsvector.

The index (`claim_search`, created by migrations only) is refreshed by `index_claims`
on every write path; events.record_claim_event calls it, so no path can forget.
User input never reaches the query syntax: SQLite gets quoted tokens, PostgreSQL
`plainto_tsquery`. A search by relevance ranks a window of the newest RANK_WINDOW
matches (`ranked_window`); `matches` (time sorts, and a filtered search over a full
window) ranks up to RANK_CAP, so common words stay fast either way.
"""

import math
import re
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from app.domain.similarity import STOPWORDS
from app.domain.text import fold
from app.fastpath.bulk import pg_array
from app.models import Attribution, Claim, Source

RANK_CAP = 2000
# A search by relevance ranks at most this many matches (see `ranked_window`).
RANK_WINDOW = 300
MAX_TERMS = 32
# SQLite: each indexed claim's FTS5 rowid (claim_search has only the text).
_DOC = sa.table("claim_search_doc", sa.column("rowid"), sa.column("claim_id"))
_WORD = re.compile(r"\w+", re.UNICODE)


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def terms(query: str) -> list[str]:
    """The words of a user query; operators, quotes and punctuation are just separators.

    Common English words are dropped, as PostgreSQL's `english` configuration does, so
    both databases answer "OR troops" alike.
    """
    words = [w for w in _WORD.findall(query.casefold()) if w not in STOPWORDS]
    return words[:MAX_TERMS]


def _fts5_query(words: Sequence[str]) -> str:
    return " ".join(f'"{w}"' for w in words)


def document(text: str, attributed: Sequence[tuple[str | None, str, Sequence[str]]]) -> str:
    """The indexed text of a claim: its text, then each (quote, source name, aliases)."""
    parts = [text]
    for quote, name, aliases in attributed:
        parts.extend([quote or "", name, *aliases])
    return "\n".join(parts)


def documents(session: Session, claim_ids: Sequence[str]) -> dict[str, str]:
    """What is indexed for each claim: its text, the quotes, and its sources' names."""
    texts = {cid: text for cid, text in session.exec(
        select(Claim.id, Claim.text).where(col(Claim.id).in_(claim_ids)))}
    attributed: dict[str, list[tuple[str | None, str, Sequence[str]]]] = defaultdict(list)
    rows = session.exec(
        select(Attribution.claim_id, Attribution.quote, Source.name, Source.aliases)
        .join(Source, Source.id == Attribution.source_id)
        .where(col(Attribution.claim_id).in_(list(texts)))
    )
    for claim_id, quote, name, aliases in rows:
        attributed[claim_id].append((quote, name, aliases or []))
    return {cid: document(text, attributed[cid]) for cid, text in texts.items()}


def index_claims(session: Session, claim_ids: Sequence[str], *, removed: bool = False) -> None:
    """Bring the search index up to date for these claims; `removed` takes them out."""
    ids = list(dict.fromkeys(claim_ids))
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        docs = {} if removed else documents(session, chunk)
        index_documents(session, docs, gone=[cid for cid in chunk if cid not in docs])


def index_documents(session: Session, docs: dict[str, str], *, gone: Sequence[str] = (),
                    fresh: bool = False) -> None:
    """Write these documents (claim id -> text) to the index; drop the `gone` claims.

    `fresh`: the claims were created in this transaction, so none is indexed yet.
    """
    if _dialect(session) == "postgresql":
        _index_pg(session, docs, list(gone))
    else:
        _index_sqlite(session, docs, list(gone), fresh=fresh)


_INDEX_PG = sa.text(
    "INSERT INTO claim_search (claim_id, document) "
    "SELECT k.id, to_tsvector('english', k.body) "
    "FROM unnest(CAST(:ids AS varchar[]), CAST(:bodies AS text[])) AS k(id, body) "
    "ON CONFLICT (claim_id) DO UPDATE SET document = excluded.document")


def _index_pg(session: Session, docs: dict[str, str], gone: list[str]) -> None:
    if docs:
        # One statement over arrays: per-row executions cost PostgreSQL ~40 us a row.
        session.execute(_INDEX_PG, {"ids": pg_array(docs), "bodies": pg_array(docs.values())})
    if gone:
        session.execute(sa.text(
            "DELETE FROM claim_search WHERE claim_id = ANY(CAST(:ids AS varchar[]))"),
            {"ids": pg_array(gone)})


def _index_sqlite(session: Session, docs: dict[str, str], gone: list[str], *,
                  fresh: bool = False) -> None:
    ids = list(docs) + gone
    stmt = sa.text("SELECT claim_id, rowid FROM claim_search_doc WHERE claim_id IN :ids") \
        .bindparams(sa.bindparam("ids", expanding=True))
    rowids = {} if fresh else dict(session.execute(stmt, {"ids": ids}).all())
    if rowids:
        session.execute(sa.text("DELETE FROM claim_search WHERE rowid = :r"),
                        [{"r": r} for r in rowids.values()])
    if gone:
        session.execute(sa.text("DELETE FROM claim_search_doc WHERE claim_id = :c"),
                        [{"c": c} for c in gone if c in rowids])
    new = [cid for cid in docs if cid not in rowids]
    if new:
        session.execute(sa.text("INSERT INTO claim_search_doc (claim_id) VALUES (:c)"),
                        [{"c": c} for c in new])
        rowids.update(session.execute(stmt, {"ids": new}).all())
    if docs:
        session.execute(sa.text("INSERT INTO claim_search (rowid, body) VALUES (:r, :b)"),
                        [{"r": rowids[cid], "b": body} for cid, body in docs.items()])


def matches(session: Session, query: str) -> sa.Subquery | None:
    """A subquery of (claim_id, score, doc_key) for the query, best first (lower score is
    better); ties go by doc_key, as in `ranked_window`.

    None when the query has no words at all (then nothing can match).
    """
    words = terms(query)
    if not words:
        return None
    if _dialect(session) == "postgresql":
        tsq = sa.func.plainto_tsquery("english", " ".join(words))
        table = sa.table("claim_search", sa.column("claim_id"), sa.column("document"))
        hit = table.c.document.op("@@")(tsq)
        common = _count_capped(session, sa.select(sa.literal(1)).select_from(table).where(hit))
        base = sa.select(table.c.claim_id.label("claim_id"),
                         (-sa.func.ts_rank_cd(table.c.document, tsq)).label("score"),
                         table.c.claim_id.label("doc_key"))
        inner = base.where(hit)
        if common:
            sample = sa.select(table.c.claim_id).where(hit).limit(RANK_CAP).subquery()
            inner = base.where(table.c.claim_id.in_(sa.select(sample.c.claim_id)))
        return inner.order_by("score").limit(RANK_CAP).subquery("m")
    fts = sa.table("claim_search", sa.column("rowid"), sa.column("rank"))
    match = sa.text("claim_search MATCH :q").bindparams(q=_fts5_query(words))
    common = _count_capped(session, sa.select(sa.literal(1)).select_from(fts).where(match))
    if common:
        # Ranking every match of a very common term costs a full sort; rank the newest
        # RANK_CAP matches instead (FTS5 reads rowids in order cheaply).
        sample = (sa.select(fts.c.rowid, fts.c.rank).where(match)
                  .order_by(fts.c.rowid.desc()).limit(RANK_CAP).subquery())
        ranked = sa.select(sample.c.rowid, sample.c.rank.label("score"))
    else:
        ranked = sa.select(fts.c.rowid, fts.c.rank.label("score")).where(match) \
            .order_by(fts.c.rank).limit(RANK_CAP)
    r = ranked.subquery()
    return (sa.select(_DOC.c.claim_id.label("claim_id"), r.c.score,
                      _DOC.c.rowid.label("doc_key"))
            .join(r, r.c.rowid == _DOC.c.rowid).subquery("m"))


def _count_capped(session: Session, query: sa.Select) -> bool:
    """True when the query has more than RANK_CAP rows (counting no further)."""
    limited = query.limit(RANK_CAP + 1).subquery()
    count = session.execute(sa.select(sa.func.count()).select_from(limited)).scalar_one()
    return count > RANK_CAP


# --- ranking a window of matches -------------------------------------------------------
# Ranking every match of a common term costs a read of every match: FTS5's bm25() reads
# every match of every term to weigh them (its IDF) whatever LIMIT the query has, and
# PostgreSQL fetches each match's row to rank it (10-600 ms for a term in 1-30% of
# 1,000,000 claims). So a search ranks a window of at most RANK_WINDOW matches: on SQLite
# the newest (FTS5 walks rowids backwards and stops), scored with BM25 in Python from the
# hits highlight() marks, a word's weight coming from its match count up to _DF_CAP; on
# PostgreSQL the newest by `seq` (migration 0006), scored by ts_rank_cd.
_K1, _B = 1.2, 0.75
_DF_CAP = 5000
_HIT = re.compile("\x02([^\x03]*)\x03")


def ranked_window(session: Session, query: str) -> dict[Any, float]:
    """{document key: score} for a window of at most RANK_WINDOW matches (lower is better).

    The key is what `document_key` selects: the claim id on PostgreSQL, the FTS5 rowid on
    SQLite (turning all 300 rowids into claim ids cost a third of the window's query).
    """
    words = terms(query)
    if not words:
        return {}
    if _dialect(session) == "postgresql":
        return {claim_id: -rank for claim_id, rank in session.connection().execute(sa.text(
            "SELECT claim_id, ts_rank_cd(document, q) FROM claim_search, "
            "plainto_tsquery('english', :q) AS q WHERE document @@ q "
            "ORDER BY seq DESC LIMIT :n"),
            {"q": " ".join(words), "n": RANK_WINDOW})}
    return _ranked_sqlite(session.connection(), words)


_CLAIM_ID = Claim.__table__.c.id  # type: ignore[attr-defined]


def document_key(session: Session) -> tuple[sa.ColumnElement[Any], sa.TableClause | None]:
    """The column `ranked_window` keys its scores by, and the table to join to `claim`
    for it (None: it is a column of `claim`)."""
    if _dialect(session) == "postgresql":
        return _CLAIM_ID, None
    return _DOC.c.rowid, _DOC


def _ranked_sqlite(conn: sa.Connection, words: Sequence[str]) -> dict[int, float]:
    rows = conn.exec_driver_sql(
        "SELECT rowid, highlight(claim_search, 0, char(2), char(3)) FROM claim_search "
        "WHERE claim_search MATCH ? ORDER BY rowid DESC LIMIT ?",
        (_fts5_query(words), RANK_WINDOW)).all()
    if not rows:
        return {}
    unique = list(dict.fromkeys(words))
    lengths = [body.count(" ") + body.count("\n") + 1 for _, body in rows]
    average = sum(lengths) / len(lengths)
    scored = {}
    if len(unique) == 1:  # one word: its weight is the same for every claim
        for (rowid, body), length in zip(rows, lengths, strict=True):
            n = body.count("\x02")
            norm = _K1 * (1 - _B + _B * length / average)
            scored[rowid] = -round(n * (_K1 + 1) / (n + norm), 6)
        return scored
    weight = _idf(conn, unique)
    word_of: dict[str, str] = {}  # a hit as written -> the query word it matched
    for (rowid, body), length in zip(rows, lengths, strict=True):
        tf: dict[str, int] = dict.fromkeys(unique, 0)
        for hit in _HIT.findall(body):
            word = word_of.get(hit)
            if word is None:
                word = word_of[hit] = _closest(fold(hit), unique)
            tf[word] += 1
        norm = _K1 * (1 - _B + _B * length / average)
        score = sum(weight[w] * n * (_K1 + 1) / (n + norm) for w, n in tf.items() if n)
        scored[rowid] = -round(score, 6)
    return scored


# A word's match count per database, as (count, when counted): a weight changes slowly,
# and counting up to _DF_CAP matches of each word was a third of a two-word search.
_DF_SECONDS, _DF_ENTRIES = 60.0, 4096
_df_counted: dict[tuple[str, str], tuple[int, float]] = {}


def _idf(conn: sa.Connection, words: Sequence[str]) -> dict[str, float]:
    total = conn.exec_driver_sql("SELECT max(rowid) FROM claim_search_doc").scalar() or 1
    now, database = time.monotonic(), str(conn.engine.url)
    out = {}
    for word in words:
        df, counted_at = _df_counted.get((database, word), (0, -_DF_SECONDS))
        if now - counted_at >= _DF_SECONDS:
            df = conn.exec_driver_sql(
                "SELECT count(*) FROM (SELECT 1 FROM claim_search WHERE claim_search MATCH ? "
                "LIMIT ?)", (_fts5_query([word]), _DF_CAP)).scalar() or 0
            if len(_df_counted) >= _DF_ENTRIES:
                _df_counted.clear()
            _df_counted[database, word] = (df, now)
        out[word] = math.log(1 + (total - df + 0.5) / (df + 0.5))
    return out


def _closest(hit: str, words: Sequence[str]) -> str:
    """The query word a highlighted hit matched (stemming may have changed its ending;
    both are compared folded, as the index compares them: case and accents off)."""
    def shared(word: str) -> int:
        n = 0
        for a, b in zip(hit, fold(word), strict=False):
            if a != b:
                break
            n += 1
        return n
    return max(words, key=shared)
