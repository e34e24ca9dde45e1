"""Per-case subgroup attributes (`--subgroup NAME`): site, sex, age band, scanner, ...

Each attribute is read from the data source beside the cases, carried through the split
with them and turned into one text value per case (`"B"`, `"F"`, `"18-40"`):

- `.npz` in MedMNIST layout: arrays `val_NAME` and `test_NAME` (`train_NAME` is ignored);
  an `x`/`y` archive: an array `NAME`, split here with the cases;
- tabular `.csv`: a column NAME (the loader leaves it out of the features);
- image/DICOM folder: a column of its label CSV (`--labels`, `labels.csv`) or of a
  `metadata.csv` (`filename,...`); for DICOM also a tag keyword read from each file's header
  (`PatientSex`, `InstitutionName`, `Manufacturer`, `PatientAge` as `045Y` -> 45).

A numeric attribute is put into the bands of `--subgroup-bands NAME=e0,e1,...` ([e_i,
e_i+1), the last band closed): `"18-40"`. Without bands, more than `MAX_VALUES` distinct
numbers is refused. A missing value (empty cell, NaN) is its own group, `"missing"`.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import DataError

MAX_VALUES = 50  # distinct numbers an attribute may have without --subgroup-bands
MISSING = "missing"
EVALUATED = ("val", "test")  # the splits verdicts rest on
METADATA_CSV = "metadata.csv"


@dataclass(frozen=True)
class SubgroupValues:
    """Each validation and test case's value (as text) of every `--subgroup` attribute."""

    names: tuple[str, ...]
    val: dict[str, np.ndarray]
    test: dict[str, np.ndarray]
    bands: dict[str, tuple[float, ...]]

    def of(self, split: str) -> dict[str, np.ndarray]:
        """name -> (cases,) values of `split` ("val" or "test")."""
        return dict(getattr(self, split))

    def case(self, split: str, index: int) -> dict[str, str]:
        """The values of one case of `split`, by attribute name."""
        return {name: str(values[index]) for name, values in getattr(self, split).items()}


def read_subgroups(
    loaded: Any,
    names: tuple[str, ...],
    bands: Mapping[str, tuple[float, ...]],
    *,
    seed: int,
    sizes: Mapping[str, int],
    label_column: str = "label",
    labels: Path | None = None,
) -> SubgroupValues | None:
    """The attributes `names` of the cases of `loaded` (a loader's result), split as
    `pipeline.data.splits` splits the cases (`sizes`: cases per split); None when no
    subgroup is asked for.

    Raises:
        DataError: the source has no such attribute (the message lists those it has), an
            attribute's length differs from its split's, a value outside the bands, or
            too many distinct numbers without bands.
    """
    if not names:
        return None
    raw = _raw_attributes(loaded, names, label_column, labels)
    per_split = _split_like_cases(loaded, raw, seed)
    for split in EVALUATED:
        for name in names:
            if len(per_split[split][name]) != sizes[split]:
                raise DataError(
                    f"Subgroup '{name}' of '{loaded.source}' has {len(per_split[split][name])} "
                    f"values for the {split} split, which has {sizes[split]} cases; give one "
                    "value per case."
                )
    out: dict[str, dict[str, np.ndarray]] = {split: {} for split in EVALUATED}
    for name in names:  # grouped over both splits: one decision on bands for the attribute
        both = np.concatenate([np.asarray(per_split[s][name], object) for s in EVALUATED])
        groups = as_groups(both, name, bands.get(name), loaded.source)
        out["val"][name], out["test"][name] = groups[: sizes["val"]], groups[sizes["val"] :]
    return SubgroupValues(tuple(names), out["val"], out["test"], dict(bands))


def _indices(loaded: Any, seed: int) -> dict[str, np.ndarray]:
    """Which of the unsplit cases land in each split: `stratified_split` of the case
    indices, which takes the same draws as the split of the cases themselves."""
    from pipeline.data.stratify import stratified_split

    _, y = loaded.parts["all"]
    index = np.arange(len(y))
    parts = stratified_split(index, np.asarray(y), seed, loaded.source, loaded.groups)
    return {name: idx for name, (idx, _) in parts.items()}


def _split_like_cases(
    loaded: Any, raw: dict[str, dict[str, np.ndarray]], seed: int
) -> dict[str, dict[str, np.ndarray]]:
    """split -> name -> values: given per split, or split with the cases."""
    if "all" not in raw:
        return raw
    n = len(loaded.parts["all"][1])
    for name, values in raw["all"].items():
        if len(values) != n:
            raise DataError(
                f"Subgroup '{name}' of '{loaded.source}' has {len(values)} values, but the "
                f"data has {n} cases; give one value per case."
            )
    idx = _indices(loaded, seed)
    return {
        split: {name: values[idx[split]] for name, values in raw["all"].items()}
        for split in EVALUATED
    }


