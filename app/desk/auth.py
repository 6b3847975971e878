"""Signing in with an API key (kept in an HttpOnly, SameSite=Strict cookie) and out."""

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from app.desk import security
from app.desk.web import EXPIRED, Refused, desk_router, key_of, redirect, render

router = desk_router()


def _sign_in_page(request: Request, *, errors: dict[str, str] | None = None) -> Response:
    message = EXPIRED if request.query_params.get("expired") else ""
    return render(request, "sign_in.html", message=message, errors=errors or {}, desk=None)


@router.get("/sign-in")
async def sign_in_form(request: Request) -> Response:
    """The sign-in form."""
    return _sign_in_page(request)


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    """Check the key and keep it in an HttpOnly, SameSite=Strict cookie."""
    if not security.same_origin(request):
        raise Refused()
    form = await request.form()
    secret = value.strip() if isinstance(value := form.get("api_key"), str) else ""
    if not secret:
        return _sign_in_page(request, errors={"api_key": "Enter your API key."})
    key = await run_in_threadpool(key_of, request, secret)
    if key is None:
        return _sign_in_page(request, errors={
            "api_key": "That key is unknown or revoked. Check it and try again."})
    response = redirect("/")
    security.set_key_cookie(request, response, secret)
    return response


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    """Forget the key: the cookie is cleared."""
    if not security.same_origin(request):
        raise Refused()
    response = redirect("/sign-in")
    security.clear_key_cookie(response)
    return response
