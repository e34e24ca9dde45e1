"""Reading a .tflite flatbuffer: ops, tensor dtypes, quantization and sparsity.

Whether a model is full-integer is decided here from the file itself, never assumed from
the converter settings that produced it. Needs only numpy and the flatbuffer schema that
ai-edge-litert (or TensorFlow) ships: no interpreter is created.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from converters.errors import ModelError, QuantizationError

FLOAT_TYPES = frozenset({"FLOAT32", "FLOAT16", "FLOAT64", "BFLOAT16"})


def tflite_schema() -> Any:
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:  # pragma: no cover - TF ships the same generated module
        from tensorflow.lite.python import schema_py_generated as schema
    return schema


def _enum_names(cls: type) -> dict[int, str]:
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of the main subgraph."""

    index: int
    name: str
    dtype: str
    shape: tuple[int, ...]
    constant: bool
    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    zeros: int | None  # zero entries of a constant tensor

    @property
    def is_float(self) -> bool:
        return self.dtype in FLOAT_TYPES

    def quantization_json(self) -> dict[str, Any]:
        per_tensor = len(self.scale) == 1
        return {
            "dtype": self.dtype.lower(),
            "shape": list(self.shape),
            "scale": (self.scale[0] if per_tensor else list(self.scale)) if self.scale else None,
            "zero_point": (self.zero_point[0] if per_tensor else list(self.zero_point))
            if self.zero_point
            else None,
        }


@dataclass(frozen=True)
class OpInfo:
    """One operator with the dtypes it reads and writes."""

    index: int
    op: str
    version: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


