"""The load stage: the model (or the embedded reference, trained) and its data, fitted to it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.clock import StageClock
from pipeline.config import BuildConfig
from pipeline.errors import DataError

if TYPE_CHECKING:
    import keras

    from pipeline.data.splits import Splits
    from pipeline.models import OutputKind


@dataclass
class DataStageResult:
    """What the load stage hands on: the model, its data and what its output holds."""

    model: keras.Model
    splits: Splits
    kind: OutputKind
    input_shape: tuple[int | None, ...]
    source: str


def load_stage(
    config: BuildConfig, clock: StageClock, reference: Path | None = None
) -> DataStageResult:
    """Loads the model (or trains the embedded one) and its data, fitted to the model.

    Args:
        config: the build.
        clock: times the stages.
        reference: a saved copy of the embedded reference model to load instead of training
            it again (the sweep trains it once).
    """
    from pipeline import models
    from pipeline.data.dataset import load
    from pipeline.data.fit import fit_to_model

    if config.model is None:
        splits = clock.run(
            "load data",
            lambda: load(config.data, positive_class=config.evaluation.positive_class),
        )
        if reference is not None:
            model = clock.run("load model", lambda: models.load_model(reference))
        else:
            model = clock.run(
                "train reference model", lambda: models.train_reference_model(splits, config.seed)
            )
        model_source = "embedded: MLP trained on the Wisconsin breast-cancer data"
    else:
        path = config.model
        model = clock.run("load model", lambda: models.load_model(path, config.unsafe_load))
        raw = clock.run("load data", lambda: _load_user_data(config, tuple(model.inputs[0].shape)))
        splits = fit_to_model(raw, tuple(model.inputs[0].shape), raw.source)
        model_source = str(config.model)
    models.check_labels(model, splits)
    if config.data.host_preprocessing:
        model, splits = _move_front(model, splits, clock)
    return DataStageResult(
        model, splits, models.output_kind(model), tuple(model.inputs[0].shape), model_source
    )


def _load_user_data(config: BuildConfig, input_shape: tuple[int | None, ...]) -> Splits:
    from pipeline.data.dataset import load

    if config.data.path is None:
        raise DataError(
            "--model was given without --data. Pass the model's dataset with --data "
            "(an .npz, medmnist:NAME, an image/DICOM folder or a .csv)."
        )
    return load(
        config.data, input_shape=input_shape, positive_class=config.evaluation.positive_class
    )


def _move_front(
    model: keras.Model, splits: Splits, clock: StageClock
) -> tuple[keras.Model, Splits]:
    """`--host-preprocessing`: the model without its leading Rescaling/Resizing chain and
    the splits through it on the host; unchanged, with a warning, when there is none."""
    from dataclasses import replace

    from pipeline.data.host_front import move_front

    model, splits, note = clock.run("move front to host", lambda: move_front(model, splits))
    if note is not None:  # not an error: the build is the one without the option
        splits = replace(splits, warnings=(*splits.warnings, note))
    return model, splits
