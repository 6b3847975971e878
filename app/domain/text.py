"""Text normalisation shared by source lookup and claim fingerprints. No I/O."""

import hashlib
import re
import unicodedata
from functools import lru_cache

_DROPPED = re.compile(r"[.'\u2019`\u00b4]+")  # U.N. -> un, Ukraine's -> ukraines
_NON_WORD = re.compile(r"[^\w\s]+|_+")
_SPACE = re.compile(r"\s+")
_ASCII_WORD = re.compile(r"[A-Za-z0-9]")


def fold(value: str) -> str:
    """Case-, accent-, punctuation- and space-insensitive form: 'U.N. ' -> 'un'.

    Claims' near-duplicate band keys are computed from it (app/domain/similarity.py): changing
    it needs a migration that rebuilds claim_band and source_name keys."""
    if value.isascii():  # nothing to decompose (most text; the loop below is slow)
        no_marks = value
    else:
        decomposed = unicodedata.normalize("NFKD", value)
        no_marks = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    no_punct = _NON_WORD.sub(" ", _DROPPED.sub("", no_marks.casefold()))
    return _SPACE.sub(" ", no_punct).strip()


NO_WORD = "must contain at least one letter or digit"


def has_word(value: str) -> bool:
    """Whether the text has a letter or digit: what fingerprints and name keys are made of.

    Text without one ("...", "\u200b") folds to nothing, so every such claim would be an
    exact duplicate of every other, and every such name the same source."""
    # An ASCII letter or digit survives folding: most text is answered without it (bench P9
    # checks 100,000 source names a batch).
    return _ASCII_WORD.search(value) is not None or bool(fold(value))


def name_key(value: str) -> str:
    """The key under which a source name or alias is unique."""
    key = fold(value)
    return key if key else value.strip().casefold()


@lru_cache(maxsize=4096)  # a claim is fingerprinted several times on its way in
def fingerprint(text: str) -> str:
    """Exact-duplicate fingerprint of a claim: sha256 of its folded text."""
    return hashlib.sha256(fold(text).encode("utf-8")).hexdigest()
