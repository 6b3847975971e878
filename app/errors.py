"""The domain error hierarchy: what went wrong, as the API will tell it (no FastAPI here;
app/api/problems.py renders these as problem+json). The writer process and the CLI
raise and read them without loading the web framework."""

from typing import Any

from sqlalchemy.exc import DataError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

PROBLEM_JSON = "application/problem+json"


class AppError(Exception):
    status = 500
    title = "Internal Server Error"

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(detail)
        self.detail = detail
        self.headers = headers
        self.extra = extra


class BadRequest(AppError):
    status, title = 400, "Bad Request"


class Unauthorized(AppError):
    status, title = 401, "Unauthorized"


class Forbidden(AppError):
    status, title = 403, "Forbidden"


class NotFound(AppError):
    status, title = 404, "Not Found"


class Conflict(AppError):
    status, title = 409, "Conflict"


class Gone(AppError):
    status, title = 410, "Gone"


class PreconditionFailed(AppError):
    status, title = 412, "Precondition Failed"


class Unprocessable(AppError):
    status, title = 422, "Unprocessable Content"


class PreconditionRequired(AppError):
    status, title = 428, "Precondition Required"


class TooManyRequests(AppError):
    status, title = 429, "Too Many Requests"


class Unavailable(AppError):
    status, title = 503, "Service Unavailable"


def database_problem(exc: BaseException) -> AppError | None:
    """What a database error means to the client, wherever it is met (the handlers in
    app/api/problems.py, the writer process); None for any other exception."""
    if isinstance(exc, PoolTimeout):
        return Unavailable("the database is busy; retry shortly", headers={"Retry-After": "1"})
    if isinstance(exc, DataError):
        # A value the database cannot hold or compare, such as a NUL byte in a path or
        # query parameter (PostgreSQL text cannot contain one): the request's fault.
        return BadRequest("a value in the request cannot be stored or searched for (for "
                          "example, it contains a NUL byte)")
    if isinstance(exc, OperationalError):
        return Unavailable("the database is unavailable or busy; retry",
                           headers={"Retry-After": "1"})
    return None


def problem_dict(error: AppError) -> dict[str, Any]:
    """The problem object of a domain error, for per-item results in a batch."""
    return {"type": "about:blank", "title": error.title, "status": error.status,
            "detail": error.detail, **error.extra}
