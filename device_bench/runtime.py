"""Finds a LiteRT interpreter on this device and creates interpreters from it.

Three runtimes are tried in this order: ``ai_edge_litert`` (the current LiteRT
wheel), ``tflite_runtime`` (the legacy standalone wheel) and, only as a last
resort, ``tensorflow.lite``. TensorFlow is imported only when it is the one
picked, so a device without it never pays for (or depends on) it.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from device_bench.errors import ModelRefusedError, RuntimeUnavailableError
from device_bench.tflm import INSTALL_HINT as TFLM_INSTALL_HINT
from device_bench.tflm import TFLM

RUNTIME_NAMES = ("ai_edge_litert", "tflite_runtime", "tensorflow")
# TensorFlow Lite Micro (device_bench/tflm.py) runs only when asked for by name: it is what
# a microcontroller runs, never a stand-in for LiteRT.
ALL_RUNTIME_NAMES = (*RUNTIME_NAMES, TFLM)

# Distribution names differ from module names; the version we report is the
# installed distribution's, which is what a bug report needs.
_DISTRIBUTIONS = {
    "ai_edge_litert": ("ai-edge-litert", "ai-edge-litert-nightly"),
    "tflite_runtime": ("tflite-runtime", "tflite-runtime-nightly"),
    "tensorflow": ("tensorflow", "tensorflow-cpu", "tensorflow-aarch64", "tf-nightly"),
}

_INSTALL_HINTS = {
    "ai_edge_litert": "pip install ai-edge-litert",
    "tflite_runtime": "pip install tflite-runtime (needs numpy<2)",
    "tensorflow": "pip install tensorflow",
    TFLM: TFLM_INSTALL_HINT,
}


@dataclass(frozen=True)
class Runtime:
    """An importable LiteRT interpreter implementation.

    Attributes:
        name: One of ``RUNTIME_NAMES``.
        version: Version of the installed distribution, or ``"unknown"``.
        interpreter_class: The ``Interpreter`` class of that runtime.
        op_resolver_type: The runtime's ``OpResolverType`` enum.
    """

    name: str
    version: str
    interpreter_class: Any
    op_resolver_type: Any

    @property
    def has_delegates(self) -> bool:
        """Whether the runtime has default delegates (XNNPACK); TFLM has none."""
        return self.name != TFLM

    def create_interpreter(self, model_path: str, *, threads: int = 1, xnnpack: bool = True) -> Any:
        """Creates (but does not allocate) an interpreter for ``model_path``.

        Args:
            model_path: Path of a ``.tflite`` file.
            threads: Number of interpreter threads.
            xnnpack: Whether to keep the runtime's default delegates (XNNPACK on
                CPU). ``False`` selects ``BUILTIN_WITHOUT_DEFAULT_DELEGATES``.

        Returns:
            The runtime's ``Interpreter`` instance.
        """
        kwargs: dict[str, Any] = {"model_path": model_path, "num_threads": threads}
        if not xnnpack:
            kwargs["experimental_op_resolver_type"] = (
                self.op_resolver_type.BUILTIN_WITHOUT_DEFAULT_DELEGATES
            )
        return self.interpreter_class(**kwargs)


def _distribution_version(name: str, module: Any) -> str:
    for distribution in _DISTRIBUTIONS[name]:
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return str(getattr(module, "__version__", "unknown"))


def _import_runtime(name: str) -> Runtime:
    if name == TFLM:
        from device_bench import tflm

        tflm.import_tflm()
        return Runtime(
            name=name,
            version=tflm.tflm_version(),
            interpreter_class=tflm.TflmInterpreter,
            op_resolver_type=tflm.NoOpResolver,
        )
    if name == "tensorflow":
        # Last resort only: importing TensorFlow costs seconds and hundreds of MB.
        tf = importlib.import_module("tensorflow")
        return Runtime(
            name=name,
            version=_distribution_version(name, tf),
            interpreter_class=tf.lite.Interpreter,
            op_resolver_type=tf.lite.experimental.OpResolverType,
        )
    module = importlib.import_module(f"{name}.interpreter")
    package = importlib.import_module(name)
    return Runtime(
        name=name,
        version=_distribution_version(name, package),
        interpreter_class=module.Interpreter,
        op_resolver_type=module.OpResolverType,
    )


def load_runtime(name: str | None = None) -> Runtime:
    """Imports a LiteRT runtime.

    Args:
        name: A name from ``RUNTIME_NAMES`` to use exactly that runtime, or
            ``None`` to take the first one that imports.

    Returns:
        The imported runtime.

    Raises:
        RuntimeUnavailableError: ``name`` is unknown or not importable, or no
            runtime at all is importable.
    """
    if name is not None:
        if name not in ALL_RUNTIME_NAMES:
            raise RuntimeUnavailableError(
                f"Unknown runtime {name!r}; expected one of {', '.join(ALL_RUNTIME_NAMES)}."
            )
        try:
            return _import_runtime(name)
        except Exception as error:  # broken wheels raise more than ImportError
            raise RuntimeUnavailableError(
                f"Runtime {name!r} was requested but cannot be imported "
                f"({type(error).__name__}: {error}). Install it ({_INSTALL_HINTS[name]}) "
                "or drop --runtime to use whichever runtime is installed."
            ) from error
    failures = []
    for candidate in RUNTIME_NAMES:
        try:
            return _import_runtime(candidate)
        except Exception as error:  # e.g. tflite_runtime under numpy 2
            failures.append(f"{candidate}: {type(error).__name__}: {error}")
    raise RuntimeUnavailableError(
        "No LiteRT interpreter is importable; expected one of "
        f"{', '.join(RUNTIME_NAMES)}. Tried: {'; '.join(failures)}. "
        f"Install one, e.g. {_INSTALL_HINTS['ai_edge_litert']}."
    )


@dataclass(frozen=True)
class LoadedInterpreter:
    """An allocated interpreter and how it came to be.

    Attributes:
        interpreter: The allocated runtime ``Interpreter``.
        xnnpack: Whether default delegates are in use (``False`` after a fallback).
        delegate_error: First line of the error the default delegates raised
            when they refused the model (and it was loaded without them).
        init_ns: Duration of the successful create + ``allocate_tensors``.
    """

    interpreter: Any
    xnnpack: bool
    delegate_error: str | None
    init_ns: int

    def note(self, action: str) -> str | None:
        """Says that default delegates were dropped, e.g. ``note("measured")``.

        Args:
            action: Past-tense verb for what was done without them.

        Returns:
            The note, or ``None`` when nothing was dropped.
        """
        if self.delegate_error is None:
            return None
        return f"default delegates refused the model ({self.delegate_error}); {action} without them"


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


def load_interpreter(
    runtime: Runtime,
    model_path: str,
    *,
    threads: int = 1,
    xnnpack: bool = True,
    delegate_fallback: bool = True,
    after_create: Callable[[], None] | None = None,
) -> LoadedInterpreter:
    """Creates and allocates an interpreter, retrying without default delegates.

    ai-edge-litert's default XNNPACK delegate can refuse a model at allocate
    time (e.g. sparse int8 weights: "failed to delegate FULLY_CONNECTED"). With
    ``delegate_fallback`` the model is then loaded without default delegates and
    ``delegate_error`` records why: a different code path runs, which callers
    must report, never hide.

    Args:
        runtime: The runtime to use.
        model_path: Path of a ``.tflite`` file.
        threads: Number of interpreter threads.
        xnnpack: Whether to try with default delegates first.
        delegate_fallback: Whether to retry without default delegates when the
            first attempt raises.
        after_create: Called right after each interpreter is constructed and
            before ``allocate_tensors`` (the benchmark records RSS there).

    Returns:
        The allocated interpreter.

    Raises:
        ModelRefusedError: The interpreter raised while loading or allocating.
    """
    xnnpack = xnnpack and runtime.has_delegates
    attempts = [xnnpack, False] if (xnnpack and delegate_fallback) else [xnnpack]
    errors: list[BaseException] = []
    for use_xnnpack in attempts:
        start = time.perf_counter_ns()
        hook_ns = 0
        try:
            interpreter = runtime.create_interpreter(
                model_path, threads=threads, xnnpack=use_xnnpack
            )
        except Exception as error:  # runtimes raise RuntimeError/ValueError
            errors.append(error)
            # Loading (flatbuffer verification, op lookup) comes before default
            # delegates are applied, so unless a delegate is named, retrying
            # without them would only fail the same way.
            if "delegate" in str(error).lower():
                continue
            break
        if after_create is not None:
            # The hook's own cost (reading /proc) is not part of init time.
            hook_start = time.perf_counter_ns()
            after_create()
            hook_ns = time.perf_counter_ns() - hook_start
        try:
            interpreter.allocate_tensors()
        except Exception as error:  # runtimes raise RuntimeError/ValueError
            errors.append(error)
            continue
        delegate_error = _first_line(errors[0]) if errors else None
        init_ns = time.perf_counter_ns() - start - hook_ns
        return LoadedInterpreter(interpreter, use_xnnpack, delegate_error, init_ns)
    if len(errors) == 1:
        detail = _first_line(errors[0])
    else:
        detail = (
            f"with default delegates: {_first_line(errors[0])}; "
            f"without them: {_first_line(errors[1])}"
        )
    raise ModelRefusedError(
        f"{runtime.name} {runtime.version} refused model '{model_path}': {detail}"
    ) from errors[-1]
