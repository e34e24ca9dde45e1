"""How measuring one model ended: the status every report carries."""

from __future__ import annotations

import enum

from device_bench.errors import ModelFileError, ModelRefusedError


class Status(str, enum.Enum):
    """Outcome of measuring one model."""

    OK = "ok"
    REFUSED = "refused"  # the interpreter raised while loading/allocating the model
    CRASHED = "crashed"  # the measuring process died (native crash, signal, exit)
    TIMEOUT = "timeout"  # the measuring process exceeded the per-model time limit
    ERROR = "error"  # anything else: unsupported model, bad input, missing runtime


def status_of(error: BaseException) -> Status:
    """Maps an error raised while preparing or running a model to a status.

    A file the interpreter cannot load is ``refused`` like one it rejects:
    either way the device cannot run it. Everything else is ``error``.

    Args:
        error: The exception.

    Returns:
        ``Status.REFUSED`` or ``Status.ERROR``.
    """
    if isinstance(error, (ModelRefusedError, ModelFileError)):
        return Status.REFUSED
    return Status.ERROR
