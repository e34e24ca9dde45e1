"""`bedside-lite inspect` and device_bench's per-op profile number ops the same way."""

from __future__ import annotations

import pytest

from converters.inspection import inspect_tflite
from device_bench.graph_cut import Graph
from tests.device_bench.tflite_files import model_path


@pytest.mark.parametrize(
    "name", ["dense_float32", "dense_int8", "conv_int8", "conv1d_float32", "dominant_conv_int8"]
)
def test_inspect_and_graph_cut_agree_on_index_op_and_tensors(name: str) -> None:
    path = model_path(name)
    info = inspect_tflite(path)
    graph = Graph(path.read_bytes(), str(path))

    assert [(op.index, op.op, op.inputs, op.outputs) for op in info.ops] == [
        (op.index, op.op, op.inputs, op.outputs) for op in graph.ops
    ]
    floats = {op.index for op, _ in info.float_ops()}
    assert {op.index for op in graph.ops if op.float_op} == floats
