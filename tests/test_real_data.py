"""The real-data fixture: skips without the data, fails when BEDSIDE_BREASTMNIST asks for it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import real_data

VAR = "BEDSIDE_BREASTMNIST"


@pytest.fixture
def present(tmp_path: Path) -> Path:
    path = tmp_path / "breastmnist.npz"
    path.write_bytes(b"npz")
    return path


def test_absent_data_skips_when_the_variable_is_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(VAR, raising=False)
    with pytest.raises(pytest.skip.Exception, match=f"{VAR}=1"):
        real_data(VAR, tmp_path / "absent.npz")


@pytest.mark.parametrize("setting", ["1", "true", "{tmp}/elsewhere.npz"])
def test_absent_data_fails_when_the_variable_asks_for_it(
    setting: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(VAR, setting.format(tmp=tmp_path))
    with pytest.raises(pytest.fail.Exception, match=f"{VAR}=.* asks for it"):
        real_data(VAR, tmp_path / "absent.npz")


def test_present_data_is_returned(
    present: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(VAR, raising=False)
    assert real_data(VAR, present) == present
    monkeypatch.setenv(VAR, "1")
    assert real_data(VAR, present) == present
    monkeypatch.setenv(VAR, str(present))
    assert real_data(VAR, tmp_path / "absent.npz") == present
