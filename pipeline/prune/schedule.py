"""The masks fine-tuning holds, and the polynomial schedule that raises their sparsity.

A callback re-applies the masks after every optimizer step (a variable constraint set after
the first `fit` would not: the train step is already traced), so a pruned weight never
comes back. The polynomial schedule raises the sparsity over the fine-tuning steps,
s_t = s_f + (s_i - s_f) (1 - t/T)^3, recomputing the masks every `prune_frequency` steps;
a new mask is the old mask AND the new magnitude mask.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.config import PruneConfig, PruneScope
from pipeline.prune.magnitude import (
    PrunableWeight,
    PruningResult,
    compute_masks,
    masked_variables,
    read_array,
)


@dataclass(frozen=True)
class PolynomialSchedule:
    """s_t = s_f + (s_i - s_f) (1 - t/T)^3, masks recomputed every `frequency` steps.

    T (`end_step`) is the last mask update at or before the final optimizer step, so the
    final sparsity is reached exactly and then fine-tuned for the remaining steps. With a
    single update (T = 0) the final sparsity is applied at once.
    """

    initial: float
    final: float
    end_step: int
    frequency: int

    @classmethod
    def for_training(
        cls, initial: float, final: float, total_steps: int, frequency: int
    ) -> PolynomialSchedule:
        end = frequency * ((max(total_steps, 1) - 1) // frequency)
        return cls(min(initial, final), final, end, frequency)

    def sparsity_at(self, step: int) -> float:
        if self.end_step <= 0:
            return self.final
        progress = min(step, self.end_step) / self.end_step
        return self.final + (self.initial - self.final) * (1.0 - progress) ** 3

    def is_update(self, step: int) -> bool:
        """Whether the masks are recomputed before optimizer step `step` (step 0 is the
        initial pruning, done before fine-tuning starts)."""
        return 0 < step <= self.end_step and step % self.frequency == 0


@dataclass(frozen=True)
class HeldMasks:
    """Masks that fine-tuning holds, and how a polynomial schedule raises them.

    `scope` and `prune_biases` are those the masks were computed with; the schedule's
    updates recompute them the same way.
    """

    weights: Sequence[PrunableWeight] = field(repr=False)
    result: PruningResult
    scope: PruneScope = PruneScope.GLOBAL
    prune_biases: bool = False
    schedule: PolynomialSchedule | None = None  # None: the masks stay as they are

    @classmethod
    def for_config(
        cls,
        weights: Sequence[PrunableWeight],
        result: PruningResult,
        config: PruneConfig,
        schedule: PolynomialSchedule | None = None,
    ) -> HeldMasks:
        """The masks of `result`, updated with the scope and biases of `config`."""
        return cls(weights, result, config.scope, config.prune_biases, schedule)

    def update(self, result: PruningResult, step: int) -> PruningResult:
        """The masks recomputed at the schedule's sparsity for optimizer step `step`."""
        assert self.schedule is not None
        return compute_masks(
            self.weights,
            sparsity=self.schedule.sparsity_at(step),
            scope=self.scope,
            prune_biases=self.prune_biases,
            previous=result.masks,
        )


def mask_keeper(masks: HeldMasks | None) -> Any:
    """A Keras callback holding the masks after every batch and running the schedule's
    updates; it counts the optimizer steps (in `step`) with or without masks."""
    import keras

    variables = masked_variables(masks.weights) if masks else {}
    kernels = [w.name for w in masks.weights] if masks else []
    schedule = masks.schedule if masks else None

    class KeepMasks(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.result = masks.result if masks else None
            self.updates: list[dict[str, Any]] = []
            self.step = 0
            self._set(self.result.masks if self.result else {})

        def _set(self, values: dict[str, np.ndarray]) -> None:
            self._pairs = [
                (
                    variables[name],
                    keras.ops.convert_to_tensor(mask.astype(read_array(variables[name]).dtype)),
                )
                for name, mask in values.items()
            ]

        def _apply(self) -> None:
            for var, mask in self._pairs:
                var.assign(var * mask)

        def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
            if masks is None or schedule is None or not schedule.is_update(self.step):
                return
            assert self.result is not None
            self.result = masks.update(self.result, self.step)
            self._set(self.result.masks)
            self._apply()
            self.updates.append(
                {
                    "step": self.step,
                    "target_sparsity": schedule.sparsity_at(self.step),
                    "pruned_fraction": self.result.pruned_fraction(kernels),
                }
            )

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            self._apply()
            self.step += 1

        def on_train_end(self, logs: dict | None = None) -> None:
            self._apply()

    return KeepMasks()
