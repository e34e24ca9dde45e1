"""The option registry: every option of `build` and `sweep`, declared once.

The `build`/`sweep` parsers (and the options `bench` and `export-onnx` share with them),
the job file's keys and their validation, the `init` template, the resolved job written
beside the artifacts, the mapping into `BuildConfig` and the docs' Options table are
all generated from `OPTIONS`. Defaults come from the config dataclasses, choices from the
`str` enums, gates from `pipeline.config.gates.GATES`.

A table rather than metadata on the dataclass fields: an option and a field are not one
to one (`--seed` fills two fields, `--runtime-python` adds a runtime, the sweep reuses
`--sparsity` for a list, `--json` fills none), and the table keeps the order the job file
and `--help` show.

`python -m pipeline.config.options --markdown` prints the table of docs/reference/options.md.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

from pipeline.config.enums import (
    AUTO_SPARSITY,
    AUTO_SPARSITY_GRID,
    STRUCTURED_AUTO_GRID,
    Activations,
    Augmentation,
    Decide,
    LrSchedule,
    PruneSchedule,
    PruneScope,
    QuantizedIO,
    RuntimeTarget,
    StructuredCriterion,
    SweepPreference,
)
from pipeline.config.gates import GATES
from pipeline.config.option import Option, declare, shown
from pipeline.config.prune import SPEED_TARGET_RECIPE
from pipeline.config.sweep import SweepOptions

SECTIONS = (
    "model", "data", "prune", "quantize", "bench", "export", "gates", "device", "release"
)  # fmt: skip
SWEEP = "sweep"
BUILD_SWEEP = ("build", "sweep")


def _model() -> list[Option]:
    def o(dest: str, kind: str, help: str, **kw: Any) -> Option:
        return declare(dest, kind, help, section="model", **kw)

    ev = "evaluation."
    return [
        o("model", kind="path", name="path", attr="model", commands=BUILD_SWEEP,
          help="Keras 3 model (.keras, .h5) or SavedModel dir; unset: train the embedded "
          "reference classifier", example='"models/classifier.keras"'),
        o("positive_class", "class_ref", "clinically positive class of a binary task (index "
          "or name); unset: the dataset's own, e.g. malignant for WDBC and BreastMNIST, else 1",
          attr=ev + "positive_class", metavar="INDEX|NAME", example='"malignant"'),
        o("decision_threshold", "float", "P(positive) from which a case is called positive; "
          "a synonym of --operating-point threshold=T", attr=ev + "decision_threshold"),
        o("operating_point", "str", "binary tasks: threshold=T, sensitivity=S, specificity=S "
          "or youden, chosen once on the validation split from the float32 model and applied "
          "to every variant; unset: threshold=--decision-threshold",
          attr=ev + "operating_point", metavar="RULE",
          example='"sensitivity=0.95"'),
        o("bootstrap", "int", "stratified bootstrap resamples of the test split for the 95% "
          "intervals and the paired differences from float32 (0: none)",
          attr=ev + "bootstrap", metavar="N"),
        o("val_max_sensitivity_drop", "float", "validation budget: validation sensitivity at "
          "the operating point that --sparsity auto, --structured-sparsity auto and the int8 "
          "remedies may lose (the test-split release gate is --gate max_sensitivity_drop=V)",
          attr=ev + "max_sensitivity_drop", renamed_from="max_sensitivity_drop"),
        o("val_max_specificity_drop", "float", "validation budget: the same for validation "
          "specificity", attr=ev + "max_specificity_drop",
          renamed_from="max_specificity_drop"),
        o("val_max_brier_increase", "float", "validation budget: validation Brier score "
          "(probability drift that moves decisions at the operating point) they may add (1 "
          "turns it off)", attr=ev + "max_brier_increase", renamed_from="max_brier_increase"),
        o("min_subgroup_cases", "int", "positives (and as many negatives) a --subgroup "
          "value needs to be judged; smaller groups are reported, never judged",
          attr=ev + "min_subgroup_cases", metavar="N"),
        o("decide", "choice", "how the auto searches and the int8 remedies call a variant "
          "within a validation budget: interval (the one-sided upper confidence bound of its "
          "loss against the reference, from a paired stratified bootstrap of the validation "
          "split) or point (the validation point estimate)", attr=ev + "decide", enum=Decide),
        o("decision_confidence", "float", "confidence of the upper bounds of --decide "
          "interval (one-sided)", attr=ev + "decision_confidence"),
        o("seed", "int", "seed of the splits, training and calibration", attr="seed",
          commands=BUILD_SWEEP),
        o("unsafe_load", "bool", "allow Lambda layers in the model (runs code stored in the "
          "file)", attr="unsafe_load"),
        o("intended_use", "str", "the model card's intended use: who uses the model, on whom, "
          "for what decision (unset: the card says so and the build warns)",
          attr="intended_use", metavar="TEXT", commands=BUILD_SWEEP,
          example='"second reader for breast ultrasound triage in adults"'),
    ]  # fmt: skip


def _data() -> list[Option]:
    def o(dest: str, kind: str, help: str, **kw: Any) -> Option:
        return declare(dest, kind, help, section="data", **kw)

    return [
        o("data", "path", ".npz (MedMNIST layout or x/y), medmnist:NAME[@SIZE] (Keras cache, "
          "downloaded once), folder of PNG/JPEG or DICOM files (class subfolders or --labels "
          "CSV), or tabular .csv; unset: embedded WDBC", name="path", commands=BUILD_SWEEP,
          metavar="PATH|medmnist:NAME[@SIZE]", example='"medmnist:breastmnist"'),
        o("labels", "path", "filename,label CSV of an image/DICOM folder (unset: its "
          "labels.csv)", metavar="CSV", example='"data/labels.csv"'),
        o("label_column", "str", "label column of a tabular --data CSV or of --labels"),
        o("calibration_data", "path", "samples for int8 calibration instead of the train "
          "split; labels optional (e.g. an unlabelled image or DICOM folder)",
          name="calibration", metavar="PATH", example='"data/calibration"'),
        o("scale", "float", "input preprocessing x * scale + offset",
          example="0.00392156862745098"),
        o("offset", "float", "see --scale", example="0.0"),
        o("mean", "floats", "input preprocessing (x - mean) / std, scalar or per "
          "channel/feature", metavar="M[,M...]", example="[0.485, 0.456, 0.406]"),
        o("std", "floats", "see --mean", metavar="S[,S...]", example="[0.229, 0.224, 0.225]"),
        o("resize", "size", "resize images (bilinear) to height x width; image folders "
          "default to the model's size", metavar="HxW", example="[64, 64]"),
        o("window_center", "float", "DICOM window center (with --window-width)",
          example="40.0"),
        o("window_width", "float", "DICOM window width, mapped onto 0..255", example="400.0"),
        o("window_from_file", "bool", "use each DICOM file's own WindowCenter/WindowWidth"),
        o("subgroup", "strs", "per-case attribute (site, sex, age band, ...) every variant, "
          "gate and auto decision is also judged in, value by value (repeatable): .npz "
          "val_NAME/test_NAME (or NAME beside x/y), a .csv column (not a feature), a column "
          "of a folder's labels.csv or metadata.csv, or a DICOM tag keyword",
          name="subgroups", metavar="NAME", example='["site", "PatientSex"]'),
        o("subgroup_bands", "strs", "bands of a numeric subgroup: NAME=EDGES, [e0, e1), ..., "
          "the last band closed (repeatable)", metavar="NAME=E0,E1,...",
          example='["PatientAge=0,18,40,65,120"]'),
        o("host_preprocessing", "bool", "cut the model's leading Rescaling/Resizing layers "
          "off and run them on the host (recorded in preprocessing.json's host_front): every "
          "variant then takes the front's output, e.g. the 96x96 image"),
    ]  # fmt: skip


def _speed_recipe_text() -> str:
    recipe = SPEED_TARGET_RECIPE
    return (
        f"{recipe.epochs} epochs, {recipe.lr_schedule.value} learning rate, distillation "
        f"{recipe.distill:g} from the unpruned model, {'+'.join(recipe.augment)} augmentation "
        "for image inputs (no flips)"
    )


def _prune() -> list[Option]:
    def o(dest: str, kind: str, help: str, **kw: Any) -> Option:
        return declare(dest, kind, help, section="prune", **kw)

    grid = ", ".join(f"{s:g}" for s in AUTO_SPARSITY_GRID)
    st_grid = ", ".join(f"{r:g}" for r in STRUCTURED_AUTO_GRID)
    st = "structured."
    return [
        o("sparsity", "sparsity", f"target sparsity S in [0, 1), 0 skips pruning; "
          f"'{AUTO_SPARSITY}' (default): the largest of {grid} keeping validation AUROC "
          "within --max-prune-drop", attr="prune.target_sparsity", metavar="S|auto",
          exclusive="prune_amount", cli_exclusive=True, example=f'"{AUTO_SPARSITY}"'),
        o("threshold", "float", "absolute magnitude threshold tau >= 0 (instead of "
          "--sparsity)", exclusive="prune_amount", cli_exclusive=True, example="0.01"),
        o("prune_scope", "choice", "global: one tau over all kernels; layer: one per kernel",
          name="scope", enum=PruneScope),
        o("prune_biases", "bool", "also prune biases with tau", name="biases",
          attr="prune.prune_biases"),
        o("prune_include", "strs", "prune only layers whose name matches (fnmatch, "
          "repeatable)", name="include", metavar="PATTERN"),
        o("prune_exclude", "strs", "never prune layers whose name matches (fnmatch, "
          "repeatable)", name="exclude", metavar="PATTERN"),
        o("keep_first_last_dense", "bool", "leave the first and last prunable layer "
          "unpruned"),
        o("finetune_epochs", "int", "fine-tune with the masks held, on the train split",
          metavar="N", commands=BUILD_SWEEP),
        o("prune_schedule", "choice", "oneshot: prune, then fine-tune; polynomial: sparsity "
          "rises cubically over the fine-tuning steps", name="schedule", enum=PruneSchedule),
        o("initial_sparsity", "float", "polynomial: sparsity at the first step"),
        o("prune_frequency", "int", "polynomial: optimizer steps between mask updates",
          name="frequency", attr="prune.prune_frequency"),
        o("max_prune_drop", "float", "auto (--sparsity, --structured-sparsity): validation "
          "AUROC the pruned float model may lose",
          name="max_drop", attr="prune.max_prune_drop"),
        o("structured_sparsity", "sparsity", "structured pruning, before threshold pruning: "
          "remove the fraction R in [0, 1) of prunable Conv/Dense output channels and rebuild "
          f"a smaller model (faster on the device); '{AUTO_SPARSITY}': try R = {st_grid} from "
          "the largest down, each a whole structured step (--drop-blocks, fine-tuning) from "
          "the original, and keep the first whose validation AUROC (and rates at the "
          "operating point) stays within --max-prune-drop, as --sparsity auto judges; smaller "
          "R are not tried; none in budget: no structured pruning, and a warning",
          attr=st + "sparsity", metavar="R|auto", exclusive="structured_amount",
          example="0.25"),
        o("speedup_target", "float", "with --structured-sparsity auto: search for the cut "
          "that loses least while its predicted int8 latency (measured per layer on this "
          "target, cached) is X times below the unpruned int8 file's; the "
          "--speedup-candidates cuts meeting X with least importance lost get a short "
          "fine-tune, the best on validation AUROC gets the full one and is judged by the "
          "validation budgets (missed: the next-ranked, up to --speedup-finetunes); none "
          "meets both: a warning. Unset recipe flags take the "
          f"speed-target recipe: {_speed_recipe_text()}",
          attr=st + "speedup_target", default=None, metavar="X", example="2"),
        o("speedup_candidates", "int", "with --speedup-target: cuts meeting it ranked by a "
          "short fine-tune (one per input-front size, then one per number of residual "
          "branches dropped, each losing least channel importance; 1: no ranking)",
          attr=st + "speedup_candidates", metavar="K"),
        o("speedup_rank_epochs", "int", "with --speedup-target: epochs of each ranking "
          "fine-tune (the full recipe otherwise; 0: rank by the pruned model's validation "
          "AUROC)", attr=st + "speedup_rank_epochs", metavar="N"),
        o("speedup_finetunes", "int", "with --speedup-target: ranked cuts fine-tuned in "
          "full at most, best first, the next only when the one before missed the "
          "validation budgets (1: the best-ranked only; each one more costs a full "
          "fine-tune and is one more look at the same validation split)",
          attr=st + "speedup_finetunes", metavar="N"),
        o("structured_threshold", "float", "structured pruning: remove channels whose filter "
          "norm is below T times their layer's mean filter norm (instead of "
          "--structured-sparsity)", attr=st + "threshold", metavar="T",
          exclusive="structured_amount", example="0.5"),
        o("structured_criterion", "choice", "ranking of channels: l1/l2 filter norm, or "
          "activation (mean |value| each reader takes from the channel on training inputs "
          "times its kernel rows' l2 norm)", attr=st + "criterion", enum=StructuredCriterion),
        o("structured_scope", "choice", "global: one ranking over all layers (norms "
          "normalised by each layer's mean); layer: R of every layer", attr=st + "scope",
          enum=PruneScope),
        o("min_channels", "int", "structured: no layer keeps fewer than min(width, N) "
          "channels", attr=st + "min_channels", metavar="N"),
        o("channel_multiple", "int", "structured: shrunk layers keep a multiple of M channels "
          "(8 or 16 match int8 kernel tiles and run faster; 1: exact)",
          attr=st + "channel_multiple", metavar="M"),
        o("drop_blocks", "int", "structured: first remove the N residual branches that add "
          "least to their skip input (fewer ops, faster on the device)",
          attr=st + "drop_blocks", metavar="N", example="4"),
        o("structured_resize", "int", "structured: the model's own Resizing layer that "
          "enlarges its input (e.g. 28x28 to 96x96) makes N x N instead, first of all "
          "(every later layer works on smaller maps; keep N at least the input's size to "
          "lose no pixel; --speedup-target tries such sizes itself)",
          attr=st + "resize", default=None, metavar="N", example="64"),
        o("structured_finetune_epochs", "int", "fine-tune the rebuilt model N epochs (unset: "
          "--finetune-epochs if set, else 0, or 40 with --speedup-target)",
          attr=st + "finetune_epochs", default=None, metavar="N", example="2"),
        o("structured_augment", "choices", "structured fine-tuning: random transforms of the "
          "training images (hflip, vflip: mirror half of them; shift: up to 10%); "
          "repeatable; only for label-preserving transforms of your images (unset: none, or "
          "shift for image inputs with --speedup-target)", attr=st + "augment",
          enum=Augmentation, example='["hflip", "shift"]'),
        o("structured_lr_schedule", "choice", "structured fine-tuning: the optimizer's "
          "learning rate throughout, or cosine decay from it to 0 (unset: constant, or cosine "
          "with --speedup-target)", attr=st + "lr_schedule", enum=LrSchedule,
          example='"cosine"'),
        o("structured_distill", "float", "structured fine-tuning: targets are (1-W) label + "
          "W the unpruned model's probability on the same (augmented) image (0: labels "
          "only; unset: 0, or 0.5 with --speedup-target)", attr=st + "distill", metavar="W",
          example="0.5"),
        o("latency_target", "str", "where --speedup-target measures the layers and models: "
          "local (this machine's runtime), an ssh:// address or a name in --devices (the "
          "device's own runtime, over SSH, cached per device); unset: the build's first "
          "--device, else local", attr="device.latency_target", default=None,
          metavar="local|ssh://USER@HOST[:PORT]|NAME", example='"bedside1"'),
    ]  # fmt: skip


def _quantize_bench_export() -> list[Option]:
    def q(dest: str, kind: str, help: str, **kw: Any) -> Option:
        return declare(dest, kind, help, section="quantize", **kw)

    def e(dest: str, kind: str, help: str, **kw: Any) -> Option:
        return declare(dest, kind, help, section="export", **kw)

    return [
        q("calibration_samples", "int", "int8 calibration sample size", metavar="N"),
        q("io", "choice", "int8 model input/output type (float32: integer inside, float "
          "edges)", enum=QuantizedIO),
        q("activations", "choice", "activation width (int16: the 16x8 mode)",
          enum=Activations),
        q("sparse_encoding", "bool", "store pruned weights sparse; kept only if every "
          "runtime verifies it"),
        q("val_max_int8_auroc_drop", "float", "validation budget: validation AUROC an int8 "
          "recipe may lose against the pruned float model before the remedies try the next "
          "(the test-split release gate is --gate max_auroc_drop=V)",
          name="val_max_auroc_drop", attr="quantize.max_auroc_drop",
          renamed_from="max_auroc_drop"),
        q("no_remedy", "bool", "try remedies when plain PTQ breaks the AUROC budget "
          "(--no-remedy: keep plain PTQ)", name="remedy", attr="quantize.remedy",
          invert=True),
        q("remedy_int16", "bool", "let the remedies try int16 activations (16x8): more "
          "accurate, but not accelerated by XNNPACK (measured 40x slower on "
          "MobileNetV2-0.35)"),
        q("runtime_python", "path", "a Python with tflite-runtime (e.g. a numpy<2 venv): "
          "verify and bench there too", metavar="PATH",
          example='"/opt/legacy-venv/bin/python"'),
        declare("no_bench", "bool", "measure latency and memory (--no-bench: skip it)",
                section="bench", name="enabled", attr="bench.enabled", invert=True,
                commands=BUILD_SWEEP),
        declare("bench_runs", "int", "timed runs per model", section="bench", name="runs",
                attr="bench.runs", metavar="N", commands=BUILD_SWEEP),
        declare("threads", "int", "interpreter threads for the bench", section="bench",
                metavar="N", commands=("build", "bench")),
        declare("profile", "bool", "also time each op alone (cut from the file) on the "
                "same runtime and delegate: top ops by share, QUANTIZE/DEQUANTIZE and float "
                "shares", section="bench", commands=("build", "bench")),
        e("out", "path", "output directory", attr="out"),
        e("overwrite", "bool", "replace a non-empty --out", attr="overwrite",
          commands=("build", "export-onnx")),
        e("onnx", "bool", "also export model_pruned_float32.onnx and model_int8.onnx with a "
          "parity check (needs bedside-lite[onnx])"),
        e("opset", "int", "ONNX opset", commands=("build", "export-onnx")),
        e("html", "bool", "also write report.html"),
    ]  # fmt: skip


def _gates_device() -> list[Option]:
    def d(dest: str, kind: str, help: str, **kw: Any) -> Option:
        return declare(dest, kind, help, section="device", commands=("build", "bench"), **kw)

    runtimes = "{" + ",".join(t.value for t in RuntimeTarget) + "}|DEVICE"
    return [
        *(
            declare(f"gate_{g.name}", "int" if g.whole else "float", g.help, section="gates",
                    name=g.name, flag=f"--gate {g.name}=V", commands=(), example=g.example)
            for g in GATES
        ),
        declare("require_runtime", "targets", "fail (exit 1) unless the int8 model verifies "
                "on this runtime or device (a name in [device] targets); repeatable",
                section="gates", name="require_runtimes", attr="quantize.require_runtimes",
                enum=RuntimeTarget, metavar=runtimes),
        declare("require_onnx_parity", "bool", "fail (exit 1) when an ONNX file does not "
                "match its source", section="gates", attr="export.require_parity"),
        declare("baseline", "path", "the previous release's report.json: gate size growth, "
                "latency regression and metric drops against it too", section="gates",
                metavar="REPORT_JSON", example='"baseline/report.json"'),
        d("device", "strs", "also run on this bedside device over SSH (system ssh client): "
          "an ssh:// address or a name in --devices; repeatable in build", name="targets",
          default=None, metavar="ssh://USER@HOST[:PORT]|NAME", example='["bedside1"]'),
        d("devices", "path", "device inventory: [devices.NAME] tables with ssh, identity, "
          "python, threads", name="inventory", metavar="INVENTORY_TOML",
          example='"devices.toml"'),
        d("identity", "path", "SSH private key for the devices (ssh -i)", metavar="KEY",
          example='"~/.ssh/bedside_ed25519"'),
        d("device_python", "str", "the devices' Python with numpy and a LiteRT runtime "
          "(unset: python3)", name="python", metavar="PATH",
          example='"/opt/venv/bin/python"'),
        d("known_hosts", "path", "known_hosts file holding the devices' host keys (unset: "
          "ssh's own)", metavar="FILE", example='"~/.ssh/known_hosts"'),
    ]  # fmt: skip


def _release() -> list[Option]:
    def r(dest: str, kind: str, help: str, **kw: Any) -> Option:
        return declare(dest, kind, help, section="release", commands=BUILD_SWEEP, **kw)

    return [
        r("mlflow", "str", "log the build (a sweep: a parent run, a child per point) to this "
          "MLflow tracking server; unset: $MLFLOW_TRACKING_URI, else none (needs "
          "bedside-lite[mlflow])", name="mlflow_uri", metavar="URI",
          example='"http://127.0.0.1:5000"'),
        r("mlflow_experiment", "str", "the MLflow experiment of the runs", metavar="NAME",
          example='"bedside-lite"'),
        r("register_model", "str", "register model_int8.tflite as a new version of this "
          "MLflow registered model when the gates pass (needs --mlflow)", metavar="NAME",
          example='"breast-triage-int8"'),
    ]  # fmt: skip


def _sweep() -> list[Option]:
    def o(dest: str, kind: str, help: str, **kw: Any) -> Option:
        kw.setdefault("default", None)
        return declare(dest, kind, help, section=SWEEP, commands=("sweep",), **kw)

    def axis(choices: tuple[str, ...]) -> str:
        return ",".join(choices)

    def default(name: str) -> Any:
        """A sweep setting's default, declared on `SweepOptions`."""
        return {f.name: f.default for f in dataclasses.fields(SweepOptions)}[name]

    return [
        o("grid_sparsity", "sparsity_list", "target sparsities to try, e.g. 0,0.5,0.8",
          name="sparsity", flag="--sparsity", metavar="S,S,...", example="[0.0, 0.5, 0.8]"),
        o("grid_threshold", "floats_list", "or magnitude thresholds tau instead of sparsities",
          name="threshold", flag="--threshold", metavar="T,T,...", example="[0.01, 0.05]"),
        o("grid_schedule", "choice_list", "pruning schedules to try", name="schedule",
          flag="--prune-schedule", enum=PruneSchedule,
          metavar=axis(tuple(s.value for s in PruneSchedule)), example='["oneshot"]'),
        o("grid_calibration_samples", "ints_list", "calibration sizes to try, e.g. 100,200",
          name="calibration_samples", flag="--calibration-samples", metavar="N,N,...",
          example="[100, 200]"),
        o("grid_activations", "choice_list", "activation widths to try", name="activations",
          flag="--activations", enum=Activations,
          metavar=axis(tuple(a.value for a in Activations)), example='["int8"]'),
        o("workers", "int", "sweep points in parallel, each in its own process",
          default=default("workers"),
          metavar="N", example="1"),
        o("prefer", "choice", "recommend the smallest or the fastest passing point",
          default=default("prefer"), enum=SweepPreference, example='"size"'),
        o("sweep_out", "path", "sweep directory; finished points are kept there and skipped "
          "when the sweep runs again (resumable)", name="out", flag="--out",
          default=default("out"), metavar="DIR", example='"sweep"'),
        o("ray", "str", "run each point as a task on the Ray cluster at HOST:PORT (auto: "
          "$RAY_ADDRESS) instead of local processes; needs bedside-lite[cluster]",
          metavar="ADDRESS", example='"auto"'),
        o("point_cpus", "float", "CPUs Ray reserves for each point (with --ray)",
          default=default("point_cpus"),
          metavar="N", example="1"),
        o("ray_retries", "int", "times Ray reruns a point whose worker or node died (with "
          "--ray)", default=default("ray_retries"), metavar="N", example="2"),
    ]  # fmt: skip


