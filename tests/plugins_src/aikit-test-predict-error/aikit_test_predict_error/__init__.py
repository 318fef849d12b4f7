"""Loads and registers fine; its predict middleware raises on inputs containing "explode"."""

from collections.abc import Generator
from typing import Any

from aikit import PredictCall, hookimpl


@hookimpl(wrapper=True)
def aikit_predict(call: PredictCall) -> Generator[None, list[Any], list[Any]]:
    if any(isinstance(x, str) and "explode" in x for x in call.inputs):
        raise RuntimeError("aikit_test_predict_error is broken on purpose (raised during predict)")
    results = yield
    return results
