"""Exception types for user errors, one per kind, so callers can tell them apart.

The CLI maps every ``DeviceBenchError`` to exit code 2 (or to a per-model status
in a benchmark run) and prints only the message, never a traceback.
"""

from __future__ import annotations


class DeviceBenchError(Exception):
    """Base class for every error device_bench raises on purpose."""


class ModelFileError(DeviceBenchError, ValueError):
    """The model path is missing, unreadable or not a TFLite flatbuffer."""


class ModelError(DeviceBenchError, ValueError):
    """The model loads but is not one device_bench supports (e.g. several inputs)."""


class InputDataError(DeviceBenchError, ValueError):
    """The input array (or ``.npy``/``.npz`` file) does not fit the model."""


class RuntimeUnavailableError(DeviceBenchError, LookupError):
    """The requested LiteRT interpreter (or any interpreter at all) is not installed."""


class ModelRefusedError(DeviceBenchError, RuntimeError):
    """The interpreter raised while loading, allocating or invoking the model."""


class ModelCrashedError(DeviceBenchError, RuntimeError):
    """A child process running the model died (native crash, signal) or timed out."""
