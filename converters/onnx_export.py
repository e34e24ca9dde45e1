"""Keras / TFLite -> ONNX for vendors that run ONNX Runtime, and the outputs to prove parity.

Two files: `model_pruned_float32.onnx` from the pruned Keras model (tf2onnx `from_function`
with an explicit input signature: `from_keras` fails on Keras 3 Sequential models), and
`model_int8.onnx` from `model_int8.tflite` (tf2onnx `from_tflite`: a QuantizeLinear /
DequantizeLinear graph keeping the TFLite I/O and activation types, so int8 I/O stays int8;
int8 weights are stored as uint8 with their zero points shifted by 128, see
`_unsigned_weights`). Both have
one input `input` (dynamic batch) and one output `output`, and pass
`onnx.checker.check_model(full_check=True)`.

`export` runs each file in onnxruntime next to its source on the same inputs (float ONNX
against Keras, int8 ONNX against the int8 .tflite run by device_bench) and returns the raw
outputs and their numeric differences. Whether they agree closely enough to ship (class
probabilities, predictions at the operating point, bounds, warnings) is judged by the
release stage, `pipeline/release/onnx_parity.py`.

tf2onnx, onnx and onnxruntime (the `onnx` extra) are imported inside the functions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from converters.errors import MissingExtraError
from converters.tflite import INPUT_NAME, OUTPUT_NAME

if TYPE_CHECKING:
    import keras

DEFAULT_OPSET = 17
FLOAT_FILENAME = "model_pruned_float32.onnx"
INT8_FILENAME = "model_int8.onnx"
_EXTRA_MODULES = ("tf2onnx", "onnx", "onnxruntime")


def require_extra(feature: str = "ONNX export") -> None:
    """Raises MissingExtraError unless tf2onnx, onnx and onnxruntime are installed.

    Only looks the packages up (no import), so it is cheap enough to call before any work.
    """
    for name in _EXTRA_MODULES:
        if find_spec(name) is None:
            raise MissingExtraError(name, "onnx", feature)


def _check(proto: Any) -> bytes:
    import onnx

    onnx.checker.check_model(proto, full_check=True)
    return proto.SerializeToString()


def keras_to_onnx(model: keras.Model, opset: int = DEFAULT_OPSET) -> bytes:
    """The Keras model (inference mode) as a checked float32 ONNX model."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    import tf2onnx

    spec = model.inputs[0]
    signature = [tf.TensorSpec((None, *spec.shape[1:]), tf.float32, name=INPUT_NAME)]
    fn = tf.function(lambda x: {OUTPUT_NAME: model(x, training=False)}, input_signature=signature)
    proto, _ = tf2onnx.convert.from_function(fn, input_signature=signature, opset=opset)
    return _check(proto)


def _rename_io(graph: Any, new_input: str, new_output: str) -> None:
    """Gives the single graph input and output stable names (TFLite names vary)."""
    renames = {graph.input[0].name: new_input, graph.output[0].name: new_output}
    for node in graph.node:
        node.input[:] = [renames.get(n, n) for n in node.input]
        node.output[:] = [renames.get(n, n) for n in node.output]
    for info in (*graph.input, *graph.output, *graph.value_info):
        info.name = renames.get(info.name, info.name)


def _unsigned_weights(graph: Any) -> int:
    """Stores every int8 constant read by a DequantizeLinear as uint8, zero point + 128.

    The dequantized values are identical, ((q + 128) - (zp + 128)) * scale, but onnxruntime
    then fuses the QDQ MatMul / Conv into a uint8 x uint8 kernel instead of uint8 x int8. On
    x86 CPUs with AVX2 but no VNNI, its uint8 x int8 kernel (VPMADDUBSW) saturates the sum
    of two adjacent products at int16 (255 * 127 * 2 > 32767): in a default session a
    layer's output can be many steps off the .tflite, with the same file exact on a VNNI
    CPU. The uint8 x uint8 kernel widens to int16 first and cannot saturate.

    Returns:
        The number of DequantizeLinear nodes changed.
    """
    from onnx import TensorProto, numpy_helper

    inits = {init.name: init for init in graph.initializer}
    unsigned: dict[str, str] = {}  # int8 initializer -> its uint8 copy
    changed = 0
    for node in graph.node:
        if node.op_type != "DequantizeLinear" or len(node.input) < 3:
            continue
        weight, zero_point = (inits.get(name) for name in (node.input[0], node.input[2]))
        if weight is None or zero_point is None:
            continue
        if weight.data_type != TensorProto.INT8 or zero_point.data_type != TensorProto.INT8:
            continue
        # new initializers: a zero point may be shared with activation Q/DQ nodes
        for i, init in ((0, weight), (2, zero_point)):
            if init.name not in unsigned:
                name = f"{init.name}_u8"
                while name in inits:
                    name += "_"
                shifted = (numpy_helper.to_array(init).astype(np.int16) + 128).astype(np.uint8)
                inits[name] = numpy_helper.from_array(shifted, name)
                graph.initializer.append(inits[name])
                unsigned[init.name] = name
            node.input[i] = unsigned[init.name]
        changed += 1
    used = {name for node in graph.node for name in node.input}
    used |= {info.name for info in (*graph.input, *graph.output)}
    kept = [init for init in graph.initializer if init.name in used or init.name not in unsigned]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return changed


