"""Cuts smaller models out of a .tflite flatbuffer: one op alone, or every tensor as output.

The per-op profile times each op as a model of its own, and the per-op comparison of two
runtimes reads every intermediate tensor; LiteRT's Python API offers neither (no op
profiler, and XNNPACK may fuse intermediate tensors away), so both are made by rewriting
the flatbuffer with the schema module the LiteRT wheel ships (``schema_py_generated``, read
with the ``flatbuffers`` package it depends on). Ops are numbered by their position in the
main subgraph's operator list, which is their execution order and the numbering of
``bedside-lite inspect``.
"""

from __future__ import annotations

import copy
import importlib
from dataclasses import dataclass
from typing import Any

from device_bench.errors import ModelError

QUANTIZE_OPS = frozenset({"QUANTIZE", "DEQUANTIZE"})
_FLOAT_TYPES = frozenset({"FLOAT32", "FLOAT16", "FLOAT64", "BFLOAT16"})
_FILE_IDENTIFIER = b"TFL3"


def _schema() -> Any:
    # by name, like runtime.py: the schema ships with the runtime, TensorFlow last
    try:
        return importlib.import_module("ai_edge_litert.schema_py_generated")
    except ImportError:
        try:
            return importlib.import_module("tensorflow.lite.python.schema_py_generated")
        except ImportError as error:
            raise ModelError(
                "Cutting a model into ops needs the TFLite flatbuffer schema, which "
                "ai-edge-litert ships (ai_edge_litert.schema_py_generated); this device has "
                "neither it nor TensorFlow. Install ai-edge-litert (pip install ai-edge-litert) "
                "to use --profile or per-op comparison."
            ) from error


def _enum_names(cls: type) -> dict[int, str]:
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


@dataclass(frozen=True)
class OpSpec:
    """One op of the main subgraph.

    Attributes:
        index: Position in the operator list (execution order, as ``inspect`` numbers it).
        op: Builtin op name, e.g. ``CONV_2D`` (``CUSTOM:name`` for custom ops).
        inputs: Tensor indices it reads (optional inputs left out).
        outputs: Tensor indices it writes.
        dtype: Lower-case dtype of its first output, e.g. ``int8``.
        float_op: Whether it computes in float (touches a float tensor and is no
            QUANTIZE/DEQUANTIZE): an op left in float in a quantized model.
    """

    index: int
    op: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    dtype: str
    float_op: bool


