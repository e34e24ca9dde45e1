"""`medmnist:NAME[@SIZE]`: Keras cache, MD5 policy, offline message. Never touches the network:
every test runs with `urllib.request.urlopen` replaced."""

from __future__ import annotations

import hashlib
import io
import shutil
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import DataConfig
from pipeline.config import medmnist as medmnist_spec
from pipeline.data import dataset as data
from pipeline.data.loaders import medmnist
from pipeline.errors import ConfigError, DataError

OFFICIAL_BREASTMNIST_MD5 = "750601b1f35ba3300ea97c75c52ff8f6"
SHARED_COPY_MD5 = "098de56cd2d92ef2f7170e6153c02849"  # labels stored flat


class _Offline:
    def __init__(self) -> None:
        self.urls: list[str] = []

    def __call__(self, url: str, timeout: float = 0) -> io.BytesIO:
        self.urls.append(url)
        raise urllib.error.URLError("Temporary failure in name resolution")


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> _Offline:
    fake = _Offline()
    monkeypatch.setattr(medmnist.urllib.request, "urlopen", fake)
    return fake


@pytest.fixture
def keras_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    return tmp_path / "keras" / "datasets"


def test_spec_names_the_official_files() -> None:
    spec = medmnist_spec.parse_spec("medmnist:pneumoniamnist@64")
    assert spec.filename == "pneumoniamnist_64.npz"
    assert spec.url == (
        "https://zenodo.org/records/10519652/files/pneumoniamnist_64.npz?download=1"
    )
    plain = medmnist_spec.parse_spec("medmnist:BreastMNIST")
    assert (plain.filename, plain.size) == ("breastmnist.npz", 28)
    assert plain.info.md5[28] == OFFICIAL_BREASTMNIST_MD5
    assert plain.info.labels[plain.info.positive_class] == "malignant"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("medmnist:nosuchmnist", "Unknown MedMNIST dataset 'nosuchmnist'"),
        ("medmnist:breastmnist@32", "sizes 28, 64, 128, 224"),
        ("medmnist:nodulemnist3d@224", "sizes 28, 64"),
        ("medmnist:chestmnist", "multi-label"),
    ],
)
def test_bad_specs_are_config_errors(text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        medmnist_spec.parse_spec(text)


def test_cache_dir_follows_keras_home(keras_home: Path) -> None:
    assert medmnist.cache_dir() == keras_home


def test_cached_file_is_used_without_network(
    breastmnist_path: Path, keras_home: Path, offline: _Offline
) -> None:
    keras_home.mkdir(parents=True)
    shutil.copy(breastmnist_path, keras_home / "breastmnist.npz")
    splits = data.load(DataConfig(path=Path("medmnist:breastmnist")))
    assert offline.urls == []
    assert [len(splits.y_train), len(splits.y_val), len(splits.y_test)] == [546, 78, 156]
    assert splits.class_names == ("malignant", "normal, benign")
    assert splits.positive_class == 0  # malignant
    details = splits.summary()["details"]
    assert details["md5"] == SHARED_COPY_MD5
    assert details["md5_official"] == OFFICIAL_BREASTMNIST_MD5
    assert details["md5_verified"] is False and details["downloaded"] is False
    assert any(SHARED_COPY_MD5 in w and "used as found" in w for w in splits.warnings)


def test_offline_download_says_where_to_place_the_file(keras_home: Path, offline: _Offline) -> None:
    with pytest.raises(DataError) as info:
        data.load(DataConfig(path=Path("medmnist:pneumoniamnist@64")))
    message = str(info.value)
    assert offline.urls == [medmnist_spec.parse_spec("medmnist:pneumoniamnist@64").url]
    assert "Could not download" in message
    assert str(keras_home / "pneumoniamnist_64.npz") in message
    assert "zenodo.org/records/10519652" in message
    assert not list(keras_home.glob("*"))  # no partial file left


def _tiny_medmnist_bytes() -> bytes:
    buf = io.BytesIO()
    arrays = {}
    for name, n in (("train", 10), ("val", 4), ("test", 4)):
        arrays[f"{name}_images"] = np.zeros((n, 28, 28), np.uint8)
        arrays[f"{name}_labels"] = (np.arange(n) % 2).reshape(-1, 1).astype(np.uint8)
    np.savez(buf, **arrays)
    return buf.getvalue()


@pytest.mark.parametrize("official", [True, False])
def test_download_is_verified(
    keras_home: Path, monkeypatch: pytest.MonkeyPatch, official: bool
) -> None:
    payload = _tiny_medmnist_bytes()
    digest = hashlib.md5(payload).hexdigest() if official else "0" * 32
    info = medmnist_spec.DATASETS["breastmnist"]
    monkeypatch.setitem(
        medmnist_spec.DATASETS,
        "breastmnist",
        medmnist_spec.MedMNISTInfo(info.labels, {28: digest}, 0),
    )
    calls: list[str] = []

    def serve(url: str, timeout: float = 0) -> io.BytesIO:
        calls.append(url)
        return io.BytesIO(payload)

    monkeypatch.setattr(medmnist.urllib.request, "urlopen", serve)
    if not official:
        with pytest.raises(DataError, match="not the official"):
            data.load(DataConfig(path=Path("medmnist:breastmnist")))
        assert not list(keras_home.glob("*"))
        return
    splits = data.load(DataConfig(path=Path("medmnist:breastmnist")))
    assert (keras_home / "breastmnist.npz").read_bytes() == payload
    details = splits.summary()["details"]
    assert details["downloaded"] is True and details["md5_verified"] is True
    assert splits.warnings == ()
    data.load(DataConfig(path=Path("medmnist:breastmnist")))  # second run: from the cache
    assert len(calls) == 1
