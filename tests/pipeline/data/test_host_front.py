"""`--host-preprocessing`: the model's leading Rescaling/Resizing chain runs on the host."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from pipeline.data.host_front import Rescale, Resize, leading_chain, move_front
from pipeline.data.preprocessing import Preprocessing
from pipeline.data.splits import Splits
from tests import models

RNG = np.random.default_rng(0)


def _head(x: keras.KerasTensor, units: int = 1) -> keras.KerasTensor:
    x = keras.layers.Conv2D(4, 3, name="conv")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.layers.Dense(units, activation="sigmoid", name="out")(x)


def fronted(size: int = 20, interpolation: str = "bilinear") -> keras.Model:
    """28x28x1 -> Rescaling(1/127.5, -1) -> Resizing(size) -> conv head."""
    inputs = keras.Input((28, 28, 1), name="image")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1, name="rescale")(inputs)
    x = keras.layers.Resizing(size, size, interpolation=interpolation, name="resize")(x)
    return keras.Model(inputs, _head(x), name="fronted")


def nested_block() -> keras.Model:
    """The front as a nested Sequential preprocessing block."""
    block = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Rescaling(1 / 255, name="rescale"),
            keras.layers.Resizing(40, 40, name="resize"),
        ],
        name="prep",
    )
    inputs = keras.Input((28, 28, 1), name="image")
    return keras.Model(inputs, _head(block(inputs)), name="nested_block")


def nested_backbone() -> keras.Model:
    """Resizing at the top, then a functional backbone that starts with its own Rescaling."""
    inner_in = keras.Input((32, 32, 3))
    y = keras.layers.Rescaling([0.5, 0.25, 1.0], offset=[-1.0, 0.0, 0.5], name="scale")(inner_in)
    y = keras.layers.Conv2D(6, 3, name="stem")(y)
    backbone = keras.Model(inner_in, keras.layers.BatchNormalization(name="stem_bn")(y))
    inputs = keras.Input((24, 24, 3), name="image")
    x = keras.layers.Resizing(32, 32, name="resize")(inputs)
    return keras.Model(inputs, _head(backbone(x, training=False)), name="nested_backbone")


def splits_for(shape: tuple[int, ...], n: int = 24) -> Splits:
    x = RNG.uniform(0, 255, (n, *shape)).astype(np.float32)
    y = np.arange(n) % 2
    spec = Preprocessing.identity().with_geometry(sample_rank=len(shape), channels=shape[-1])
    return Splits(x, y, x, y, x, y, "synthetic", spec)


def _equal_outputs(model: keras.Model, shape: tuple[int, ...]) -> tuple[keras.Model, Splits]:
    """Moves the front; asserts cut model + host steps == the original model."""
    splits = splits_for(shape)
    device, moved, note = move_front(model, splits)
    assert note is None
    expected = model.predict(splits.model_inputs("test"), verbose=0)
    got = device.predict(moved.model_inputs("test"), verbose=0)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    return device, moved


@pytest.mark.parametrize(
    ("size", "interpolation"),
    [(20, "bilinear"), (45, "bilinear"), (13, "nearest"), (64, "nearest")],
)
def test_numpy_resize_equals_keras_resizing(size: int, interpolation: str) -> None:
    x = RNG.uniform(-3, 3, (3, 28, 21, 2)).astype(np.float32)
    layer = keras.layers.Resizing(size, size + 3, interpolation=interpolation)
    expected = np.asarray(layer(x))
    got = Resize(size, size + 3, interpolation, "r").apply(x)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_numpy_rescale_equals_keras_rescaling_per_channel() -> None:
    x = RNG.uniform(0, 255, (2, 5, 5, 3)).astype(np.float32)
    layer = keras.layers.Rescaling([1 / 255, 2.0, -1.0], offset=[0.0, -1.0, 3.0])
    got = Rescale(np.float32([1 / 255, 2.0, -1.0]), np.float32([0.0, -1.0, 3.0]), "s").apply(x)
    np.testing.assert_allclose(got, np.asarray(layer(x)), rtol=1e-6)


@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_cut_model_and_host_front_equal_the_original(interpolation: str) -> None:
    device, moved = _equal_outputs(fronted(20, interpolation), (28, 28, 1))
    assert tuple(device.inputs[0].shape) == (None, 20, 20, 1)
    assert [layer.name for layer in device.layers] == ["image", "conv", "bn", "gap", "out"]
    front = moved.preprocessing.front
    assert front is not None and [s.layer for s in front.steps] == ["rescale", "resize"]
    assert moved.summary()["input_shape"] == [20, 20, 1]


def test_sequential_model_front_is_moved() -> None:
    model = models.conv2d((28, 28, 1))  # Input -> Rescaling(1/255) -> convs
    device, moved = _equal_outputs(model, (28, 28, 1))
    assert not any(isinstance(layer, keras.layers.Rescaling) for layer in device.layers)
    assert moved.summary()["host_front"]["steps"][0]["op"] == "rescale"


def test_front_inside_a_nested_first_model_is_moved() -> None:
    device, moved = _equal_outputs(nested_block(), (28, 28, 1))
    assert tuple(device.inputs[0].shape) == (None, 40, 40, 1)
    doc = moved.summary()["host_front"]
    assert [s["op"] for s in doc["steps"]] == ["rescale", "resize"]
    assert doc["flattened"] == ["prep"]


def test_chain_continues_into_a_nested_backbone() -> None:
    device, moved = _equal_outputs(nested_backbone(), (24, 24, 3))
    assert tuple(device.inputs[0].shape) == (None, 32, 32, 3)
    steps = moved.summary()["host_front"]["steps"]
    assert [s["op"] for s in steps] == ["resize", "rescale"]
    assert steps[1]["scale"] == pytest.approx([0.5, 0.25, 1.0])
    assert not any(isinstance(layer, keras.layers.Rescaling) for layer in device.layers)


def test_a_model_without_a_front_is_kept_with_a_note() -> None:
    model = models.mlp(30)
    splits = splits_for((30,))
    device, same, note = move_front(model, splits)
    assert device is model and same is splits
    assert note is not None and "nothing to move" in note and "Dense 'hidden'" in note


def test_unsupported_resize_ends_the_chain() -> None:
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Rescaling(1 / 255, name="rescale")(inputs)
    x = keras.layers.Resizing(20, 20, interpolation="bicubic", name="resize")(x)
    chain = leading_chain(keras.Model(inputs, _head(x)))
    assert [s.layer for s in chain.steps] == ["rescale"]
    assert chain.stop.name == "resize"


def test_input_feeding_two_layers_moves_nothing() -> None:
    inputs = keras.Input((28, 28, 1))
    a = keras.layers.Rescaling(1 / 255)(inputs)
    b = keras.layers.Rescaling(2.0)(inputs)
    model = keras.Model(inputs, _head(keras.layers.Add()([a, b])))
    _, _, note = move_front(model, splits_for((28, 28, 1)))
    assert note is not None and "feeds more than one layer" in note


# --- the option, and a build with it -----------------------------------------------------


def test_option_in_a_job_file_and_on_the_command_line(tmp_path: Path) -> None:
    from pipeline.cli import build_config

    assert build_config(["build"]).data.host_preprocessing is False
    assert build_config(["build", "--host-preprocessing"]).data.host_preprocessing is True
    job = tmp_path / "job.toml"
    job.write_text("[data]\nhost_preprocessing = true\n")
    assert build_config(["build", "--config", str(job)]).data.host_preprocessing is True


@pytest.fixture(scope="module")
def image_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A trained `fronted` model and its 28x28 images as an .npz."""
    root = tmp_path_factory.mktemp("host")
    rng = np.random.default_rng(1)
    y = np.arange(200) % 2
    x = rng.uniform(0, 120, (200, 28, 28)).astype(np.float32)
    x[y == 1, 8:20, 8:20] += 120  # class 1: a bright square
    np.savez(root / "images.npz", x=x.astype(np.uint8), y=y)
    keras.utils.set_random_seed(0)
    model = fronted(16)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.fit(x[..., None], y, epochs=3, batch_size=32, verbose=0)
    model.save(root / "fronted.keras")
    return root / "fronted.keras", root / "images.npz"


