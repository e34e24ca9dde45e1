"""TensorFlow Lite Micro (TFLM) on this host, through the ``tflite-micro`` wheel.

Microcontrollers (Cortex-M patch monitors) run a model with TFLM: a fixed tensor
arena, the model in flash, reference or CMSIS-NN kernels. The wheel runs TFLM's
interpreter on the host with a recording allocator, which answers the three
questions asked before flashing: does every op run on TFLM, how big must the arena
be, and do TFLM's kernels give the same outputs.

``tflite_micro`` is an optional runtime like ``tflite_runtime``: it is imported only
inside the functions that run a model (never at import time) and it never brings
TensorFlow in. ``TflmInterpreter`` gives it the small part of LiteRT's
``Interpreter`` surface that ``runner.run_model`` uses, so ``--runtime tflm`` runs
models (and runtime verification) through the same code as every other runtime.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

TFLM = "tflm"
INSTALL_HINT = "pip install tflite-micro (the project's extra: pip install '.[micro]')"

# A generous arena for plain runs (verification): the host has memory to spare, and the
# smallest arena is what `find_arena` measures.
RUN_ARENA_BYTES = 64 * 1024 * 1024
# TFLM aligns arena allocations to 16 bytes; a finer search finds nothing new.
ARENA_RESOLUTION = 16
# Above this no arena is tried: the model does not fit any microcontroller.
MAX_ARENA_BYTES = 256 * 1024 * 1024

_MISSING_OP = re.compile(r"Didn't find op for builtin opcode '([A-Z0-9_]+)'")
_CUSTOM_OP = re.compile(r"Didn't find op for custom opcode '([^']+)'")
_ARENA_TOTAL = re.compile(r"Arena allocation total (\d+) bytes")
# Ops whose float tensors are the model's float interface, not float arithmetic.
_BOUNDARY_OPS = frozenset({"QUANTIZE", "DEQUANTIZE"})


def import_tflm() -> Any:
    """Imports ``tflite_micro``'s runtime module.

    Raises:
        ImportError: the wheel is not installed (the message says how to install it).
    """
    try:
        return importlib.import_module("tflite_micro.python.tflite_micro.runtime")
    except ImportError as error:
        raise ImportError(f"TFLM is not installed ({error}); {INSTALL_HINT}.") from error


def tflm_version() -> str:
    """The installed ``tflite-micro`` distribution's version."""
    try:
        return importlib.metadata.version("tflite-micro")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


@contextmanager
def captured_stderr() -> Iterator[list[str]]:
    """Captures what native code writes to file descriptor 2 (TFLM's error reporter).

    Yields:
        A list that holds the captured lines once the block has ended.
    """
    lines: list[str] = []
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines.extend(sink.read().decode(errors="replace").splitlines())


@dataclass(frozen=True)
class ModelOps:
    """What a model asks of an op resolver.

    Attributes:
        ops: The builtin op names the model uses, in first-use order (``CONV_2D``).
        custom_ops: Custom op names.
        float_ops: Ops computing in float32 (a float input or output tensor),
            besides the QUANTIZE/DEQUANTIZE at a float interface.
        inputs: The number of the main subgraph's inputs.
        outputs: The number of its outputs.
    """

    ops: tuple[str, ...]
    custom_ops: tuple[str, ...]
    float_ops: tuple[str, ...]
    inputs: int
    outputs: int


def model_ops(model_bytes: bytes) -> ModelOps:
    """Reads a model's ops with the schema the TFLM wheel ships (no TensorFlow).

    Args:
        model_bytes: The ``.tflite`` flatbuffer.

    Returns:
        The ops of the main subgraph (and any others).
    """
    tflm = import_tflm()
    schema = tflm.schema_fb
    names = {value: name for name, value in vars(schema.BuiltinOperator).items() if name.isupper()}
    model = tflm.convert_bytearray_to_object(bytearray(model_bytes))
    codes = [tflm.get_builtin_code_from_operator_code(code) for code in model.operatorCodes]
    custom = schema.BuiltinOperator.CUSTOM
    ops: dict[str, None] = {}
    customs: dict[str, None] = {}
    floats: dict[str, None] = {}
    for subgraph in model.subgraphs:
        for operator in subgraph.operators:
            code = codes[operator.opcodeIndex]
            if code == custom:
                raw = model.operatorCodes[operator.opcodeIndex].customCode
                customs[raw.decode() if isinstance(raw, bytes) else str(raw)] = None
                continue
            name = names.get(code, str(code))
            ops[name] = None
            tensors = [*_indices(operator.inputs), *_indices(operator.outputs)]
            dtypes = {subgraph.tensors[i].type for i in tensors if i >= 0}
            if schema.TensorType.FLOAT32 in dtypes and name not in _BOUNDARY_OPS:
                floats[name] = None
    main = model.subgraphs[0]
    return ModelOps(
        ops=tuple(ops),
        custom_ops=tuple(customs),
        float_ops=tuple(floats),
        inputs=len(_indices(main.inputs)),
        outputs=len(_indices(main.outputs)),
    )


