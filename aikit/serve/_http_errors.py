"""Map service failures to HTTP answers: 413, 503 + Retry-After, 504, 422 naming the field, 500."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NoReturn

from fastapi import HTTPException
from fastapi.exceptions import RequestValidationError

from aikit.serve._batcher import OverloadedError, RequestTooLargeError
from aikit.serve._service import ItemError, RequestTimeoutError, describe_error

__all__ = ["field_error", "raise_http"]


def field_error(loc: Sequence[str | int], message: str) -> RequestValidationError:
    """A ``422`` in FastAPI's own format, naming the field at fault (``loc``)."""
    return RequestValidationError([{"loc": ("body", *loc), "msg": message, "type": "value_error"}])


def raise_http(exc: BaseException, *, inputs_field: Sequence[str | int] = ("inputs",)) -> NoReturn:
    """Re-raise a service exception as the matching HTTP error (unknown ones unchanged)."""
    if isinstance(exc, RequestTooLargeError):
        # Never 503: retrying the same request can never succeed, so the client must split it.
        raise HTTPException(413, detail=f"{exc}; split it into requests of at most {exc.limit} inputs") from exc
    if isinstance(exc, OverloadedError):
        retry = str(max(1, math.ceil(exc.retry_after_s)))
        raise HTTPException(503, detail=str(exc), headers={"Retry-After": retry}) from exc
    if isinstance(exc, RequestTimeoutError):
        raise HTTPException(504, detail=str(exc)) from exc
    if isinstance(exc, ItemError):
        if exc.client_fault:
            raise field_error([*inputs_field, exc.index], describe_error(exc.error)) from exc
        raise HTTPException(500, detail=f"the model failed on input {exc.index}: {describe_error(exc.error)}") from exc
    raise exc
