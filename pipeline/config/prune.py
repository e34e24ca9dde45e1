"""The `[prune]` section: threshold pruning (`PruneConfig`) and structured pruning
(`StructuredConfig`), validated on construction."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from pipeline.config.enums import (
    AUTO_SPARSITY,
    AUTO_SPARSITY_GRID,
    FINETUNE_AUGMENTATIONS,
    STRUCTURED_AUTO_GRID,
    LrSchedule,
    PruneSchedule,
    PruneScope,
    StructuredCriterion,
)
from pipeline.errors import ConfigError


@dataclass(frozen=True)
class PruneConfig:
    """Threshold pruning w' = w * 1{|w| >= threshold} (and b' = b * 1{|b| >= threshold}).

    At most one of `target_sparsity` and `threshold` is set; with neither, the sparsity is
    `auto`: the largest of `auto_grid` whose validation AUROC stays within `max_prune_drop`
    of the original model's. A target sparsity of 0 skips pruning.
    """

    target_sparsity: float | str | None = None  # S in [0, 1), or AUTO_SPARSITY
    threshold: float | None = None
    scope: PruneScope = PruneScope.GLOBAL
    prune_biases: bool = False
    finetune_epochs: int = 0
    schedule: PruneSchedule = PruneSchedule.ONESHOT
    initial_sparsity: float = 0.0  # polynomial schedule only
    prune_frequency: int = 10  # optimizer steps between mask updates (polynomial)
    include: tuple[str, ...] = ()  # fnmatch patterns of layer names; empty: all
    exclude: tuple[str, ...] = ()
    keep_first_last_dense: bool = False  # leave the first and last prunable layer unpruned
    max_prune_drop: float = 0.01  # auto: allowed drop of validation AUROC
    auto_grid: tuple[float, ...] = AUTO_SPARSITY_GRID

    def __post_init__(self) -> None:
        object.__setattr__(self, "scope", PruneScope(self.scope))
        object.__setattr__(self, "schedule", PruneSchedule(self.schedule))
        if self.target_sparsity is None and self.threshold is None:
            object.__setattr__(self, "target_sparsity", AUTO_SPARSITY)
        object.__setattr__(self, "include", tuple(self.include))
        object.__setattr__(self, "exclude", tuple(self.exclude))
        object.__setattr__(self, "auto_grid", tuple(float(s) for s in self.auto_grid))
        if self.target_sparsity is not None and self.threshold is not None:
            raise ConfigError(
                "Pruning needs at most one of a target sparsity and a threshold; received "
                f"sparsity={self.target_sparsity}, threshold={self.threshold}. "
                "Pass --sparsity S or --threshold T, not both."
            )
        if isinstance(self.target_sparsity, str):
            if self.target_sparsity != AUTO_SPARSITY:
                raise ConfigError(
                    f"--sparsity must be a number in [0, 1) or '{AUTO_SPARSITY}'; received "
                    f"'{self.target_sparsity}'."
                )
        elif self.target_sparsity is not None and not 0.0 <= self.target_sparsity < 1.0:
            raise ConfigError(
                f"--sparsity must be in [0, 1); received {self.target_sparsity}. "
                "Use e.g. --sparsity 0.5 to zero half of the weights, 0 to skip pruning, or "
                f"'{AUTO_SPARSITY}' to pick the largest that keeps validation AUROC."
            )
        if self.threshold is not None and not 0.0 <= self.threshold < math.inf:
            raise ConfigError(
                f"--threshold must be a finite magnitude >= 0; received {self.threshold}. "
                "Weights with |w| below it are set to zero."
            )
        if self.finetune_epochs < 0:
            raise ConfigError(f"--finetune-epochs must be >= 0; received {self.finetune_epochs}.")
        if not 0.0 <= self.initial_sparsity < 1.0:
            raise ConfigError(
                f"--initial-sparsity must be in [0, 1); received {self.initial_sparsity}."
            )
        if self.prune_frequency < 1:
            raise ConfigError(
                f"--prune-frequency must be >= 1 optimizer step; received {self.prune_frequency}."
            )
        if not -1.0 <= self.max_prune_drop <= 1.0:
            raise ConfigError(
                f"--max-prune-drop must be an AUROC difference in [-1, 1]; received "
                f"{self.max_prune_drop}. Use e.g. 0.01 to accept one point of AUROC."
            )
        if not self.auto_grid or not all(0.0 < s < 1.0 for s in self.auto_grid):
            raise ConfigError(
                f"The auto sparsity grid must hold values in (0, 1); received {self.auto_grid}."
            )
        for pattern in (*self.include, *self.exclude):
            if not isinstance(pattern, str) or not pattern:
                raise ConfigError(
                    f"Layer patterns must be non-empty fnmatch patterns such as 'conv*'; "
                    f"received {pattern!r}."
                )
        if self.schedule is PruneSchedule.POLYNOMIAL:
            if self.threshold is not None:
                raise ConfigError(
                    f"--prune-schedule polynomial ramps a sparsity; received --threshold "
                    f"{self.threshold}. Pass --sparsity S (or '{AUTO_SPARSITY}') instead, or "
                    "use --prune-schedule oneshot with a threshold."
                )
            if self.finetune_epochs < 1:
                raise ConfigError(
                    "--prune-schedule polynomial raises the sparsity over the fine-tuning "
                    f"steps; received --finetune-epochs {self.finetune_epochs}. Pass "
                    "--finetune-epochs N with N >= 1."
                )
            if (
                isinstance(self.target_sparsity, float | int)
                and self.initial_sparsity > self.target_sparsity
            ):
                raise ConfigError(
                    f"--initial-sparsity {self.initial_sparsity} is above the final "
                    f"--sparsity {self.target_sparsity}; the polynomial schedule only raises "
                    "sparsity. Pass an initial sparsity <= the final one."
                )

    @property
    def auto(self) -> bool:
        """Whether the sparsity is searched (`--sparsity auto`)."""
        return self.target_sparsity == AUTO_SPARSITY


@dataclass(frozen=True)
class StructuredRecipe:
    """How the rebuilt model is fine-tuned on the train split (see pipeline.prune.finetune).

    Attributes:
        epochs: passes over the train split (0: no fine-tuning).
        augment: random image transforms of FINETUNE_AUGMENTATIONS.
        lr_schedule: the optimizer's rate throughout, or decayed to 0 along a cosine.
        distill: weight of the unpruned model's probabilities in the targets.
    """

    epochs: int = 0
    augment: tuple[str, ...] = ()
    lr_schedule: LrSchedule = LrSchedule.CONSTANT
    distill: float = 0.0


# The speed-target search's recipe for what the user leaves unset: a 2x cut needs a real
# fine-tune to keep AUROC. Shift only (for image inputs): no flips, since laterality can
# matter in medical images; cosine decay and half the targets from the unpruned model.
SPEED_TARGET_RECIPE = StructuredRecipe(
    epochs=40, augment=("shift",), lr_schedule=LrSchedule.COSINE, distill=0.5
)
RECIPE_FIELDS = {  # StructuredConfig field -> StructuredRecipe field
    "finetune_epochs": "epochs",
    "augment": "augment",
    "lr_schedule": "lr_schedule",
    "distill": "distill",
}


@dataclass(frozen=True)
class StructuredConfig:
    """Structured pruning: whole output channels of Conv/Dense layers are removed and a
    smaller model is rebuilt (see pipeline/structured.py).

    Channels are ranked by their filter norm divided by the mean filter norm of their
    layer. With `sparsity` R the lowest R of the prunable channels go (over all layers in
    global scope, in each layer in layer scope); with `threshold` T every channel whose
    normalised norm is below T goes. No layer drops below min(width, `min_channels`). With
    `channel_multiple` M > 1 every shrunk layer keeps a multiple of M channels (the nearest,
    at least M; a layer of width <= M stays whole): int8 kernels (XNNPACK) work in tiles of
    8 or 16 channels, so aligned widths run faster than the MAC count says.

    With `resize` N the model's own Resizing front, which enlarges its input, makes N x N
    instead (`pipeline.prune.structured.resize`): every layer after it works on smaller
    maps, first of all.

    With `drop_blocks` N > 0 the N residual branches that add least to their skip input
    (mean ||branch|| / ||skip|| over training images) are removed whole first, channels
    after: a removed branch takes its ops with it, which narrowing cannot (each op has a
    fixed cost on the device). Off when none of sparsity, threshold and drop_blocks is set.

    With `sparsity` `auto` the fractions of `auto_grid` are tried from the largest down,
    each as the whole step from the original model (the `drop_blocks`, the channels R, the
    fine-tuning recipe), and judged on validation as `--sparsity auto` judges its points:
    AUROC (fine-tuned if fine-tuned, else pruned) within `--max-prune-drop` of the original
    and, given an operating point, sensitivity, specificity and Brier score within their
    budgets. The first R in budget is kept and smaller ones are not tried, so the cost is
    one structured step per point tried. When none is in budget (or the original's
    validation AUROC is undefined) there is no structured pruning at all.

    The fine-tuning recipe (`finetune_epochs`, `augment`, `lr_schedule`, `distill`): each
    field the user sets, else the mode's default (`recipe`): `SPEED_TARGET_RECIPE` with a
    `speedup_target`, no fine-tuning otherwise.
    """

    sparsity: float | str | None = None  # R in [0, 1) of prunable channels, or AUTO_SPARSITY
    threshold: float | None = None  # T >= 0 on normalised filter norms
    criterion: StructuredCriterion = StructuredCriterion.L1
    scope: PruneScope = PruneScope.GLOBAL
    min_channels: int = 4
    channel_multiple: int = 1
    finetune_epochs: int | None = None  # None (and the three below): the mode's default
    drop_blocks: int = 0  # residual branches removed whole, before channels
    resize: int | None = None  # side the model's enlarging Resizing front makes instead
    # fine-tuning recipe of the rebuilt model (see pipeline.prune.finetune)
    augment: tuple[str, ...] | None = None  # random image transforms of FINETUNE_AUGMENTATIONS
    lr_schedule: LrSchedule | None = None
    distill: float | None = None  # weight of the unpruned model's probabilities in the targets
    auto_grid: tuple[float, ...] = STRUCTURED_AUTO_GRID  # `auto`: R tried, largest first
    # `auto` only: the predicted int8 speedup over the unpruned int8 file to reach
    # (pipeline.prune.structured.speed); None: the largest R in budget, by MACs
    speedup_target: float | None = None
    speedup_candidates: int = 4  # cuts ranked by a short fine-tune before the full one
    speedup_rank_epochs: int = 3  # epochs of each short fine-tune
    # full fine-tunes at most: the best-ranked cut, then the next while the last missed
    speedup_finetunes: int = 2

    def __post_init__(self) -> None:
        object.__setattr__(self, "criterion", StructuredCriterion(self.criterion))
        object.__setattr__(self, "auto_grid", tuple(float(r) for r in self.auto_grid))
        if not self.auto_grid or not all(0.0 < r < 1.0 for r in self.auto_grid):
            raise ConfigError(
                f"The structured auto grid must hold channel fractions in (0, 1); received "
                f"{self.auto_grid}. E.g. {STRUCTURED_AUTO_GRID}."
            )
        if self.lr_schedule is not None:
            object.__setattr__(self, "lr_schedule", LrSchedule(self.lr_schedule))
        if self.augment is not None:
            object.__setattr__(self, "augment", tuple(dict.fromkeys(self.augment)))
        unknown = [a for a in self.augment or () if a not in FINETUNE_AUGMENTATIONS]
        if unknown:
            raise ConfigError(
                f"--structured-augment must be one of {', '.join(FINETUNE_AUGMENTATIONS)}; "
                f"received {', '.join(unknown)}. Repeat the flag for several, e.g. "
                "--structured-augment hflip --structured-augment shift."
            )
        if self.distill is not None and not 0.0 <= self.distill <= 1.0:
            raise ConfigError(
                f"--structured-distill must be in [0, 1]; received {self.distill}. It is the "
                "weight of the unpruned model's probabilities in the fine-tuning targets "
                "(0: labels only, 0.5: half each, 1: the unpruned model only)."
            )
        if self.drop_blocks < 0:
            raise ConfigError(
                f"--drop-blocks must be >= 0; received {self.drop_blocks}. It is the number of "
                "residual branches to remove (0 keeps them all)."
            )
        if self.resize is not None and self.resize < 1:
            raise ConfigError(
                f"--structured-resize must be a side >= 1 in pixels; received {self.resize}. "
                "E.g. --structured-resize 64 makes the model's Resizing(96, 96) front 64x64."
            )
        object.__setattr__(self, "scope", PruneScope(self.scope))
        if self.sparsity is not None and self.threshold is not None:
            raise ConfigError(
                "Structured pruning needs at most one of a channel sparsity and a threshold; "
                f"received --structured-sparsity {self.sparsity} and --structured-threshold "
                f"{self.threshold}. Pass one of them."
            )
        if isinstance(self.sparsity, str):
            if self.sparsity != AUTO_SPARSITY:
                raise ConfigError(
                    f"--structured-sparsity must be a number in [0, 1) or '{AUTO_SPARSITY}'; "
                    f"received '{self.sparsity}'. Use e.g. --structured-sparsity 0.5, or "
                    f"'{AUTO_SPARSITY}' to pick the largest R that keeps validation AUROC."
                )
        elif self.sparsity is not None and not 0.0 <= self.sparsity < 1.0:
            raise ConfigError(
                f"--structured-sparsity must be in [0, 1); received {self.sparsity}. Use e.g. "
                "--structured-sparsity 0.5 to remove half of the prunable channels, or "
                f"'{AUTO_SPARSITY}' to pick the largest R that keeps validation AUROC."
            )
        if self.threshold is not None and not 0.0 <= self.threshold < math.inf:
            raise ConfigError(
                f"--structured-threshold must be a finite value >= 0; received "
                f"{self.threshold}. It is compared with each filter's norm divided by its "
                "layer's mean filter norm: e.g. 0.5 removes filters below half the mean."
            )
        if self.min_channels < 1:
            raise ConfigError(f"--min-channels must be >= 1; received {self.min_channels}.")
        if self.channel_multiple < 1:
            raise ConfigError(
                f"--channel-multiple must be >= 1; received {self.channel_multiple}. Use 1 to "
                "keep exact widths, 8 or 16 to align them with int8 kernel tiles."
            )
        if self.finetune_epochs is not None and self.finetune_epochs < 0:
            raise ConfigError(
                f"--structured-finetune-epochs must be >= 0; received {self.finetune_epochs}."
            )
        self._check_speedup_target()

    def _check_speedup_target(self) -> None:
        if self.speedup_candidates < 1:
            raise ConfigError(
                f"--speedup-candidates must be >= 1; received {self.speedup_candidates}. It is "
                "the number of cuts meeting --speedup-target that a short fine-tune ranks "
                "(1: no ranking, the cut losing least importance is fine-tuned)."
            )
        if self.speedup_rank_epochs < 0:
            raise ConfigError(
                f"--speedup-rank-epochs must be >= 0; received {self.speedup_rank_epochs}. It "
                "is the epochs of the short fine-tune ranking each candidate (0: rank by the "
                "pruned model's validation AUROC)."
            )
        if self.speedup_finetunes < 1:
            raise ConfigError(
                f"--speedup-finetunes must be >= 1; received {self.speedup_finetunes}. It is "
                "the number of ranked cuts the search may fine-tune in full, best first, "
                "until one is in the validation budgets (1: the best-ranked only)."
            )
        target = self.speedup_target
        if target is None:
            return
        if not 1.0 < target < math.inf:
            raise ConfigError(
                f"--speedup-target must be a finite speedup > 1; received {target}. E.g. "
                "--speedup-target 2 asks for half the unpruned int8 file's latency."
            )
        if self.sparsity != AUTO_SPARSITY:
            raise ConfigError(
                f"--speedup-target {target:g} needs --structured-sparsity {AUTO_SPARSITY} "
                f"(the search for the cut that meets it); received --structured-sparsity "
                f"{self.sparsity}. Pass --structured-sparsity {AUTO_SPARSITY}, or leave out "
                "--speedup-target."
            )

    def recipe(self, images: bool = True) -> StructuredRecipe:
        """The fine-tuning recipe: each field set, else the mode's default
        (`SPEED_TARGET_RECIPE` with a speedup target, else no fine-tuning); the default's
        augmentation only when the inputs are `images`."""
        default = SPEED_TARGET_RECIPE if self.speedup_target is not None else StructuredRecipe()
        if not images:
            default = dataclasses.replace(default, augment=())
        given = {
            field: getattr(self, name)
            for name, field in RECIPE_FIELDS.items()
            if getattr(self, name) is not None
        }
        return dataclasses.replace(default, **given)

    def recipe_defaults(self) -> tuple[str, ...]:
        """The recipe's fields (`--structured-*` names) left to the mode's default."""
        return tuple(name for name in RECIPE_FIELDS if getattr(self, name) is None)

    def with_recipe(self, recipe: StructuredRecipe) -> StructuredConfig:
        """This config with every recipe field set to `recipe`'s."""
        fields = {name: getattr(recipe, field) for name, field in RECIPE_FIELDS.items()}
        return dataclasses.replace(self, **fields)

    @property
    def enabled(self) -> bool:
        return (
            self.sparsity is not None
            or self.threshold is not None
            or self.drop_blocks > 0
            or self.resize is not None
        )

    @property
    def channels(self) -> bool:
        """Whether channels are removed (else only residual branches)."""
        return self.sparsity is not None or self.threshold is not None

    @property
    def auto(self) -> bool:
        """Whether the channel fraction is searched (`--structured-sparsity auto`)."""
        return self.sparsity == AUTO_SPARSITY
