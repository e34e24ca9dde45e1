"""Arrays handed over in memory go through the data stage as a file of the same layout."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from pipeline.cli.options import build_config
from pipeline.data.dataset import load
from pipeline.data.memory import arrays_sha256, digest, loaded_arrays, subgroup_arrays
from pipeline.errors import DataError


def _xy(n: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 4)).astype(np.float32), np.arange(n) % 2


def test_x_y_is_split_as_an_x_y_file_is(tmp_path: Path) -> None:
    x, y = _xy()
    np.savez(tmp_path / "d.npz", x=x, y=y)
    config = build_config(["build", "--data", str(tmp_path / "d.npz"), "--seed", "3"]).data
    from_file = load(config)
    in_memory = load(config, arrays=loaded_arrays((x, y)))
    for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(in_memory, name), getattr(from_file, name))
    assert len(in_memory.y_train) == 36 and len(in_memory.y_test) == 12


def test_dict_splits_are_used_as_given() -> None:
    (xa, ya), (xb, yb), (xc, yc) = _xy(30, 1), _xy(10, 2), _xy(12, 3)
    config = build_config(["build"]).data
    splits = load(
        config, arrays=loaded_arrays({"train": (xa, ya), "val": (xb, yb), "test": (xc, yc)})
    )
    np.testing.assert_array_equal(splits.x_val, xb)
    np.testing.assert_array_equal(splits.y_test, yc)
    assert splits.source == "in-memory arrays"


@pytest.mark.parametrize(
    ("data", "error", "match"),
    [
        ({"train": _xy(), "val": _xy()}, DataError, "expected exactly"),
        ({"train": _xy(), "val": _xy(), "test": _xy(), "extra": _xy()}, DataError, "expected"),
        ((np.zeros((5, 2)), np.zeros(4, np.int64)), DataError, "must match"),
        ((np.zeros((5, 2)), np.full(5, 0.5)), DataError, "y of data"),
        ("not arrays", DataError, "pair"),
    ],
)
def test_malformed_arrays_are_named(data: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        loaded_arrays(data)


def test_subgroup_arrays_are_checked_and_read_like_a_files(tmp_path: Path) -> None:
    x, y = _xy()
    site = np.array(["A", "B", "C"])[np.arange(60) % 3]
    data = {"train": _xy(), "val": (x, y, {"site": site}), "test": _xy()}
    groups = subgroup_arrays(data)
    assert list(groups) == ["val"] and groups["val"]["site"].shape == (60,)
    with pytest.raises(DataError, match=r"subgroup 'site' of data\['val'\] has shape \(59,\)"):
        subgroup_arrays({**data, "val": (x, y, {"site": np.zeros(59)})})
    config = build_config(["build", "--subgroup", "site"]).data
    arrays = dataclasses.replace(loaded_arrays(data), attributes=groups)
    with pytest.raises(DataError, match=r"no 'site' in the dict of data\['test'\]"):
        load(config, arrays=arrays)  # evaluated on val and test: both must carry it
    # (x, y, {...}) is split with the cases, exactly as an x/y .npz with a `site` array
    np.savez(tmp_path / "d.npz", x=x, y=y, site=site)
    from_file = load(
        build_config(["build", "--data", str(tmp_path / "d.npz"), "--subgroup", "site"]).data
    )
    whole = loaded_arrays((x, y))
    in_memory = load(config, arrays=dataclasses.replace(whole, attributes={"all": {"site": site}}))
    assert from_file.subgroups is not None and in_memory.subgroups is not None
    for split in ("val", "test"):
        expected = from_file.subgroups.of(split)["site"]
        np.testing.assert_array_equal(in_memory.subgroups.of(split)["site"], expected)


def test_the_sha256_follows_the_bytes() -> None:
    x, y = _xy()
    first = arrays_sha256(loaded_arrays((x, y)))
    assert first == arrays_sha256(loaded_arrays((x.copy(), y.copy())))
    x[0, 0] += 1
    assert arrays_sha256(loaded_arrays((x, y))) != first
    assert digest([np.zeros(2)]) != digest([np.zeros((1, 2))])  # the shape counts