def _presentation() -> list[Option]:
    return [
        declare("config", "path", "TOML job file holding every option (`bedside-lite init` "
                "writes one); flags passed on the command line override it",
                metavar="JOB_TOML", commands=BUILD_SWEEP),
        declare("gate", "gate", "release gate, repeatable; exit 1 when one fails",
                metavar="KEY=VALUE", commands=BUILD_SWEEP),
        declare("json", "bool", "print the report to stdout", commands=BUILD_SWEEP),
        declare("quiet", "bool", "no progress and no table", commands=BUILD_SWEEP),
        declare("debug", "bool", "show tracebacks", commands=("main",)),
    ]  # fmt: skip


OPTIONS: tuple[Option, ...] = (
    *_model(),
    *_data(),
    *_prune(),
    *_quantize_bench_export(),
    *_gates_device(),
    *_release(),
    *_sweep(),
    *_presentation(),
)
BY_DEST = {o.dest: o for o in OPTIONS}


# Build options `sweep` leaves out besides those whose flag a sweep setting takes (the grid
# axes and --out): a sweep directory is resumed, never replaced.
_NOT_IN_SWEEP = ("overwrite",)


def for_command(command: str) -> tuple[Option, ...]:
    """The options whose flags `command`'s parser takes, in registry order.

    `sweep` takes its own settings ([sweep]: the grid axes, --out, workers, Ray) and every
    `build` option whose flag none of them takes, so each point can be any build.
    """
    if command != SWEEP:
        return tuple(o for o in OPTIONS if command in o.commands)
    taken = {o.flag for o in OPTIONS if o.section == SWEEP}
    return tuple(
        o
        for o in OPTIONS
        if SWEEP in o.commands
        or ("build" in o.commands and o.flag not in taken and o.dest not in _NOT_IN_SWEEP)
    )


def markdown() -> str:
    """docs/reference/options.md's table of the `build` and `sweep` options (flag, job key,
    default, help)."""
    rows = [
        "| flag | job key | default | help |",
        "| --- | --- | --- | --- |",
    ]
    for o in OPTIONS:
        commands = [c for c in o.commands if c in BUILD_SWEEP]
        if not o.section and not commands:
            continue
        flag = f"`{o.flag}`" if o.flag else ""
        if commands == ["sweep"]:
            flag += " (sweep)"
        key = f"`{o.label}`" if o.section else ""
        if o.renamed_from:
            flag += f" (deprecated: `{o.old_flag}`)"
            key += f" (deprecated: `{o.old_label}`)"
        default = shown(o.default)
        help = o.help.replace("|", "\\|")
        rows.append(f"| {flag} | {key} | {f'`{default}`' if default else ''} | {help} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":  # pragma: no cover - `python -m pipeline.config.options --markdown`
    if sys.argv[1:] != ["--markdown"]:
        sys.exit("usage: python -m pipeline.config.options --markdown")
    sys.stdout.write(markdown())
