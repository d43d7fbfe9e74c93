"""Errors as RFC 9457 problem details (``application/problem+json``), naming the bad field."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException

from hotline.acd.engine import ACDError
from hotline.server.live import CenterUnavailable

PROBLEM = "application/problem+json"


class ApiError(Exception):
    def __init__(self, status: int, title: str, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.extra = extra


def invalid(field: str, message: str) -> ApiError:
    """422 naming the field (``body.queue``, ``query.to``, ...)."""
    return invalid_fields([{"field": field, "message": message}])


def invalid_fields(errors: list[dict[str, str]]) -> ApiError:
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return ApiError(422, "Invalid request", detail, errors=errors)


def field_errors(errors: Any, prefix: tuple[str, ...] = ()) -> list[dict[str, str]]:
    """Pydantic's errors as ``{field, message}`` with dotted field paths."""
    return [
        {"field": _field((*prefix, *e.get("loc", ()))), "message": e.get("msg", "invalid")}
        for e in errors
    ]


def not_found(what: str) -> ApiError:
    return ApiError(404, "Not Found", f"{what} not found")


def forbidden(detail: str = "your role does not allow this") -> ApiError:
    return ApiError(403, "Forbidden", detail)


def problem(
    status: int,
    title: str,
    detail: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in loc)


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, err: ApiError) -> JSONResponse:
        headers = err.extra.pop("headers", None)
        return problem(err.status, err.title, err.detail, headers=headers, **err.extra)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        return await _api_error(request, invalid_fields(field_errors(err.errors())))

    @app.exception_handler(HTTPException)
    async def _http(_: Request, err: HTTPException) -> JSONResponse:
        return problem(err.status_code, str(err.detail), headers=getattr(err, "headers", None))

    @app.exception_handler(ACDError)
    async def _acd(_: Request, err: ACDError) -> JSONResponse:
        return problem(409, "Conflict", str(err))

    @app.exception_handler(CenterUnavailable)
    async def _unavailable(_: Request, err: CenterUnavailable) -> JSONResponse:
        return problem(503, "Service Unavailable", str(err), headers={"Retry-After": "5"})

    @app.exception_handler(IntegrityError)
    async def _integrity(_: Request, err: IntegrityError) -> JSONResponse:
        return problem(409, "Conflict", "a record with this identifier already exists")
