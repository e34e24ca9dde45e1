"""Error types of the converters: one per kind of bad input.

`converters/` imports nothing from `pipeline/`; the pipeline's own errors of the same kinds
(`pipeline.errors.ModelError`, ...) subclass these, so `except converters.errors.ModelError`
catches both. The CLI treats every `ConverterError` like a `pipeline.errors.BedsideError`:
message without a traceback, exit status `exit_code`. Messages say what was expected, what
was received and how to fix it.
"""

from __future__ import annotations


class ConverterError(Exception):
    """Base class of errors caused by the input of a conversion or inspection. Exit code 2."""

    exit_code = 2


class ModelError(ConverterError):
    """The model file is missing, unreadable, or of a kind the converters do not support."""


class QuantizationError(ConverterError):
    """The produced int8 model is not what was asked for (e.g. a float op remains)."""


class MissingExtraError(ConverterError):
    """An optional dependency is needed for the requested feature."""

    def __init__(self, package: str, extra: str, feature: str) -> None:
        super().__init__(
            f"{feature} needs the Python package '{package}', which is not installed. "
            f"Install it with: pip install 'bedside-lite[{extra}]'"
        )
