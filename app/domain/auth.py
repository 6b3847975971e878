"""API keys: generation, hashing and role ranking. No FastAPI here."""

import hashlib
import secrets

from app.models import Role

_RANK = {Role.reader: 0, Role.ingester: 1, Role.checker: 2, Role.admin: 3}
KEY_PREFIX = "clk_"


def generate_secret() -> str:
    """A random key, shown once: `clk_` + 43 url-safe characters (256 bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    # Keys carry 256 random bits, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def display_prefix(secret: str) -> str:
    return secret[: len(KEY_PREFIX) + 6]


def role_allows(role: Role, needed: Role) -> bool:
    return _RANK[Role(role)] >= _RANK[needed]
