"""Train a plain PyTorch CNN on scikit-learn's digits, then compress, evaluate and save it with aikit.

    python examples/digits_cnn.py                      # about a minute of training
    python examples/digits_cnn.py --seconds 3 --out /tmp/digits   # quick run (what the tests do)

Nothing is downloaded: ``sklearn.datasets.load_digits`` ships 1,797 8x8 grey images with the
library. The network is an ordinary ``torch.nn.Module``; ``aikit.Model.from_module`` wraps it so
it gets the same ``predict``, ``compress`` and ``save`` as any Hugging Face model.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from typing_extensions import override

import aikit


# --8<-- [start:network]
class DigitsCNN(torch.nn.Module):
    """Two conv layers and a two-layer head for 1x8x8 images, 10 classes."""

    def __init__(self) -> None:
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(1, 16, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.Conv2d(16, 32, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),
        )
        self.head = torch.nn.Sequential(
            torch.nn.Flatten(), torch.nn.Linear(32 * 4 * 4, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10)
        )

    @override
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # type: ignore[no-any-return]


# --8<-- [end:network]


def load_data(seed: int = 0) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any], NDArray[Any]]:
    """The digits images (values 0-16) split 80/20 into train and test, stratified."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        digits.images, digits.target, test_size=0.2, random_state=seed, stratify=digits.target
    )
    return x_train, x_test, y_train, y_test


def train(net: DigitsCNN, images: NDArray[Any], labels: NDArray[Any], *, seconds: float, seed: int = 0) -> int:
    """Train with Adam on shuffled mini-batches for about ``seconds``; return the epochs run."""
    torch.manual_seed(seed)
    x = torch.tensor(images[:, None] / 16.0, dtype=torch.float32)  # same scaling as PREPROCESS below
    y = torch.tensor(labels, dtype=torch.long)
    optimiser = torch.optim.Adam(net.parameters(), lr=2e-3)
    net.train()
    deadline, epochs = time.perf_counter() + seconds, 0
    while time.perf_counter() < deadline or epochs == 0:
        for batch in torch.split(torch.randperm(len(x)), 64):
            optimiser.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(x[batch]), y[batch])
            loss.backward()  # type: ignore[no-untyped-call]
            optimiser.step()
        epochs += 1
    net.eval()
    return epochs


def accuracy(model: aikit.Model, images: NDArray[Any], labels: NDArray[Any]) -> float:
    """Share of ``images`` whose predicted label is the true digit."""
    predictions = model.predict(list(images))
    return float(np.mean([int(p.label) == int(t) for p, t in zip(predictions, labels, strict=True)]))


# --8<-- [start:wrap]
# The digits are 8x8 arrays with values 0..16: scale them to 0..1, one grey channel.
PREPROCESS = aikit.ImagePreprocess(size=(8, 8), grayscale=True, scale=1 / 16)
LABELS = [str(d) for d in range(10)]


def wrap(net: DigitsCNN) -> aikit.Model:
    return aikit.Model.from_module(net, task="image-classification", preprocess=PREPROCESS, labels=LABELS)


# --8<-- [end:wrap]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="training time budget (default 60)")
    parser.add_argument("--out", type=Path, default=None, help="artifact folder (default: a temporary one)")
    parser.add_argument("--strategy", default="int8-dynamic", help="compression strategy (default int8-dynamic)")
    args = parser.parse_args(argv)

    x_train, x_test, y_train, y_test = load_data()
    net = DigitsCNN()
    t0 = time.perf_counter()
    epochs = train(net, x_train, y_train, seconds=args.seconds)
    print(f"trained DigitsCNN for {epochs} epochs ({time.perf_counter() - t0:.1f}s) on {len(x_train)} images")

    # --8<-- [start:compress]
    model = wrap(net)
    base_accuracy = accuracy(model, x_test, y_test)
    print(f"fp32 on {model.backend_name}: test accuracy {base_accuracy:.3f} on {len(x_test)} images")

    compressed = model.compress(args.strategy, calibration=list(x_train[:64]))
    small_accuracy = accuracy(compressed, x_test, y_test)
    print(f"{args.strategy}: test accuracy {small_accuracy:.3f}")
    if compressed.compression_report is not None:
        print(compressed.compression_report)

    out = args.out or Path(tempfile.mkdtemp(prefix="digits-")) / "digits-cnn"
    compressed.save(out)
    # A plain-PyTorch artifact stores weights, not code: give Model.load an empty network to fill.
    reloaded = aikit.Model.load(out, module=DigitsCNN())
    reloaded_accuracy = accuracy(reloaded, x_test, y_test)
    print(f"saved to {out}; reloaded accuracy {reloaded_accuracy:.3f}")
    # --8<-- [end:compress]
    if reloaded_accuracy != small_accuracy:
        print("error: the reloaded model does not predict like the saved one", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
