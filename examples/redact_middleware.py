"""Predict middleware: mask e-mail addresses and phone numbers before a model sees them.

    python examples/redact_middleware.py                          # sample texts
    python examples/redact_middleware.py "mail me: ann@example.org"

Two middlewares run here. ``aikit-redact`` (``examples/plugins/aikit-redact``) is a complete
plugin package; once ``pip install``-ed it is loaded through its entry point in every process.
When it is not installed this script registers the module by hand, which is also how you try a
plugin before packaging it. ``ShowInputs`` is the smallest possible middleware: it prints what
reaches the model.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import aikit
from aikit.defaults import default_model_path
from aikit.plugins.host import get_host

SAMPLES = [
    "Please reset the password for jane.doe@example.com",
    "Call me back on +44 20 7946 0958 after five",
    "The meeting moved to 2024-05-01, room 42",
]


# --8<-- [start:show-inputs]
class ShowInputs:
    """Innermost middleware (``trylast``): prints the inputs exactly as the model receives them."""

    @aikit.hookimpl(wrapper=True, trylast=True)
    def aikit_predict(self, call: aikit.PredictCall) -> Generator[None, list[Any], list[Any]]:
        for item in call.inputs:
            print(f"  model sees: {item!r}")
        results = yield
        return results


# --8<-- [end:show-inputs]


def load_redact_plugin() -> None:
    """Use the installed aikit-redact plugin, or register it from this repository's copy."""
    host = get_host()
    if "redact" in host.plugins and host.plugins["redact"].error is None:
        print("aikit-redact is installed: loaded through its entry point")
        return
    # --8<-- [start:register-by-hand]
    sys.path.insert(0, str(Path(__file__).parent / "plugins" / "aikit-redact" / "src"))
    import aikit_redact

    get_host().add_plugin(aikit_redact, name="redact")
    # --8<-- [end:register-by-hand]
    print("aikit-redact is not installed: registered from examples/plugins/aikit-redact/src")


def main(argv: Sequence[str] | None = None, *, model: aikit.Model | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("texts", nargs="*", help="texts to embed (default: three samples)")
    args = parser.parse_args(argv)
    texts: list[str] = args.texts or SAMPLES

    load_redact_plugin()
    show = ShowInputs()
    get_host().add_plugin(show, name="show-inputs")
    try:
        model = model or aikit.Model.load(default_model_path("minilm"), task="feature-extraction")
        vectors = model.embed(texts)
    finally:
        get_host().remove_plugin("show-inputs")
    # The proof that masking happened before the model: the embedding of the original text equals
    # the embedding of the text with the placeholders typed in by hand.
    import aikit_redact

    by_hand = model.embed([aikit_redact.redact(t) for t in texts])
    same = [bool(np.allclose(a, b, atol=1e-6)) for a, b in zip(vectors, by_hand, strict=True)]
    print(f"embeddings identical to those of the masked texts: {sum(same)}/{len(texts)}")
    return 0 if all(same) else 1


if __name__ == "__main__":
    sys.exit(main())
