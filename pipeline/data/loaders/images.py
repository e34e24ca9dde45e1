"""Decoding PNG/JPEG exports with Pillow into pixel arrays as stored."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.errors import DataError, MissingExtraError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_NUMERIC_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")

DECODE = {
    "format": "image",
    "reader": "Pillow",
    "values": "pixel values as stored: 0..255 for 8-bit, 0..65535 for 16-bit PNG",
    "modes": "L and 16-bit gray kept; 1 and LA -> L; P, RGBA, CMYK, YCbCr -> RGB",
}


def decode_image(path: Path) -> tuple[np.ndarray, str]:
    """One image file as float32 (H, W) gray or (H, W, 3) RGB values.

    Returns:
        The pixels and the Pillow mode of the file (to report mixed bit depths).

    Raises:
        DataError: the file is not a readable image.
        MissingExtraError: Pillow is not installed.
    """
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise MissingExtraError("pillow", "dicom", "Reading PNG/JPEG images") from None
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            if mode == "L" or mode in _NUMERIC_MODES:
                pixels = np.asarray(image)
            elif mode in ("1", "LA", "La"):
                pixels = np.asarray(image.convert("L"))
            else:
                pixels = np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(
            f"Image '{path}' could not be read ({type(exc).__name__}: {exc}). Re-export it as "
            "PNG or JPEG, or remove it from the folder."
        ) from None
    return pixels.astype(np.float32), mode
