"""Imports fine, registers one task, then fails while registering (the task must be rolled back)."""

from collections.abc import Callable
from typing import Any

import aikit
from aikit import hookimpl


class HalfTask(aikit.Task):
    name = "half-registered-task"

    def preprocess(self, items: Any, *, max_length: int | None) -> list[aikit.Example]:
        raise NotImplementedError

    def postprocess(self, outputs: Any, examples: Any, options: Any) -> list[Any]:
        raise NotImplementedError


@hookimpl
def aikit_register_tasks(register: Callable[[type[aikit.Task]], None]) -> None:
    register(HalfTask)
    raise ValueError("aikit_test_register_error is broken on purpose (raised while registering)")