@dataclass(frozen=True)
class ModelInfo:
    """What a .tflite file holds, as read from its flatbuffer."""

    ops: tuple[OpInfo, ...]
    tensors: tuple[TensorInfo, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    metadata: dict[str, bytes]
    num_subgraphs: int

    @property
    def float_tensors(self) -> list[TensorInfo]:
        return [t for t in self.tensors if t.is_float]

    @property
    def full_integer(self) -> bool:
        """True when no tensor anywhere in the graph is floating point."""
        return not self.float_tensors

    @property
    def integer_ops(self) -> bool:
        """True when every op but the QUANTIZE/DEQUANTIZE at the edges is integer-only."""
        return not self.float_ops()

    def float_ops(self) -> list[tuple[OpInfo, TensorInfo]]:
        """(op, first float tensor) of each op other than QUANTIZE/DEQUANTIZE that touches
        a float tensor."""
        out = []
        for op in self.ops:
            if op.op in ("QUANTIZE", "DEQUANTIZE"):
                continue
            floats = [
                self.tensors[i] for i in (*op.inputs, *op.outputs) if self.tensors[i].is_float
            ]
            if floats:
                out.append((op, floats[0]))
        return out

    def op_touching(self, tensor: int) -> OpInfo | None:
        for op in self.ops:
            if tensor in op.inputs or tensor in op.outputs:
                return op
        return None

    def op_summary(self) -> dict[str, dict[str, Any]]:
        """Per op type: count, versions and the dtypes it reads and writes."""
        out: dict[str, dict[str, Any]] = {}
        for op in self.ops:
            entry = out.setdefault(op.op, {"count": 0, "versions": set(), "dtypes": set()})
            entry["count"] += 1
            entry["versions"].add(op.version)
            entry["dtypes"].update(self.tensors[i].dtype.lower() for i in (*op.inputs, *op.outputs))
        return {
            k: {
                "count": v["count"],
                "versions": sorted(v["versions"]),
                "dtypes": sorted(v["dtypes"]),
            }
            for k, v in sorted(out.items())
        }

    def weight_sparsity(self) -> list[dict[str, Any]]:
        return [
            {
                "name": t.name,
                "dtype": t.dtype.lower(),
                "params": int(np.prod(t.shape)),
                "sparsity": t.zeros / max(int(np.prod(t.shape)), 1),
            }
            for t in self.tensors
            if t.constant and t.zeros is not None and len(t.shape) >= 2
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "full_integer": self.full_integer,
            "integer_ops": self.integer_ops,
            "subgraphs": self.num_subgraphs,
            "input": self.tensors[self.inputs[0]].quantization_json(),
            "output": self.tensors[self.outputs[0]].quantization_json(),
            "ops": [
                {
                    "index": op.index,
                    "op": op.op,
                    "version": op.version,
                    "inputs": [self.tensors[i].dtype.lower() for i in op.inputs],
                    "outputs": [self.tensors[i].dtype.lower() for i in op.outputs],
                    "output_name": self.tensors[op.outputs[0]].name if op.outputs else None,
                }
                for op in self.ops
            ],
            "op_summary": self.op_summary(),
            "float_tensors": [t.name for t in self.float_tensors],
            "weight_sparsity": self.weight_sparsity(),
            "metadata": sorted(self.metadata),
        }


def inspect_tflite(source: bytes | Path) -> ModelInfo:
    """Parses a .tflite flatbuffer.

    Raises:
        ModelError: the bytes are not a TFLite model.
    """
    data = source.read_bytes() if isinstance(source, Path) else source
    name = str(source) if isinstance(source, Path) else "<bytes>"
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelError(
            f"'{name}' is not a TFLite flatbuffer (expected the identifier 'TFL3' at byte 4, "
            f"received {data[4:8]!r}). Pass a .tflite file produced by the TFLite converter."
        )
    schema = tflite_schema()
    try:
        model = schema.ModelT.InitFromPackedBuf(data, 0)
    except Exception as exc:  # noqa: BLE001 - flatbuffers raises anything on corrupt input
        raise ModelError(f"'{name}' is a corrupt TFLite flatbuffer: {exc}") from None
    type_names = _enum_names(schema.TensorType)
    op_names = _enum_names(schema.BuiltinOperator)
    graph = model.subgraphs[0]
    buffers = model.buffers or []

    tensors = []
    for i, t in enumerate(graph.tensors or []):
        buf = buffers[t.buffer] if t.buffer < len(buffers) else None
        raw = getattr(buf, "data", None) if buf is not None else None
        constant = raw is not None and len(raw) > 0
        zeros = (
            int(np.count_nonzero(np.asarray(raw, np.uint8).reshape(-1) == 0))
            if constant and type_names.get(t.type) in ("INT8", "UINT8")
            else None
        )
        if constant and type_names.get(t.type) == "FLOAT32":
            values = np.frombuffer(bytes(np.asarray(raw, np.uint8)), np.float32)
            zeros = int(np.count_nonzero(values == 0))
        q = t.quantization
        scale = tuple(float(s) for s in (q.scale if q is not None and q.scale is not None else []))
        zp = tuple(
            int(z) for z in (q.zeroPoint if q is not None and q.zeroPoint is not None else [])
        )
        tname = t.name.decode() if isinstance(t.name, bytes) else str(t.name)
        shape = tuple(int(d) for d in (t.shape if t.shape is not None else []))
        tensors.append(
            TensorInfo(
                i, tname, type_names.get(t.type, str(t.type)), shape, constant, scale, zp, zeros
            )
        )

    ops = []
    for i, op in enumerate(graph.operators or []):
        code = model.operatorCodes[op.opcodeIndex]
        builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
        op_name = op_names.get(builtin, str(builtin))
        if op_name == "CUSTOM" and code.customCode:
            op_name = f"CUSTOM:{code.customCode.decode()}"
        ops.append(
            OpInfo(
                i,
                op_name,
                int(code.version),
                tuple(int(x) for x in (op.inputs if op.inputs is not None else []) if x >= 0),
                tuple(int(x) for x in (op.outputs if op.outputs is not None else [])),
            )
        )

    metadata = {}
    for m in model.metadata or []:
        key = m.name.decode() if isinstance(m.name, bytes) else str(m.name)
        buf = buffers[m.buffer] if m.buffer < len(buffers) else None
        metadata[key] = (
            bytes(np.asarray(buf.data, np.uint8))
            if buf is not None and buf.data is not None
            else b""
        )
    return ModelInfo(
        tuple(ops),
        tuple(tensors),
        tuple(int(x) for x in graph.inputs),
        tuple(int(x) for x in graph.outputs),
        metadata,
        len(model.subgraphs),
    )


def require_full_integer(info: ModelInfo, source: str, float_edges: bool = False) -> None:
    """Raises QuantizationError naming the first op that reads or writes a float tensor.

    Args:
        info: the inspected model.
        source: file name for the message.
        float_edges: accept float input/output tensors converted by QUANTIZE/DEQUANTIZE
            (`--io float32`); every other op must still be integer.
    """
    bad_ops = info.float_ops()
    if bad_ops:  # name the op computing in float, not the DEQUANTIZE feeding it
        op, t = bad_ops[0]
        count = len(bad_ops)
    elif float_edges or info.full_integer:
        return
    else:
        t = info.float_tensors[0]
        op = info.op_touching(t.index)  # type: ignore[assignment]
        count = len(info.float_tensors)
    where = f"op #{op.index} {op.op}" if op is not None else "no op (a graph input/output)"
    raise QuantizationError(
        f"'{source}' is not full-integer: {count} float op(s) or tensor(s) remain; the first "
        f"is {where} on '{t.name}' ({t.dtype.lower()}). Every op must be integer for an int8 "
        "deployment: check that this layer has an int8 TFLite kernel, or use --io float32 to "
        "keep float edges on purpose."
    )
