"""A real predict middleware that holds each call for ``AIKIT_TEST_PREDICT_DELAY`` seconds.

Loaded into ``aikit serve`` subprocesses with ``AIKIT_LOAD_PLUGINS``, it keeps requests in flight
long enough to be observed on any machine, however fast the tiny model answers.
"""

from __future__ import annotations

import os
import time
from collections.abc import Generator
from typing import Any

from aikit import PredictCall, hookimpl


@hookimpl(wrapper=True)
def aikit_predict(call: PredictCall) -> Generator[None, list[Any], list[Any]]:
    time.sleep(float(os.environ.get("AIKIT_TEST_PREDICT_DELAY", "0")))
    results = yield
    return results
