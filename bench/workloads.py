"""The models the benchmarks measure, each trained deterministically on real data.

- `wdbc_mlp`: the embedded default (an MLP on standardised Wisconsin breast-cancer data);
- `breastmnist_cnn`: a compact CNN on BreastMNIST 28x28;
- `mobilenet_v2_035`, `mobilenet_v2_100`: MobileNetV2 (alpha 0.35 / 1.0) at 96x96 with a
  Resizing layer inside, trained briefly on BreastMNIST for realistic sizes. Their
  BatchNormalization momentum is lowered so that a short run settles the inference
  statistics.

Each workload is saved as a `.keras` file with an `.npz` of its data, so the benchmarks can
run the real `bedside-lite build` on it, as a user would.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BREASTMNIST = Path(
    os.environ.get("BEDSIDE_BREASTMNIST", ROOT.parent / "shared" / "data" / "breastmnist.npz")
)
MALIGNANT = 0  # both datasets: class 0 is malignant


@dataclass(frozen=True)
class Workload:
    """A trained model on disk and the data file it is built with."""

    name: str
    model: Path
    data: Path
    positive_class: int
    finetune_epochs: int


def reference_cnn(shape: tuple[int, ...] = (28, 28, 1)) -> Any:
    """A compact CNN (about 25k parameters) for 28x28 grayscale ultrasound."""
    import keras

    return keras.Sequential(
        [
            keras.Input(shape=shape, name="image"),
            keras.layers.Rescaling(1.0 / 255),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv_1"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv_2"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(64, 3, padding="same", activation="relu", name="conv_3"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(32, activation="relu", name="dense"),
            keras.layers.Dense(1, activation="sigmoid", name="benign"),
        ],
        name="breastmnist_cnn",
    )


def mobilenet_v2(alpha: float, size: int = 96, bn_momentum: float = 0.9) -> Any:
    """MobileNetV2 from 28x28x1 ultrasound: Rescaling and Resizing inside, sigmoid head."""
    import keras

    inputs = keras.Input((28, 28, 1), name="image")
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0)(inputs)
    x = keras.layers.Resizing(size, size, name="resize")(x)
    x = keras.layers.Concatenate(name="gray_to_rgb")([x, x, x])
    backbone = keras.applications.MobileNetV2(
        input_shape=(size, size, 3), alpha=alpha, include_top=False, weights=None, pooling="avg"
    )
    for layer in backbone.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = bn_momentum
    x = backbone(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="benign")(x)
    return keras.Model(inputs, outputs, name=f"mobilenet_v2_{int(alpha * 100):03d}")


def _fit(
    model: Any, x: np.ndarray, y: np.ndarray, xv: np.ndarray, yv: np.ndarray, epochs: int, lr: float
) -> None:
    import keras

    model.compile(optimizer=keras.optimizers.Adam(lr), loss="binary_crossentropy")
    model.fit(
        x,
        y.astype(np.float32),
        validation_data=(xv, yv.astype(np.float32)),
        epochs=epochs,
        batch_size=32,
        shuffle=True,
        verbose=0,
    )


def prepare(name: str, workdir: Path, seed: int = 0) -> Workload | None:
    """Trains workload `name` (or reuses it from `workdir`); None when its data is absent."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    workdir.mkdir(parents=True, exist_ok=True)
    model_path, data_path = workdir / f"{name}.keras", workdir / f"{name}.npz"
    if name == "wdbc_mlp":
        from pipeline.config import DataConfig
        from pipeline.data.dataset import load
        from pipeline.models import train_reference_model

        splits = load(DataConfig(seed=seed))
        if not model_path.exists():
            train_reference_model(splits, seed).save(model_path)
        # standardised on the host, as the build does for the embedded data
        np.savez(
            data_path,
            **{f"{s}_images": splits.model_inputs(s) for s in ("train", "val", "test")},
            **{f"{s}_labels": splits.split(s)[1] for s in ("train", "val", "test")},
        )
        return Workload(name, model_path, data_path, MALIGNANT, finetune_epochs=5)
    if not BREASTMNIST.is_file():
        return None
    with np.load(BREASTMNIST, allow_pickle=False) as npz:
        d = {k: npz[k] for k in npz.files}
    np.savez(data_path, **d)
    if not model_path.exists():
        import tensorflow as tf

        keras.utils.set_random_seed(seed)
        tf.config.experimental.enable_op_determinism()
        x, y = d["train_images"][..., None].astype(np.float32), d["train_labels"]
        xv, yv = d["val_images"][..., None].astype(np.float32), d["val_labels"]
        if name == "breastmnist_cnn":
            model = reference_cnn()
            _fit(model, x, y, xv, yv, epochs=100, lr=1e-3)
        elif name in ("mobilenet_v2_035", "mobilenet_v2_100"):
            model = mobilenet_v2(0.35 if name.endswith("035") else 1.0)
            _fit(model, x, y, xv, yv, epochs=15, lr=1e-3)
        else:
            raise ValueError(f"unknown workload {name!r}")
        model.save(model_path)
    epochs = 3 if name.startswith("mobilenet") else 5
    return Workload(name, model_path, data_path, MALIGNANT, finetune_epochs=epochs)


WORKLOADS = ("wdbc_mlp", "breastmnist_cnn", "mobilenet_v2_035", "mobilenet_v2_100")
