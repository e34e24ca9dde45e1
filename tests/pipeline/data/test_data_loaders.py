"""Loaders for .npz and tabular CSV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.config import DataConfig
from pipeline.data import dataset as data
from pipeline.errors import DataError

# --- .npz -----------------------------------------------------------------------------


def _medmnist_npz(path: Path, n: tuple[int, int, int] = (10, 4, 6), **override: np.ndarray) -> Path:
    rng = np.random.default_rng(0)
    arrays = {}
    for name, count in zip(("train", "val", "test"), n, strict=True):
        arrays[f"{name}_images"] = rng.integers(0, 256, (count, 8, 8), dtype=np.uint8)
        arrays[f"{name}_labels"] = (np.arange(count) % 2).reshape(-1, 1).astype(np.uint8)
    arrays.update(override)
    np.savez(path, **arrays)
    return path


def test_npz_medmnist_layout_keeps_the_given_splits(tmp_path: Path) -> None:
    splits = data.load(DataConfig(path=_medmnist_npz(tmp_path / "scans.npz")))
    assert [len(splits.y_train), len(splits.y_val), len(splits.y_test)] == [10, 4, 6]
    assert splits.y_train.tolist() == [0, 1] * 5  # (N, 1) labels flattened
    assert splits.positive_class == 1  # user data: 1 unless --positive-class
    assert splits.summary()["details"]["layout"] == "medmnist"


def test_npz_xy_is_split_60_20_20(tmp_path: Path) -> None:
    path = tmp_path / "xy.npz"
    np.savez(path, x=np.arange(100 * 3, dtype=np.float32).reshape(100, 3), y=np.arange(100) % 2)
    splits = data.load(DataConfig(path=path, seed=1))
    assert [len(splits.y_train), len(splits.y_val), len(splits.y_test)] == [60, 20, 20]
    assert splits.summary()["splits"]["test"]["label_counts"] == [10, 10]


def test_real_breastmnist(breastmnist_path: Path) -> None:
    splits = data.load(DataConfig(path=breastmnist_path), positive_class=0)
    assert [len(splits.y_train), len(splits.y_val), len(splits.y_test)] == [546, 78, 156]
    assert splits.x_train.shape[1:] == (28, 28)
    assert np.bincount(splits.y_test).tolist() == [42, 114]
    assert splits.positive_class == 0


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ({"train_images": np.full((10, 8, 8), np.nan)}, "NaN or Inf"),
        ({"val_labels": np.array([0.0, 1.0, 0.5, 1.0])}, "integer class indices"),
        ({"val_labels": np.array([0, 1, -1, 1])}, ">= 0"),
        ({"val_labels": np.eye(2)[[0, 1, 0, 1]]}, "One-hot"),
        ({"test_images": np.zeros((0, 8, 8)), "test_labels": np.zeros(0)}, "test split"),
        ({"val_labels": np.array([0, 1, 0])}, "must match"),
    ],
)
def test_npz_bad_data(tmp_path: Path, override: dict[str, np.ndarray], match: str) -> None:
    path = _medmnist_npz(tmp_path / "bad.npz", **override)
    with pytest.raises(DataError, match=match) as info:
        data.load(DataConfig(path=path))
    assert "bad.npz" in str(info.value)


def test_npz_with_pickled_objects_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.npz"
    np.savez(path, x=np.array([{"a": 1}], dtype=object), y=np.array([0]))
    with pytest.raises(DataError, match="pickled"):
        data.load(DataConfig(path=path))


def test_missing_and_unknown_sources(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        data.load(DataConfig(path=tmp_path / "nope"))
    (tmp_path / "scan.nii").write_bytes(b"\0" * 8)
    with pytest.raises(DataError, match="'.nii' file"):
        data.load(DataConfig(path=tmp_path / "scan.nii"))


# --- tabular CSV ----------------------------------------------------------------------


def _csv(path: Path, rows: list[str], header: str = "age,size,label") -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_csv_features_and_named_labels(tmp_path: Path) -> None:
    rows = [f"{i},{i * 0.5},{'malignant' if i % 2 else 'benign'}" for i in range(20)]
    splits = data.load(DataConfig(path=_csv(tmp_path / "t.csv", rows)), positive_class="malignant")
    assert splits.class_names == ("benign", "malignant")
    assert splits.positive_class == 1
    assert splits.x_train.shape[1:] == (2,)
    x_all = np.concatenate([splits.x_train, splits.x_val, splits.x_test])
    y_all = np.concatenate([splits.y_train, splits.y_val, splits.y_test])
    np.testing.assert_allclose(x_all[:, 1], x_all[:, 0] * 0.5)
    assert np.all(y_all == x_all[:, 0] % 2)  # odd ages are malignant = 1
    assert splits.details["features"] == ["age", "size"]


def test_csv_label_column_option(tmp_path: Path) -> None:
    rows = [f"{i % 2},{i},{i * 2}" for i in range(20)]
    splits = data.load(
        DataConfig(
            path=_csv(tmp_path / "t.csv", rows, header="outcome,a,b"), label_column="outcome"
        )
    )
    assert splits.class_names is None
    assert splits.details["features"] == ["a", "b"]
    with pytest.raises(DataError, match="no label column 'label'.*'outcome'"):
        data.load(DataConfig(path=tmp_path / "t.csv"))


@pytest.mark.parametrize(
    ("bad_row", "match"),
    [
        ("3,abc,1", "line 5, column 'size' holds 'abc'"),
        ("3,,1", "line 5, column 'size' is empty"),
        ("3,nan,1", "line 5, column 'size' is nan"),
        ("3,inf,1", "line 5, column 'size' is inf"),
        ("3,4,1.5", "integer class indices"),
        ("3,4", "line 5 has 2 fields"),
    ],
)
def test_csv_bad_values_name_the_line(tmp_path: Path, bad_row: str, match: str) -> None:
    rows = ["0,1,0", "1,2,1", "2,3,0", bad_row, *[f"{i},{i},{i % 2}" for i in range(10)]]
    with pytest.raises(DataError, match=match):
        data.load(DataConfig(path=_csv(tmp_path / "t.csv", rows)))


def test_calibration_npz_needs_no_labels(tmp_path: Path) -> None:
    np.savez(tmp_path / "calib.npz", x=np.ones((5, 8, 8), np.float32))
    splits = data.load(
        DataConfig(path=_medmnist_npz(tmp_path / "scans.npz"), calibration=tmp_path / "calib.npz")
    )
    assert splits.x_calibration.shape == (5, 8, 8)


def test_label_csv_only_applies_to_folders(tmp_path: Path) -> None:
    (tmp_path / "labels.csv").write_text("filename,label\na.png,0\n")
    with pytest.raises(DataError, match="not a folder"):
        data.load(
            DataConfig(path=_medmnist_npz(tmp_path / "scans.npz"), labels=tmp_path / "labels.csv")
        )


def test_embedded_wdbc_default() -> None:
    splits = data.load(DataConfig())
    assert (splits.positive_class, splits.positive_class_name) == (0, "malignant")
    assert [len(splits.y_train), len(splits.y_val), len(splits.y_test)] == [341, 114, 114]
    assert splits.preprocessing.description == "standardize"
    assert data.load(DataConfig(), positive_class="benign").positive_class == 1
