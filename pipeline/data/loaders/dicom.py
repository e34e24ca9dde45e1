"""Decoding DICOM files with pydicom (extra `dicom`, imported only when needed).

Monochrome pixels go through the modality LUT (RescaleSlope/RescaleIntercept, e.g. CT
Hounsfield units), then optionally a window (DICOM PS3.3 C.11.2.1.2.1, linear) onto 0..255,
as an exported 8-bit image would hold. MONOCHROME1 (inverted gray) is flipped after
windowing. Color images (RGB, YBR converted to RGB, palette color) keep their stored values.
A multi-frame file gives one sample per frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import ConfigError, DataError, MissingExtraError

DICOM_SUFFIXES = (".dcm", ".dicom")
WINDOW_RANGE = (0.0, 255.0)


@dataclass(frozen=True)
class Window:
    """A VOI window: fixed center/width, or each file's own (first) WindowCenter/Width."""

    center: float | None = None
    width: float | None = None
    from_file: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "center": "from file" if self.from_file else self.center,
            "width": "from file" if self.from_file else self.width,
            "function": "linear, DICOM PS3.3 C.11.2.1.2.1: "
            "y = clip((x - (center - 0.5)) / (width - 1) + 0.5, 0, 1) * 255",
            "output_range": list(WINDOW_RANGE),
        }


def is_dicom(path: Path) -> bool:
    """A .dcm/.dicom file, or any file with the 'DICM' marker after the 128-byte preamble."""
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    if path.suffix:
        return False
    try:
        with path.open("rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def window_linear(x: np.ndarray, center: float, width: float) -> np.ndarray:
    """DICOM linear VOI window of modality values onto 0..255 (float32)."""
    lo, hi = WINDOW_RANGE
    if width <= 1:  # the standard's degenerate case: a threshold at center - 0.5
        return np.where(np.asarray(x) <= center - 0.5, lo, hi).astype(np.float32)
    y = (np.asarray(x, np.float64) - (center - 0.5)) / (width - 1) + 0.5
    return (np.clip(y, 0.0, 1.0) * (hi - lo) + lo).astype(np.float32)


def _first(value: Any) -> float:
    """First value of a possibly multi-valued DICOM number (WindowCenter can hold several)."""
    try:
        return float(value[0])
    except TypeError:
        return float(value)


def decode_dicom(
    path: Path, window: Window | None = None
) -> tuple[np.ndarray, dict[str, Any], list[str]]:
    """One DICOM file as float32 frames (F, H, W) gray or (F, H, W, 3) color.

    Returns:
        The frames, facts for the report (photometric interpretation, rescale applied), and
        warnings.

    Raises:
        DataError: not DICOM, no pixel data, an undecodable transfer syntax, no window in
            the file when asked to use it.
        MissingExtraError: pydicom is not installed.
    """
    try:
        import pydicom
        from pydicom.errors import InvalidDicomError
        from pydicom.pixels import apply_color_lut, apply_modality_lut
    except ImportError:
        raise MissingExtraError("pydicom", "dicom", "DICOM loading") from None

    force = path.suffix.lower() in DICOM_SUFFIXES  # a .dcm without the 128-byte preamble
    try:
        ds = pydicom.dcmread(path, force=force)
    except (InvalidDicomError, OSError, EOFError, ValueError, KeyError) as exc:
        raise DataError(
            f"DICOM file '{path}' could not be read ({type(exc).__name__}: {exc})."
        ) from None
    if not any(tag in ds for tag in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        modality = ds.get("Modality", "unknown")
        raise DataError(
            f"DICOM file '{path}' (modality {modality}) holds no image pixel data. Remove "
            "non-image objects (RT plans, structured reports) from the folder."
        )
    try:
        pixels = ds.pixel_array
    except Exception as exc:  # noqa: BLE001 - pydicom's decoders raise many types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"DICOM file '{path}' pixel data could not be decoded ({type(exc).__name__}: "
            f"{first}). For compressed transfer syntaxes install a decoder (pylibjpeg, "
            "python-gdcm) or export uncompressed DICOM."
        ) from None

    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    warnings: list[str] = []
    if photometric == "PALETTE COLOR":
        pixels = apply_color_lut(pixels, ds)
    color = photometric not in ("MONOCHROME1", "MONOCHROME2")
    if frames == 1:
        pixels = pixels[None]
    facts: dict[str, Any] = {"photometric": photometric, "frames": frames}
    if color:
        if window is not None:
            warnings.append(f"DICOM file '{path}' is {photometric}; the window was not applied.")
        return pixels.astype(np.float32), facts, warnings

    values = np.asarray(apply_modality_lut(pixels, ds), np.float64)
    facts["rescale"] = {
        "slope": float(ds.get("RescaleSlope", 1) or 1),
        "intercept": float(ds.get("RescaleIntercept", 0) or 0),
    }
    if window is None:
        if photometric == "MONOCHROME1":
            warnings.append(
                f"DICOM file '{path}' is MONOCHROME1 (inverted gray) and no window was set, "
                "so its values are kept as stored; pass --window-center/--window-width."
            )
        return values.astype(np.float32), facts, warnings
    if window.from_file:
        if "WindowCenter" not in ds or "WindowWidth" not in ds:
            raise DataError(
                f"DICOM file '{path}' has no WindowCenter/WindowWidth, but --window-from-file "
                "was given. Pass a fixed --window-center C --window-width W instead."
            )
        center, width = _first(ds.WindowCenter), _first(ds.WindowWidth)
        facts["window"] = {"center": center, "width": width}
    elif window.center is not None and window.width is not None:
        center, width = window.center, window.width
    else:
        raise ConfigError("A DICOM window needs both --window-center and --window-width.")
    out = window_linear(values, center, width)
    if photometric == "MONOCHROME1":
        out = WINDOW_RANGE[1] - out
    return out, facts, warnings
