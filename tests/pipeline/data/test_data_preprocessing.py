"""The preprocessing spec: numbers by hand, the JSON round trip, fitting data to a model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.data.fit import fit_to_model
from pipeline.data.preprocessing import Preprocessing, conform_channels, resize_images
from pipeline.data.provenance import write_preprocessing
from pipeline.data.splits import Splits
from pipeline.errors import DataError


def _splits(x: np.ndarray, spec: Preprocessing | None = None) -> Splits:
    y = np.arange(len(x)) % 2
    return Splits(
        x, y, x, y, x, y, source="test.npz", preprocessing=spec or Preprocessing.identity()
    )


def test_affine_by_hand() -> None:
    out = Preprocessing.affine(1 / 255, -0.5).apply(np.array([[0, 51, 255]], np.uint8))
    np.testing.assert_allclose(out, [[-0.5, -0.3, 0.5]], atol=1e-6)
    assert out.dtype == np.float32


def test_mean_std_by_hand() -> None:
    spec = Preprocessing.from_mean_std((0.5,), (0.25,))
    np.testing.assert_allclose(spec.apply(np.array([[1.0, 2.0, 3.0]])), [[2.0, 6.0, 10.0]])
    per_channel = Preprocessing.from_mean_std((10.0, 20.0, 30.0), (1.0, 2.0, 5.0))
    x = np.array([[[[11.0, 24.0, 20.0]]]])  # one 1x1 RGB pixel
    np.testing.assert_allclose(per_channel.apply(x), [[[[1.0, 2.0, -2.0]]]], atol=1e-6)


def test_standardize_fits_each_feature() -> None:
    x = np.array([[0.0, 10.0], [2.0, 30.0]])
    spec = Preprocessing.standardize(x)
    np.testing.assert_allclose(spec.mean, [1.0, 20.0])
    np.testing.assert_allclose(spec.std, [1.0, 10.0])
    np.testing.assert_allclose(spec.apply(x), [[-1.0, -1.0], [1.0, 1.0]], atol=1e-6)


def test_channel_rules_by_hand() -> None:
    gray = np.full((1, 2, 2), 7.0)
    assert conform_channels(gray, 3, 1).shape == (1, 2, 2, 1)
    rgb = conform_channels(gray, 3, 3)
    assert rgb.shape == (1, 2, 2, 3) and np.all(rgb == 7.0)
    pixel = np.array([[[[100.0, 50.0, 200.0]]]])
    # BT.601 luma: 0.299*100 + 0.587*50 + 0.114*200 = 82.05
    np.testing.assert_allclose(conform_channels(pixel, 3, 1), [[[[82.05]]]], atol=1e-4)
    rgba = np.array([[[[1.0, 2.0, 3.0, 255.0]]]])
    assert conform_channels(rgba, 3, 3).tolist() == [[[[1.0, 2.0, 3.0]]]]
    with pytest.raises(DataError, match="2 channels"):
        conform_channels(np.zeros((1, 2, 2, 2)), 3, 3)


def test_resize_keeps_constant_images_and_is_idempotent() -> None:
    pytest.importorskip("PIL", reason="resizing needs Pillow")
    x = np.full((2, 8, 6), 3.5, np.float32)
    small = resize_images(x, (4, 3))
    assert small.shape == (2, 4, 3)
    np.testing.assert_allclose(small, 3.5, atol=1e-5)
    again = np.arange(12, dtype=np.float32).reshape(1, 3, 4)
    assert resize_images(again, (3, 4)) is again
    with pytest.raises(DataError, match="Resizing applies to images"):
        resize_images(np.zeros((2, 30)), (4, 4))


def test_json_round_trip_gives_the_same_numbers(tmp_path: Path) -> None:
    """preprocessing.json -> spec -> the same model inputs, bit for bit."""
    pytest.importorskip("PIL", reason="resizing needs Pillow")
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, (5, 20, 24, 3)).astype(np.float32)
    spec = (
        Preprocessing.from_mean_std((0.485 * 255,), (0.229 * 255,))
        .with_geometry(resize=(16, 16), sample_rank=3, channels=1)
        .with_decode({"format": "image"})
    )
    splits = fit_to_model(_splits(raw, spec), (None, 16, 16, 1), "test")
    path = tmp_path / "preprocessing.json"
    write_preprocessing(path, splits, (None, 16, 16, 1), postprocess="none", decision_threshold=0.3)
    doc = json.loads(path.read_text())
    back = Preprocessing.from_json(doc["preprocessing"])
    assert back.to_json() == spec.to_json()
    expected = splits.model_inputs("test")
    assert expected.shape == (5, 16, 16, 1)
    assert np.array_equal(back.apply(raw), expected)
    assert doc["classes"]["decision_threshold"] == 0.3
    assert doc["preprocessing"]["standardize"]["mean"] == pytest.approx(0.485 * 255)


def test_from_json_refuses_other_documents() -> None:
    with pytest.raises(DataError, match="preprocessing spec"):
        Preprocessing.from_json({"kind": "zscore", "scale": 1, "offset": 0})


@pytest.mark.parametrize(
    ("sample", "model", "expected"),
    [
        ((28, 28), (None, 28, 28, 1), (28, 28, 1)),  # channel axis added
        ((28, 28), (None, 28, 28, 3), (28, 28, 3)),  # gray repeated
        ((28, 28, 3), (None, 28, 28, 1), (28, 28, 1)),  # luma
        ((30,), (None, 30, 1), (30, 1)),  # Conv1D over features
        ((30,), (None, 30), (30,)),
    ],
)
def test_fit_to_model_channel_rules(
    sample: tuple[int, ...], model: tuple[int | None, ...], expected: tuple[int, ...]
) -> None:
    splits = fit_to_model(_splits(np.ones((4, *sample), np.float32)), model, "test")
    assert splits.model_inputs("train").shape == (4, *expected)


def test_fit_to_model_suggests_resize_for_other_image_sizes() -> None:
    pytest.importorskip("PIL", reason="resizing needs Pillow")
    splits = _splits(np.zeros((4, 64, 64), np.uint8))
    with pytest.raises(DataError, match="--resize 28x28"):
        fit_to_model(splits, (None, 28, 28, 1), "scans.npz")
    spec = Preprocessing.identity().with_geometry(resize=(28, 28))
    fitted = fit_to_model(
        _splits(np.zeros((4, 64, 64), np.uint8), spec), (None, 28, 28, 1), "scans.npz"
    )
    assert fitted.model_inputs("val").shape == (4, 28, 28, 1)


def test_fit_to_model_refuses_a_wrong_feature_count() -> None:
    with pytest.raises(DataError, match=r"has samples of shape \(29,\)"):
        fit_to_model(_splits(np.zeros((4, 29))), (None, 30), "wdbc.csv")


def test_mean_per_channel_must_match_the_model_channels() -> None:
    spec = Preprocessing.from_mean_std((1.0, 2.0, 3.0), (1.0,))
    with pytest.raises(DataError, match="3 values"):
        fit_to_model(_splits(np.zeros((4, 8, 8)), spec), (None, 8, 8, 1), "x.npz")
