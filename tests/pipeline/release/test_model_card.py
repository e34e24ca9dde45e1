"""model_card.md/.json and sbom.cdx.json: written by every build, read from the report,
valid CycloneDX, the same for the same inputs."""

from __future__ import annotations

import dataclasses
import json
from importlib import metadata
from pathlib import Path

import pytest

from pipeline.release import model_card, sbom
from pipeline.release.report.schema import BuildReport, read_bench
from tests.pipeline import release_env

pytestmark = pytest.mark.slow  # every test reads a whole build


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.getbasetemp() / "release"
    out, run = release_env.release_build(root, "a")
    assert run.code == 1, run.stderr  # the job's size gate fails on purpose
    return root, out


def _report(out: Path) -> BuildReport:
    return BuildReport.from_json(json.loads((out / "report.json").read_text()))


def test_the_card_reads_the_report_and_the_input_hashes(release: tuple[Path, Path]) -> None:
    _, out = release
    card = json.loads((out / model_card.CARD_JSON).read_text())
    report = json.loads((out / "report.json").read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    assert card["intended_use"] == "not stated"
    assert model_card.NO_INTENDED_USE in report["warnings"]
    assert card["limitations"]["warnings"] == report["warnings"]
    assert card["model"]["sha256"] == manifest["inputs"]["model"]["sha256"]
    assert card["data"]["files"] == manifest["inputs"]["data"]
    test = report["data"]["splits"]["test"]
    assert card["data"]["splits"]["test"] == {
        "samples": test["samples"],
        "class_counts": test["label_counts"],
    }
    int8 = report["metrics"]["int8"]
    assert card["performance"]["int8"]["auroc"]["value"] == int8["auroc"]
    assert card["performance"]["int8"]["auroc"]["ci95"] == int8["ci95"]["auroc"]
    assert card["performance"]["int8"]["auroc"]["vs_float32"] == int8["vs_float32"]["auroc"]
    assert card["calibration"]["int8"]["ece"] == int8["calibration"]["ece"]
    assert card["changed_decisions"]["int8"]["positive_missed"] == int8["flips"]["positive_missed"]
    assert card["operating_point"] == report["operating_point"]
    assert [r["target"] for r in card["verified"]["runtimes"]] == [
        c["target"] for c in report["quantization"]["verification"]
    ]
    assert card["gates"]["passed"] is False
    assert "latency and memory (--no-bench)" in card["limitations"]["not_measured"]
    text = (out / model_card.CARD_MD).read_text()
    assert text == model_card.markdown(card)
    for heading in ("Intended use", "Data", "Operating point", "Performance", "Calibration",
                    "Changed decisions", "Subgroups", "Runtimes and devices", "Limitations",
                    "Provenance"):  # fmt: skip
        assert f"## {heading}" in text
    assert "release gates: FAILED (max_int8_bytes" in text
    assert manifest["artifacts"][model_card.CARD_MD]["bytes"] == len(text.encode())


def test_intended_use_reaches_the_card_and_silences_the_warning(release: tuple[Path, Path]) -> None:
    _, out = release
    report = _report(out)
    report.model = dataclasses.replace(report.model, intended_use="second reader, adults")
    card = model_card.card(report, {})
    assert card["intended_use"] == "second reader, adults"
    assert model_card.intended_use_warnings("second reader, adults") == []
    assert "second reader, adults" in model_card.markdown(card)


def test_the_sbom_is_valid_cyclonedx_of_the_device_runtime_and_the_build(
    release: tuple[Path, Path],
) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    _, out = release
    text = (out / sbom.SBOM_FILE).read_text()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    doc = json.loads(text)
    assert doc["specVersion"] == "1.6" and "timestamp" not in doc["metadata"]
    by_ref = {c["bom-ref"]: c for c in doc["components"]}
    for name in ("ai-edge-litert", "numpy"):
        ref = f"device-runtime:host:{name}@{metadata.version(name)}"
        assert by_ref[ref]["purl"] == f"pkg:pypi/{name}@{metadata.version(name)}"
        assert by_ref[ref]["scope"] == "required"
    for name in ("tensorflow", "keras"):
        assert f"build-environment:host:{name}@{metadata.version(name)}" in by_ref
    manifest = json.loads((out / "manifest.json").read_text())
    models = [c for c in doc["components"] if c["type"] == "machine-learning-model"]
    assert {m["name"] for m in models} == {
        "model_float32.tflite", "model_pruned_float32.tflite", "model_int8.tflite"
    }  # fmt: skip
    for m in models:
        assert m["hashes"] == [
            {"alg": "SHA-256", "content": manifest["artifacts"][m["name"]]["sha256"]}
        ]


def test_the_same_job_gives_the_same_card_and_sbom(release: tuple[Path, Path]) -> None:
    root, first = release
    second, run = release_env.release_build(root, "b")
    assert run.code == 1
    for name in (sbom.SBOM_FILE, model_card.CARD_JSON, model_card.CARD_MD):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_the_sbom_lists_what_an_ssh_device_reported(release: tuple[Path, Path]) -> None:
    _, out = release
    info = {"machine": "aarch64", "system": "Linux", "python": "3.9.2", "numpy": "1.26.4",
            "runtime": "tflite_runtime", "runtime_version": "2.14.0"}  # fmt: skip
    bench = {
        "int8": {
            "status": "ok", "runtime": "ai_edge_litert", "runtime_version": "2.3.0",
            "devices": {"bedside1": {"status": "ok", "device": info},
                        "down": {"status": "unreachable", "reason": "no route"}},
        }
    }  # fmt: skip
    report = dataclasses.replace(_report(out), bench=read_bench(bench, strict=False))
    doc = json.loads(sbom.document(report))
    refs = {c["bom-ref"] for c in doc["components"]}
    assert "device-runtime:bedside1:tflite-runtime@2.14.0" in refs
    assert "device-runtime:bedside1:numpy@1.26.4" in refs
    assert "device-runtime:bedside1:python@3.9.2" in refs
    assert not any(":down:" in ref for ref in refs)
    model = next(d for d in doc["dependencies"] if d["ref"].startswith("model:"))
    assert "device-runtime:bedside1:tflite-runtime@2.14.0" in model["dependsOn"]
