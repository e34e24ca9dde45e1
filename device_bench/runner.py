"""Runs a single-input, single-output TFLite model on a batch of samples.

This is what the pipeline calls (in-process, or through ``python -m
device_bench run`` under another runtime) to get a model's outputs on the
device's interpreter, dequantized to float32.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from device_bench.errors import InputDataError, ModelError, ModelRefusedError
from device_bench.inputs import fit_samples, to_model_dtype
from device_bench.model_file import check_model_file
from device_bench.runtime import LoadedInterpreter, Runtime, load_interpreter, load_runtime
from device_bench.tensors import (
    DEFAULT_SEED,
    Quantization,
    dequantize,
    quantization_of,
    random_input,
)

DEFAULT_BATCH_SIZE = 32


@dataclass(frozen=True)
class ModelIO:
    """The single input and output of a model, as the interpreter reports them.

    Attributes:
        input_index: Interpreter tensor index of the input.
        output_index: Interpreter tensor index of the output.
        input_shape: Input shape the model was allocated with, batch first.
        input_signature: Input shape with ``-1`` for dynamic dimensions.
        input_quantization: Input dtype and quantization.
        output_quantization: Output dtype and quantization.
    """

    input_index: int
    output_index: int
    input_shape: tuple[int, ...]
    input_signature: tuple[int, ...]
    input_quantization: Quantization
    output_quantization: Quantization

    @property
    def dynamic_batch(self) -> bool:
        """Whether the batch dimension can be resized (Keras-converted models)."""
        return len(self.input_signature) > 0 and self.input_signature[0] == -1


def model_io(interpreter: Any, model_path: str) -> ModelIO:
    """Describes a model's input and output.

    Args:
        interpreter: An interpreter of the model.
        model_path: Path of the model, for messages.

    Returns:
        The input and output description.

    Raises:
        ModelError: The model has other than one input and one output.
    """
    inputs = interpreter.get_input_details()
    outputs = interpreter.get_output_details()
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelError(
            f"Model '{model_path}' has {len(inputs)} input(s) and {len(outputs)} output(s); "
            "device_bench supports exactly one input and one output. Export a model with a "
            "single input and output (e.g. concatenate heads) for device runs."
        )
    detail = inputs[0]
    shape = tuple(int(d) for d in detail["shape"])
    signature = tuple(int(d) for d in detail.get("shape_signature", detail["shape"]))
    return ModelIO(
        input_index=int(detail["index"]),
        output_index=int(outputs[0]["index"]),
        input_shape=shape,
        input_signature=signature if len(signature) == len(shape) else shape,
        input_quantization=quantization_of(detail),
        output_quantization=quantization_of(outputs[0]),
    )


@dataclass(frozen=True, eq=False)
class RunResult:
    """Outputs of a model on a batch of samples.

    Attributes:
        outputs: Outputs dequantized to float32, shaped ``(N, ...)``.
        raw_outputs: The output tensor's values in its own dtype.
        input_quantization: The model input's dtype and quantization.
        output_quantization: The model output's dtype and quantization.
        runtime: Name of the runtime used.
        runtime_version: Version of that runtime.
        xnnpack: Whether default delegates were in use.
        batched: Whether samples ran in batches (dynamic batch dimension).
        note: Why the setup differs from what was asked for, else ``None``.
    """

    outputs: np.ndarray
    raw_outputs: np.ndarray
    input_quantization: Quantization
    output_quantization: Quantization
    runtime: str
    runtime_version: str
    xnnpack: bool
    batched: bool
    note: str | None = field(default=None)


def _invoke(interpreter: Any, io: ModelIO, batch: np.ndarray) -> np.ndarray:
    interpreter.set_tensor(io.input_index, batch)
    interpreter.invoke()
    return np.array(interpreter.get_tensor(io.output_index))


def _run_batched(interpreter: Any, io: ModelIO, samples: np.ndarray, batch_size: int) -> np.ndarray:
    results = []
    allocated: tuple[int, ...] | None = None
    for start in range(0, samples.shape[0], batch_size):
        batch = samples[start : start + batch_size]
        if batch.shape != allocated:
            interpreter.resize_tensor_input(io.input_index, list(batch.shape))
            interpreter.allocate_tensors()
            allocated = batch.shape
        results.append(_invoke(interpreter, io, batch))
    return np.concatenate(results, axis=0)


def _run_one_by_one(interpreter: Any, io: ModelIO, samples: np.ndarray) -> np.ndarray:
    results = [_invoke(interpreter, io, samples[i : i + 1]) for i in range(samples.shape[0])]
    return np.concatenate(results, axis=0)


def _fit_inputs(inputs: np.ndarray, io: ModelIO, model_path: str) -> np.ndarray:
    sample_shape = [
        -1 if dynamic == -1 else size
        for size, dynamic in zip(io.input_shape[1:], io.input_signature[1:], strict=True)
    ]
    samples = fit_samples(inputs, sample_shape, source="array", model=model_path)
    if tuple(samples.shape[1:]) != io.input_shape[1:] and not io.dynamic_batch:
        raise InputDataError(
            f"Input array has sample shape {tuple(samples.shape[1:])}; model '{model_path}' "
            f"was allocated with {io.input_shape[1:]} and cannot be resized."
        )
    return to_model_dtype(samples, io.input_quantization)


def _open(
    runtime: Runtime, model_path: str, threads: int, xnnpack: bool, delegate_fallback: bool
) -> LoadedInterpreter:
    return load_interpreter(
        runtime, model_path, threads=threads, xnnpack=xnnpack, delegate_fallback=delegate_fallback
    )


def run_model(
    path: str | os.PathLike[str],
    inputs: np.ndarray | None,
    *,
    runtime: str | Runtime | None = None,
    threads: int = 1,
    xnnpack: bool = True,
    delegate_fallback: bool = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
    seed: int = DEFAULT_SEED,
) -> RunResult:
    """Runs a model on every sample of ``inputs``.

    Models whose input signature has a dynamic batch dimension (Keras-converted
    models: shape ``[1, ...]``, signature ``[-1, ...]``) run ``batch_size``
    samples per invoke; others, or when resizing fails, one sample at a time.

    Args:
        path: Path of a ``.tflite`` model with one input and one output.
        inputs: Real (float) values shaped ``(N, *input_shape[1:])``; quantized
            with the model input's scale and zero point for integer inputs.
            Integers already of the input's dtype are passed through. ``None``
            runs one seeded random sample of the allocated input shape in the
            input's own dtype (a smoke test that the model runs at all).
        runtime: Runtime name (see ``runtime.RUNTIME_NAMES``), a loaded
            ``Runtime``, or ``None`` for the first installed one.
        threads: Number of interpreter threads.
        xnnpack: Whether to use the runtime's default delegates (XNNPACK).
        delegate_fallback: Whether to retry without default delegates when they
            refuse the model; the result's ``note`` then says so.
        batch_size: Samples per invoke for dynamic-batch models.
        seed: Seed of the random sample when ``inputs`` is ``None``.

    Returns:
        The outputs, dequantized and raw.

    Raises:
        ModelFileError: ``path`` is not a TFLite file.
        ModelError: The model has several inputs or outputs, or a fixed batch
            dimension other than 1.
        InputDataError: ``inputs`` does not fit the model's input shape.
        ModelRefusedError: The interpreter raised while loading or running.
        RuntimeUnavailableError: No (or not the requested) runtime is installed.
    """
    model_path = str(check_model_file(path))
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1; received {batch_size}.")
    loaded_runtime = runtime if isinstance(runtime, Runtime) else load_runtime(runtime)
    loaded = _open(loaded_runtime, model_path, threads, xnnpack, delegate_fallback)
    io = model_io(loaded.interpreter, model_path)
    if not io.input_shape:
        raise ModelError(f"Model '{model_path}' has a scalar input; expected a batch dimension.")
    if not io.dynamic_batch and io.input_shape[0] != 1:
        raise ModelError(
            f"Model '{model_path}' has a fixed batch of {io.input_shape[0]} (input shape "
            f"{list(io.input_shape)}); expected batch 1 or a dynamic batch. Re-export it "
            "with batch size 1 or None."
        )
    if inputs is None:
        # One seeded random sample in the input's own dtype: a smoke test.
        model_inputs = random_input(io.input_shape, io.input_quantization.dtype, seed=seed)
    else:
        model_inputs = _fit_inputs(np.asarray(inputs), io, model_path)
    note = loaded.note("ran")
    raw: np.ndarray | None = None
    batched = False
    several = model_inputs.shape[0] > 1 and batch_size > 1
    if io.dynamic_batch and (several or model_inputs.shape[1:] != io.input_shape[1:]):
        try:
            raw = _run_batched(loaded.interpreter, io, model_inputs, batch_size)
            batched = True
        except Exception:  # resize support varies by model and runtime
            # A failed resize can leave the interpreter unusable: start afresh.
            loaded = _open(loaded_runtime, model_path, threads, loaded.xnnpack, delegate_fallback)
    try:
        if raw is None:
            raw = _run_one_by_one(loaded.interpreter, io, model_inputs)
    except Exception as error:  # kernels raise RuntimeError/ValueError
        raise ModelRefusedError(
            f"{loaded_runtime.name} {loaded_runtime.version} failed to run model "
            f"'{model_path}': {type(error).__name__}: {error}"
        ) from error
    return RunResult(
        outputs=dequantize(raw, io.output_quantization),
        raw_outputs=raw,
        input_quantization=io.input_quantization,
        output_quantization=io.output_quantization,
        runtime=loaded_runtime.name,
        runtime_version=loaded_runtime.version,
        xnnpack=loaded.xnnpack,
        batched=batched,
        note=note,
    )
