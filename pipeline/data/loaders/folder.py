"""Folders of image exports (PNG/JPEG) or DICOM files, labelled or not.

How a folder is read:

- with a label CSV (`--labels FILE`, or `labels.csv` in the folder) holding `filename` and
  a label column: every image/DICOM file below the folder, matched by relative path or
  unique file name, labelled from the CSV;
- else, with one subfolder per class: class names sorted A-Z become indices 0, 1, ...;
- else (files only): unlabelled, usable only as `--calibration-data`.

Each file is decoded, resized to the model's height and width and given the model's
channel count with the same functions the preprocessing spec records, so a device repeats
them. All files of a folder must be of one kind (images or DICOM).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from pipeline.data.loaders import LoadedArrays
from pipeline.data.loaders.checks import encode_labels
from pipeline.data.loaders.dicom import Window, decode_dicom, is_dicom
from pipeline.data.loaders.images import DECODE as IMAGE_DECODE
from pipeline.data.loaders.images import IMAGE_SUFFIXES, decode_image
from pipeline.data.preprocessing import conform_channels, resize_images
from pipeline.errors import DataError

LABELS_CSV = "labels.csv"
_SKIP_NAMES = ("DICOMDIR", LABELS_CSV)
_EIGHT_BIT_MODES = {"1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "YCbCr"}
_WIDE_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I", "F"}


def _kind(path: Path) -> str | None:
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return "image"
    if is_dicom(path):
        return "dicom"
    return None


def _files(root: Path) -> tuple[list[Path], list[Path]]:
    """(image or DICOM files, other files) below `root`, sorted, hidden ones left out."""
    found: list[Path] = []
    other: list[Path] = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        if path.name in _SKIP_NAMES:
            continue
        (found if _kind(path) else other).append(path)
    return found, other


def read_label_csv(path: Path, label_column: str) -> dict[str, str]:
    """`filename` -> label text from a CSV with a header row.

    Raises:
        DataError: missing file or columns, duplicate or empty file names.
    """
    if not path.is_file():
        raise DataError(f"Label file '{path}' does not exist; expected a CSV 'filename,label'.")
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            if "filename" not in header or label_column not in header:
                raise DataError(
                    f"Label file '{path}' has columns {header}; expected a header with "
                    f"'filename' and '{label_column}' (set the label column with "
                    "--label-column)."
                )
            labels: dict[str, str] = {}
            for line, row in enumerate(reader, start=2):
                name = (row.get("filename") or "").strip().replace("\\", "/")
                if not name:
                    raise DataError(f"Label file '{path}' line {line} has no filename.")
                if name in labels:
                    raise DataError(f"Label file '{path}' lists '{name}' twice (line {line}).")
                labels[name] = row.get(label_column) or ""
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"Label file '{path}' could not be read as CSV: {exc}.") from None
    if not labels:
        raise DataError(f"Label file '{path}' lists no files.")
    return labels


def _match_labels(
    root: Path, files: list[Path], labels: dict[str, str], source: Path
) -> tuple[list[Path], list[str], list[str]]:
    """Files listed in the CSV (by relative path or unique name), their label texts, and a
    warning for files the CSV does not list."""
    by_rel = {f.relative_to(root).as_posix(): f for f in files}
    by_name: dict[str, list[Path]] = {}
    for f in files:
        by_name.setdefault(f.name, []).append(f)
    chosen, texts, missing = [], [], []
    for name, text in labels.items():
        match = by_rel.get(name)
        if match is None and len(by_name.get(name, [])) == 1:
            match = by_name[name][0]
        if match is None:
            missing.append(name)
            continue
        chosen.append(match)
        texts.append(text)
    if missing:
        raise DataError(
            f"Label file '{source}' lists {len(missing)} file(s) not found (or not unique by "
            f"name) under '{root}', e.g. {missing[:3]}. Use paths relative to the folder."
        )
    warnings = []
    unlisted = len(files) - len(set(chosen))
    if unlisted:
        warnings.append(
            f"{unlisted} image/DICOM file(s) under '{root}' are not in '{source}' and were "
            "left out."
        )
    return chosen, texts, warnings


def _discover(
    root: Path, labels: Path | None, label_column: str, labelled: bool
) -> tuple[list[Path], list[str] | None, tuple[str, ...] | None, str, list[str]]:
    """The files to read, their label texts, class names, how they were labelled, warnings."""
    warnings: list[str] = []
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not labelled:
        files, other = _files(root)
        y_text, class_names, how = None, None, "unlabelled"
    elif labels is not None:
        files, other = _files(root)
        files, y_text, warnings = _match_labels(
            root, files, read_label_csv(labels, label_column), labels
        )
        class_names, how = None, f"label file {labels}"
    elif classes:
        loose = [p.name for p in root.iterdir() if p.is_file() and _kind(p)]
        if loose:
            raise DataError(
                f"Data folder '{root}' has class subfolders {classes} and also image/DICOM "
                f"files at its top level (e.g. {loose[:3]}). Move every file into its class "
                "subfolder."
            )
        other = [p for p in sorted(root.iterdir()) if p.is_file() and not _kind(p)]
        other = [p for p in other if p.name not in _SKIP_NAMES and not p.name.startswith(".")]
        files, y_text = [], []
        for name in classes:
            found, skipped = _files(root / name)
            if not found:
                raise DataError(
                    f"Class folder '{root / name}' holds no PNG, JPEG or DICOM files; remove it "
                    "or add its images."
                )
            files += found
            other += skipped
            y_text += [name] * len(found)
        class_names, how = tuple(classes), "class subfolders"
    else:
        raise DataError(
            f"Data folder '{root}' has no class subfolders and no {LABELS_CSV}, so its images "
            "are unlabelled. Evaluation needs labels: put each class in its own subfolder or "
            "pass --labels FILE (CSV 'filename,label'). An unlabelled folder can be used for "
            "int8 calibration with --calibration-data."
        )
    if other:
        warnings.append(
            f"{len(other)} file(s) under '{root}' are neither PNG/JPEG nor DICOM and were "
            f"skipped, e.g. {[p.name for p in other[:3]]}."
        )
    return files, y_text, class_names, how, warnings


def load_folder(
    root: Path,
    *,
    labels: Path | None = None,
    label_column: str = "label",
    image_size: tuple[int, int] | None = None,
    channels: int | None = None,
    window: Window | None = None,
    labelled: bool = True,
) -> LoadedArrays:
    """Reads an image or DICOM folder.

    Args:
        root: the folder.
        labels: a `filename,label` CSV; default `root/labels.csv` when present.
        label_column: the label column of that CSV.
        image_size: (height, width) to resize every image to; None keeps the stored size
            (then all files must have the same size).
        channels: the model's channel count (1 or 3); None keeps what files hold.
        window: DICOM VOI window, or None for modality values.
        labelled: False for calibration data: labels are neither needed nor read.

    Raises:
        DataError: no usable files, mixed kinds or sizes, unreadable files, bad labels.
    """
    if not root.is_dir():
        raise DataError(f"Data folder '{root}' does not exist.")
    if labels is None and labelled and (root / LABELS_CSV).is_file():
        labels = root / LABELS_CSV
    files, y_text, class_names, how, warnings = _discover(root, labels, label_column, labelled)
    if not files:
        raise DataError(f"Data folder '{root}' holds no PNG, JPEG or DICOM files.")
    kinds = {_kind(f) for f in files}
    if len(kinds) > 1:
        raise DataError(
            f"Data folder '{root}' mixes DICOM and PNG/JPEG files; they decode to different "
            "value ranges. Keep one kind per folder."
        )
    kind = str(kinds.pop())
    samples, groups, file_facts, modes, notes = _decode_files(
        files, kind, image_size, channels, window
    )
    warnings += notes
    if len({s.shape[1:] for s in samples}) > 1:
        pairs = list(zip(files, samples, strict=True))[:3]
        shown = ", ".join(f"'{f.name}' {s.shape[1:]}" for f, s in pairs)
        raise DataError(
            f"Images in '{root}' differ in size or channels ({shown}, ...). Pass --resize HxW, "
            "or use a model with a fixed input size so they are resized to it."
        )
    if modes.keys() & _EIGHT_BIT_MODES and modes.keys() & _WIDE_MODES:
        warnings.append(
            f"Images in '{root}' mix 8-bit and 16-bit files ({modes}); their values differ "
            "in range by 256x. Export them at one bit depth."
        )

    x = np.concatenate(samples).astype(np.float32)
    y = None
    if y_text is not None:
        y_file, names = encode_labels(y_text, f"of '{labels}'" if labels else f"in '{root}'")
        class_names = class_names or names
        y = y_file[np.asarray(groups)]
    details: dict[str, Any] = {
        "format": f"{kind} folder",
        "labels": how,
        "files": len(files),
        "samples": int(len(x)),
    }
    if modes:
        details["image_modes"] = modes
    if file_facts:
        details["photometric"] = sorted({f["photometric"] for f in file_facts})
        multi = sum(1 for f in file_facts if f["frames"] > 1)
        if multi:
            details["multi_frame_files"] = multi
    return LoadedArrays(
        {"all": (x, y)},
        str(root),
        class_names=class_names,
        groups=np.asarray(groups) if len(x) != len(files) else None,
        decode=_decode_record(kind, window),
        details=details,
        warnings=tuple(warnings),
        image_size=image_size,
        sample_files=tuple(files[g].relative_to(root).as_posix() for g in groups),
    )


class _Decoded(NamedTuple):
    samples: list[np.ndarray]  # per file: its frames, fitted to the size and channels
    groups: list[int]  # per frame: the index of its file
    file_facts: list[dict[str, Any]]  # per DICOM file: photometric, frames
    modes: dict[str, int]  # per image mode (PNG/JPEG): files
    warnings: list[str]


def _decode_files(
    files: list[Path],
    kind: str,
    image_size: tuple[int, int] | None,
    channels: int | None,
    window: Window | None,
) -> _Decoded:
    """Every file decoded and fitted (`_fit`); NaN or Inf pixels are an error."""
    decoded = _Decoded([], [], [], {}, [])
    for index, path in enumerate(files):
        if kind == "dicom":
            frames, facts, notes = decode_dicom(path, window)
            decoded.warnings.extend(notes)
            decoded.file_facts.append(facts)
        else:
            pixels, mode = decode_image(path)
            decoded.modes[mode] = decoded.modes.get(mode, 0) + 1
            frames = pixels[None]
        if not np.all(np.isfinite(frames)):
            raise DataError(f"File '{path}' decodes to NaN or Inf pixel values; re-export it.")
        decoded.samples.append(_fit(frames, image_size, channels, path))
        decoded.groups.extend([index] * len(frames))
    return decoded


def _decode_record(kind: str, window: Window | None) -> dict[str, Any]:
    """How files became arrays, for the preprocessing spec a device follows."""
    if kind == "image":
        return dict(IMAGE_DECODE)
    return {
        "format": "dicom",
        "reader": "pydicom",
        "modality_lut": "RescaleSlope/RescaleIntercept (or Modality LUT) on monochrome",
        "window": None if window is None else window.to_json(),
        "monochrome1": "inverted after windowing (255 - y)",
        "color": "RGB as stored (YBR and palette color converted to RGB)",
    }


def _fit(
    frames: np.ndarray, image_size: tuple[int, int] | None, channels: int | None, path: Path
) -> np.ndarray:
    """Resize and channel rule of the preprocessing spec, applied to one file's frames."""
    try:
        if image_size is not None:
            frames = resize_images(frames, image_size)
        if channels is not None:
            frames = conform_channels(frames, 3, channels)
    except DataError as exc:
        raise DataError(f"File '{path}': {exc}") from None
    return frames
