"""report.json keeps its shape: a default build's key paths equal the golden set."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "report_keys.json"
MICRO_KEYS = "quantization.micro"


def key_paths(doc: Any, prefix: str = "") -> set[str]:
    """Every key path of a JSON document: dict keys joined by `.`, list items as `[]`
    (`metrics.int8.flips.cases[].index`)."""
    paths: set[str] = set()
    if isinstance(doc, dict):
        for key, value in doc.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            paths.add(path)
            paths |= key_paths(value, path)
    elif isinstance(doc, list):
        for item in doc:
            paths |= key_paths(item, f"{prefix}[]")
    return paths


def test_key_paths_name_dict_keys_and_list_items() -> None:
    doc = {"a": {"b": [{"c": 1}, {"d": None}]}, "e": [1, 2], "f": {}}
    assert key_paths(doc) == {"a", "a.b", "a.b[].c", "a.b[].d", "e", "f"}


@pytest.mark.slow
def test_default_build_report_keys_are_unchanged(tmp_path: Path, regen_golden: bool) -> None:
    from pipeline.cli import main

    out = tmp_path / "b"
    assert main(["build", "--out", str(out), "--quiet"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["schema_version"] == 1
    keys = sorted(key_paths(report))
    if regen_golden:
        GOLDEN.write_text(json.dumps(keys, indent=1) + "\n")
    golden = json.loads(GOLDEN.read_text())
    if importlib.util.find_spec("tflite_micro") is None:
        # TFLM's account (quantization.micro) is there only with the [micro] extra, as in CI
        golden = [k for k in golden if not k.startswith(MICRO_KEYS)]
    assert keys == golden