def _unknown(name: str, source: str, available: list[str], where: str) -> DataError:
    have = ", ".join(sorted(available)) if available else "none"
    return DataError(
        f"--subgroup {name}: '{source}' has no attribute '{name}' ({where}). Its attributes: "
        f"{have}. Pass one of them with --subgroup (job.toml: [data] subgroups)."
    )


def _raw_attributes(
    loaded: Any, names: tuple[str, ...], label_column: str, labels: Path | None
) -> dict[str, dict[str, np.ndarray]]:
    """part ("all" or a split) -> name -> raw values, from the kind of source."""
    fmt = str(loaded.details.get("format", ""))
    path = Path(str(loaded.details.get("path") or loaded.source))
    if loaded.attributes is not None:
        return _from_memory(loaded.attributes, names, loaded.source)
    if fmt == "npz":
        return _from_npz(path, names, "all" in loaded.parts)
    if fmt == "csv":
        return {"all": _from_csv(path, names, exclude=(label_column,))}
    if fmt.endswith("folder"):
        return {"all": _from_folder(loaded, path, names, label_column, labels)}
    raise _unknown(names[0], loaded.source, [], f"a {fmt or 'built-in'} source has none")


def _from_memory(
    attributes: Mapping[str, Mapping[str, np.ndarray]], names: tuple[str, ...], source: str
) -> dict[str, Any]:
    """Attributes handed over with the arrays: `(x, y, {"site": ...})` per split or whole."""
    parts = ("all",) if "all" in attributes else EVALUATED
    for part in parts:
        have = attributes.get(part, {})
        for name in names:
            if name not in have:
                of = "data" if part == "all" else f"data['{part}']"
                raise _unknown(name, source, sorted(have), f"no '{name}' in the dict of {of}")
    return {part: {n: attributes[part][n] for n in names} for part in parts}


def _from_npz(path: Path, names: tuple[str, ...], unsplit: bool) -> dict[str, Any]:
    from pipeline.data.loaders.npz import read_arrays

    arrays = read_arrays(path)
    if unsplit:
        available = [k for k in arrays if k not in ("x", "y")]
        for name in names:
            if name not in arrays:
                raise _unknown(name, str(path), available, f"no array '{name}' beside x/y")
        return {"all": {name: arrays[name] for name in names}}
    available = [k[4:] for k in arrays if k.startswith("val_") and f"test_{k[4:]}" in arrays]
    available = [k for k in available if k not in ("images", "labels")]
    for name in names:
        if f"val_{name}" not in arrays or f"test_{name}" not in arrays:
            raise _unknown(name, str(path), available, f"no arrays 'val_{name}', 'test_{name}'")
    return {split: {n: arrays[f"{split}_{n}"] for n in names} for split in EVALUATED}


def read_columns(path: Path, key: str | None = None) -> tuple[list[str], list[dict[str, str]]]:
    """The header and rows of a CSV (rows as column -> text).

    Raises:
        DataError: unreadable, or without the column `key`.
    """
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            rows = [r for r in reader if any((v or "").strip() for v in r.values())]
            header = [h.strip() for h in reader.fieldnames or []]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"Subgroup file '{path}' could not be read as CSV: {exc}.") from None
    if key is not None and key not in header:
        raise DataError(f"Subgroup file '{path}' has columns {header}; expected '{key}'.")
    return header, [{k.strip(): (v or "").strip() for k, v in r.items() if k} for r in rows]


def _from_csv(path: Path, names: tuple[str, ...], exclude: tuple[str, ...]) -> dict[str, Any]:
    header, rows = read_columns(path)
    for name in names:
        if name not in header:
            available = [h for h in header if h not in exclude]
            raise _unknown(name, str(path), available, "no such column")
    return {name: np.array([r.get(name, "") for r in rows], dtype=object) for name in names}


