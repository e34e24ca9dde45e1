"""Pruning flags through the CLI: bad input exits 2 with a message saying what to do."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.cli import main


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--sparsity", "1.5"], "--sparsity must be in [0, 1); received 1.5"),
        (["--sparsity", "-0.1"], "--sparsity must be in [0, 1); received -0.1"),
        (["--sparsity", "half"], "expected a number in [0, 1) or 'auto', received 'half'"),
        (["--threshold", "-0.2"], "--threshold must be a finite magnitude >= 0"),
        (["--sparsity", "0.5", "--threshold", "0.1"], "not allowed with argument"),
        (["--prune-schedule", "polynomial"], "Pass --finetune-epochs N with N >= 1"),
        (
            ["--prune-schedule", "polynomial", "--finetune-epochs", "2", "--threshold", "0.1"],
            "Pass --sparsity S",
        ),
        (
            [
                "--prune-schedule",
                "polynomial",
                "--finetune-epochs",
                "2",
                "--sparsity",
                "0.5",
                "--initial-sparsity",
                "0.8",
            ],
            "only raises sparsity",
        ),
        (["--prune-frequency", "0"], "--prune-frequency must be >= 1"),
        (["--max-prune-drop", "5"], "--max-prune-drop must be"),
        (["--prune-scope", "model"], "invalid choice: 'model'"),
        (["--structured-resize", "0"], "--structured-resize must be a side >= 1"),
    ],
)
def test_bad_pruning_flags_exit_2(
    flags: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _run(["build", "--out", str(tmp_path / "o"), "--no-bench", *flags], capsys)
    assert code == 2
    assert message in err
    assert not (tmp_path / "o").exists()


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import keras

    from tests import models

    folder = tmp_path_factory.mktemp("models")
    mlp = folder / "mlp.keras"
    models.mlp(n_features=30).save(mlp)
    plain = folder / "plain.keras"
    keras.Sequential(
        [
            keras.Input((30,)),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.Reshape((30, 1)),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Activation("sigmoid"),
        ],
        name="plain",
    ).save(plain)
    return {"mlp": mlp, "plain": plain}


@pytest.mark.parametrize(
    ("model", "flags", "message"),
    [
        (
            "mlp",
            ["--prune-include", "conv*"],
            "--prune-include 'conv*' matches no prunable layer of model 'mlp'; its prunable "
            "layers are: hidden, head",
        ),
        ("mlp", ["--keep-first-last-dense"], "leaves nothing to prune"),
        ("plain", [], "Model 'plain' has no prunable layer"),
        ("mlp", ["--structured-resize", "8"], "needs a model with one Resizing layer"),
    ],
)
@pytest.mark.slow
def test_pruning_errors_found_on_the_model_exit_2(
    model: str,
    flags: list[str],
    message: str,
    saved_models: dict[str, Path],
    wdbc_npz: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, err = _run(
        [
            "build",
            "--model",
            str(saved_models[model]),
            "--data",
            str(wdbc_npz),
            "--out",
            str(tmp_path / "o"),
            "--no-bench",
            *flags,
        ],
        capsys,
    )
    assert code == 2
    assert message in err
    assert not (tmp_path / "o").exists()
