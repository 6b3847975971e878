"""The desk's sign-in cookie, its CSRF tokens, the same-origin check and security headers.

The cookie holds the API key itself, HttpOnly (page scripts cannot read it) and
SameSite=Strict: every request checks it as the API checks a bearer key (hash, lookup,
revocation), so a forged or revoked cookie is just an unknown key and nothing else needs
signing or storing server-side, whichever instance answers.
"""

import hashlib
import hmac

from starlette.requests import Request
from starlette.responses import Response

COOKIE = "claimledger_desk"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"

# Scripts and styles only from this server (no inline script, no inline style attribute);
# no framing; forms post only here.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def csrf_token(secret: str) -> str:
    """The token every desk form carries: derived from the signed-in key, so a page on
    another site cannot know it, and nothing has to be stored to check it."""
    return hmac.new(secret.encode(), b"claimledger-desk-csrf", hashlib.sha256).hexdigest()


def csrf_ok(secret: str, sent: str | None) -> bool:
    return bool(sent) and hmac.compare_digest(csrf_token(secret), sent or "")


def same_origin(request: Request) -> bool:
    """False for a request a browser says came from another site (Origin, Sec-Fetch-Site)."""
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True  # not a browser's cross-site post (browsers send Origin on every POST)
    host = request.headers.get("host", "")
    return origin in (f"http://{host}", f"https://{host}")


def set_key_cookie(request: Request, response: Response, secret: str) -> None:
    response.set_cookie(COOKIE, secret, httponly=True, samesite="strict", path="/",
                        secure=request.url.scheme == "https")


def clear_key_cookie(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
