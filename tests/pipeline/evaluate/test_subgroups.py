"""The verdict per subgroup (--subgroup): reading attributes, banding, bad input, per-group
metrics and paired intervals, flips, the gates and the decisions' worst group.

Subgroup attributes here are synthetic (a made-up `site`), stated as such.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipeline.config import DataConfig
from pipeline.config.budget import ValidationBudget
from pipeline.data.dataset import load
from pipeline.data.subgroups import MISSING, as_groups
from pipeline.errors import ConfigError, DataError
from pipeline.evaluate import bootstrap
from pipeline.evaluate.metrics import flips
from pipeline.evaluate.operating_point import RateBudget, rates
from pipeline.evaluate.subgroups import GroupBudget, describe, variant_subgroups


def _xy(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    y = rng.integers(0, 2, n)
    site = np.where(rng.random(n) < 0.3, "B", "A")  # synthetic site
    return x, y, site


def _rows_of(x_split: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.array([np.flatnonzero((x == row).all(axis=1))[0] for row in x_split])


# --- input --------------------------------------------------------------------------------


def test_xy_npz_attribute_is_split_with_the_cases(tmp_path: Path) -> None:
    x, y, site = _xy()
    np.savez(tmp_path / "d.npz", x=x, y=y, site=site)
    splits = load(DataConfig(path=tmp_path / "d.npz", subgroups=("site",)))
    assert splits.subgroups is not None
    for name in ("val", "test"):
        rows = _rows_of(splits.split(name)[0], x)
        assert (splits.subgroups.of(name)["site"] == site[rows]).all()


def test_medmnist_layout_reads_val_and_test_arrays(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    arrays = {}
    for split, n in (("train", 30), ("val", 12), ("test", 14)):
        arrays[f"{split}_images"] = rng.integers(0, 255, (n, 8, 8), dtype=np.uint8)
        arrays[f"{split}_labels"] = rng.integers(0, 2, (n, 1))
        arrays[f"{split}_sex"] = np.array(["F", "M"] * (n // 2))
    np.savez(tmp_path / "m.npz", **arrays)
    splits = load(DataConfig(path=tmp_path / "m.npz", subgroups=("sex",)))
    assert splits.subgroups is not None
    assert (splits.subgroups.of("test")["sex"] == arrays["test_sex"]).all()
    assert (splits.subgroups.of("val")["sex"] == arrays["val_sex"]).all()


def test_csv_column_is_a_subgroup_and_never_a_feature(tmp_path: Path) -> None:
    x, y, site = _xy()
    lines = ["a,b,c,d,site,label"] + [
        ",".join([*(f"{v}" for v in row), s, str(label)])
        for row, s, label in zip(x, site, y, strict=True)
    ]
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    splits = load(DataConfig(path=tmp_path / "t.csv", subgroups=("site",)))
    assert splits.x_train.shape[1] == 4  # the site column is not a feature
    assert splits.subgroups is not None
    rows = _rows_of(splits.x_test, x.astype(np.float32))
    assert (splits.subgroups.of("test")["site"] == site[rows]).all()


@pytest.mark.parametrize("table", ["labels.csv", "metadata.csv"])
def test_image_folder_column_of_labels_or_metadata_csv(tmp_path: Path, table: str) -> None:
    from PIL import Image

    root = tmp_path / "imgs"
    rows, meta = ["filename,label"], ["filename,site"]
    for label in ("benign", "malignant"):
        (root / label).mkdir(parents=True)
        for i in range(10):
            value = 40 if label == "benign" else 200
            Image.fromarray(np.full((8, 8), value, np.uint8)).save(root / label / f"{i}.png")
            site = "A" if label == "benign" else "B"  # synthetic: site follows the class
            rows.append(f"{label}/{i}.png,{label}" + (f",{site}" if table == "labels.csv" else ""))
            meta.append(f"{label}/{i}.png,{site}")
    if table == "labels.csv":
        rows[0] += ",site"
        (root / "labels.csv").write_text("\n".join(rows) + "\n")
    else:
        (root / "metadata.csv").write_text("\n".join(meta) + "\n")
    splits = load(DataConfig(path=root, subgroups=("site",)), input_shape=(None, 8, 8, 1))
    assert splits.subgroups is not None
    for name in ("val", "test"):
        expected = np.where(splits.split(name)[1] == 1, "B", "A")
        assert (splits.subgroups.of(name)["site"] == expected).all()


def test_dicom_tag_keyword_from_each_header(tmp_path: Path) -> None:
    pydicom = pytest.importorskip("pydicom")
    files = Path(pydicom.__file__).parent / "data" / "test_files"
    if not (files / "CT_small.dcm").is_file() or not (files / "MR_small.dcm").is_file():
        pytest.skip("pydicom test files are not installed")
    root = tmp_path / "dcm"
    (root / "series").mkdir(parents=True)
    rows = ["filename,label"]
    for label, name in (("ct", "CT_small.dcm"), ("mr", "MR_small.dcm")):
        for i in range(5):
            shutil.copy(files / name, root / "series" / f"{label}_{i}")
            rows.append(f"series/{label}_{i},{label}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    splits = load(DataConfig(path=root, subgroups=("Modality",)), input_shape=(None, 16, 16, 1))
    assert splits.subgroups is not None
    for name in ("val", "test"):
        expected = np.array(["CT", "MR"])[splits.split(name)[1]]
        assert (splits.subgroups.of(name)["Modality"] == expected).all()


# --- banding and bad input ---------------------------------------------------------------


def test_bands_of_a_numeric_attribute() -> None:
    ages = np.array(["5", "18", "39.5", "65", "120", "", "045Y"], dtype=object)
    got = as_groups(ages, "age", (0, 18, 40, 65, 120), "d.npz").tolist()
    assert got == ["0-18", "18-40", "18-40", "65-120", "65-120", MISSING, "40-65"]


def test_value_outside_the_bands_is_a_data_error() -> None:
    with pytest.raises(DataError, match="outside the bands"):
        as_groups(np.array([130]), "age", (0, 18, 120), "d.npz")


def test_many_numbers_without_bands_ask_for_bands() -> None:
    with pytest.raises(DataError, match="--subgroup-bands age="):
        as_groups(np.arange(51), "age", None, "d.npz")
    assert len(set(as_groups(np.arange(50), "age", None, "d.npz"))) == 50


@pytest.mark.parametrize(
    ("bands", "match"),
    [(("age",), "received 'age'"), (("age=5,1",), "increasing"), (("site=0,1",), "not a")],
)
def test_bad_bands_are_config_errors(bands: tuple[str, ...], match: str) -> None:
    from pipeline.config import DataConfig

    with pytest.raises(ConfigError, match=match):
        DataConfig(subgroups=("age",), subgroup_bands=bands)


def _build(args: list[str]) -> int:
    from pipeline.cli import main

    return main(["build", "--no-bench", "--quiet", *args])


def test_unknown_subgroup_exits_2_listing_the_attributes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x, y, site = _xy()
    np.savez(tmp_path / "d.npz", x=x, y=y, site=site, scanner=site)
    out = tmp_path / "out"
    assert _build(["--data", str(tmp_path / "d.npz"), "--subgroup", "sex", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "'sex'" in err and "scanner, site" in err
    assert not out.exists()


def test_length_mismatch_exits_2_with_both_lengths(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x, y, site = _xy()
    np.savez(tmp_path / "d.npz", x=x, y=y, site=site[:150])
    out = tmp_path / "out"
    assert _build(["--data", str(tmp_path / "d.npz"), "--subgroup", "site", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "150 values" in err and "200 cases" in err
    assert not out.exists()


# --- per-group metrics ---------------------------------------------------------------------


def _scored(n: int = 300, seed: int = 0) -> tuple[dict, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p32 = np.clip(0.5 + (y - 0.5) * 0.6 + rng.normal(0, 0.25, n), 0, 1)
    p8 = np.clip(p32 + rng.normal(0, 0.1, n), 0, 1)
    scored = {}
    for name, p in (("float32", p32), ("int8", p8)):
        probs = np.stack([1 - p, p], axis=1)
        scored[name] = (probs, (p >= 0.5).astype(int))
    site = np.where(rng.random(n) < 0.3, "B", "A")
    return scored, y, site


def test_flips_of_the_groups_add_up_to_the_whole_split() -> None:
    scored, y, site = _scored()
    metrics = {
        v: {"flips": flips(y, scored["float32"][0], probs, 1, 0.5)}
        for v, (probs, _) in scored.items()
    }
    per = variant_subgroups(
        scored, y, {"site": site}, metrics, positive_class=1, min_cases=10, replicates=0, seed=0
    )
    whole = metrics["int8"]["flips"]
    assert sum(whole[k] for k in ("positive_missed", "negative_flagged")) > 0  # not vacuous
    for kind in ("positive_missed", "positive_found", "negative_flagged", "negative_cleared"):
        assert sum(g["flips"][kind] for g in per["int8"]["site"].values()) == whole[kind]


def test_a_group_of_every_case_gets_the_whole_split_intervals() -> None:
    scored, y, _ = _scored()
    every = np.array(["all"] * len(y))
    per = variant_subgroups(
        scored, y, {"all": every}, {v: {} for v in scored}, positive_class=1, min_cases=10,
        replicates=400, seed=3,
    )  # fmt: skip
    whole = bootstrap.intervals(scored, y, reference="float32", replicates=400, seed=3)
    group = per["int8"]["all"]["all"]
    for metric in ("auroc", "sensitivity", "specificity"):
        assert group["ci95"][metric] == pytest.approx(whole["int8"]["ci95"][metric])
        assert group["vs_float32"][metric]["ci95"] == pytest.approx(
            whole["int8"]["vs_float32"][metric]["ci95"]
        )


def _restricted(
    scored: dict, y: np.ndarray, mask: np.ndarray, replicates: int, seed: int
) -> dict[str, dict[str, np.ndarray]]:
    """Each variant's AUROC, sensitivity and specificity in the group `mask` on every
    replicate of the whole split (`resample_counts`), computed directly."""
    counts = np.concatenate(list(bootstrap.resample_counts(y, replicates, seed)))[:, mask]
    truth = y[mask] == 1
    out = {}
    for name, (probs, pred) in scored.items():
        hit = pred[mask] == y[mask]
        with np.errstate(invalid="ignore", divide="ignore"):
            out[name] = {
                "auroc": bootstrap.weighted_auroc(truth, probs[mask, 1], counts),
                "sensitivity": (counts * (hit & truth)).sum(1) / (counts * truth).sum(1),
                "specificity": (counts * (hit & ~truth)).sum(1) / (counts * ~truth).sum(1),
            }
    return out


def _assert_direct_intervals(
    group: dict,
    direct: dict,
    variant: str,
    metrics: tuple[str, ...] = ("auroc", "sensitivity", "specificity"),
) -> None:
    """A group's intervals and paired ones against float32 are those of the values
    computed directly (`_restricted`)."""
    for metric in metrics:
        assert group["ci95"][metric] == pytest.approx(
            bootstrap.interval(direct[variant][metric]), rel=1e-12
        )
        paired = direct[variant][metric] - direct["float32"][metric]
        assert group["vs_float32"][metric]["ci95"] == pytest.approx(
            bootstrap.interval(paired), rel=1e-12, abs=1e-15
        )


@pytest.mark.parametrize("fewer", [0, 1])  # AUROC counted from either class
def test_a_group_is_scored_on_the_whole_split_replicates_restricted_to_its_cases(
    fewer: int,
) -> None:
    # no draws of its own: the group's cases of each whole-split replicate, as drawn there
    scored, y, _ = _scored()
    keep = ~((y == fewer) & (np.arange(len(y)) % 3 == 0))
    scored = {v: (probs[keep], pred[keep]) for v, (probs, pred) in scored.items()}
    y = y[keep]
    site = np.where(np.arange(len(y)) < 6, "B", "A")  # B: too few cases to be judged
    site[200:] = "C"
    per = variant_subgroups(
        scored, y, {"site": site}, {v: {} for v in scored}, positive_class=1, min_cases=10,
        replicates=400, seed=3,
    )  # fmt: skip
    assert "ci95" not in per["int8"]["site"]["B"]
    for value in ("A", "C"):
        direct = _restricted(scored, y, site == value, 400, 3)
        _assert_direct_intervals(per["int8"]["site"][value], direct, "int8")


def test_replicates_without_a_class_in_the_group_are_left_out() -> None:
    # a group judged from 2 positives among 300 cases: many replicates draw neither
    scored, y, _ = _scored()
    site = np.array(["A"] * len(y))
    site[np.flatnonzero(y == 1)[2:]] = "B"  # A: 2 positives and every negative
    direct = _restricted(scored, y, site == "A", 1300, 0)  # scored in three batches
    assert 0 < np.isnan(direct["int8"]["auroc"]).sum() < 650  # not vacuous
    per = variant_subgroups(
        scored, y, {"site": site}, {v: {} for v in scored}, positive_class=1, min_cases=2,
        replicates=1300, seed=0,
    )  # fmt: skip
    _assert_direct_intervals(per["int8"]["site"]["A"], direct, "int8", ("auroc", "sensitivity"))


def _swap_around_a_positive(p: np.ndarray, y: np.ndarray, site: np.ndarray) -> np.ndarray:
    """`p` with two negatives of site A swapped: one just below a positive, one just above
    it (that positive still has as many negatives below it, but not the same ones)."""
    a = np.flatnonzero(site == "A")
    order = a[np.argsort(p[a])]
    for i in range(1, len(order) - 1):
        low, mid, high = order[i - 1 : i + 2]
        if y[mid] == 1 and y[low] == 0 and y[high] == 0 and p[low] < p[mid] < p[high]:
            out = p.copy()
            out[low], out[high] = p[high], p[low]
            return out
    raise AssertionError("no positive between two negatives")


@pytest.mark.parametrize("change", ["monotone", "swap"])
def test_a_variant_ordering_and_deciding_alike_shares_the_values_and_no_other(
    change: str,
) -> None:
    # a block equal to an earlier one is not scored but takes its values: only when every
    # positive-negative pair of every group compares alike and every case is decided alike
    from pipeline.evaluate.subgroups import SplitGroups

    scored, y, site = _scored(n=240)
    probs, pred = scored["int8"]
    p = probs[:, 1] ** 2 if change == "monotone" else _swap_around_a_positive(probs[:, 1], y, site)
    scored["copy"] = (np.stack([1 - p, p], axis=1), pred)  # the int8 file's decisions
    plan = SplitGroups.of(scored, y, {"site": site}, positive_class=1, min_cases=10).plan
    shared = np.flatnonzero(plan.source != np.arange(len(plan.source))).tolist()
    assert shared == ([4, 5] if change == "monotone" else [])  # whole blocks (attributes)
    per = variant_subgroups(
        scored, y, {"site": site}, {v: {} for v in scored}, positive_class=1, min_cases=10,
        replicates=500, seed=4,
    )  # fmt: skip
    for value in ("A", "B"):
        direct = _restricted(scored, y, site == value, 500, 4)
        _assert_direct_intervals(per["copy"]["site"][value], direct, "copy")
    if change == "swap":  # not vacuous: the swap changed site A's replicates
        direct = _restricted(scored, y, site == "A", 500, 4)
        assert not np.array_equal(direct["copy"]["auroc"], direct["int8"]["auroc"])


def test_interval_rows_are_shared_only_when_equal() -> None:
    # a row equal to an earlier one reuses its interval; equal sums alone do not
    from pipeline.evaluate.row_intervals import row_intervals

    low = np.arange(2000.0)
    shifted = low + np.where(low < 1000, -5.0, 5.0)  # the same sum, other percentiles
    undefined = low.copy()
    undefined[7] = np.nan
    rows = np.stack([low, shifted, low, undefined, undefined])
    expected = [bootstrap.interval(row) for row in rows]
    assert expected[0] != expected[1]  # not vacuous
    assert row_intervals(rows.copy()) == expected


def test_the_evaluate_stage_scores_the_groups_on_its_own_replicates(monkeypatch: Any) -> None:
    # one set of draws for the whole split and its groups: the groups' intervals are those
    # of the whole split's replicates, not of draws of their own
    from types import SimpleNamespace

    from pipeline.cli import build_config
    from pipeline.config import Variant
    from pipeline.device import client
    from pipeline.evaluate.stage import OperatingPoint, evaluate_variants
    from pipeline.models import OutputKind

    scored, y, site = _scored()
    outputs = {Variant.FLOAT32: scored["float32"][0], Variant.INT8: scored["int8"][0]}
    monkeypatch.setattr(client, "run_model", lambda path, x: SimpleNamespace(outputs=path))
    calls = []
    resample = bootstrap.resample_counts
    monkeypatch.setattr(bootstrap, "resample_counts", lambda *a: calls.append(a) or resample(*a))
    groups = SimpleNamespace(of=lambda split: {"site": site}, case=lambda split, i: {})
    splits = SimpleNamespace(
        model_inputs=lambda split: None, split=lambda split: (None, y), positive_class=1,
        class_names=None, subgroups=groups,
    )  # fmt: skip
    config = build_config(["build", "--data", "d.npz", "--bootstrap", "300", "--seed", "4"])
    out = evaluate_variants(
        outputs, splits, "test", OutputKind.SOFTMAX, OutputKind.SOFTMAX, config,
        OperatingPoint(0.5, {}),
    )  # fmt: skip
    assert len(calls) == 1  # the whole split's draws only
    for value in ("A", "B"):
        direct = _restricted(scored, y, site == value, 300, 4)["int8"]["auroc"]
        assert out["int8"]["subgroups"]["site"][value]["ci95"]["auroc"] == pytest.approx(
            bootstrap.interval(direct), rel=1e-12
        )


def test_small_groups_are_reported_not_judged() -> None:
    y = np.array([1] * 12 + [0] * 12 + [1] * 3 + [0] * 20)
    site = np.array(["A"] * 24 + ["B"] * 23)
    doc = describe({"site": site}, y, 1, 2, 10)
    assert doc["site"]["A"] == {"n": 24, "positives": 12, "negatives": 12, "judged": True,
                                "reason": None}  # fmt: skip
    assert doc["site"]["B"]["judged"] is False and "3 positives" in doc["site"]["B"]["reason"]


def test_multiclass_groups_get_accuracy_and_per_class_recall() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 240)
    probs = rng.dirichlet(np.ones(3), 240)
    probs[np.arange(240), y] += 1.0
    probs /= probs.sum(axis=1, keepdims=True)
    scored = {"float32": (probs, probs.argmax(1)), "int8": (probs[::-1][::-1], probs.argmax(1))}
    per = variant_subgroups(
        scored, y, {"site": np.where(np.arange(240) % 2, "A", "B")}, {v: {} for v in scored},
        positive_class=1, min_cases=10, replicates=200, seed=0,
    )  # fmt: skip
    group = per["int8"]["site"]["A"]
    assert 0 <= group["accuracy"] <= 1 and len(group["per_class_recall"]) == 3
    assert set(group["vs_float32"]) == {"accuracy", "recall_0", "recall_1", "recall_2"}
    assert group["vs_float32"]["accuracy"]["diff"] == pytest.approx(0.0)


# --- gates ---------------------------------------------------------------------------------


def _report(upper_b: float, judged_b: bool = True) -> dict:
    def group(low: float, high: float) -> dict:
        return {"n": 40, "vs_float32": {"auroc": {"diff": -(low + high) / 2, "ci95": [low, high]}}}

    return {
        "metrics": {
            "float32": {"subgroups": {"site": {"A": {"n": 40}, "B": {"n": 40}}}},
            "int8": {"subgroups": {"site": {"A": group(-0.01, 0.01), "B": group(-upper_b, 0.0)}}},
        },
        "subgroups": {
            "site": {
                "A": {"n": 40, "positives": 20, "negatives": 20, "judged": True, "reason": None},
                "B": {
                    "n": 40,
                    "positives": 20,
                    "negatives": 20,
                    "judged": judged_b,
                    "reason": None if judged_b else "few",
                },  # fmt: skip
            }
        },
    }


def test_subgroup_gate_fails_naming_the_group_its_bound_and_the_margin() -> None:
    from pipeline.release.gates import failure_message, subgroup_noninferiority

    check = subgroup_noninferiority(_report(0.08), "subgroup_noninferiority_auroc", "auroc", 0.05)
    assert not check.passed and check.measured == pytest.approx(0.08)
    line = failure_message(check.to_json())
    assert "site=B" in line and "0.08" in line and "0.05" in line


def test_subgroup_gate_passes_and_ignores_groups_not_judged() -> None:
    from pipeline.release.gates import subgroup_noninferiority

    name = "subgroup_noninferiority_auroc"
    assert subgroup_noninferiority(_report(0.03), name, "auroc", 0.05).passed
    # an unjudged group's wide interval does not decide
    check = subgroup_noninferiority(_report(0.5, judged_b=False), name, "auroc", 0.05)
    assert check.passed and check.measured == pytest.approx(0.01)


def test_subgroup_gate_without_subgroups_is_not_measured() -> None:
    from pipeline.release.gates import subgroup_noninferiority

    check = subgroup_noninferiority({"metrics": {}}, "g", "auroc", 0.05)
    assert not check.passed and check.measured is None


# --- decisions -------------------------------------------------------------------------------


def test_judge_rejects_a_variant_that_loses_only_one_group() -> None:
    rng = np.random.default_rng(0)
    n = 400
    site = np.where(np.arange(n) < 300, "A", "B")
    truth = rng.random(n) < 0.5
    reference = np.where(truth, 0.8, 0.2) + rng.normal(0, 0.05, n)
    pruned = reference.copy()
    lost = (site == "B") & truth & (rng.random(n) < 0.3)  # site B loses 30% of its positives
    pruned[lost] = 0.1
    budget_kw = {"auroc": 1.0, "sensitivity": 0.1, "specificity": 0.05}
    groups = GroupBudget.of({"site": site}, truth, reference, 0.5, 10, budget_kw)
    assert groups is not None
    whole = RateBudget(ValidationBudget(0.1, 0.05, 1.0), rates(truth, reference, 0.5), 0.5)
    now = rates(truth, pruned, 0.5)
    assert whole.meets(now)  # the whole split keeps its budget ...
    worst = groups.worst_group(pruned)
    assert worst["worst_group"] == "site=B" and worst["worst_group_metric"] == "sensitivity"
    assert worst["worst_group_drop"] > 0.1
    assert not whole.meets({**now, **worst})  # ... but site B does not
    assert groups.worst_group(reference)["groups_within_budget"]


# --- whole build --------------------------------------------------------------------------


@pytest.mark.slow
def test_build_with_subgroups_reports_them_and_without_does_not(
    tmp_path: Path, wdbc_npz: Path
) -> None:
    from tests.pipeline.release.test_report_keys import GOLDEN

    arrays = dict(np.load(wdbc_npz))
    rng = np.random.default_rng(0)
    site = np.where(rng.random(len(arrays["y"])) < 0.35, "B", "A")  # synthetic site
    age = rng.integers(20, 90, len(site))  # synthetic age
    np.savez(tmp_path / "d.npz", **arrays, site=site, age=age)
    out = tmp_path / "with"
    args = ["--data", str(tmp_path / "d.npz"), "--sparsity", "0.5", "--no-bench", "--out", str(out)]
    sub = ["--subgroup", "site", "--subgroup", "age", "--subgroup-bands", "age=0,50,70,120"]
    assert _build([*args, *sub]) == 0
    report = json.loads((out / "report.json").read_text())
    assert set(report["subgroups"]) == {"site", "age"}
    assert set(report["subgroups"]["age"]) <= {"0-50", "50-70", "70-120"}
    int8 = report["metrics"]["int8"]
    for kind in ("positive_missed", "positive_found", "negative_flagged", "negative_cleared"):
        total = sum(g["flips"][kind] for g in int8["subgroups"]["site"].values())
        assert total == int8["flips"][kind]
    assert all("subgroups" in c for c in int8["flips"]["cases"])
    judged = [v for v, g in report["subgroups"]["site"].items() if g["judged"]]
    assert judged and "vs_float32" in int8["subgroups"]["site"][judged[0]]
    assert "## Subgroups" in (out / "report.md").read_text()
    card = json.loads((out / "model_card.json").read_text())["subgroups"]
    assert card["site"][judged[0]]["int8"]["auroc"] == int8["subgroups"]["site"][judged[0]]["auroc"]
    assert f"| site={judged[0]} |" in (out / "model_card.md").read_text()
    # without --subgroup there are none: the default build's golden keys hold no "subgroups"
    assert not [k for k in json.loads(GOLDEN.read_text()) if "subgroups" in k]


def test_sweep_point_records_its_worst_judged_group() -> None:
    from types import SimpleNamespace

    from pipeline.data.subgroups import SubgroupValues
    from pipeline.evaluate.subgroups import point_worst_group

    scored, y, site = _scored()
    probs8, _ = scored["int8"]
    worse = probs8.copy()
    worse[site == "B", 1] = 0.5 + (0.5 - worse[site == "B", 1]) * 0.5  # site B ranks badly
    scored["int8"] = (worse, (worse[:, 1] >= 0.5).astype(int))
    per = variant_subgroups(
        scored, y, {"site": site}, {v: {} for v in scored}, positive_class=1, min_cases=10,
        replicates=200, seed=0,
    )  # fmt: skip
    metrics = {v: {"subgroups": doc} for v, doc in per.items()}
    values = SubgroupValues(("site",), {"site": site}, {"site": site}, {})
    splits = SimpleNamespace(
        subgroups=values, positive_class=1, num_classes=2, split=lambda _: (None, y)
    )
    worst = point_worst_group(metrics, splits, "val", 10)["worst_group"]
    assert worst["group"] == "site=B" and worst["metric"] == "auroc" and worst["diff"] < 0
    splits.subgroups = None
    assert point_worst_group(metrics, splits, "val", 10) == {}


def test_group_points_equal_the_metrics_of_the_group_alone() -> None:
    from pipeline.evaluate.metrics import evaluate

    scored, y, site = _scored()
    per = variant_subgroups(
        scored, y, {"site": site}, {v: {} for v in scored}, positive_class=1, min_cases=10,
        replicates=0, seed=0,
    )  # fmt: skip
    for value in ("A", "B"):
        mask = site == value
        alone = evaluate(scored["int8"][0][mask], y[mask], positive_class=1).values
        for metric in ("auroc", "sensitivity", "specificity"):
            assert per["int8"]["site"][value][metric] == pytest.approx(alone[metric])


def test_job_file_keys_reach_the_config() -> None:
    from pipeline.cli import job_config

    config = job_config(
        {
            "data": {"subgroups": ["site", "PatientAge"],
                     "subgroup_bands": ["PatientAge=0,18,40,65,120"]},
            "model": {"min_subgroup_cases": 5},
            "gates": {"subgroup_noninferiority_auroc": 0.05},
        }
    )  # fmt: skip
    assert config.data.subgroups == ("site", "PatientAge")
    assert config.data.bands == {"PatientAge": (0.0, 18.0, 40.0, 65.0, 120.0)}
    assert config.evaluation.min_subgroup_cases == 5
    assert config.gates.limits == {"subgroup_noninferiority_auroc": 0.05}


@pytest.mark.parametrize("decide", ["point", "interval"])
def test_the_paired_judge_refuses_a_variant_that_loses_only_one_group(decide: str) -> None:
    """The default judge (`--decide interval`) holds the worst judged subgroup too."""
    from pipeline.config.enums import Decide
    from pipeline.evaluate.decision import DecisionRule, PairedJudge

    rng = np.random.default_rng(0)
    n = 400
    site = np.where(np.arange(n) < 300, "A", "B")
    truth = rng.random(n) < 0.5
    reference = np.clip(np.where(truth, 0.8, 0.2) + rng.normal(0, 0.05, n), 0, 1)
    pruned = reference.copy()
    pruned[(site == "B") & truth & (rng.random(n) < 0.3)] = 0.1  # site B loses 30%
    probs = lambda p: np.stack([1 - p, p], axis=1)  # noqa: E731
    limits = {"auroc": 1.0, "sensitivity": 0.1, "specificity": 0.05}
    groups = GroupBudget.of({"site": site}, truth, reference, 0.5, 10, limits)
    rule = DecisionRule(decide=Decide(decide))
    budget = ValidationBudget(0.2, 0.05, 1.0)  # the whole split may lose 0.2 sensitivity

    def judge(with_groups: bool) -> Any:
        paired = PairedJudge.of_reference(
            probs(reference), truth.astype(int), 1, 0.5, 1.0, budget, rule,
            groups=groups if with_groups else None,
        )  # fmt: skip
        return paired.judge(probs(pruned))

    assert judge(False).within_budget  # the whole split keeps its budgets ...
    refused = judge(True)
    assert not refused.within_budget and list(refused.missed) == ["subgroup"]  # ... site B not
    assert "site=B" in refused.missed["subgroup"] and "sensitivity" in refused.missed["subgroup"]
    assert refused.rates()["worst_group"] == "site=B"  # recorded on the curve point / recipe
