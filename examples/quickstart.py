"""Quick start of the Python API: a Keras model in memory to a verified int8 model.

Trains a tiny classifier on the Wisconsin breast-cancer data that scikit-learn ships,
hands the model and the arrays to `pipeline.build` (no files needed), and reads the
report's numbers. Runs in well under a minute on a laptop CPU:

    python examples/quickstart.py            # into a temporary directory
    python examples/quickstart.py --out build-quickstart
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np


def wdbc_splits(seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """WDBC standardised on the train split; 60/20/20, stratified. Label 0 = malignant."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    x, y = load_breast_cancer(return_X_y=True)
    x, y = x.astype(np.float32), y.astype(np.int64)
    x_tr, x_rest, y_tr, y_rest = train_test_split(
        x, y, test_size=0.4, random_state=seed, stratify=y
    )
    x_va, x_te, y_va, y_te = train_test_split(
        x_rest, y_rest, test_size=0.5, random_state=seed, stratify=y_rest
    )
    mean, std = x_tr.mean(axis=0), x_tr.std(axis=0) + 1e-6
    return {
        "train": ((x_tr - mean) / std, y_tr),
        "val": ((x_va - mean) / std, y_va),
        "test": ((x_te - mean) / std, y_te),
    }


def train(x: np.ndarray, y: np.ndarray, seed: int = 0):  # -> keras.Model
    """A 30-16-1 MLP with a sigmoid output, a few epochs."""
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((x.shape[1],)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.fit(x, y, epochs=30, batch_size=32, verbose=0)
    return model


def main(out: Path) -> dict[str, float]:
    """Trains, builds into `out` and returns the int8 model's test metrics."""
    from pipeline import build

    splits = wdbc_splits()
    model = train(*splits["train"])
    report = build(
        model,
        splits,
        out=out,
        positive_class=0,  # malignant
        sparsity=0.5,
        no_bench=True,  # latency: `bedside-lite bench out/model_int8.tflite`
        overwrite=True,
        gates={"max_auroc_drop": 0.02},
    )
    int8, float32 = report.metrics["int8"], report.metrics["float32"]
    size = report.artifacts["int8"].bytes
    print(f"float32 test AUROC {float32.auroc:.4f}; int8 {int8.auroc:.4f}; int8 file {size} bytes")
    print(f"gates passed: {report.gates.passed if report.gates else None}; artifacts in {out}/")
    return {"float32_auroc": float32.auroc, "int8_auroc": int8.auroc, "int8_bytes": size}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="output directory (default: a temporary one)")
    args = parser.parse_args()
    if args.out is not None:
        main(args.out)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp) / "build")
