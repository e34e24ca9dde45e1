"""`preprocessing.json`: what a device must do before and after the model, beside it."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.data.preprocessing import with_front
from pipeline.data.splits import Splits


def write_preprocessing(
    path: Path,
    splits: Splits,
    input_shape: tuple[int | None, ...],
    postprocess: str,
    decision_threshold: float | None = None,
) -> None:
    """Writes `preprocessing.json`: what a device must do before and after the model."""
    doc = with_front(
        splits.preprocessing,
        {
            "schema_version": 2,
            "input_shape": [None if d is None else int(d) for d in input_shape],
            "layout": "channels_last",
            "preprocessing": splits.preprocessing.to_json(),
        },
    )
    doc = {
        **doc,
        "postprocess": postprocess,
        "classes": {
            "names": None if splits.class_names is None else list(splits.class_names),
            "positive_class": splits.positive_class,
            "decision_threshold": decision_threshold,
        },
    }
    path.write_text(json.dumps(doc, indent=2) + "\n")
