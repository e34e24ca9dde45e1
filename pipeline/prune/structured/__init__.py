"""Structured (channel) pruning: whole output channels go and a smaller model is rebuilt.

Threshold pruning zeroes single weights; int8 kernels on the device still multiply them.
Removing an output channel of a Conv/Dense layer removes a filter there and an input
channel from every layer that reads it, so every kernel downstream does less work.

`prune_structured` first inlines nested Functional and Sequential models (a
transfer-learning backbone called as one layer) into one flat graph
(`pipeline.models.flatten`): their layers are then pruned like any other and reported as
`outer/inner`. A nested model that cannot be inlined (subclassed, shared) is left whole and
listed in `skipped`. Then, module by module:

- `graph`: the channel groups of the model, which channels must go together and which
  are pinned (`analyse`, `ChannelGraph`);
- `scoring`: filter norms or activation scores of every prunable channel;
- `planning`: which channels every group keeps (`select_channels`, `ChannelPlan`);
- `rebuild`: the smaller model, and the reference it equals exactly;
- `branches`: residual branches, scored, zeroed and dropped (`--drop-blocks`);
- `outcome` and `step`: the step itself and its report section;
- `auto`: `--structured-sparsity auto`, the search for the largest channel fraction in
  the validation budget (`search_structured`).
"""

from pipeline.prune.structured.auto import search_structured
from pipeline.prune.structured.branches import (
    ResidualBranch,
    branch_scores,
    drop_branches,
    drop_weakest_branches,
    residual_branches,
    zero_branches,
)
from pipeline.prune.structured.graph import ChannelGraph, Channels, LayerRole, analyse
from pipeline.prune.structured.outcome import (
    LayerChannels,
    StructuredOutcome,
    group_table,
    layer_table,
    skipped_layers,
)
from pipeline.prune.structured.planning import ChannelPlan, aligned_width, select_channels
from pipeline.prune.structured.rebuild import mask_removed_inputs, rebuild
from pipeline.prune.structured.scoring import activation_scores, channel_scores, filter_norms
from pipeline.prune.structured.step import prune_structured

# the names under which tests reach these helpers
_aligned = aligned_width
_groups = group_table
_skipped = skipped_layers

__all__ = [
    "ChannelGraph",
    "ChannelPlan",
    "Channels",
    "LayerChannels",
    "LayerRole",
    "ResidualBranch",
    "StructuredOutcome",
    "activation_scores",
    "aligned_width",
    "analyse",
    "branch_scores",
    "channel_scores",
    "drop_branches",
    "drop_weakest_branches",
    "filter_norms",
    "group_table",
    "layer_table",
    "mask_removed_inputs",
    "prune_structured",
    "rebuild",
    "residual_branches",
    "search_structured",
    "select_channels",
    "skipped_layers",
    "zero_branches",
]
