"""Image folders, written here with Pillow (extra `dicom` brings Pillow; skipped without)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

Image = pytest.importorskip("PIL.Image")

from pipeline.config import DataConfig  # noqa: E402
from pipeline.data import dataset as data  # noqa: E402
from pipeline.data.fit import fit_to_model  # noqa: E402
from pipeline.errors import DataError  # noqa: E402


def _image_folder(root: Path, per_class: int = 6) -> Path:
    """benign/: gray PNGs of value 40; malignant/: RGB JPEGs of varying sizes (red)."""
    (root / "malignant").mkdir(parents=True)
    (root / "benign").mkdir()
    for i in range(per_class):
        Image.fromarray(np.full((20, 20), 40, np.uint8)).save(root / "benign" / f"b{i}.png")
        red = np.zeros((24 + i, 30, 3), np.uint8)
        red[..., 0] = 200
        Image.fromarray(red).save(root / "malignant" / f"m{i}.jpg", quality=100)
    return root


def test_image_folder_with_class_subfolders(tmp_path: Path) -> None:
    root = _image_folder(tmp_path / "imgs")
    (root / "notes.txt").write_text("not an image")
    splits = data.load(
        DataConfig(path=root), input_shape=(None, 16, 16, 1), positive_class="malignant"
    )
    splits = fit_to_model(splits, (None, 16, 16, 1), splits.source)
    assert splits.class_names == ("benign", "malignant")  # sorted -> indices
    assert splits.positive_class == 1
    x = splits.model_inputs("train")
    assert x.shape[1:] == (16, 16, 1)
    for xi, yi in zip(x, splits.y_train, strict=True):
        # gray 40 stays 40; red 200 -> luma 0.299 * 200 = 59.8 (JPEG: within a few levels)
        assert np.median(xi) == pytest.approx(40.0 if yi == 0 else 59.8, abs=3)
    summary = splits.summary()
    assert summary["details"]["files"] == 12
    assert summary["preprocessing"]["resize"]["height"] == 16
    assert summary["preprocessing"]["decode"]["format"] == "image"
    assert any("notes.txt" in w for w in splits.warnings)


def test_image_folder_to_rgb_model(tmp_path: Path) -> None:
    root = _image_folder(tmp_path / "imgs")
    splits = data.load(DataConfig(path=root), input_shape=(None, 12, 10, 3))
    splits = fit_to_model(splits, (None, 12, 10, 3), splits.source)
    x = splits.model_inputs("test")
    assert x.shape[1:] == (12, 10, 3)
    gray = x[splits.y_test == 0]
    assert np.all(gray[..., 0] == gray[..., 1])  # gray repeated into RGB


def test_sixteen_bit_png_keeps_its_values(tmp_path: Path) -> None:
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(5):
            Image.fromarray(np.full((8, 8), 40000, np.uint16)).save(tmp_path / cls / f"{i}.png")
    splits = data.load(DataConfig(path=tmp_path), input_shape=(None, 8, 8, 1))
    assert splits.x_train.max() == 40000.0


def test_label_csv_for_a_flat_image_folder(tmp_path: Path) -> None:
    lines = ["filename,label"]
    for i in range(10):
        Image.fromarray(np.full((8, 8), i * 10, np.uint8)).save(tmp_path / f"{i}.png")
        lines.append(f"{i}.png,{i % 2}")
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    splits = data.load(DataConfig(path=tmp_path), input_shape=(None, 8, 8, 1))
    x_all = np.concatenate([splits.x_train, splits.x_val, splits.x_test])
    y_all = np.concatenate([splits.y_train, splits.y_val, splits.y_test])
    assert np.all(y_all == (x_all[:, 0, 0, 0] // 10) % 2)


def test_unreadable_image_names_the_file(tmp_path: Path) -> None:
    root = _image_folder(tmp_path / "imgs")
    (root / "benign" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match="broken.png"):
        data.load(DataConfig(path=root), input_shape=(None, 16, 16, 1))


def test_unlabelled_folder_is_calibration_only(tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(7):
        Image.fromarray(np.full((30, 30), i, np.uint8)).save(flat / f"{i}.png")
    with pytest.raises(DataError, match="--calibration-data"):
        data.load(DataConfig(path=flat), input_shape=(None, 16, 16, 1))
    labelled = _image_folder(tmp_path / "imgs")
    splits = data.load(DataConfig(path=labelled, calibration=flat), input_shape=(None, 16, 16, 1))
    splits = fit_to_model(splits, (None, 16, 16, 1), splits.source)
    assert splits.calibration_inputs().shape == (7, 16, 16, 1)
    assert splits.calibration_labels.tolist() == [0] * 7
    assert splits.calibration_label_counts(np.arange(3)) is None
    assert splits.summary()["calibration"] == {"source": str(flat), "samples": 7}


def test_images_of_mixed_sizes_need_a_size(tmp_path: Path) -> None:
    root = _image_folder(tmp_path / "imgs")
    with pytest.raises(DataError, match="--resize"):
        data.load(DataConfig(path=root))  # no model size, no --resize: 20x20 and 24x30 cannot stack
    splits = data.load(DataConfig(path=root, resize=(10, 10)), input_shape=(None, None, None, 1))
    assert splits.x_train.shape[1:] == (10, 10, 1)


def test_empty_class_folder(tmp_path: Path) -> None:
    root = _image_folder(tmp_path / "imgs")
    (root / "normal").mkdir()
    with pytest.raises(DataError, match="normal' holds no PNG"):
        data.load(DataConfig(path=root), input_shape=(None, 16, 16, 1))


def test_positive_class_by_index_or_name(tmp_path: Path) -> None:
    root = _image_folder(tmp_path / "imgs")
    shape = (None, 16, 16, 1)
    assert data.load(DataConfig(path=root), input_shape=shape, positive_class=0).positive_class == 0
    assert (
        data.load(DataConfig(path=root), input_shape=shape, positive_class="Benign").positive_class
        == 0
    )
    with pytest.raises(DataError, match="'normal' is not a class.*'benign', 'malignant'"):
        data.load(DataConfig(path=root), input_shape=shape, positive_class="normal")
    with pytest.raises(DataError, match="out of range"):
        data.load(DataConfig(path=root), input_shape=shape, positive_class=2)
