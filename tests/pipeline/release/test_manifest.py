"""Provenance: manifest.json hashes, the manifest embedded in each .tflite, same job ->
same bytes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from converters.inspection import inspect_tflite
from pipeline.errors import ModelError
from pipeline.release import manifest
from tests.pipeline import release_env

MODELS = Path(__file__).resolve().parents[2] / "device_bench" / "models"
TFLITES = ("model_float32.tflite", "model_pruned_float32.tflite", "model_int8.tflite")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.getbasetemp() / "release"
    out, run = release_env.release_build(root, "a")
    assert run.code == 1, run.stderr  # the job's size gate fails on purpose
    return root, out


@pytest.mark.slow
def test_manifest_hashes_match_every_file(release: tuple[Path, Path]) -> None:
    root, out = release
    doc = json.loads((out / "manifest.json").read_text())
    on_disk = {p.name for p in out.iterdir() if p.name != "manifest.json"}
    assert set(doc["artifacts"]) == on_disk
    for name, entry in doc["artifacts"].items():
        assert entry["sha256"] == _sha(out / name), name
        assert entry["bytes"] == (out / name).stat().st_size
    model, data = release_env.tiny_inputs(root / "inputs")
    assert doc["inputs"]["model"]["sha256"] == _sha(model)
    assert doc["inputs"]["data"][0]["sha256"] == _sha(data)
    assert {"bedside-lite", "tensorflow", "keras", "ai-edge-litert", "numpy"} <= set(
        doc["versions"]
    )
    assert doc["seed"] == 0 and doc["created"].endswith("Z")
    assert doc["job"]["prune"]["sparsity"] == 0.5
    report = json.loads((out / "report.json").read_text())
    for variant in ("float32", "pruned_float32", "int8"):
        art = report["artifacts"][variant]
        assert art["sha256"] == doc["artifacts"][Path(art["path"]).name]["sha256"]


@pytest.mark.slow
def test_each_tflite_embeds_the_manifest_without_its_own_hash_or_a_date(
    release: tuple[Path, Path],
) -> None:
    _, out = release
    doc = json.loads((out / "manifest.json").read_text())
    payloads = set()
    for name in TFLITES:
        raw = inspect_tflite(out / name).metadata[manifest.METADATA_NAME]
        payloads.add(raw)
        embedded = json.loads(raw)
        assert embedded["inputs"] == doc["inputs"]
        assert embedded["versions"] == doc["versions"]
        assert embedded["job"] == {s: doc["job"][s] for s in manifest.MODEL_SECTIONS}
        assert "created" not in embedded and "source_date" not in embedded
        assert _sha(out / name) not in raw.decode()
    assert len(payloads) == 1
    assert hashlib.sha256(payloads.pop()).hexdigest() == doc["embedded"]["sha256"]


@pytest.mark.slow
def test_inspect_shows_the_embedded_manifest(
    release: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.cli import main

    _, out = release
    assert main(["inspect", str(out / "model_int8.tflite"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["manifest"]["job"]["prune"]["sparsity"] == 0.5
    assert manifest.METADATA_NAME in doc["metadata"]
    assert main(["inspect", str(out / "model_int8.tflite")]) == 0
    assert "manifest (metadata 'bedside_lite_manifest')" in capsys.readouterr().out


@pytest.mark.slow
def test_same_job_gives_the_same_bytes(release: tuple[Path, Path]) -> None:
    root, first = release
    second, run = release_env.release_build(root, "b")
    assert run.code == 1
    for name in TFLITES:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


@pytest.mark.parametrize("name", ["dense_int8.tflite", "conv_int8.tflite", "dense_float32.tflite"])
def test_embedding_keeps_the_model_running_identically(name: str) -> None:
    from ai_edge_litert.interpreter import Interpreter

    original = (MODELS / name).read_bytes()
    payload = manifest.encode({"job": {"model": {"seed": 3}}, "inputs": {}})
    embedded = manifest.embed(original, payload)
    assert embedded != original
    info = inspect_tflite(embedded)
    assert info.metadata[manifest.METADATA_NAME] == payload
    for key, value in inspect_tflite(original).metadata.items():
        assert info.metadata[key] == value  # the converter's own metadata survives
    assert manifest.read_embedded(embedded) == {"job": {"model": {"seed": 3}}, "inputs": {}}
    replaced = manifest.embed(embedded, b'{"v":2}')
    assert manifest.read_embedded(replaced) == {"v": 2}
    assert list(inspect_tflite(replaced).metadata).count(manifest.METADATA_NAME) == 1

    def outputs(data: bytes, x: np.ndarray) -> np.ndarray:
        interpreter = Interpreter(model_content=data)
        interpreter.allocate_tensors()
        detail = interpreter.get_input_details()[0]
        interpreter.set_tensor(detail["index"], x)
        interpreter.invoke()
        return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])

    detail = Interpreter(model_content=original).get_input_details()[0]
    rng = np.random.default_rng(0)
    for _ in range(5):
        if np.issubdtype(detail["dtype"], np.integer):
            info_dtype = np.iinfo(detail["dtype"])
            x = rng.integers(
                info_dtype.min, info_dtype.max, size=detail["shape"], endpoint=True
            ).astype(detail["dtype"])
        else:
            x = rng.normal(size=detail["shape"]).astype(detail["dtype"])
        assert np.array_equal(outputs(original, x), outputs(embedded, x))
        assert np.array_equal(outputs(original, x), outputs(replaced, x))


def test_embedded_weights_stay_16_byte_aligned() -> None:
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    data = manifest.embed((MODELS / "conv_int8.tflite").read_bytes(), b"x" * 77)
    model = schema.Model.GetRootAs(data, 0)
    starts = []
    for i in range(model.BuffersLength()):
        buf = model.Buffers(i)
        offset = flatbuffers.number_types.UOffsetTFlags.py_type(buf._tab.Offset(4))
        if offset and buf.DataLength():
            starts.append(buf._tab.Vector(offset))
    assert len(starts) > 2
    assert all(start % 16 == 0 for start in starts)


def test_source_date_epoch_pins_a_date_into_the_embedded_manifest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pipeline.config import BuildConfig

    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    assert "source_date" not in manifest.embedded_manifest(BuildConfig(), {}, {})
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    doc = manifest.embedded_manifest(BuildConfig(), {}, {})
    assert doc["source_date"] == "2023-11-14T22:13:20Z"
    assert manifest.created() == "2023-11-14T22:13:20Z"


def test_embed_refuses_bytes_that_are_not_tflite() -> None:
    with pytest.raises(ModelError, match="not a TFLite flatbuffer"):
        manifest.embed(b"not a model at all", b"{}")


def test_input_hashes_cover_files_and_folders(tmp_path: Path) -> None:
    from pipeline.config import BuildConfig, DataConfig

    folder = tmp_path / "images"
    (folder / "a").mkdir(parents=True)
    (folder / "a" / "1.png").write_bytes(b"one")
    (tmp_path / "m.keras").write_bytes(b"model")
    config = BuildConfig(model=tmp_path / "m.keras", data=DataConfig(path=folder))
    first = manifest.input_files(config)
    assert first["model"]["sha256"] == hashlib.sha256(b"model").hexdigest()
    assert first["data"][0]["files"] == 1
    (folder / "a" / "1.png").write_bytes(b"changed")
    assert manifest.input_files(config)["data"][0]["sha256"] != first["data"][0]["sha256"]
