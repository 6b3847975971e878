"""The one way a desk form is handled: read what was typed, build the domain's input model,
call the domain in a write session and commit; on a problem, the page again with the message
next to its field and what was typed kept (Post/Redirect/Get on success)."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from pydantic import ValidationError
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from app.desk.web import Desk, posted, redirect
from app.errors import AppError, PreconditionFailed

Values = dict[str, str]
# The page again: (desk, what was typed, errors by form field, the conflict if any).
Again = Callable[[Desk, Values, dict[str, str], dict[str, Any] | None], Response]


@dataclass(frozen=True)
class Form:
    """A form: who may send it, its fields, how it validates, what it writes, and its page.

    `fields` maps a name in the input model's errors to the form field it is shown next to;
    `names` are the form fields kept as typed. `build` raises pydantic's ValidationError;
    `write` calls the domain in the open write session (it never commits) and returns where
    to go next."""

    role: str
    names: tuple[str, ...]
    fields: Mapping[str, str]
    build: Callable[[Values], Any]
    write: Callable[[Session, Any, Desk, Values], str]
    again: Again


def text(values: Values, name: str) -> str:
    return values.get(name, "").strip()


def lines(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines() if line.strip()]


def words(value: str) -> list[str]:
    return [w.strip() for w in value.replace(",", " ").split() if w.strip()]


def field_errors(exc: ValidationError, fields: Mapping[str, str]) -> dict[str, str]:
    """pydantic's errors by form field (`fields`: model field -> form field)."""
    out: dict[str, str] = {}
    for error in exc.errors():
        loc = [str(p) for p in error["loc"]]
        name = next((fields[p] for p in loc if p in fields), "_form")
        message = error["msg"].removeprefix("Value error, ")
        out.setdefault(name, message)
    return out


def invalid(model: str, field: str, message: str) -> ValidationError:
    """A ValidationError of our own (a rule the model cannot say), shown next to `field`."""
    return ValidationError.from_exception_data(model, [{
        "type": "value_error", "loc": (field,), "input": "",
        "ctx": {"error": ValueError(message)}}])


async def submit(request: Request, form: Form) -> Response:
    """Handle one post of `form` (see the module's docstring)."""
    desk, data = await posted(request, form.role)
    values = {name: value if isinstance(value := data.get(name), str) else ""
              for name in form.names}
    try:
        model = form.build(values)
    except ValidationError as exc:
        return await run_in_threadpool(form.again, desk, values,
                                       field_errors(exc, form.fields), None)

    def write() -> Response:
        # The page is rendered again after the write session is closed (and its write
        # turn given back), never inside it.
        with desk.db.write_session() as session:
            try:
                url = form.write(session, model, desk, values)
            except PreconditionFailed:
                problem: tuple[dict[str, str], dict[str, Any] | None] = (
                    {}, {"values": values})
            except AppError as exc:
                if exc.status == 503:
                    raise
                problem = ({"_form": exc.detail}, None)
            else:
                session.commit()
                return redirect(url)
        return form.again(desk, values, *problem)

    return await run_in_threadpool(write)
