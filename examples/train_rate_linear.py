"""A differently trained N-MNIST model: softmax regression on event counts, as a spiking network.

One command (numpy and evsim; under a minute on the first run, most of it numba compiling evsim's
recording decoder, a few seconds once numba's cache holds it)::

    python examples/train_rate_linear.py [--data DATA] [-o out/rate_linear]

DATA defaults to ``$EVSIM_SHARED_DATA/nmnist-train1k`` (``shared/data`` next to the repository
when the variable is unset).

Unlike the bundled CNN (trained with surrogate gradients and an anytime loss on every prefix of
the recording), this model knows nothing of time: a multinomial logistic regression is fitted to
the *total* event counts of each recording, pooled 2×2 (2×17×17 = 578 features), on the bundled
split's training recordings. It is exported to NIR as Input(2, 34, 34) → SumPool2d(2, 2) →
Flatten → Linear(578 → 10) → IF(θ = 1) → Output, with the weights scaled so that the winning
output neuron fires about 40 times over a recording, and a sidecar declaring the ``sinabs``
profile (subtract reset, v ≥ θ, several spikes per update). Used by
``benchmarks/bench_calibration.py`` to check that the default calibration generalises to a model
that was not trained for early decisions.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def nmnist_folder() -> str:
    """``$EVSIM_SHARED_DATA/nmnist-train1k`` (``shared/data`` next to the repository when the
    variable is unset), as ``benchmarks/_machine.nmnist_folder``."""
    return str(Path(os.environ.get("EVSIM_SHARED_DATA", REPO.parent / "shared" / "data")) / "nmnist-train1k")


def pooled_counts(events, shape=(2, 34, 34), pool=2) -> np.ndarray:
    c, h, w = shape
    counts = np.zeros(shape)
    np.add.at(counts, (events["p"].astype(int), events["y"].astype(int), events["x"].astype(int)), 1.0)
    return counts.reshape(c, h // pool, pool, w // pool, pool).sum(axis=(2, 4)).ravel()


def fit_softmax_regression(x, y, n_classes, l2=1e-4, steps=3000, lr=0.5, seed=0) -> np.ndarray:
    """Full-batch gradient descent on the mean cross-entropy + l2·|W|² (no bias)."""
    rng = np.random.default_rng(seed)
    w = rng.normal(scale=1e-3, size=(n_classes, x.shape[1]))
    onehot = np.eye(n_classes)[y]
    for _ in range(steps):
        z = x @ w.T
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        grad = (p - onehot).T @ x / len(y) + 2 * l2 * w
        w -= lr * grad
    return w


def main(argv=None) -> int:
    import nir

    import evsim
    from evsim.model.declared import write_sidecar

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=nmnist_folder(),
                    help="labelled N-MNIST folder DATA/<label>/<id>.bin (default: %(default)s)")
    ap.add_argument("--split", default=str(REPO / "evsim" / "bundled" / "nmnist_cnn" / "split.json"))
    ap.add_argument("-o", "--out", default=str(REPO / "out" / "rate_linear"))
    args = ap.parse_args(argv)
    root = Path(args.data)
    if not root.is_dir():
        return _error(f"no data folder {root} (give --data, or set EVSIM_SHARED_DATA)")
    try:
        split = json.loads(Path(args.split).read_text())
    except (OSError, ValueError) as exc:
        return _error(f"cannot read the split {args.split}: {exc}")

    def load(names):
        feats, labels = [], []
        for name in names:
            feats.append(pooled_counts(evsim.read_recording(root / name).events))
            labels.append(int(Path(name).parent.name))
        return np.array(feats), np.array(labels)

    try:
        x_train, y_train = load(split["train"])
        x_test, y_test = load(split["test"])
    except evsim.EvsimError as exc:
        return _error(f"{exc} (is --data {root} the folder the split was made for?)")
    scale = x_train.mean()
    w = fit_softmax_regression(x_train / scale, y_train, 10)
    acc = float(np.mean(np.argmax(x_test @ w.T, axis=1) == y_test))
    # spike-count scale: the winning neuron's membrane gains w·x over a recording; make that ≈ 40 θ
    win = np.max(x_train @ w.T, axis=1)
    w_snn = w * (40.0 / np.median(win))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    nodes = {
        "input": nir.Input(input_type=np.array([2, 34, 34])),
        "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "flat": nir.Flatten(input_type={"input": np.array([2, 17, 17])}, start_dim=0, end_dim=-1),
        "fc": nir.Linear(weight=w_snn),
        "out": nir.IF(r=np.ones(10), v_threshold=np.ones(10), v_reset=np.zeros(10)),
        "output": nir.Output(output_type=np.array([10])),
    }
    edges = [("input", "pool"), ("pool", "flat"), ("flat", "fc"), ("fc", "out"), ("out", "output")]
    graph = nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)
    nir.write(str(out / "model.nir"), graph)
    write_sidecar(out / "model.nir", "sinabs")
    (out / "train.json").write_text(json.dumps({"rate_model_test_accuracy": acc, "n_train": int(len(y_train)),
                                                "n_test": int(len(y_test))}, indent=1) + "\n")
    print(f"softmax regression on pooled counts: test accuracy {100 * acc:.2f}% ({len(y_test)} recordings)")
    print(f"wrote {out / 'model.nir'} and its sidecar (profile sinabs)")
    return 0


def _error(message: str) -> int:
    print(f"train_rate_linear.py: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
