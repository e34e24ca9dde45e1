"""The TOML job file: unknown keys and wrong types fail fast, flags override the file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cli import build_config, job_config, main
from pipeline.cli.parser import make_parser, subcommand_parser
from pipeline.config import AUTO_SPARSITY, PruneSchedule, RuntimeTarget, jobfile
from pipeline.config.jobfile import tomllib
from pipeline.errors import ConfigError
from tests.pipeline import release_env

ROOT = Path(__file__).resolve().parents[3]


def _job(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "job.toml"
    path.write_text(text)
    return path


def test_unknown_key_exits_2_naming_it_before_tensorflow(tmp_path: Path) -> None:
    job = _job(tmp_path, "[prune]\nsparsty = 0.5\n")
    code = (
        "import json, sys\n"
        "from pipeline.cli import main\n"
        f"rc = main(['build', '--config', {str(job)!r}, '--out', {str(tmp_path / 'o')!r}])\n"
        "print(json.dumps({'rc': rc, 'tf': 'tensorflow' in sys.modules}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        timeout=120,
        check=False,
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"rc": 2, "tf": False}, proc.stderr
    assert "'sparsty'" in proc.stderr and "[prune]" in proc.stderr
    assert "did you mean 'sparsity'" in proc.stderr
    assert str(job) in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[prune]\nfinetune_epochs = "3"\n', "[prune] finetune_epochs must be an integer"),
        ("[prune]\nfinetune_epochs = 2.5\n", "[prune] finetune_epochs must be an integer"),
        ("[bench]\nenabled = 1\n", "[bench] enabled must be true or false"),
        ('[quantize]\nactivations = "int4"\n', "[quantize] activations must be one of int8, int16"),
        ('[data]\nmean = [0.5, "x"]\n', "[data] mean must be a number or an array of numbers"),
        ('[gates]\nrequire_runtimes = ["tflite"]\n', "[gates] require_runtimes must be an array"),
        ("[gates]\nmin_specificity = true\n", "[gates] min_specificity must be a finite number"),
        ("[pruning]\nsparsity = 0.5\n", "unknown section '[pruning]' (did you mean '[prune]'?)"),
        ("seed = 1\n", "key 'seed' must be inside a section"),
        ("[model]\nsparsity = 0.5\n", "'sparsity' belongs in [prune]"),
        ("[prune]\nsparsity = 0.5\nthreshold = 0.1\n", "sparsity and threshold exclude each other"),
        ('[sweep]\nworkers = "2"\n', "[sweep] workers must be an integer"),
        ("[prune\n", "is not valid TOML"),
    ],
)
def test_wrong_type_or_place_is_a_config_error_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    job = _job(tmp_path, text)
    assert main(["build", "--config", str(job), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert expected in err, err
    assert "Traceback" not in err


def test_missing_job_file_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "--config", str(tmp_path / "nope.toml")]) == 2
    assert "bedside-lite init" in capsys.readouterr().err


def test_file_values_apply_and_passed_flags_override_them(tmp_path: Path) -> None:
    job = _job(
        tmp_path,
        "[prune]\nfinetune_epochs = 2\nsparsity = 0.3\n"
        "[quantize]\ncalibration_samples = 50\n"
        "[bench]\nenabled = false\nruns = 7\n"
        '[gates]\nmin_specificity = 0.8\nrequire_runtimes = ["litert"]\n',
    )
    from_file = build_config(["build", "--config", str(job)])
    assert from_file.prune.finetune_epochs == 2
    assert from_file.prune.target_sparsity == 0.3
    assert from_file.quantize.calibration_samples == 50
    assert from_file.bench.enabled is False and from_file.bench.runs == 7
    assert from_file.gates.min_specificity == 0.8
    assert from_file.quantize.require_runtimes == (RuntimeTarget.LITERT,)
    # a flag passed with its default value still overrides the file: defaults are not
    # mistaken for "not passed"
    overridden = build_config(
        [
            "build",
            "--config",
            str(job),
            "--finetune-epochs",
            "0",
            "--threshold",
            "0.05",
            "--calibration-samples",
            "200",
            "--gate",
            "min_specificity=0.95",
            "--require-runtime",
            "litert-no-delegates",
        ]
    )
    assert overridden.prune.finetune_epochs == 0
    assert overridden.prune.threshold == 0.05 and overridden.prune.target_sparsity is None
    assert overridden.quantize.calibration_samples == 200
    assert overridden.gates.min_specificity == 0.95
    assert overridden.quantize.require_runtimes == (RuntimeTarget.LITERT_NO_DELEGATES,)
    assert overridden.bench.runs == 7  # not passed: the file's value stays


def test_without_a_file_the_flags_and_defaults_apply() -> None:
    config = build_config(["build", "--prune-schedule", "polynomial", "--finetune-epochs", "1"])
    assert config.prune.schedule is PruneSchedule.POLYNOMIAL
    assert config.prune.target_sparsity == AUTO_SPARSITY
    assert config.gates.limits == {}


def test_every_build_option_has_a_job_key() -> None:
    actions = subcommand_parser(make_parser(), "build")._actions
    missing = jobfile.uncovered(actions)
    assert not missing, (
        f"build options without a job-file key: {missing}; add them to KEYS in pipeline/jobfile.py"
    )
    dests = {a.dest for a in actions}
    stale = [
        k.label for k in jobfile.KEYS if k.dest not in dests and not k.dest.startswith("gate_")
    ]
    assert not stale, f"job keys whose flag no longer exists: {stale}"


def test_init_writes_a_template_that_resolves_to_the_defaults(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ci" / "job.toml"
    assert main(["init", str(path)]) == 0
    text = path.read_text()
    for section in (*jobfile.SECTIONS, "sweep"):
        assert f"[{section}]" in text
    assert "--gate max_auroc_drop=V" in text and "--no-bench" in text
    assert build_config(["build", "--config", str(path)]) == build_config(["build"])
    before = path.read_bytes()
    assert main(["init", str(path)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert path.read_bytes() == before
    assert main(["init", str(path), "--overwrite"]) == 0


def test_resolved_job_round_trips_through_the_toml_writer(tmp_path: Path) -> None:
    baseline = tmp_path / "report.json"
    baseline.write_text("{}")
    config = build_config(
        [
            "build",
            "--sparsity",
            "0.4",
            "--prune-scope",
            "layer",
            "--prune-biases",
            "--prune-include",
            "dense*",
            "--prune-exclude",
            "head",
            "--finetune-epochs",
            "2",
            "--prune-schedule",
            "polynomial",
            "--initial-sparsity",
            "0.1",
            "--calibration-samples",
            "33",
            "--io",
            "float32",
            "--activations",
            "int16",
            "--no-remedy",
            "--mean",
            "0.5,0.2",
            "--std",
            "2",
            "--resize",
            "32x16",
            "--positive-class",
            "malignant",
            "--seed",
            "7",
            "--no-bench",
            "--bench-runs",
            "9",
            "--html",
            "--gate",
            "max_int8_bytes=4096",
            "--gate",
            "max_size_growth_pct=5",
            "--baseline",
            str(baseline),
            "--out",
            str(tmp_path / "o 'quoted' \"dir\""),
        ]
    )
    job = jobfile.job_from_config(config)
    text = jobfile.dumps(job, header="header line\nsecond")
    assert tomllib.loads(text) == job
    assert job_config(tomllib.loads(text)) == config


def test_example_job_file_is_valid() -> None:
    config = build_config(["build", "--config", str(ROOT / "examples" / "job.toml")])
    assert config.gates.max_auroc_drop == 0.02
    assert config.quantize.require_runtimes == (
        RuntimeTarget.LITERT,
        RuntimeTarget.LITERT_NO_DELEGATES,
    )
    sweep = jobfile.load(ROOT / "examples" / "job.toml").sweep
    assert sweep["sparsity"] == [0.0, 0.5, 0.7, 0.8] and sweep["workers"] == 2


def test_gate_flag_parses_typed_values() -> None:
    assert jobfile.gate_assignment("max_int8_bytes=4096") == ("gate_max_int8_bytes", 4096)
    assert jobfile.gate_assignment(" min_speedup = 1.5 ") == ("gate_min_speedup", 1.5)
    assert jobfile.gate_assignment("require_runtimes=litert,litert-no-delegates") == (
        "require_runtime",
        ["litert", "litert-no-delegates"],
    )
    with pytest.raises(ConfigError, match="max_int8_bytes must be an integer"):
        jobfile.gate_assignment("max_int8_bytes=4.5")
    with pytest.raises(ConfigError, match="expects KEY=VALUE"):
        jobfile.gate_assignment("min_speedup")


@pytest.mark.slow
def test_build_writes_the_resolved_job_with_the_cli_override(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    root = tmp_path_factory.getbasetemp() / "release"
    out, run = release_env.release_build(root, "a")
    resolved = tomllib.loads((out / "job.resolved.toml").read_text())
    original = tomllib.loads(release_env.release_job(root).read_text())
    assert original["prune"]["sparsity"] == 0.3
    assert resolved["prune"]["sparsity"] == 0.5  # --sparsity 0.5 beat the file
    assert resolved["export"]["out"] == str(out)  # --out beat the file
    assert resolved["quantize"]["calibration_samples"] == 64  # from the file
    report = json.loads((out / "report.json").read_text())
    assert report["pruning"]["target_sparsity"] == 0.5
    assert report["quantization"]["calibration_samples"] == 64
    assert job_config(resolved) == build_config(
        ["build", "--config", str(out / "job.resolved.toml")]
    )


@pytest.mark.parametrize(
    ("text", "flags", "named"),
    [
        ("[prune]\nsparsity = 1.5\n", ["--sparsity", "1.5"], "[prune] sparsity = 1.5 must be"),
        (
            "[quantize]\ncalibration_samples = 0\n",
            ["--calibration-samples", "0"],
            "[quantize] calibration_samples = 0 must be",
        ),
        ("[model]\nbootstrap = 7\n", ["--bootstrap", "7"], "[model] bootstrap = 7 must be"),
        (
            '[prune]\nschedule = "polynomial"\nthreshold = 0.1\n',
            ["--prune-schedule", "polynomial", "--threshold", "0.1"],
            '[prune] schedule = "polynomial" ramps a sparsity; received [prune] threshold = 0.1.',
        ),
    ],
)
def test_a_bad_value_names_its_source(
    text: str, flags: list[str], named: str, tmp_path: Path
) -> None:
    job = _job(tmp_path, text)
    with pytest.raises(ConfigError) as from_file:
        build_config(["build", "--config", str(job)])
    assert str(from_file.value).startswith(f"{job}: {named}")
    with pytest.raises(ConfigError) as from_flag:
        build_config(["build", *flags])
    message = str(from_flag.value)
    assert message.startswith(flags[0]) and str(job) not in message and "] " not in message


def test_a_flag_overriding_a_bad_file_value_is_named_as_the_flag(tmp_path: Path) -> None:
    job = _job(tmp_path, "[prune]\nsparsity = 0.5\ninitial_sparsity = 0.9\n")
    with pytest.raises(ConfigError) as exc:
        build_config(["build", "--config", str(job), "--initial-sparsity", "1.2"])
    assert str(exc.value).startswith("--initial-sparsity must be in [0, 1); received 1.2")


@pytest.mark.parametrize(
    ("text", "flags", "sources"),
    [
        (
            "",
            ["--decision-threshold", "0.5", "--operating-point", "sensitivity=0.9"],
            ("--decision-threshold 0.5", "--operating-point sensitivity=0.9"),
        ),
        (
            '[model]\noperating_point = "sensitivity=0.9"\n',
            ["--decision-threshold", "0.5"],
            ("--decision-threshold 0.5", '{job}: [model] operating_point = "sensitivity=0.9"'),
        ),
        (
            "[model]\ndecision_threshold = 0.3\n",
            ["--operating-point", "youden"],
            ("{job}: [model] decision_threshold = 0.3", "--operating-point youden"),
        ),
        (
            '[model]\ndecision_threshold = 0.5\noperating_point = "threshold=0.4"\n',
            [],
            ("{job}: [model] decision_threshold = 0.5", "{job}: [model] operating_point"),
        ),
    ],
)
def test_two_different_operating_point_rules_exit_2_naming_both(
    text: str,
    flags: list[str],
    sources: tuple[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    job = _job(tmp_path, text)
    code = main(["build", "--config", str(job), "--out", str(tmp_path / "o"), *flags])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert f"{sources[0]} conflicts with {sources[1]}".format(job=job) in err
    assert not (tmp_path / "o").exists()


def test_the_same_operating_point_rule_twice_is_accepted(tmp_path: Path) -> None:
    job = _job(tmp_path, '[model]\noperating_point = "threshold=0.3"\n')
    config = build_config(["build", "--config", str(job), "--decision-threshold", "0.3"])
    assert config.evaluation.rule == ("threshold", 0.3)
    # a resolved job with a chosen rule holds the rule alone, so it runs again
    chosen = build_config(["build", "--operating-point", "sensitivity=0.9"])
    assert job_config(jobfile.job_from_config(chosen)) == chosen


def test_a_bad_rule_beside_a_threshold_names_the_file(tmp_path: Path) -> None:
    job = _job(tmp_path, '[model]\noperating_point = "sensitivity=2"\ndecision_threshold = 0.4\n')
    with pytest.raises(ConfigError) as exc:
        build_config(["build", "--config", str(job)])
    assert str(exc.value).startswith(f'{job}: [model] operating_point = "sensitivity=2" ')