class Graph:
    """A parsed .tflite model whose ops can be cut out.

    Args:
        data: The model's bytes.
        source: Name for messages (the file path).

    Raises:
        ModelError: The bytes are not a TFLite flatbuffer.
    """

    def __init__(self, data: bytes, source: str) -> None:
        if len(data) < 8 or data[4:8] != _FILE_IDENTIFIER:
            raise ModelError(
                f"'{source}' is not a TFLite flatbuffer (expected 'TFL3' at byte 4, received "
                f"{data[4:8]!r}). Pass a .tflite file made by the TFLite converter."
            )
        self._schema = _schema()
        try:
            self._model = self._schema.ModelT.InitFromPackedBuf(data, 0)
        except Exception as error:  # flatbuffers raises anything on corrupt input
            raise ModelError(f"'{source}' is a corrupt TFLite flatbuffer: {error}") from None
        self.source = source
        self._types = _enum_names(self._schema.TensorType)
        self.ops = tuple(self._op_spec(i, op) for i, op in enumerate(self._subgraph.operators))

    @property
    def _subgraph(self) -> Any:
        return self._model.subgraphs[0]

    @property
    def input_tensor(self) -> int:
        """Tensor index of the model's first input."""
        return int(self._subgraph.inputs[0])

    def quantization(self, tensor: int) -> tuple[float, int]:
        """``(scale, zero_point)`` of a per-tensor quantized tensor, ``(0.0, 0)`` otherwise
        (the form of an interpreter's ``get_input_details()[i]["quantization"]``)."""
        q = self._subgraph.tensors[tensor].quantization
        if q is None or q.scale is None or len(q.scale) != 1:
            return 0.0, 0
        return float(q.scale[0]), int(q.zeroPoint[0]) if q.zeroPoint is not None else 0

    def tensor_name(self, tensor: int) -> str:
        """Name of a tensor of the main subgraph (the converter's op path)."""
        name = self._subgraph.tensors[tensor].name
        return name.decode() if isinstance(name, bytes) else str(name)

    def tensor_dtype(self, tensor: int) -> str:
        """Lower-case dtype name of a tensor of the main subgraph."""
        return self._types.get(self._subgraph.tensors[tensor].type, "unknown").lower()

    def _op_name(self, op: Any) -> str:
        code = self._model.operatorCodes[op.opcodeIndex]
        builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
        name = _enum_names(self._schema.BuiltinOperator).get(builtin, str(builtin))
        if name == "CUSTOM" and code.customCode:
            name = f"CUSTOM:{code.customCode.decode()}"
        return name

    def _op_spec(self, index: int, op: Any) -> OpSpec:
        inputs = tuple(int(x) for x in (op.inputs if op.inputs is not None else []) if x >= 0)
        outputs = tuple(int(x) for x in (op.outputs if op.outputs is not None else []))
        name = self._op_name(op)
        dtypes = [self.tensor_dtype(t) for t in (*inputs, *outputs)]
        touches_float = any(d.upper() in _FLOAT_TYPES for d in dtypes)
        return OpSpec(
            index=index,
            op=name,
            inputs=inputs,
            outputs=outputs,
            dtype=self.tensor_dtype(outputs[0]) if outputs else "unknown",
            float_op=touches_float and name not in QUANTIZE_OPS,
        )

    def is_constant(self, tensor: int) -> bool:
        """Whether a tensor holds data in the file (weights, biases, shapes)."""
        buffer_index = self._subgraph.tensors[tensor].buffer
        buffers = self._model.buffers or []
        if buffer_index >= len(buffers):
            return False
        buffer = buffers[buffer_index]
        has_data = buffer.data is not None and len(buffer.data) > 0
        return bool(has_data or getattr(buffer, "size", 0))

    def _pack(self, model: Any) -> bytes:
        flatbuffers = importlib.import_module("flatbuffers")  # ai-edge-litert depends on it
        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=_FILE_IDENTIFIER)
        return bytes(builder.Output())

    def single_op(self, index: int) -> bytes:
        """A model holding op ``index`` alone; its non-constant inputs become model inputs.

        Only the tensors and buffers the op uses are kept, so the model is small.

        Args:
            index: The op's position in the main subgraph.

        Returns:
            The new model's bytes.

        Raises:
            ModelError: The model has control flow (several subgraphs).
        """
        if len(self._model.subgraphs) > 1:
            raise ModelError(
                f"'{self.source}' has {len(self._model.subgraphs)} subgraphs (control flow); "
                "cutting single ops supports single-subgraph models only."
            )
        spec = self.ops[index]
        source_graph = self._subgraph
        op = copy.copy(source_graph.operators[index])
        model = copy.copy(self._model)
        graph = copy.copy(source_graph)
        remap: dict[int, int] = {}
        buffers = [self._schema.BufferT()]  # buffer 0 is the empty sentinel
        tensors: list[Any] = []
        for tensor_index in (*spec.inputs, *spec.outputs):
            if tensor_index in remap:
                continue
            tensor = copy.copy(source_graph.tensors[tensor_index])
            if self.is_constant(tensor_index):
                buffers.append(self._model.buffers[tensor.buffer])
                tensor.buffer = len(buffers) - 1
            else:
                buffers.append(self._schema.BufferT())
                tensor.buffer = len(buffers) - 1
            remap[tensor_index] = len(tensors)
            tensors.append(tensor)
        op.inputs = [remap[x] if x >= 0 else x for x in source_graph.operators[index].inputs]
        op.outputs = [remap[x] for x in spec.outputs]
        graph.tensors = tensors
        graph.operators = [op]
        graph.inputs = [remap[x] for x in dict.fromkeys(spec.inputs) if not self.is_constant(x)]
        graph.outputs = [remap[x] for x in spec.outputs]
        model.subgraphs = [graph]
        model.buffers = buffers
        model.signatureDefs = None
        model.metadata = None
        model.metadataBuffer = None
        return self._pack(model)

    def empty_model(self) -> bytes:
        """A model with no op whose one float32 input of shape (1,) is its output.

        Its invoke costs only the interpreter's per-invoke overhead, which every one-op
        model pays on top of its op.
        """
        model = copy.copy(self._model)
        graph = copy.copy(self._subgraph)
        tensor = self._schema.TensorT()
        tensor.shape = [1]
        tensor.type = self._schema.TensorType.FLOAT32
        tensor.buffer = 1
        tensor.name = b"empty"
        graph.tensors = [tensor]
        graph.operators = []
        graph.inputs = [0]
        graph.outputs = [0]
        model.subgraphs = [graph]
        model.buffers = [self._schema.BufferT(), self._schema.BufferT()]
        model.signatureDefs = None
        model.metadata = None
        model.metadataBuffer = None
        return self._pack(model)

    def with_all_outputs(self) -> tuple[bytes, tuple[int, ...]]:
        """The whole model with every op's first output added to the model outputs.

        Returns:
            The model's bytes and, for each op in order, the position of its output among
            the new model's outputs.
        """
        model = copy.copy(self._model)
        graph = copy.copy(self._subgraph)
        outputs = list(graph.outputs)
        positions = []
        for spec in self.ops:
            tensor = spec.outputs[0]
            if tensor not in outputs:
                outputs.append(tensor)
            positions.append(outputs.index(tensor))
        graph.outputs = outputs
        model.subgraphs = [graph, *self._model.subgraphs[1:]]
        model.signatureDefs = None
        return self._pack(model), tuple(positions)