def tflite_to_onnx(tflite_path: Path, opset: int = DEFAULT_OPSET) -> bytes:
    """The .tflite file (int8 or float) as a checked ONNX model with the same I/O types."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tf2onnx

    proto, _ = tf2onnx.convert.from_tflite(str(tflite_path), opset=opset)
    if len(proto.graph.input) != 1 or len(proto.graph.output) != 1:
        raise ValueError(
            f"'{tflite_path}' converted to {len(proto.graph.input)} inputs and "
            f"{len(proto.graph.output)} outputs; expected one of each."
        )
    _rename_io(proto.graph, INPUT_NAME, OUTPUT_NAME)
    _unsigned_weights(proto.graph)
    return _check(proto)


def run_onnx(model: bytes | Path, x: np.ndarray) -> np.ndarray:
    """Runs an ONNX model in onnxruntime (CPU, one thread) on `x`, in the input's dtype.

    Returns:
        The raw output, in the output's own dtype (int8 for an int8-I/O model).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    data = model.read_bytes() if isinstance(model, Path) else model
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    return np.asarray(session.run([OUTPUT_NAME], {INPUT_NAME: x})[0])


def output_difference(onnx_raw: np.ndarray, tflite_raw: np.ndarray) -> tuple[float, int | None]:
    """The largest absolute difference of two raw outputs of the same model.

    Returns:
        (largest |onnx - tflite| in the outputs' own units, the same as a whole number of
        quantization steps for integer outputs, or None for float outputs).
    """
    onnx_raw, tflite_raw = np.asarray(onnx_raw), np.asarray(tflite_raw)
    diff = np.abs(onnx_raw.astype(np.float64) - tflite_raw.astype(np.float64))
    steps = int(diff.max()) if np.issubdtype(tflite_raw.dtype, np.integer) else None
    return float(diff.max()), steps


@dataclass(frozen=True)
class Int8Outputs:
    """The int8 ONNX model and its source, the int8 .tflite, on the same inputs."""

    onnx_raw: np.ndarray  # the ONNX output tensor, in its own dtype (int8 for int8 I/O)
    tflite_raw: np.ndarray  # the .tflite's output tensor (device_bench), same dtype
    onnx_outputs: np.ndarray  # onnx_raw dequantized to real values
    tflite_outputs: np.ndarray  # tflite_raw dequantized to real values


@dataclass(frozen=True)
class OnnxExport:
    """The ONNX files and what they and their sources compute on the same inputs.

    Whether they agree closely enough to ship is the release stage's call
    (`pipeline/release/onnx_parity.py`); here are only the numbers.
    """

    float_onnx: bytes
    int8_onnx: bytes | None
    opset: int
    float_outputs: np.ndarray  # float ONNX outputs on the inputs
    keras_outputs: np.ndarray  # the Keras model's outputs there
    int8: Int8Outputs | None  # None when only the float model was exported


def export(
    model: keras.Model,
    int8_tflite: Path | None,
    x: np.ndarray,
    opset: int = DEFAULT_OPSET,
) -> OnnxExport:
    """Converts the model(s) and runs each ONNX file and its source on the samples `x`.

    Args:
        model: the pruned Keras model: the float ONNX source and its reference.
        int8_tflite: the int8 .tflite file: the int8 ONNX source and its reference; None
            exports the float model only.
        x: real-valued model inputs, e.g. the test split; quantized with the .tflite input's
            scale and zero point for an integer-input int8 model.
        opset: ONNX opset of both files.

    Returns:
        Both files as bytes and the raw outputs of each file and its source on `x`.
    """
    x = np.asarray(x, np.float32)
    float_onnx = keras_to_onnx(model, opset)
    float_out = run_onnx(float_onnx, x)
    keras_out = model.predict(x, verbose=0, batch_size=256)
    if int8_tflite is None:
        return OnnxExport(float_onnx, None, opset, float_out, keras_out, None)

    from device_bench.inputs import to_model_dtype
    from device_bench.runner import run_model
    from device_bench.tensors import dequantize

    int8_onnx = tflite_to_onnx(int8_tflite, opset)
    reference = run_model(int8_tflite, x)
    int8_raw = run_onnx(int8_onnx, to_model_dtype(x, reference.input_quantization))
    int8 = Int8Outputs(
        onnx_raw=int8_raw,
        tflite_raw=reference.raw_outputs,
        onnx_outputs=dequantize(int8_raw, reference.output_quantization),
        tflite_outputs=reference.outputs,
    )
    return OnnxExport(float_onnx, int8_onnx, opset, float_out, keras_out, int8)


def probe_inputs(
    model: keras.Model, int8_tflite: Path | None, samples: int = 64, seed: int = 0
) -> np.ndarray:
    """Seeded inputs for a parity check without data (`export-onnx`).

    With an int8 .tflite they are random integer codes dequantized with its input scale, so
    they span the calibrated input range; otherwise standard normal values.
    """
    rng = np.random.default_rng(seed)
    shape = (samples, *tuple(model.inputs[0].shape[1:]))
    if int8_tflite is None:
        return rng.standard_normal(shape).astype(np.float32)
    from device_bench.runner import run_model
    from device_bench.tensors import dequantize

    q = run_model(int8_tflite, None).input_quantization
    if not q.is_quantized:
        return rng.standard_normal(shape).astype(np.float32)
    info = np.iinfo(np.dtype(q.dtype))
    codes = rng.integers(info.min, info.max, size=shape, endpoint=True).astype(q.dtype)
    return dequantize(codes, q)
