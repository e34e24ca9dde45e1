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

    from pipeline.data.loaders import LoadedArrays
    from pipeline.data.memory import InMemory
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
    config: BuildConfig,
    clock: StageClock,
    reference: Path | None = None,
    memory: InMemory | None = None,
) -> DataStageResult:
    """Loads the model (or trains the embedded one) and its data, fitted to the model.

    Args:
        config: the build.
        clock: times the stages.
        reference: a saved copy of the embedded reference model to load instead of training
            it again (the sweep trains it once).
        memory: a model and/or arrays held in memory (the Python API), used instead of
            `config.model` and `config.data.path`.
    """
    from pipeline import models
    from pipeline.data.dataset import load
    from pipeline.data.fit import fit_to_model

    arrays = memory.arrays if memory is not None else None
    given = memory.model if memory is not None else None
    if config.model is None and given is None:
        splits = clock.run(
            "load data",
            lambda: load(
                config.data, positive_class=config.evaluation.positive_class, arrays=arrays
            ),
        )
        if reference is not None:
            model = clock.run("load model", lambda: models.load_model(reference))
        else:
            model = clock.run(
                "train reference model", lambda: models.train_reference_model(splits, config.seed)
            )
        model_source = "embedded: MLP trained on the Wisconsin breast-cancer data"
    else:
        if memory is not None and memory.model is not None:
            model, model_source = memory.model, memory.model_source
        else:
            path = config.model
            assert path is not None  # the branch above: neither a path nor a model in memory
            model = clock.run("load model", lambda: models.load_model(path, config.unsafe_load))
            model_source = str(config.model)
        shape = tuple(model.inputs[0].shape)
        raw = clock.run("load data", lambda: _load_user_data(config, shape, arrays))
        splits = fit_to_model(raw, shape, raw.source)
    models.check_labels(model, splits)
    if config.data.host_preprocessing:
        model, splits = _move_front(model, splits, clock)
    return DataStageResult(
        model, splits, models.output_kind(model), tuple(model.inputs[0].shape), model_source
    )


def _load_user_data(
    config: BuildConfig, input_shape: tuple[int | None, ...], arrays: LoadedArrays | None
) -> Splits:
    from pipeline.data.dataset import load

    if config.data.path is None and arrays is None:
        raise DataError(
            "--model was given without --data. Pass the model's dataset with --data "
            "(an .npz, medmnist:NAME, an image/DICOM folder or a .csv)."
        )
    return load(
        config.data,
        input_shape=input_shape,
        positive_class=config.evaluation.positive_class,
        arrays=arrays,
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
