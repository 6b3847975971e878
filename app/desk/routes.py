"""The desk's pages, one module per page or capability, served from one app.

Each page calls the same domain functions as the API (app/domain/*) with the signed-in
key's name and role; forms post back to their page (app/desk/forms.py) with a CSRF token.
"""

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from app.desk import auth, claim_page, claims, imports, live, overview, sources
from app.desk.web import HERE, STATIC_PATH, STREAM_PATH

__all__ = ["STREAM_PATH", "install"]

# `claims` before `claim_page`: /claims/new is a page of its own, not a claim's id.
ROUTERS = (auth.router, claims.router, claim_page.router, sources.router, overview.router,
           imports.router, live.router)


def install(app: FastAPI) -> None:
    """Serve the desk from `app`: its pages, its live feed and its static files."""
    for router in ROUTERS:
        app.include_router(router)
    app.mount(STATIC_PATH, StaticFiles(directory=HERE / "static"), name="desk-static")