def _from_folder(
    loaded: Any, root: Path, names: tuple[str, ...], label_column: str, labels: Path | None
) -> dict[str, np.ndarray]:
    """Per case: a column of the label CSV or metadata.csv, else a DICOM tag."""
    files = loaded.sample_files
    if files is None:
        raise _unknown(names[0], loaded.source, [], "the loader did not record its files")
    tables: list[tuple[list[str], dict[str, dict[str, str]]]] = []
    for csv_path in (labels or root / "labels.csv", root / METADATA_CSV):
        if csv_path.is_file():
            header, rows = read_columns(csv_path, "filename")
            by_file = {r["filename"].replace("\\", "/"): r for r in rows}
            tables.append((header, by_file))
    dicom = str(loaded.details.get("format", "")).startswith("dicom")
    out: dict[str, np.ndarray] = {}
    for name in names:
        table = next((b for h, b in tables if name in h), None)
        if table is not None:
            out[name] = np.asarray([_row(table, f).get(name, "") for f in files], dtype=object)
        elif dicom:
            out[name] = _dicom_tag(root, files, name)
        else:
            available = sorted(
                {c for header, _ in tables for c in header if c not in ("filename", label_column)}
            )
            raise _unknown(name, str(root), available, "no column of labels.csv/metadata.csv")
    return out


def _row(by_file: dict[str, dict[str, str]], rel: str) -> dict[str, str]:
    """A file's row, by its path relative to the folder or by its name."""
    row = by_file.get(rel) or by_file.get(Path(rel).name)
    return row or {}


def _dicom_tag(root: Path, files: tuple[str, ...], keyword: str) -> np.ndarray:
    """A DICOM tag of each file (by keyword), from its header only."""
    from pipeline.errors import MissingExtraError

    try:
        import pydicom
        from pydicom.datadict import tag_for_keyword
    except ImportError:  # pragma: no cover - the dicom extra brings it
        raise MissingExtraError("pydicom", "dicom", "DICOM subgroup tags") from None
    if tag_for_keyword(keyword) is None:
        raise _unknown(keyword, str(root), [], "not a DICOM keyword nor a metadata column")
    cache: dict[str, str] = {}
    for rel in dict.fromkeys(files):
        header = pydicom.dcmread(root / rel, stop_before_pixels=True)
        value = header.get(keyword)
        cache[rel] = "" if value is None else str(getattr(value, "value", value))
    return np.array([cache[f] for f in files], object)


def _number(text: str) -> float | None:
    """A value as a number (DICOM ages such as `045Y`, `006M` in years), else None."""
    text = text.strip()
    units = {"Y": 1.0, "M": 1 / 12, "W": 7 / 365.25, "D": 1 / 365.25}
    if len(text) == 4 and text[:3].isdigit() and text[3] in units:
        return int(text[:3]) * units[text[3]]
    try:
        return float(text)
    except ValueError:
        return None


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return MISSING
        return f"{int(value)}" if float(value).is_integer() else f"{value:g}"
    text = str(value).strip()
    return text or MISSING


def _band(value: float, edges: tuple[float, ...]) -> int:
    """The index of the band holding `value`; -1 outside the edges."""
    if value == edges[-1]:
        return len(edges) - 2
    i = int(np.searchsorted(edges, value, side="right")) - 1
    return i if 0 <= i < len(edges) - 1 else -1


def as_groups(
    values: np.ndarray, name: str, edges: tuple[float, ...] | None, source: str
) -> np.ndarray:
    """Each case's group as text: its value, or its band with `edges`.

    Raises:
        DataError: a value outside the bands or not a number; a numeric attribute with
            more than MAX_VALUES distinct values and no bands.
    """
    texts = [_text(v) for v in np.asarray(values).tolist()]
    if edges is None:
        numbers = {t for t in texts if t != MISSING and _number(t) is not None}
        if len(numbers) > MAX_VALUES and len(numbers) == len(set(texts) - {MISSING}):
            raise DataError(
                f"Subgroup '{name}' of '{source}' has {len(numbers)} distinct numeric values; "
                f"at most {MAX_VALUES} are grouped as they are. Give bands, e.g. "
                f"--subgroup-bands {name}=0,18,40,65,120."
            )
        return np.array(texts, dtype=object)
    labels = [f"{a:g}-{b:g}" for a, b in zip(edges, edges[1:], strict=False)]
    out = []
    for text in texts:
        number = None if text == MISSING else _number(text)
        if text != MISSING and number is None:
            raise DataError(
                f"Subgroup '{name}' of '{source}' holds '{text}', not a number, but "
                f"--subgroup-bands gives it bands. Drop the bands or fix the value."
            )
        band = -1 if number is None else _band(number, edges)
        if number is not None and band < 0:
            raise DataError(
                f"Subgroup '{name}' of '{source}' holds {text}, outside the bands "
                f"{list(edges)} of --subgroup-bands; widen the first or last edge."
            )
        out.append(MISSING if number is None else labels[band])
    return np.array(out, dtype=object)
