"""Per-op profile: ops cut out of the flatbuffer, their outputs, their ranking, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from device_bench.cli import main
from device_bench.errors import ModelError
from device_bench.graph_cut import Graph
from device_bench.profile import ModelProfile, profile_isolated, profile_model, tensor_values
from device_bench.runtime import load_runtime
from device_bench.settings import BenchSettings
from device_bench.tensors import random_input
from tests.device_bench.tflite_files import RUNNABLE_MODELS, model_path

QUICK = BenchSettings(runs=20, warmup=1, min_seconds=0.02, timeout_s=120.0)


def _graph(name: str) -> Graph:
    path = model_path(name)
    return Graph(path.read_bytes(), str(path))


def _reference(content: bytes) -> object:
    runtime = load_runtime()
    return runtime.interpreter_class(
        model_content=content,
        experimental_op_resolver_type=runtime.op_resolver_type.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )


@pytest.mark.parametrize("name", [*RUNNABLE_MODELS, "dominant_conv_int8"])
def test_each_cut_op_computes_what_it_computes_inside_the_whole_model(name: str) -> None:
    graph = _graph(name)
    data = model_path(name).read_bytes()
    detail = _reference(data).get_input_details()[0]  # type: ignore[attr-defined]
    model_input = random_input(tuple(detail["shape"]), detail["dtype"].__name__, seed=3)
    whole = tensor_values(load_runtime(), data, model_input)
    for spec in graph.ops:
        single = _reference(graph.single_op(spec.index))
        single.allocate_tensors()  # type: ignore[attr-defined]
        feeds = [t for t in dict.fromkeys(spec.inputs) if not graph.is_constant(t)]
        for detail, tensor in zip(single.get_input_details(), feeds, strict=True):  # type: ignore[attr-defined]
            single.set_tensor(detail["index"], whole.get_tensor(tensor))  # type: ignore[attr-defined]
        single.invoke()  # type: ignore[attr-defined]
        out = single.get_tensor(single.get_output_details()[0]["index"])  # type: ignore[attr-defined]
        np.testing.assert_array_equal(out, whole.get_tensor(spec.outputs[0]), err_msg=spec.op)


def test_the_empty_model_returns_its_input() -> None:
    interpreter = _reference(_graph("dense_int8").empty_model())
    interpreter.allocate_tensors()  # type: ignore[attr-defined]
    index = interpreter.get_input_details()[0]["index"]  # type: ignore[attr-defined]
    interpreter.set_tensor(index, np.array([2.5], np.float32))  # type: ignore[attr-defined]
    interpreter.invoke()  # type: ignore[attr-defined]
    out = interpreter.get_output_details()[0]["index"]  # type: ignore[attr-defined]
    assert interpreter.get_tensor(out).tolist() == [2.5]  # type: ignore[attr-defined]


def test_a_file_that_is_no_flatbuffer_is_refused_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="TFL3"):
        Graph(b"not a model at all", "x.tflite")


def test_the_dominant_op_ranks_first_and_shares_add_up() -> None:
    profile = profile_model(model_path("dominant_conv_int8"), QUICK)

    assert [op.index for op in profile.ops] == list(range(len(profile.ops)))
    top = profile.top()[0]
    assert (top.index, top.op, top.dtype) == (1, "CONV_2D", "int8")
    assert top.share > 0.5
    assert sum(op.share for op in profile.ops) == pytest.approx(1.0)
    assert 0 < profile.share_of(quantize=True) < top.share
    assert profile.share_of(float_ops=True) == 0.0
    assert profile.whole_p50_ms > 0 and profile.overhead_ms > 0
    assert profile.sum_to_whole is not None and profile.sum_to_whole > 0


def test_a_float_model_counts_every_op_as_left_in_float() -> None:
    profile = profile_model(model_path("dense_float32"), QUICK)
    assert all(op.float_op for op in profile.ops)
    assert profile.share_of(float_ops=True) == pytest.approx(1.0)


def test_the_profile_survives_its_json_and_a_child_process() -> None:
    profile = profile_isolated(str(model_path("conv_int8")), QUICK)
    assert isinstance(profile, ModelProfile)
    assert ModelProfile.from_json(profile.to_json()) == profile
    assert [op.op for op in profile.ops][:2] == ["CONV_2D", "MAX_POOL_2D"]


def test_a_model_that_fails_to_profile_says_why(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\0\0\0\0TFL3 but nothing more")
    reason = profile_isolated(str(bad), QUICK)
    assert isinstance(reason, str) and "profiling failed" in reason


def test_cli_profile_writes_ops_to_json_and_top_ops_to_the_table(tmp_path: Path, capsys) -> None:
    out = tmp_path / "report.json"
    args = ["--runs", "10", "--warmup", "1", "--min-seconds", "0.02", "--json", str(out)]
    code = main([str(model_path("dominant_conv_int8")), "--profile", *args])

    assert code == 0
    entry = json.loads(out.read_text())["models"][0]
    ops = entry["profile"]["ops"]
    assert {"index", "op", "p50_ms", "share", "dtype", "float"} <= set(ops[0])
    assert [op["op"] for op in ops] == [
        "QUANTIZE",
        "CONV_2D",
        "MEAN",
        "FULLY_CONNECTED",
        "DEQUANTIZE",
    ]
    assert entry["profile"]["top"][0] == 1
    table = capsys.readouterr().out
    assert "QUANTIZE/DEQUANTIZE" in table and "#1    CONV_2D" in table


def test_without_profile_the_key_is_null(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    args = ["--runs", "5", "--warmup", "0", "--min-seconds", "0.01", "--json", str(out)]
    assert main([str(model_path("dense_int8")), *args]) == 0
    assert json.loads(out.read_text())["models"][0]["profile"] is None
