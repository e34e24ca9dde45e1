"""Running the int8 model on each target runtime and comparing it with the reference.

A bedside device gets one file and trusts it. Measured on this stack: ai-edge-litert's
default XNNPACK delegate refuses some sparse int8 models at prepare time, and
tflite-runtime 2.14 returned all-zero outputs for a block-sparse int8 model. So every
target runtime runs the real file on the test split, through device_bench in a child process
(`pipeline.device.client.run_in_child`: a native crash cannot take the build down), and its
outputs are compared with the pruned float32 model's and with the primary runtime's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import RuntimeTarget
from pipeline.config.inventory import Device

# device_bench's runtime of each target (the LiteRT ones are ai_edge_litert)
_RUNTIME_MODULES = {RuntimeTarget.TFLITE_RUNTIME: "tflite_runtime", RuntimeTarget.TFLM: "tflm"}

# Runtimes may round differently by a step; more than this is a wrong result.
MAX_STEPS_VS_PRIMARY = 2.0
MIN_AGREEMENT_VS_PRIMARY = 0.99


@dataclass(frozen=True)
class RuntimeCheck:
    """Outcome of running the int8 model on one runtime."""

    target: RuntimeTarget | str  # a str is a device's name (pipeline/device)
    status: str  # ok | mismatch | refused | crashed | unreachable (a device)
    reason: str | None
    runtime: str | None = None
    runtime_version: str | None = None
    note: str | None = None
    agreement_vs_reference: float | None = None
    max_steps_vs_reference: float | None = None
    agreement_vs_primary: float | None = None
    max_steps_vs_primary: float | None = None
    device: dict[str, Any] | None = None  # the device's description, for a device target
    # a mismatch: the first op, in execution order, whose output differs from the primary's
    # by more than MAX_STEPS_VS_PRIMARY steps ({index, op, max_steps, local_max_steps, ...})
    divergence: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        doc = dict(vars(self))
        doc["target"] = target_name(self.target)
        for key in ("device", "divergence"):
            if doc[key] is None:
                del doc[key]
        return doc


def target_name(target: RuntimeTarget | str) -> str:
    """A runtime's value or a device's name: the report's `target`."""
    return target.value if isinstance(target, RuntimeTarget) else target


def run_on_runtime(
    target: RuntimeTarget, model: Path, x: np.ndarray, runtime_python: Path | None = None
) -> tuple[np.ndarray | None, dict[str, Any]]:
    """Runs `model` on `x` under one runtime, in a child process, as it would run on a device:
    the default delegates may refuse the model (no retry without them).

    Args:
        target: the runtime; `tflite_runtime` runs under `runtime_python`; `tflm` on
            TensorFlow Lite Micro's interpreter (the `[micro]` extra), without delegates.
        model: the int8 .tflite.
        x: preprocessed inputs.
        runtime_python: the Python holding tflite-runtime.

    Returns:
        (dequantized outputs or None, status dict with `status` and `reason`).
    """
    from pipeline.device.client import run_in_child

    legacy = target is RuntimeTarget.TFLITE_RUNTIME
    return run_in_child(
        model,
        x,
        python=str(runtime_python) if legacy else None,
        runtime=_RUNTIME_MODULES.get(target, "ai_edge_litert"),
        xnnpack=target not in (RuntimeTarget.LITERT_NO_DELEGATES, RuntimeTarget.TFLM),
        delegate_fallback=False,
        api="compiled" if target is RuntimeTarget.LITERT_COMPILED else "interpreter",
    )


def micro_verdict(checks: list[RuntimeCheck], micro: dict[str, Any] | None) -> list[RuntimeCheck]:
    """The `tflm` check, judged also on TFLM's account of the file (`client.micro_footprint`):
    an op TFLM lacks or a float op left in the int8 model makes it `refused`, op named.

    A float op runs on TFLM's reference kernels on the host, but an int8 model that still
    computes in float is not what the firmware was promised: no CMSIS-NN kernel, a soft-float
    path on a Cortex-M without FPU, and the arena holds float tensors.
    """
    if micro is None:
        return checks
    missing, floats = micro.get("missing_ops") or [], micro.get("float_ops") or []
    if missing:
        reason = f"TFLM lacks the op(s) {', '.join(missing)}"
    elif floats:
        reason = (
            f"float op(s) {', '.join(floats)} left in the int8 model; TFLM's int8 kernels "
            "(CMSIS-NN) do not run them. Quantize every op (--io int8) or replace them"
        )
    else:
        return checks
    return [
        replace(c, status="refused", reason=f"{reason}; {c.reason}" if c.reason else reason)
        if c.target is RuntimeTarget.TFLM and c.status in ("ok", "refused")
        else c
        for c in checks
    ]


# samples the per-op comparison of a mismatch runs: those whose outputs differ most
DIVERGENCE_SAMPLES = 32


