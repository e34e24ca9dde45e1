"""LiteRT's CompiledModel API (``ai_edge_litert.compiled_model``) behind the Interpreter's face.

CompiledModel is the API new LiteRT applications use and the door to GPU and NPU
accelerators. ``--api compiled`` runs a file through it; everything else in device_bench
(bench, run, the child processes) keeps calling ``create_interpreter``/``invoke``, so the
adapter below offers the few Interpreter methods they use. Where an accelerator is missing
CompiledModel raises (it does not fall back), and device_bench reports that as a refusal
(``ModelRefusedError``), exactly like XNNPACK refusing a model.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from device_bench.errors import RuntimeUnavailableError
from device_bench.graph_cut import Graph
from device_bench.runtime import Runtime, load_runtime

APIS = ("interpreter", "compiled")
ACCELERATORS = ("cpu", "gpu", "npu")


class CompiledInterpreter:
    """A CompiledModel that answers to the Interpreter methods device_bench calls.

    Args:
        model_path: The ``.tflite`` file (it must have a signature, as converted models do).
        num_threads: Ignored beyond 1: CompiledModel picks its own CPU threads.
        experimental_op_resolver_type: Must be absent: CompiledModel has no kernel choice.
        accelerator: ``cpu``, ``gpu`` or ``npu``.

    Raises:
        RuntimeError: CompiledModel refused the model or the accelerator.
    """

    def __init__(
        self,
        model_path: str,
        num_threads: int = 1,
        experimental_op_resolver_type: Any = None,
        accelerator: str = "cpu",
    ) -> None:
        if experimental_op_resolver_type is not None:
            raise RuntimeError(
                "CompiledModel has no built-in-kernels mode: --no-xnnpack applies to "
                "--api interpreter only."
            )
        # by name, like runtime.py: importing device_bench never imports a runtime
        compiled_model = importlib.import_module("ai_edge_litert.compiled_model")
        hardware_accelerator = importlib.import_module("ai_edge_litert.hardware_accelerator")

        accel = hardware_accelerator.HardwareAccelerator[accelerator.upper()]
        try:
            self._model = compiled_model.CompiledModel.from_file(model_path, hardware_accel=accel)
        except RuntimeError as error:
            if accelerator == "cpu":
                raise
            raise RuntimeError(
                f"no usable {accelerator.upper()} accelerator for CompiledModel on this "
                f"device (it does not fall back to CPU): {str(error).strip().splitlines()[-1]}"
            ) from error
        self.threads = num_threads
        signatures = list(self._model.get_signature_list())
        if not signatures:
            raise RuntimeError(f"'{model_path}' has no signature, which CompiledModel needs.")
        graph = Graph(Path(model_path).read_bytes(), model_path)
        self._inputs = self._details(self._model.get_input_tensor_details(signatures[0]), graph)
        self._outputs = self._details(self._model.get_output_tensor_details(signatures[0]), graph)
        self._input_buffers = self._model.create_input_buffers(0)
        self._output_buffers = self._model.create_output_buffers(0)

    @staticmethod
    def _details(details: dict[str, dict[str, Any]], graph: Graph) -> list[dict[str, Any]]:
        out = []
        for position, detail in enumerate(details.values()):
            shape = np.array(detail["shape"], np.int32)
            out.append(
                {
                    "name": detail["name"],
                    "index": position,
                    "tensor": int(detail["index"]),
                    "dtype": np.dtype(detail["dtype"]).type,
                    "shape": shape,
                    "shape_signature": shape,
                    "quantization": graph.quantization(int(detail["index"])),
                }
            )
        return out

    def get_input_details(self) -> list[dict[str, Any]]:
        return self._inputs

    def get_output_details(self) -> list[dict[str, Any]]:
        return self._outputs

    def allocate_tensors(self) -> None:
        """Runs once on zeros: CompiledModel prepares kernels (and refuses) at the first run."""
        for detail in self._inputs:
            self.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
        self.invoke()

    def set_tensor(self, index: int, value: np.ndarray) -> None:
        detail = self._inputs[index]
        self._input_buffers[index].write(np.ascontiguousarray(value, detail["dtype"]))

    def invoke(self) -> None:
        self._model.run_by_index(0, self._input_buffers, self._output_buffers)

    def get_tensor(self, index: int) -> np.ndarray:
        position = next(i for i, d in enumerate(self._outputs) if d["index"] == index)
        detail = self._outputs[position]
        size = int(np.prod(detail["shape"]))
        values = self._output_buffers[position].read(size, detail["dtype"])
        return np.asarray(values).reshape(detail["shape"])

    def resize_tensor_input(self, index: int, shape: Any) -> None:
        raise RuntimeError("CompiledModel inputs keep the file's shape; run one sample at a time.")


def compiled_available() -> bool:
    """Whether ai-edge-litert's CompiledModel API is importable here."""
    try:
        return importlib.util.find_spec("ai_edge_litert.compiled_model") is not None
    except ImportError:
        return False


def api_runtime(name: str | None, api: str, accelerator: str = "cpu") -> Runtime:
    """The runtime to load models with: as ``load_runtime``, or CompiledModel behind it.

    Args:
        name: Runtime name, or ``None`` for the first installed.
        api: ``interpreter`` or ``compiled``.
        accelerator: With ``compiled``: ``cpu``, ``gpu`` or ``npu``.

    Returns:
        The runtime.

    Raises:
        RuntimeUnavailableError: ``compiled`` without ai-edge-litert's CompiledModel.
    """
    if api not in APIS or accelerator not in ACCELERATORS:
        raise RuntimeUnavailableError(
            f"Unknown --api {api!r} or --accelerator {accelerator!r}; expected one of "
            f"{', '.join(APIS)} and one of {', '.join(ACCELERATORS)}."
        )
    if api == "interpreter":
        if accelerator != "cpu":
            raise RuntimeUnavailableError(
                f"--accelerator {accelerator} needs --api compiled (the Interpreter runs on CPU)."
            )
        return load_runtime(name)
    runtime = load_runtime(name or "ai_edge_litert")
    try:
        importlib.import_module("ai_edge_litert.compiled_model")
    except ImportError as error:
        raise RuntimeUnavailableError(
            f"--api compiled needs ai-edge-litert's CompiledModel; runtime {runtime.name} "
            f"{runtime.version} has none ({error}). Install ai-edge-litert>=2 or use "
            "--api interpreter."
        ) from error
    return Runtime(
        name=runtime.name,
        version=f"{runtime.version} CompiledModel {accelerator}",
        interpreter_class=functools.partial(CompiledInterpreter, accelerator=accelerator),
        op_resolver_type=runtime.op_resolver_type,
    )
