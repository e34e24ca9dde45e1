"""Shared fixtures: real data (skipped where absent), quiet TensorFlow, golden files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BREASTMNIST = ROOT.parent / "shared" / "data" / "breastmnist.npz"


@pytest.fixture(autouse=True)
def _isolated_working_directory(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No test reads or writes the working directory: each runs in an empty folder of its own,
    so a checkout holding the quick start's build/ (or anything else) changes nothing."""
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--regen-golden",
        action="store_true",
        help="rewrite golden JSON files instead of comparing against them",
    )


@pytest.fixture
def regen_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--regen-golden"))


def real_data(name: str, default: Path) -> Path:
    """The real data file of environment variable `name`, for the tests that need it.

    Unset: `default` if it is there, else the test skips. `name=1` (or `true`): `default`
    is required, and the test fails without it. Any other value is the file's path, and
    is required too: a run that asked for the real data must not pass by skipping it.
    """
    setting = os.environ.get(name, "").strip()
    path = default if setting.lower() in ("", "1", "true") else Path(setting)
    if path.is_file():
        return path
    message = f"{name}: the real data is not at {path}"
    if setting:
        pytest.fail(f"{message}; {name}={setting} asks for it (unset it to skip these tests)")
    pytest.skip(f"{message} (set {name}=1 to fail instead of skipping, or {name}=PATH)")


@pytest.fixture(scope="session")
def breastmnist_path() -> Path:
    """The real BreastMNIST copy in ../shared/data (CC BY 4.0); tests skip without it,
    unless BEDSIDE_BREASTMNIST is set (then they fail)."""
    return real_data("BEDSIDE_BREASTMNIST", DEFAULT_BREASTMNIST)


@pytest.fixture(scope="session")
def wdbc_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded Wisconsin data written as an x/y .npz, as a user would pass it."""
    from sklearn.datasets import load_breast_cancer

    ds = load_breast_cancer()
    path = tmp_path_factory.mktemp("data") / "wdbc.npz"
    np.savez(path, x=ds.data.astype(np.float32), y=ds.target.astype(np.int64))
    return path
