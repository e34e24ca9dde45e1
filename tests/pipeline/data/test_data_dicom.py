"""DICOM loading on pydicom's own test files (shipped with the package, read locally)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")

from pipeline.config import DataConfig  # noqa: E402
from pipeline.data import dataset as data  # noqa: E402
from pipeline.data.fit import fit_to_model  # noqa: E402
from pipeline.data.loaders.dicom import Window, decode_dicom, window_linear  # noqa: E402
from pipeline.errors import DataError, MissingExtraError  # noqa: E402

# The files ship inside the wheel; get_testdata_file() would try to download missing ones.
TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"


def _file(name: str) -> Path:
    path = TEST_FILES / name
    if not path.is_file():
        pytest.skip(f"pydicom test file {name} is not installed")
    return path


def test_ct_rescale_slope_intercept_gives_hounsfield_units() -> None:
    frames, facts, warnings = decode_dicom(_file("CT_small.dcm"))
    # CT_small: stored 128..2191, RescaleSlope 1, RescaleIntercept -1024
    assert frames.shape == (1, 128, 128)
    assert frames.min() == -896.0 and frames.max() == 1167.0
    assert facts["rescale"] == {"slope": 1.0, "intercept": -1024.0}
    assert warnings == []


def test_window_linear_by_hand() -> None:
    # center 40, width 400: lower edge 40 - 0.5 - 199.5 = -160, upper edge 239
    x = np.array([-200.0, -160.0, 39.5, 139.25, 239.0, 500.0])
    np.testing.assert_allclose(
        window_linear(x, 40, 400), [0.0, 0.0, 127.5, 191.25, 255.0, 255.0], atol=1e-4
    )


def test_window_from_the_file() -> None:
    frames, facts, _ = decode_dicom(_file("MR_small.dcm"), Window(from_file=True))
    # MR_small: stored 127..2145, WindowCenter 600, WindowWidth 1600, no rescale
    # 127 -> ((127 - 599.5) / 1599 + 0.5) * 255 = 52.1482; 2145 -> above the window -> 255
    assert facts["window"] == {"center": 600.0, "width": 1600.0}
    assert frames.min() == pytest.approx(52.1482, abs=1e-3)
    assert frames.max() == 255.0


def test_fixed_window_on_ct() -> None:
    frames, _, _ = decode_dicom(_file("CT_small.dcm"), Window(40, 400))
    assert frames.min() == 0.0 and frames.max() == 255.0  # -896 HU and 1167 HU clip


def test_window_from_file_needs_window_tags() -> None:
    with pytest.raises(DataError, match="CT_small.dcm' has no WindowCenter"):
        decode_dicom(_file("CT_small.dcm"), Window(from_file=True))


def test_rgb_and_multi_frame_files() -> None:
    frames, facts, _ = decode_dicom(_file("SC_rgb_rle_2frame.dcm"))
    assert frames.shape == (2, 100, 100, 3)
    assert facts == {"photometric": "RGB", "frames": 2}


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("rtplan.dcm", "holds no image pixel data"),
        ("MR_truncated.dcm", "could not be decoded"),
    ],
)
def test_unusable_dicom_names_the_file(name: str, match: str) -> None:
    with pytest.raises(DataError, match=match) as info:
        decode_dicom(_file(name))
    assert name in str(info.value)


def test_missing_pydicom_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pydicom", None)
    with pytest.raises(MissingExtraError, match=r"bedside-lite\[dicom\]"):
        decode_dicom(_file("CT_small.dcm"))


def _series(root: Path, names: dict[str, str], copies: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rows = ["filename,label"]
    for label, name in names.items():
        for i in range(copies):
            target = root / "series" / f"{label}_{i:02d}"  # extensionless, like many series
            target.parent.mkdir(exist_ok=True)
            shutil.copy(_file(name), target)
            rows.append(f"series/{target.name},{label}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def test_dicom_folder_with_label_csv(tmp_path: Path) -> None:
    root = _series(tmp_path / "dcm", {"ct": "CT_small.dcm", "mr": "MR_small.dcm"}, copies=5)
    splits = data.load(
        DataConfig(path=root, window_center=40, window_width=400), input_shape=(None, 32, 32, 3)
    )
    splits = fit_to_model(splits, (None, 32, 32, 3), splits.source)
    assert splits.class_names == ("ct", "mr")
    x = splits.model_inputs("train")
    assert x.shape[1:] == (32, 32, 3)
    assert 0.0 <= x.min() and x.max() <= 255.0
    summary = splits.summary()
    assert summary["details"]["format"] == "dicom folder"
    assert summary["details"]["files"] == 10
    assert summary["preprocessing"]["decode"]["window"]["center"] == 40


def test_unlabelled_dicom_folder_for_calibration(tmp_path: Path) -> None:
    calib = tmp_path / "calib"
    calib.mkdir()
    for i in range(3):
        shutil.copy(_file("CT_small.dcm"), calib / f"{i}.dcm")
    labelled = _series(tmp_path / "dcm", {"0": "CT_small.dcm", "1": "MR_small.dcm"}, copies=5)
    splits = data.load(DataConfig(path=labelled, calibration=calib), input_shape=(None, 16, 16, 1))
    splits = fit_to_model(splits, (None, 16, 16, 1), splits.source)
    assert splits.calibration_inputs().shape == (3, 16, 16, 1)
    assert splits.class_names is None  # integer labels from the CSV


def test_frames_of_one_file_stay_in_one_split(tmp_path: Path) -> None:
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(6):
            shutil.copy(_file("SC_rgb_rle_2frame.dcm"), tmp_path / cls / f"{i}.dcm")
    splits = data.load(DataConfig(path=tmp_path), input_shape=(None, 20, 20, 3))
    counts = [len(splits.y_train), len(splits.y_val), len(splits.y_test)]
    assert sum(counts) == 24 and all(c % 2 == 0 for c in counts)
    assert splits.details["multi_frame_files"] == 12


def test_a_non_image_dicom_in_the_folder_stops_the_load(tmp_path: Path) -> None:
    root = _series(tmp_path / "dcm", {"0": "CT_small.dcm", "1": "MR_small.dcm"}, copies=5)
    shutil.copy(_file("rtplan.dcm"), root / "series" / "plan.dcm")
    with open(root / "labels.csv", "a") as f:
        f.write("series/plan.dcm,0\n")
    with pytest.raises(DataError, match="plan.dcm"):
        data.load(DataConfig(path=root), input_shape=(None, 16, 16, 1))
