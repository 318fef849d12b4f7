"""Errors in OpenAI's shape on the OpenAI-compatible routes.

OpenAI clients read ``{"error": {"message", "type", "param", "code"}}``; the ``openai`` package
raises its typed exceptions (``BadRequestError``, ``NotFoundError``, ...) from the status and
shows ``message``. The routes under ``OPENAI_PATHS`` answer every error that way, whoever raised
it: the route itself, request validation (``400``, where FastAPI would say ``422``), the service
(``413``, ``503`` with ``Retry-After``, ``504``, ``500``) or ``ServiceMiddleware`` (``401``,
``413`` and ``408`` before the body is read). The other routes keep FastAPI's ``{"detail": ...}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException

__all__ = ["OPENAI_PATHS", "OpenAIError", "error_body", "install_error_handlers", "is_openai_path"]

OPENAI_PATHS = ("/v1/embeddings", "/v1/chat/completions", "/v1/completions", "/v1/models")

# OpenAI's error type and code for each status aikit answers with.
_KINDS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "not_found"),
    408: ("invalid_request_error", "request_timeout"),
    413: ("invalid_request_error", "request_too_large"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
    503: ("server_error", "overloaded"),
    504: ("server_error", "timeout"),
}


class OpenAIError(HTTPException):
    """An HTTP error with OpenAI's ``type``, ``param`` and ``code`` (defaults from the status)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status, message, headers=headers)
        self.param = param
        self.code = code


def is_openai_path(path: str) -> bool:
    """Whether ``path`` is one of the OpenAI-compatible routes (``/v1/models/{id}`` included)."""
    return any(path == p or path.startswith(p + "/") for p in OPENAI_PATHS)


def error_body(status: int, message: str, *, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """``{"error": {...}}`` for ``status``: ``type`` from the status (``server_error`` for 5xx)."""
    kind, default_code = _KINDS.get(status, ("server_error" if status >= 500 else "invalid_request_error", None))
    return {"error": {"message": message, "type": kind, "param": param, "code": code or default_code}}


def install_error_handlers(app: FastAPI) -> None:
    """Answer errors on the OpenAI routes in OpenAI's shape, and elsewhere as FastAPI does."""

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if not is_openai_path(request.url.path):
            return await http_exception_handler(request, exc)
        param = exc.param if isinstance(exc, OpenAIError) else None
        code = exc.code if isinstance(exc, OpenAIError) else None
        body = error_body(exc.status_code, str(exc.detail), param=param, code=code)
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    async def on_invalid_request(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        if not is_openai_path(request.url.path):
            return await request_validation_exception_handler(request, exc)
        errors = list(exc.errors())
        message = "; ".join(_describe(e) for e in errors[:5]) or "invalid request"
        param = _param(errors[0].get("loc", ())) if errors else None
        return JSONResponse(error_body(400, message, param=param), status_code=400)

    async def on_crash(request: Request, exc: Exception) -> Response:
        # Starlette still logs the exception and re-raises it after this answer is sent.
        if not is_openai_path(request.url.path):
            return PlainTextResponse("Internal Server Error", status_code=500)  # Starlette's own answer
        return JSONResponse(error_body(500, f"internal error: {type(exc).__name__}"), status_code=500)

    app.add_exception_handler(HTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_invalid_request)
    app.add_exception_handler(Exception, on_crash)


_UNION_TAGS = frozenset({"str", "int", "float", "bool", "none", "dict", "list"})


def _param(loc: Sequence[Any]) -> str | None:
    """A pydantic location as OpenAI names parameters: ``messages[0].content``."""
    parts = [p for p in loc if p != "body"]
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not isinstance(part, str) or part in _UNION_TAGS or "[" in part or part[:1].isupper():
            continue  # pydantic's names for union members (``str``, ``list[int]``, ``TextPart``), not fields
        else:
            out += f".{part}" if out else part
    return out or None


def _describe(error: dict[str, Any]) -> str:
    param = _param(error.get("loc", ()))
    if error.get("type") == "extra_forbidden":
        return f"unrecognized request argument supplied: {param}"
    if error.get("type") == "json_invalid":
        return f"the body is not valid JSON: {error.get('msg', '')}"
    return f"{param}: {error.get('msg', 'invalid')}" if param else str(error.get("msg", "invalid"))