def divergence(
    model: Path,
    x: np.ndarray,
    primary: RuntimeTarget | str,
    target: RuntimeTarget | str,
    differences: np.ndarray,
) -> dict[str, Any] | None:
    """Where `target` parts ways with `primary` on `model`: the first op, in execution order,
    whose output differs by more than MAX_STEPS_VS_PRIMARY steps, on the samples whose
    outputs differ most; None when either runtime cannot be compared in this process (a
    device, tflite-runtime) or no op differs that much."""
    from pipeline.device.client import compare_runtimes
    from pipeline.errors import ConfigError, ModelError

    names = (target_name(primary), target_name(target))
    if not all(isinstance(t, RuntimeTarget) for t in (primary, target)):
        return None
    order = np.argsort(-differences.reshape(len(differences), -1).max(axis=1), kind="stable")
    try:
        _, first = compare_runtimes(
            model, x[order[:DIVERGENCE_SAMPLES]], *names, bound=MAX_STEPS_VS_PRIMARY
        )
    except (ConfigError, ModelError):
        return None
    return None if first is None else {**first, "against": names[0]}


def float_divergence(
    model: Path, reference: Path, x: np.ndarray, checks: list[RuntimeCheck]
) -> list[RuntimeCheck]:
    """When int8 misses its budget: on the primary runtime's check, the first op of the
    int8 file whose output differs from the same-named op of the float32 `reference` by
    more than MAX_STEPS_VS_PRIMARY of its steps (`against`: `pruned_float32`)."""
    from dataclasses import replace

    from pipeline.device.client import compare_to_float
    from pipeline.errors import ConfigError, ModelError

    primary = next((c for c in checks if c.status == "ok"), None)
    if primary is None or not isinstance(primary.target, RuntimeTarget) or not reference.is_file():
        return checks
    try:
        _, first = compare_to_float(
            model, reference, x[:DIVERGENCE_SAMPLES], primary.target.value, MAX_STEPS_VS_PRIMARY
        )
    except (ConfigError, ModelError):
        return checks
    if first is None:
        return checks
    parted = {**first, "against": "pruned_float32"}
    return [replace(c, divergence=parted) if c is primary else c for c in checks]


def _steps(a: np.ndarray, b: np.ndarray, scale: float) -> float:
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))) / scale)


def verify(
    model: Path,
    x: np.ndarray,
    reference_outputs: np.ndarray,
    output_scale: float,
    predict: Any,
    targets: tuple[RuntimeTarget, ...],
    runtime_python: Path | None = None,
    devices: tuple[Device, ...] = (),
) -> list[RuntimeCheck]:
    """Verifies `model` on every target, then on every device, each compared exactly alike;
    the first target that runs is the primary.

    Args:
        model: the int8 .tflite.
        x: preprocessed test inputs.
        reference_outputs: the pruned float32 model's outputs on `x`, in the same space as
            the int8 model's (logits when the int8 model emits logits).
        output_scale: the int8 output's quantization scale (one step).
        predict: maps outputs to class predictions (applies the host postprocess).
        targets: runtimes to run on.
        runtime_python: the Python holding tflite-runtime, for that target.
        devices: bedside devices to run on over SSH (their default runtime).
    """
    checks = []
    primary: np.ndarray | None = None
    primary_target: RuntimeTarget | str | None = None
    reference_pred = predict(reference_outputs)
    runs: list[tuple[RuntimeTarget | str, Callable[[], tuple[np.ndarray | None, Any]]]] = [
        (t, partial(run_on_runtime, t, model, x, runtime_python)) for t in targets
    ]
    if devices:
        from pipeline.device.remote import run_on_device

        runs += [(d.name, partial(run_on_device, d, model, x)) for d in devices]
    for target, run in runs:
        outputs, info = run()
        common = {
            "runtime": info.get("runtime"),
            "runtime_version": info.get("runtime_version"),
            "note": info.get("note"),
            "device": info.get("device"),
        }
        if outputs is None:
            checks.append(RuntimeCheck(target, info["status"], info.get("reason"), **common))
            continue
        pred = predict(outputs)
        vs_ref: dict[str, Any] = {
            "agreement_vs_reference": float(np.mean(pred == reference_pred)),
            "max_steps_vs_reference": _steps(outputs, reference_outputs, output_scale),
        }
        if primary is None:
            primary, primary_target = outputs, target
            checks.append(
                RuntimeCheck(
                    target,
                    "ok",
                    None,
                    **common,
                    **vs_ref,
                    agreement_vs_primary=1.0,
                    max_steps_vs_primary=0.0,
                )
            )
            continue
        steps = _steps(outputs, primary, output_scale)
        agreement = float(np.mean(pred == predict(primary)))
        ok = steps <= MAX_STEPS_VS_PRIMARY and agreement >= MIN_AGREEMENT_VS_PRIMARY
        reason = (
            None
            if ok
            else (
                f"outputs differ from the primary runtime by up to {steps:.1f} quantization steps "
                f"(bound {MAX_STEPS_VS_PRIMARY:g}) and agree on {agreement:.1%} of predictions"
            )
        )
        parted = None
        if not ok and primary_target is not None:
            parted = divergence(model, x, primary_target, target, np.abs(outputs - primary))
        checks.append(
            RuntimeCheck(
                target,
                "ok" if ok else "mismatch",
                reason,
                **common,
                **vs_ref,
                agreement_vs_primary=agreement,
                max_steps_vs_primary=steps,
                divergence=parted,
            )
        )
    return checks
