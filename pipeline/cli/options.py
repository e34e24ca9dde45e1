"""From parsed flags and a job file to a validated `BuildConfig`.

Values resolve as: flags the user passed > job file > flag defaults.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any

from pipeline.cli.parser import _parser, _subparser
from pipeline.config import (
    GATE_LIMITS,
    BenchConfig,
    BuildConfig,
    DataConfig,
    DeviceConfig,
    EvaluationConfig,
    ExportConfig,
    GatesConfig,
    LrSchedule,
    PruneConfig,
    PruneSchedule,
    PruneScope,
    QuantizeConfig,
    RuntimeTarget,
    StructuredConfig,
    StructuredCriterion,
)


def _quantize_config(args: argparse.Namespace) -> QuantizeConfig:
    runtimes = [RuntimeTarget.LITERT, RuntimeTarget.LITERT_NO_DELEGATES]
    if args.runtime_python is not None:
        runtimes.append(RuntimeTarget.TFLITE_RUNTIME)
    values = {t.value for t in RuntimeTarget}
    required = tuple(RuntimeTarget(r) if r in values else r for r in args.require_runtime)
    runtimes += [r for r in required if isinstance(r, RuntimeTarget) and r not in runtimes]
    return QuantizeConfig(
        calibration_samples=args.calibration_samples,
        io=args.io,
        activations=args.activations,
        sparse_encoding=args.sparse_encoding,
        max_auroc_drop=args.max_auroc_drop,
        remedy=not args.no_remedy,
        remedy_int16=args.remedy_int16,
        runtimes=tuple(runtimes),
        require_runtimes=required,
        runtime_python=args.runtime_python,
    )


def _device_config(args: argparse.Namespace) -> DeviceConfig:
    return DeviceConfig(
        targets=tuple(args.device or ()),
        inventory=args.devices,
        identity=args.identity,
        python=args.device_python,
        known_hosts=args.known_hosts,
    )


def _build_config(args: argparse.Namespace) -> BuildConfig:
    prune = PruneConfig(  # neither --sparsity nor --threshold: auto
        target_sparsity=args.sparsity,
        threshold=args.threshold,
        scope=PruneScope(args.prune_scope),
        prune_biases=args.prune_biases,
        include=tuple(args.prune_include),
        exclude=tuple(args.prune_exclude),
        keep_first_last_dense=args.keep_first_last_dense,
        finetune_epochs=args.finetune_epochs,
        schedule=PruneSchedule(args.prune_schedule),
        initial_sparsity=args.initial_sparsity,
        prune_frequency=args.prune_frequency,
        max_prune_drop=args.max_prune_drop,
    )
    return BuildConfig(
        model=args.model,
        data=DataConfig(
            path=args.data,
            scale=args.scale,
            offset=args.offset,
            seed=args.seed,
            mean=args.mean,
            std=args.std,
            resize=args.resize,
            label_column=args.label_column,
            labels=args.labels,
            calibration=args.calibration_data,
            window_center=args.window_center,
            window_width=args.window_width,
            window_from_file=args.window_from_file,
        ),
        evaluation=EvaluationConfig(
            decision_threshold=(  # None: cleared by --operating-point over a job file's
                0.5 if args.decision_threshold is None else args.decision_threshold
            ),
            positive_class=args.positive_class,
            operating_point=args.operating_point,
            bootstrap=args.bootstrap,
            max_sensitivity_drop=args.max_sensitivity_drop,
            max_specificity_drop=args.max_specificity_drop,
            max_brier_increase=args.max_brier_increase,
        ),
        out=args.out,
        prune=prune,
        structured=StructuredConfig(
            sparsity=args.structured_sparsity,
            threshold=args.structured_threshold,
            criterion=StructuredCriterion(args.structured_criterion),
            scope=PruneScope(args.structured_scope),
            min_channels=args.min_channels,
            channel_multiple=args.channel_multiple,
            drop_blocks=args.drop_blocks,
            augment=tuple(args.structured_augment),
            lr_schedule=LrSchedule(args.structured_lr_schedule),
            distill=args.structured_distill,
            finetune_epochs=(
                args.finetune_epochs
                if args.structured_finetune_epochs is None
                else args.structured_finetune_epochs
            ),
        ),
        quantize=_quantize_config(args),
        bench=BenchConfig(runs=args.bench_runs, threads=args.threads, enabled=not args.no_bench),
        export=ExportConfig(
            onnx=args.onnx,
            opset=args.opset,
            require_parity=args.require_onnx_parity,
            html=args.html,
        ),
        gates=GatesConfig(
            baseline=args.baseline, **{n: getattr(args, f"gate_{n}", None) for n in GATE_LIMITS}
        ),
        device=_device_config(args),
        overwrite=args.overwrite,
        seed=args.seed,
        unsafe_load=args.unsafe_load,
    )


def _explicit(argv: Sequence[str], command: str) -> dict[str, Any]:
    """Only the options the user passed: the same parse with every default suppressed."""
    parser = _parser()
    for action in _subparser(parser, command)._actions:
        action.default = argparse.SUPPRESS
    passed = vars(parser.parse_args(list(argv)))
    return {k: v for k, v in passed.items() if k not in ("command", "debug")}


def _build_defaults() -> dict[str, Any]:
    from pipeline.config.jobfile import dests

    return dests(_subparser(_parser(), "build")._actions)


def build_options(argv: Sequence[str]) -> argparse.Namespace:
    """The `build` options of `argv` resolved: flags the user passed > job file > defaults.

    Raises:
        BedsideError: a bad flag, job file or value (before TensorFlow is imported).
    """
    from pipeline.config import jobfile

    args = _parser().parse_args(list(argv))
    job = jobfile.load(args.config) if args.config is not None else None
    return jobfile.resolve(_build_defaults(), _explicit(argv, "build"), job)


def build_config(argv: Sequence[str]) -> BuildConfig:
    """The validated BuildConfig `bedside-lite <argv>` would build (argv starts with build)."""
    return _build_config(build_options(argv))


def job_config(job: Mapping[str, Mapping[str, Any]]) -> BuildConfig:
    """The validated BuildConfig of a job document (sections of keys, as in a job file).

    Raises:
        ConfigError: an unknown key, a wrong type or an invalid value.
    """
    from pipeline.config import jobfile

    return _build_config(jobfile.resolve(_build_defaults(), {}, jobfile.parse(job)))