def _build(model: Path, data: Path, out: Path, *extra: str) -> dict:
    from pipeline.cli import main

    args = ["build", "--model", str(model), "--data", str(data), "--sparsity", "0"]
    assert (
        main([*args, "--no-bench", "--bootstrap", "0", "--quiet", "--out", str(out), *extra]) == 0
    )
    return json.loads((out / "report.json").read_text())


def _tflite_input_shape(path: Path) -> list[int]:
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_path=str(path)).get_input_details()[0]["shape"].tolist()


@pytest.mark.slow
def test_build_with_the_option_writes_the_steps_and_cuts_every_variant(
    image_build: tuple[Path, Path], tmp_path: Path
) -> None:
    model, data = image_build
    report = _build(model, data, tmp_path / "on", "--host-preprocessing")
    doc = json.loads((tmp_path / "on" / "preprocessing.json").read_text())
    assert list(doc)[:5] == [
        "schema_version",
        "input_shape",
        "layout",
        "preprocessing",
        "host_front",
    ]
    steps = doc["host_front"]["steps"]
    assert [s["op"] for s in steps] == ["rescale", "resize"]
    assert steps[0]["scale"] == pytest.approx(1 / 127.5) and steps[0]["offset"] == -1.0
    assert (steps[1]["height"], steps[1]["width"], steps[1]["interpolation"]) == (
        16,
        16,
        "bilinear",
    )
    assert doc["host_front"]["input_shape"] == [None, 28, 28, 1]
    assert doc["input_shape"] == doc["host_front"]["output_shape"] == [None, 16, 16, 1]
    for name in ("model_float32.tflite", "model_int8.tflite"):
        assert _tflite_input_shape(tmp_path / "on" / name) == [1, 16, 16, 1]
    assert report["model"]["input_shape"] == [None, 16, 16, 1]
    assert report["data"]["host_front"] == doc["host_front"]
    assert report["metrics"]["int8"]["auroc"] > 0.9


@pytest.mark.slow
def test_build_of_a_model_without_a_front_warns(wdbc_npz: Path, tmp_path: Path) -> None:
    path = tmp_path / "mlp.keras"
    models.mlp(30).save(path)
    report = _build(path, wdbc_npz, tmp_path / "b", "--host-preprocessing")
    assert any("nothing to move" in w for w in report["warnings"])
    assert "host_front" not in report["data"]
    assert "host_front" not in json.loads((tmp_path / "b" / "preprocessing.json").read_text())
