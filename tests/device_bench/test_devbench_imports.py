"""device_bench must run on a device with only the stdlib, numpy and a LiteRT interpreter."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import device_bench
from tests.device_bench.tflite_files import model_path

PACKAGE_DIR = Path(device_bench.__file__).resolve().parent
FORBIDDEN = (
    "tensorflow",
    "keras",
    "onnx",
    "onnxruntime",
    "tf2onnx",
    "sklearn",
    "pipeline",
    "converters",
)

_PROGRAM = """
import json, sys
import numpy as np
import device_bench
lazy = "ai_edge_litert" not in sys.modules and "tflite_runtime" not in sys.modules
from device_bench import BenchSettings, measure_model
from device_bench.cli import main
model, tmp = sys.argv[1], sys.argv[2]
np.save(tmp + "/x.npy", np.zeros((3, 16), dtype=np.float32))
codes = [
    main(["run", model, "--input", tmp + "/x.npy", "--output", tmp + "/y.npz"]),
    main([model, "--runs", "5", "--warmup", "0", "--min-seconds", "0", "--json", "-"]),
]
measure_model(model, BenchSettings(runs=5, warmup=0, min_seconds=0))
forbidden = json.loads(sys.argv[3])
loaded = sorted(m for m in sys.modules if m.split(".")[0] in forbidden)
print(json.dumps({"codes": codes, "loaded": loaded, "lazy": lazy}))
"""


def test_no_heavy_module_is_imported_by_a_full_run(tmp_path: Path) -> None:
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            _PROGRAM,
            str(model_path("dense_int8")),
            str(tmp_path),
            json.dumps(FORBIDDEN),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )

    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["codes"] == [0, 0]
    assert result["loaded"] == []
    assert result["lazy"], "importing device_bench must not import a runtime"


def _imports(tree: ast.AST) -> list[tuple[str, int]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name.split(".")[0], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module.split(".")[0], node.lineno))
    return found


def test_source_imports_only_stdlib_numpy_and_itself() -> None:
    allowed = set(sys.stdlib_module_names) | {"numpy", "device_bench", "__future__"}
    offenders = [
        f"{path.name}:{line}: {module}"
        for path in sorted(PACKAGE_DIR.glob("*.py"))
        for module, line in _imports(ast.parse(path.read_text()))
        if module not in allowed
    ]

    # Runtimes are imported by name (importlib) in runtime.py, and only on demand.
    assert offenders == []
