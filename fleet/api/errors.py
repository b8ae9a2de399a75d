"""Map the packages' errors to 4xx JSON answers; nothing a client sends gives a 500."""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from dispatch.errors import DispatchInputError
from fleet.errors import FleetInputError, StoreError
from forecasting.errors import ForecastInputError
from telemetry.errors import TelemetryInputError

if TYPE_CHECKING:
    from fastapi import FastAPI, Request

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """An error the API answers with ``status_code`` and a ``detail`` message."""

    status_code = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class AuthError(ApiError):
    """Missing, malformed, unknown or revoked API key (401)."""

    status_code = 401


class ForbiddenError(ApiError):
    """The key's role may not do this (403)."""

    status_code = 403


class NotFoundError(ApiError):
    """The named object does not exist (404)."""

    status_code = 404


class ConflictError(ApiError):
    """The request conflicts with stored state (409)."""

    status_code = 409


class InputError(ApiError):
    """A request that passed the schema but is still invalid (422, naming the field)."""

    status_code = 422

    def __init__(self, detail: str, loc: tuple[str | int, ...] = ("body",)) -> None:
        super().__init__(detail)
        self.loc = loc


INPUT_ERRORS: tuple[type[Exception], ...] = (
    FleetInputError,
    DispatchInputError,
    ForecastInputError,
    TelemetryInputError,
)


def _json(
    status: int, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": detail}, headers=headers)


def _validation_body(loc: tuple[str | int, ...], msg: str) -> dict[str, object]:
    return {"detail": [{"loc": list(loc), "msg": msg, "type": "value_error"}]}


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    if isinstance(exc, InputError):
        return JSONResponse(
            status_code=422, content=_validation_body(exc.loc, exc.detail)
        )
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, AuthError) else None
    return _json(exc.status_code, exc.detail, headers)


async def _input_error(_request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(status_code=422, content=_validation_body(("body",), str(exc)))


MAX_ECHO_CHARS = 200
"""Longest input echoed back in a validation error [characters]."""


def _json_safe(value: Any) -> Any:
    """Return ``value`` with what JSON cannot hold (NaN, ±inf, long text) replaced."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return value if len(value) <= MAX_ECHO_CHARS else value[:MAX_ECHO_CHARS] + "…"
    if isinstance(value, bytes):
        return _json_safe(value.decode("utf-8", "replace"))
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        if len(value) > 20:
            return f"<{len(value)} items>"
        return [_json_safe(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return _json_safe(str(value))


async def _request_validation(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for error in exc.errors():
        item = {
            "loc": [p if isinstance(p, int) else str(p) for p in error.get("loc", ())],
            "msg": _json_safe(str(error.get("msg", ""))),
            "type": str(error.get("type", "value_error")),
        }
        if "input" in error:
            item["input"] = _json_safe(error["input"])
        if error.get("ctx"):
            item["ctx"] = _json_safe(error["ctx"])
        errors.append(item)
    return JSONResponse(status_code=422, content={"detail": errors})


async def _data_error(request: Request, exc: Exception) -> JSONResponse:
    # a value the schema let through but the store refuses (a bound both stores
    # should share was missed): still the client's input, never a 500
    logger.warning("store refused a value on %s: %s", request.url.path, exc)
    return JSONResponse(
        status_code=422,
        content=_validation_body(
            ("body",), f"a value is out of range for the store: {type(exc).__name__}"
        ),
    )


async def _store_error(request: Request, exc: Exception) -> JSONResponse:
    logger.warning("store unavailable on %s: %s", request.url.path, exc)
    return _json(503, f"store unavailable: {type(exc).__name__}")


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unexpected error on %s %s", request.method, request.url.path)
    return _json(500, "internal error; it has been logged")


def install_error_handlers(app: FastAPI) -> None:
    """Register the exception handlers on ``app``."""
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(ApiError, _api_error)
    for cls in INPUT_ERRORS:
        app.add_exception_handler(cls, _input_error)
    app.add_exception_handler(sa.exc.DataError, _data_error)
    app.add_exception_handler(StoreError, _store_error)
    app.add_exception_handler(sa.exc.OperationalError, _store_error)
    app.add_exception_handler(sa.exc.InterfaceError, _store_error)
    app.add_exception_handler(Exception, _unexpected)


class UnavailableError(ApiError):
    """A part the answer needs is not available (503)."""

    status_code = 503
