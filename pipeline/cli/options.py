"""From parsed flags and a job file to a validated `BuildConfig`.

Values resolve as: flags the user passed > job file > flag defaults. Each option's value
goes to the `BuildConfig` attribute the registry names (`pipeline.config.options`); the
few values derived from others are the small functions below.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any

from pipeline.cli.parser import make_parser, subcommand_parser
from pipeline.config import (
    DEFAULT_THRESHOLD,
    BuildConfig,
    DeviceConfig,
    RuntimeTarget,
    choices,
)
from pipeline.config.options import OPTIONS
from pipeline.errors import ConfigError


def _sections(values: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Option values by config section and field ("" holds BuildConfig's own fields)."""
    sections: dict[str, dict[str, Any]] = {}
    for option in OPTIONS:
        if not option.attr or option.dest not in values:
            continue
        value = values[option.dest]
        if option.invert:
            value = not value  # `--no-bench` -> bench.enabled
        if isinstance(value, list):
            value = tuple(value)
        section, _, name = option.attr.rpartition(".")
        sections.setdefault(section, {})[name] = value
    return sections


def _derive(values: Mapping[str, Any], sections: dict[str, dict[str, Any]]) -> None:
    """The values that follow from other options."""
    data, evaluation = sections["data"], sections["evaluation"]
    structured, quantize = sections["structured"], sections["quantize"]
    data["seed"] = values["seed"]
    if evaluation["decision_threshold"] is None:  # cleared by --operating-point over a file's
        evaluation["decision_threshold"] = DEFAULT_THRESHOLD
    if structured["finetune_epochs"] is None and values["finetune_epochs"]:
        structured["finetune_epochs"] = values["finetune_epochs"]  # else the mode's default
    sections["device"]["targets"] = tuple(values["device"] or ())
    if sections["release"]["mlflow_uri"] is None:  # unset by flag and file: the environment's
        sections["release"]["mlflow_uri"] = os.environ.get("MLFLOW_TRACKING_URI") or None
    quantize["require_runtimes"], quantize["runtimes"] = _runtimes(values)


def _runtimes(values: Mapping[str, Any]) -> tuple[tuple[Any, ...], tuple[RuntimeTarget, ...]]:
    """(required runtimes or device names, runtimes verified on): the two LiteRT
    Interpreter ones, LiteRT's CompiledModel where ai-edge-litert provides it, the legacy
    tflite-runtime with --runtime-python, TFLM when `[micro]` is installed, and every
    required runtime."""
    from pipeline.device.client import compiled_available, micro_available

    runtimes = [RuntimeTarget.LITERT, RuntimeTarget.LITERT_NO_DELEGATES]
    if compiled_available():
        runtimes.append(RuntimeTarget.LITERT_COMPILED)
    if values["runtime_python"] is not None:
        runtimes.append(RuntimeTarget.TFLITE_RUNTIME)
    if micro_available():  # the microcontroller's runtime, whenever [micro] is installed
        runtimes.append(RuntimeTarget.TFLM)
    known = choices(RuntimeTarget)
    required = tuple(RuntimeTarget(r) if r in known else r for r in values["require_runtime"])
    runtimes += [r for r in required if isinstance(r, RuntimeTarget) and r not in runtimes]
    return required, tuple(runtimes)


def _section_class(name: str) -> Any:
    return {f.name: f for f in dataclasses.fields(BuildConfig)}[name].default_factory


def config_from_args(args: argparse.Namespace) -> BuildConfig:
    """The validated BuildConfig of resolved options (every build dest set).

    A bad value names where it came from: the flag, or the job file and its key.
    """
    from pipeline.config import jobfile

    origins = getattr(args, "origins", {})
    jobfile.check_rules(origins)
    try:
        return _validated(args)
    except ConfigError as exc:
        raise ConfigError(jobfile.named(str(exc), origins)) from None


def _validated(args: argparse.Namespace) -> BuildConfig:
    values = vars(args)
    sections = _sections(values)
    _derive(values, sections)
    top = sections.pop("")
    # PruneConfig first, then in field order: the order their errors have been reported in
    order = sorted(
        sections, key=lambda s: (s != "prune", list(BuildConfig.__dataclass_fields__).index(s))
    )
    nested = {name: _section_class(name)(**sections[name]) for name in order}
    return BuildConfig(**nested, **top)


def device_config_from_args(args: argparse.Namespace) -> DeviceConfig:
    """The devices of `bench` (or `build`) flags."""
    values = vars(args)
    fields = _sections(values)["device"]
    fields["targets"] = tuple(values["device"] or ())
    return DeviceConfig(**fields)


def explicit_options(argv: Sequence[str], command: str) -> dict[str, Any]:
    """Only the options the user passed: the same parse with every default suppressed."""
    parser = make_parser()
    for action in subcommand_parser(parser, command)._actions:
        action.default = argparse.SUPPRESS
    passed = vars(parser.parse_args(list(argv)))
    return {k: v for k, v in passed.items() if k not in ("command", "debug")}


def build_defaults() -> dict[str, Any]:
    from pipeline.config.jobfile import dests

    return dests(subcommand_parser(make_parser(), "build")._actions)


def build_options(argv: Sequence[str]) -> argparse.Namespace:
    """The `build` options of `argv` resolved: flags the user passed > job file > defaults.

    Raises:
        BedsideError: a bad flag, job file or value (before TensorFlow is imported).
    """
    from pipeline.config import jobfile

    args = make_parser().parse_args(list(argv))
    job = jobfile.load(args.config) if args.config is not None else None
    return jobfile.resolve(build_defaults(), explicit_options(argv, "build"), job)


def build_config(argv: Sequence[str]) -> BuildConfig:
    """The validated BuildConfig `bedside-lite <argv>` would build (argv starts with build)."""
    return config_from_args(build_options(argv))


def job_config(job: Mapping[str, Mapping[str, Any]]) -> BuildConfig:
    """The validated BuildConfig of a job document (sections of keys, as in a job file).

    Raises:
        ConfigError: an unknown key, a wrong type or an invalid value.
    """
    from pipeline.config import jobfile

    return config_from_args(jobfile.resolve(build_defaults(), {}, jobfile.parse(job)))
