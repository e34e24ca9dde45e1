"""The structured step's outcome: the rebuilt model and the report's
`pruning.structured` section (layers, groups, what was left whole)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipeline.config import StructuredConfig, StructuredCriterion
from pipeline.models.flatten import Flattened, display_name
from pipeline.prune.auto import AutoSearch
from pipeline.prune.structured.planning import ChannelPlan

if TYPE_CHECKING:
    import keras


@dataclass(frozen=True)
class LayerChannels:
    """One MAC-counted layer before and after."""

    name: str
    kind: str
    channels_before: int | None
    channels_after: int | None
    in_channels_before: int | None
    in_channels_after: int | None
    macs_before: int | None
    macs_after: int | None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class StructuredOutcome:
    """The structured step's result: the rebuilt model and what happened to it."""

    config: StructuredConfig
    model: Any = field(repr=False)  # keras.Model, rebuilt and fine-tuned
    macs_before: int | None
    macs_after: int | None
    params_before: int
    params_after: int
    prunable_channels: int
    removed_channels: int
    layers: tuple[LayerChannels, ...]
    skipped: tuple[dict[str, str], ...]
    groups: tuple[dict[str, Any], ...]
    rebuild_max_abs_diff: float | None
    val_auroc: dict[str, float | None]
    finetune: dict[str, Any] | None
    dropped_blocks: tuple[dict[str, Any], ...] = ()
    flattened: tuple[str, ...] = ()  # nested models inlined first (pipeline.models.flatten)
    auto: AutoSearch | None = None  # `--structured-sparsity auto` only
    latency: dict[str, Any] | None = None  # `--speedup-target` only (structured.speed)
    resize: dict[str, Any] | None = None  # the Resizing front made smaller (structured.resize)

    @classmethod
    def unchanged(
        cls, model: keras.Model, config: StructuredConfig, auto: AutoSearch
    ) -> StructuredOutcome:
        """The outcome of an auto search that chose nothing: `model` goes on as it is."""
        from pipeline.prune.macs import total_macs

        macs, params = total_macs(model), int(model.count_params())
        return cls(
            config=dataclasses.replace(config, sparsity=None),
            model=model,
            macs_before=macs,
            macs_after=macs,
            params_before=params,
            params_after=params,
            prunable_channels=0,
            removed_channels=0,
            layers=layer_table(model, model),
            skipped=(),
            groups=(),
            rebuild_max_abs_diff=None,
            val_auroc={"original": auto.baseline_val_auroc, "pruned": None, "finetuned": None},
            finetune=None,
            auto=auto,
        )

    @property
    def achieved_sparsity(self) -> float:
        return self.removed_channels / self.prunable_channels if self.prunable_channels else 0.0

    def _method(self) -> str:
        cfg = self.config
        if self.auto is not None and self.auto.chosen_sparsity is None:
            return "none"  # auto found no fraction in budget
        parts = ["resize"] if cfg.resize is not None else []
        parts += ["residual_branches"] if cfg.drop_blocks else []
        parts += ["channel_norm"] if cfg.channels else []
        return "+".join(parts) or "channel_norm"

    def to_json(self) -> dict[str, Any]:
        """The report's `pruning.structured` section (`auto` only in auto mode)."""
        cfg = self.config
        ratio = self.macs_before / self.macs_after if self.macs_before and self.macs_after else None
        doc = {
            "method": self._method(),
            "criterion": cfg.criterion.value,
            "normalisation": (
                "sum over readers of mean |input| (up to 256 training inputs) times the l2 "
                "norm of the reader's kernel rows, divided by the group's mean score"
                if cfg.criterion is StructuredCriterion.ACTIVATION
                else "filter norm (times |gamma|/sqrt(var+eps) of a BatchNormalization "
                "right after) divided by the mean filter norm of its layer"
            ),
            "scope": None if cfg.threshold is not None else cfg.scope.value,
            "drop_blocks": cfg.drop_blocks,
            "dropped_blocks": list(self.dropped_blocks),
            "block_score": "mean ||branch output|| / ||skip input|| over up to 256 training "
            "inputs; the lowest go",
            "target_sparsity": cfg.sparsity,
            "threshold": cfg.threshold,
            "min_channels": cfg.min_channels,
            "channel_multiple": cfg.channel_multiple,
            "prunable_channels": self.prunable_channels,
            "removed_channels": self.removed_channels,
            "achieved_sparsity": self.achieved_sparsity,
            "macs_before": self.macs_before,
            "macs_after": self.macs_after,
            "mac_reduction": ratio,
            "params_before": self.params_before,
            "params_after": self.params_after,
            "rebuild_max_abs_diff": self.rebuild_max_abs_diff,
            "validation_auroc": dict(self.val_auroc),
            "finetune_epochs": self.finetune["epochs"] if self.finetune else 0,
            "finetune": self.finetune,
            "groups": list(self.groups),
            "layers": [layer.to_json() for layer in self.layers],
            "skipped": list(self.skipped),
            "flattened": list(self.flattened),
        }
        if self.auto is not None:
            doc["auto"] = self.auto.to_json()
        if self.latency is not None:
            doc["latency"] = self.latency
        if self.resize is not None:
            doc["resize"] = self.resize
        return doc


def shipped_auroc(outcome: StructuredOutcome) -> float | None:
    """Validation AUROC of the model a structured step ships (fine-tuned if it was)."""
    auroc = outcome.val_auroc
    return auroc["finetuned"] if outcome.finetune else auroc["pruned"]


def layer_table(before: keras.Model, after: keras.Model) -> tuple[LayerChannels, ...]:
    from pipeline.prune.macs import count_macs

    new = {m.name: m for m in count_macs(after)}
    out = []
    for old in count_macs(before):
        cur = new.get(old.name)  # None: removed with its residual branch
        out.append(
            LayerChannels(
                old.name,
                old.kind,
                old.out_channels,
                cur.out_channels if cur else 0,
                old.in_channels,
                cur.in_channels if cur else 0,
                old.macs,
                cur.macs if cur else 0,
            )
        )
    return tuple(out)


def skipped_layers(
    plan: ChannelPlan | None, flat: Flattened | None = None
) -> tuple[dict[str, str], ...]:
    """Layers left whole and why: nested models not flattened first, by their reason."""
    out = list(flat.skipped) if flat else []
    if plan is None:
        return tuple(out)
    graph, seen = plan.graph, {entry["layer"] for entry in out}
    out += [
        {"layer": display_name(name), "reason": reason}
        for name, reason in graph.skipped.items()
        if display_name(name) not in seen
    ]
    for gid, names in graph.producers().items():
        reason = graph.pinned(gid)
        if reason is not None:
            out += [
                {"layer": display_name(name), "reason": f"channels kept: {display_name(reason)}"}
                for name in names
            ]
    return tuple(out)


def group_table(plan: ChannelPlan) -> tuple[dict[str, Any], ...]:
    graph = plan.graph
    out = []
    for gid, names in graph.prunable().items():
        out.append(
            {
                "producers": [display_name(name) for name in names],
                "tied_by": sorted({display_name(n) for n in graph.joins.get(gid, [])}),
                "channels_before": graph.size(gid),
                "channels_after": plan.width(gid),
            }
        )
    return tuple(out)
