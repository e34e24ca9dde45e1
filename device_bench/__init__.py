"""device_bench: run and benchmark TFLite models on the device itself.

Needs only the standard library, numpy and a LiteRT interpreter
(``ai_edge_litert``, else ``tflite_runtime``, else ``tensorflow.lite``), so the
package can be copied to a bedside device as it is. The runtime is imported
only when a model is run, never at import time.

The API the pipeline uses:

- ``run_model(path, inputs, ...) -> RunResult``: outputs in this process.
- ``run_isolated(path, inputs, python=...) -> RunResult``: the same in a child
  process, possibly under another Python (another runtime).
- ``bench_models(paths, BenchSettings(...)) -> BenchReport``: latency and
  memory, each model in its own child process; ``.to_json()`` is the report.
- ``add_profiles(report) -> BenchReport``: each measured model's per-op latency.
- ``check_models(paths, ...) -> list[CheckResult]``: does each model run at all.
- ``micro_isolated(path) -> dict``: the model on TensorFlow Lite Micro (``tflite-micro``,
  optional): arena, flash, ops it lacks; in a child process.
"""

from device_bench.bench import measure_model
from device_bench.errors import (
    DeviceBenchError,
    InputDataError,
    ModelCrashedError,
    ModelError,
    ModelFileError,
    ModelRefusedError,
    RuntimeUnavailableError,
)
from device_bench.isolate import add_profiles, bench_models, measure_isolated
from device_bench.isolated_run import run_isolated
from device_bench.micro import MicroReport, micro_isolated, micro_report
from device_bench.report import BenchReport, ModelReport, Status
from device_bench.runner import RunResult, run_model
from device_bench.runtime import RUNTIME_NAMES, Runtime, load_runtime
from device_bench.settings import BenchSettings
from device_bench.smoke import CheckResult, check_models
from device_bench.stats import LatencyStats
from device_bench.tensors import Quantization, dequantize, quantize
from device_bench.version import __version__

__all__ = [
    "RUNTIME_NAMES",
    "BenchReport",
    "BenchSettings",
    "CheckResult",
    "DeviceBenchError",
    "InputDataError",
    "LatencyStats",
    "MicroReport",
    "ModelCrashedError",
    "ModelError",
    "ModelFileError",
    "ModelRefusedError",
    "ModelReport",
    "Quantization",
    "RunResult",
    "Runtime",
    "RuntimeUnavailableError",
    "Status",
    "__version__",
    "add_profiles",
    "bench_models",
    "check_models",
    "dequantize",
    "load_runtime",
    "measure_isolated",
    "measure_model",
    "micro_isolated",
    "micro_report",
    "quantize",
    "run_isolated",
    "run_model",
]