def _indices(values: Any) -> list[int]:
    return [] if values is None else [int(v) for v in values]


def missing_ops(stderr_lines: list[str]) -> tuple[str, ...]:
    """The ops TFLM's resolver lacks, as its error reporter named them."""
    found: dict[str, None] = {}
    for line in stderr_lines:
        for pattern in (_MISSING_OP, _CUSTOM_OP):
            match = pattern.search(line)
            if match:
                found[match.group(1)] = None
    return tuple(found)


def arena_estimate(stderr_lines: list[str]) -> int | None:
    """The recording allocator's own total (``print_allocations``), if it printed one."""
    for line in stderr_lines:
        match = _ARENA_TOTAL.search(line)
        if match:
            return int(match.group(1))
    return None


class TflmError(RuntimeError):
    """TFLM refused a model; ``missing_ops`` names the ops its resolver lacks."""

    def __init__(self, message: str, missing: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.missing_ops = missing


def _details(detail: dict[str, Any], index: int) -> dict[str, Any]:
    params = detail["quantization_parameters"]
    scales, zero_points = params["scales"], params["zero_points"]
    quantization = (float(scales[0]), int(zero_points[0])) if len(scales) else (0.0, 0)
    return {
        "index": index,
        "shape": np.asarray(detail["shape"], np.int32),
        "dtype": np.dtype(detail["dtype"]).type,
        "quantization": quantization,
        "quantization_parameters": params,
    }


class TflmInterpreter:
    """TFLM's interpreter behind the part of LiteRT's ``Interpreter`` surface that
    ``runner.run_model`` uses. Tensor indices are input/output positions; TFLM cannot
    resize inputs, so models run one sample at a time.

    Args:
        model_path: Path of the ``.tflite`` file.
        arena_size: Tensor arena in bytes.
        **_: LiteRT's other keyword arguments (threads, op resolver), which TFLM lacks.
    """

    def __init__(self, model_path: str, arena_size: int = RUN_ARENA_BYTES, **_: Any) -> None:
        self.model_bytes = Path(model_path).read_bytes()
        self.arena_size = arena_size
        self.ops = model_ops(self.model_bytes)
        self._interpreter: Any = None
        self.stderr: list[str] = []

    def allocate_tensors(self) -> None:
        """Creates TFLM's interpreter in the arena (TFLM allocates on creation).

        Raises:
            TflmError: TFLM refused the model; the message names missing ops.
        """
        tflm = import_tflm()
        with captured_stderr() as lines:
            try:
                self._interpreter = tflm.Interpreter.from_bytes(
                    self.model_bytes, arena_size=self.arena_size
                )
                error: Exception | None = None
            except (RuntimeError, ValueError) as raised:
                error = raised
        self.stderr = lines
        if error is not None:
            raise self._refusal(error) from error

    def _refusal(self, error: Exception) -> TflmError:
        missing = missing_ops(self.stderr)
        if missing:
            return TflmError(
                f"TFLM lacks the op(s) {', '.join(missing)} (its op resolver has no kernel "
                "for them); replace them in the model or register a custom kernel",
                missing,
            )
        detail = [line.strip() for line in self.stderr if line.strip()]
        tail = f" ({' | '.join(detail[-3:])})" if detail else ""
        return TflmError(f"{error}{tail}")

    def _live(self) -> Any:
        if self._interpreter is None:
            raise RuntimeError("allocate_tensors() must be called first")
        return self._interpreter

    def get_input_details(self) -> list[dict[str, Any]]:
        live = self._live()
        return [_details(live.get_input_details(i), i) for i in range(self.ops.inputs)]

    def get_output_details(self) -> list[dict[str, Any]]:
        live = self._live()
        return [_details(live.get_output_details(i), i) for i in range(self.ops.outputs)]

    def set_tensor(self, index: int, value: np.ndarray) -> None:
        self._live().set_input(np.ascontiguousarray(value), index)

    def invoke(self) -> None:
        with captured_stderr() as lines:
            try:
                self._live().invoke()
                error: Exception | None = None
            except RuntimeError as raised:
                error = raised
        self.stderr = lines
        if error is not None:
            raise self._refusal(error) from error

    def get_tensor(self, index: int) -> np.ndarray:
        return np.array(self._live().get_output(index))

    def resize_tensor_input(self, index: int, shape: list[int]) -> None:
        raise RuntimeError("TFLM cannot resize an input; samples run one at a time")

    def print_allocations(self) -> list[str]:
        """The recording allocator's account of the arena, as lines."""
        with captured_stderr() as lines:
            self._live().print_allocations()
        return lines


class NoOpResolver:
    """TFLM has no LiteRT op resolver choice; kept for ``Runtime``'s interface."""

    BUILTIN_WITHOUT_DEFAULT_DELEGATES = None
