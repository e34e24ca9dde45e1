"""The `str` enums of the build's choices: the only place each choice is spelled.

Parsers, job-file validation, help texts and the README take their choices from these
classes (`choices(Enum)`), so a new value is added here once.
"""

from __future__ import annotations

import enum

SCHEMA_VERSION = 1


def choices(kind: type[enum.Enum]) -> tuple[str, ...]:
    """The values of a `str` enum, in declaration order."""
    return tuple(str(member.value) for member in kind)


class PruneScope(str, enum.Enum):
    """How the magnitude threshold is chosen across layers."""

    GLOBAL = "global"  # one threshold over all prunable kernels
    LAYER = "layer"  # one threshold per kernel, each reaching the target sparsity


class Decide(str, enum.Enum):
    """How the auto searches and the int8 remedies call a variant within its budgets."""

    INTERVAL = "interval"  # the one-sided upper confidence bound of each loss
    POINT = "point"  # the validation point estimate of each loss


class PruneSchedule(str, enum.Enum):
    """When the masks are computed during fine-tuning."""

    ONESHOT = "oneshot"  # prune once, then fine-tune with the masks fixed
    POLYNOMIAL = "polynomial"  # sparsity rises cubically over the fine-tuning steps


AUTO_SPARSITY = "auto"
# Grid `--sparsity auto` tries, each on a fresh copy of the original weights: coarse where
# small models rarely break, finer where they start to.
AUTO_SPARSITY_GRID = (0.25, 0.5, 0.6, 0.7, 0.8, 0.9)
# Channel fractions `--structured-sparsity auto` tries, from the largest down: each point
# is a whole structured step (rebuild and fine-tuning), so the first in budget ends it.
STRUCTURED_AUTO_GRID = (0.7, 0.6, 0.5, 0.4, 0.3, 0.2)


class Variant(str, enum.Enum):
    """Model variants the build produces; values are the report keys."""

    FLOAT32 = "float32"
    PRUNED_FLOAT32 = "pruned_float32"
    INT8 = "int8"

    @property
    def filename(self) -> str:
        return {
            Variant.FLOAT32: "model_float32.tflite",
            Variant.PRUNED_FLOAT32: "model_pruned_float32.tflite",
            Variant.INT8: "model_int8.tflite",
        }[self]


class LrSchedule(str, enum.Enum):
    """Learning rate over fine-tuning: the optimizer's rate throughout, or decayed from it
    to 0 along a cosine."""

    CONSTANT = "constant"
    COSINE = "cosine"


class Augmentation(str, enum.Enum):
    """Random transforms of training images during fine-tuning (labels unchanged)."""

    HFLIP = "hflip"
    VFLIP = "vflip"
    SHIFT = "shift"


FINETUNE_AUGMENTATIONS = choices(Augmentation)


class StructuredCriterion(str, enum.Enum):
    """How a channel is scored: the norm of its filter (the kernel slice producing it), or
    what its consumers read from it on training inputs."""

    L1 = "l1"
    L2 = "l2"
    # data-driven: mean |input| of the channel where each consumer reads it, times the
    # l2 norm of the consumer's kernel rows for it (what removing the channel takes away)
    ACTIVATION = "activation"


class RuntimeTarget(str, enum.Enum):
    """Runtimes the int8 model is verified on."""

    LITERT = "litert"  # ai-edge-litert with its default delegates (XNNPACK)
    LITERT_NO_DELEGATES = "litert-no-delegates"  # ai-edge-litert, built-in kernels only
    TFLITE_RUNTIME = "tflite-runtime"  # legacy tflite-runtime, in --runtime-python
    TFLM = "tflm"  # TensorFlow Lite Micro (the [micro] extra): what a microcontroller runs
    LITERT_COMPILED = "litert-compiled"  # ai-edge-litert's CompiledModel API on CPU


class QuantizedIO(str, enum.Enum):
    """Input/output type of the int8 model (float32: integer inside, float edges)."""

    INT8 = "int8"
    UINT8 = "uint8"
    FLOAT32 = "float32"


class Activations(str, enum.Enum):
    """Activation width of the quantized model (int16: the 16x8 mode)."""

    INT8 = "int8"
    INT16 = "int16"


class OperatingRule(str, enum.Enum):
    """How the decision threshold is chosen (`--operating-point`)."""

    THRESHOLD = "threshold"  # threshold=T: fixed
    SENSITIVITY = "sensitivity"  # sensitivity=S, on the validation split
    SPECIFICITY = "specificity"  # specificity=S, on the validation split
    YOUDEN = "youden"  # max sensitivity + specificity - 1 on the validation split


OPERATING_RULES = choices(OperatingRule)
DEFAULT_THRESHOLD = 0.5


class SweepPreference(str, enum.Enum):
    """Which passing sweep point is recommended."""

    SIZE = "size"  # the smallest int8 model
    LATENCY = "latency"  # the fastest int8 model
