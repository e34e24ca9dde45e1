"""User-facing error types.

Every error a user can cause by what they pass in (a file, a flag, data) is one of the
`BedsideError` subclasses below. The CLI prints the message without a traceback and exits
with `exit_code`. Messages say what was expected, what was received and how to fix it.

The converters raise their own errors (`converters.errors`, which import nothing from the
pipeline); the pipeline's errors of the same kinds subclass them, and the CLI catches both
bases (`BedsideError`, `ConverterError`) alike.
"""

from __future__ import annotations

from converters import errors as converter_errors
from converters.errors import ConverterError as ConverterError  # re-exported for the CLI


class DeprecatedOption(FutureWarning):
    """A renamed flag or job key was used; the message names the new one. The CLI prints
    it as one `warning:` line."""


class BedsideError(Exception):
    """Base class of errors caused by the user's input. Exit code 2."""

    exit_code = 2


class ConfigError(BedsideError):
    """A flag or configuration value is invalid or inconsistent."""


class DataError(BedsideError):
    """The data file is missing, unreadable, or does not fit the model."""


class ModelError(BedsideError, converter_errors.ModelError):
    """The model file is missing, unreadable, or of a kind the pipeline does not support."""


class OutputError(BedsideError):
    """The output location cannot be written as asked (exists, is a file, ...)."""


class QuantizationError(BedsideError, converter_errors.QuantizationError):
    """The produced int8 model is not what was asked for (e.g. a float op remains)."""


class MissingExtraError(BedsideError, converter_errors.MissingExtraError):
    """An optional dependency is needed for the requested feature.

    Takes `(package, extra, feature)` and words the message like the converters' own.
    """


class DeviceError(BedsideError):
    """A bedside device cannot be reached, or cannot run the agent (pipeline/device).

    `status` is what a build records for the device: `unreachable` (no connection, refused
    key, unknown host key, dropped mid-run) or `refused` (its Python, numpy or runtime).
    """

    def __init__(self, message: str, status: str = "unreachable") -> None:
        super().__init__(message)
        self.status = status
