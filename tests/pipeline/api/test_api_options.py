"""The Python API's options: the registry's, validated on the CLI's path, ConfigError on
bad input (never a bare ValueError or TypeError), and `import pipeline` stays light."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline.api import bench, build_options, config_of, sweep
from pipeline.cli.options import build_config
from pipeline.config.options import OPTIONS
from pipeline.errors import ConfigError, DataError, ModelError


def test_import_pipeline_does_not_import_tensorflow() -> None:
    code = (
        "import sys, pipeline\n"
        "from pipeline import build, bench, sweep, inspect\n"
        "heavy = [m for m in ('tensorflow', 'keras') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_keyword_is_a_build_flag_in_python_spelling() -> None:
    by_dest = {o.dest: o for o in OPTIONS}
    for name, option in build_options().items():
        assert option is by_dest[name]
        assert option.flag == "--" + name.replace("_", "-")
        assert "build" in option.commands


def test_options_give_the_config_the_same_flags_give(tmp_path: Path) -> None:
    api = config_of(
        {
            "positive_class": 1,
            "no_bench": True,
            "sparsity": 0.5,
            "prune_include": ["dense*"],
            "operating_point": "sensitivity=0.9",
            "gates": {"noninferiority_auroc": 0.01, "max_int8_bytes": 50_000},
        },
        out=tmp_path / "o",
    )
    cli = build_config(
        [
            "build",
            "--out",
            str(tmp_path / "o"),
            "--positive-class",
            "1",
            "--no-bench",
            "--sparsity",
            "0.5",
            "--prune-include",
            "dense*",
            "--operating-point",
            "sensitivity=0.9",
            "--gate",
            "noninferiority_auroc=0.01",
            "--gate",
            "max_int8_bytes=50000",
        ]
    )
    assert api == cli
    assert not api.bench.enabled and api.gates.noninferiority_auroc == 0.01


def test_no_options_give_the_cli_defaults(tmp_path: Path) -> None:
    assert config_of({}, out=tmp_path) == build_config(["build", "--out", str(tmp_path)])


@pytest.mark.parametrize(
    ("options", "argv"),
    [
        ({"sparsity": 1.5}, ["--sparsity", "1.5"]),
        ({"operating_point": "bogus=1"}, ["--operating-point", "bogus=1"]),
        ({"calibration_samples": 0}, ["--calibration-samples", "0"]),
    ],
)
def test_a_bad_value_raises_the_clis_config_error(
    options: dict[str, object], argv: list[str], tmp_path: Path
) -> None:
    with pytest.raises(ConfigError) as cli:
        build_config(["build", "--out", str(tmp_path), *argv])
    with pytest.raises(ConfigError) as api:
        config_of(options, out=tmp_path)
    assert str(api.value) == str(cli.value)


def test_an_unknown_option_names_the_close_match() -> None:
    with pytest.raises(ConfigError, match=r"unknown option 'sparsty' \(did you mean 'sparsity'"):
        config_of({"sparsty": 0.5})


@pytest.mark.parametrize(
    "options",
    [
        {"sparsity": "half"},
        {"bootstrap": 1.5},
        {"no_bench": "yes"},
        {"prune_include": 3},
        {"gates": {"max_auroc_dro": 0.01}},
        {"gates": {"max_auroc_drop": "a lot"}},
        {"gates": [("max_auroc_drop", 0.01)]},
    ],
)
def test_a_wrong_type_or_unknown_gate_is_a_config_error(options: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match=r"pipeline\.build\(\)"):
        config_of(options)


def test_a_job_file_is_read_and_keywords_win(tmp_path: Path) -> None:
    job = tmp_path / "job.toml"
    job.write_text("[prune]\nsparsity = 0.3\n\n[bench]\nenabled = false\n")
    config = config_of({"config": job, "sparsity": 0.6})
    assert config.prune.target_sparsity == 0.6
    assert not config.bench.enabled


def test_a_renamed_option_warns_and_still_works() -> None:
    with pytest.warns(FutureWarning, match="val_max_int8_auroc_drop"):
        config = config_of({"max_auroc_drop": 0.05})
    assert config.quantize.max_auroc_drop == 0.05


def test_build_refuses_what_it_cannot_take_before_any_work(tmp_path: Path) -> None:
    x, y = np.zeros((10, 3), np.float32), np.zeros(10, np.int64)
    with pytest.raises(ModelError, match="keras.Model or a model path"):
        from pipeline import build

        build(object(), (x, y), out=tmp_path / "o")
    with pytest.raises(DataError, match="pair"):
        build(None, {"train": x, "val": (x, y), "test": (x, y)}, out=tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_sweep_and_bench_refuse_bad_input() -> None:
    with pytest.raises(ConfigError, match=r"unknown axis 'sparsty'"):
        sweep(grid={"sparsty": [0.5]})
    with pytest.raises(ConfigError, match="must be paths"):
        sweep(model=object())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"unknown option 'run'"):
        bench("m.tflite", run=3)
    with pytest.raises(ConfigError, match=r"runs= must be an integer"):
        bench("m.tflite", runs="many")  # type: ignore[arg-type]
    with pytest.raises(ModelError, match="not a file"):
        bench("missing.tflite", runs=3)
