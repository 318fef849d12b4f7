"""What the ``aikit`` command prints besides its results: aikit's own log lines and warnings.

The command owns its process, so it decides how log records and warnings are shown; the library
(``import aikit``) never does: it only logs under the ``aikit`` logger and never configures the root
logger. Verbosity levels:

- ``-q``: errors only.
- default: aikit's warnings (``aikit`` logger at WARNING, every ``AikitWarning``); third-party
  libraries' import-time chatter is kept out (see ``_THIRD_PARTY_NOISE``).
- ``-v``: also aikit's INFO lines (what it loads, converts, caches).
- ``-vv``: DEBUG, and everything third-party libraries log or warn, unfiltered.
"""

from __future__ import annotations

import logging
import sys
import warnings
from typing import Any, TextIO

from aikit.errors import AikitWarning

__all__ = ["configure_output"]

# Loggers whose WARNING records are about the environment, not about the user's model, printed on
# every start by libraries transformers imports on its own (we cannot defer those imports):
# - torchao logs "Failed to load ..._C_mxfp8.so" / "_C_cutlass_90a.so" on CPU-only torch builds;
# - torch's pytree logs that torchao registers Enum subclasses the deprecated way.
# Errors from them still show; -vv shows everything.
_THIRD_PARTY_NOISE = ("torchao", "torch.utils._pytree")

_HANDLER_NAME = "aikit-cli"


def _level(verbosity: int) -> int:
    if verbosity < 0:
        return logging.ERROR
    return {0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)


def configure_output(verbosity: int, stream: TextIO | None = None) -> None:
    """Route aikit's log records to ``stream`` (stderr) at the level ``verbosity`` asks for.

    Idempotent: calling it again replaces the handler it installed before.
    """
    logger = logging.getLogger("aikit")
    for handler in [h for h in logger.handlers if h.get_name() == _HANDLER_NAME]:
        logger.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(logging.Formatter("aikit: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(_level(verbosity))
    logger.propagate = False  # the command prints aikit's lines once, whatever the root logger holds
    for name in _THIRD_PARTY_NOISE:
        logging.getLogger(name).setLevel(logging.NOTSET if verbosity >= 2 else logging.ERROR)
    warnings.showwarning = _warning_printer(verbosity, stream)


def _warning_printer(verbosity: int, stream: TextIO | None) -> Any:
    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        # Which warnings are *raised* stays with the warnings filters; this only decides what the
        # command shows: aikit's own (truncation, slow compressed models, ...) unless -q, others at -vv.
        ours = issubclass(category, AikitWarning)
        if (ours and verbosity >= 0) or verbosity >= 2:
            target = file or stream or sys.stderr
            text = (
                f"aikit: warning: {message}\n"
                if ours
                else warnings.formatwarning(message, category, filename, lineno, line)
            )
            target.write(text)

    return show
