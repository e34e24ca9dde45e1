"""The preprocessing spec: how a decoded sample becomes the model's input.

One `Preprocessing` is used for calibration, for evaluation, and written beside the model as
`preprocessing.json` so that a device reproduces the same numbers. Its steps, in order:

1. resize (images only): bilinear to (height, width), each channel as a float32 image
   (Pillow `Image.resize(..., BILINEAR)` in mode "F", which antialiases when shrinking).
2. channels: add the channel axis the model expects; gray -> RGB repeats the gray value,
   RGB -> gray is BT.601 luma (0.299 R + 0.587 G + 0.114 B), an alpha channel is dropped.
3. normalize: model_input = raw * scale + offset; for standardisation scale = 1 / std and
   offset = -mean / std, so it is (raw - mean) / std. Vectors broadcast over the last axis.
4. float32, channels last.
5. (`--host-preprocessing` only) the model's own leading Rescaling/Resizing layers, cut off
   the model and run here (`pipeline.data.host_front`); recorded as preprocessing.json's
   `host_front` block, not in this spec's JSON.

How files were decoded into raw arrays (Pillow, or DICOM modality LUT and window) is kept in
`decode` for the device; it is described, not re-run, here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.errors import DataError, MissingExtraError

if TYPE_CHECKING:
    from pipeline.data.host_front import HostFront

LUMA_BT601 = (0.299, 0.587, 0.114)
KINDS = ("identity", "affine", "standardize")


def resize_images(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of images (N, H, W) or (N, H, W, C) to `size` = (height, width).

    Each channel is resized as a float32 Pillow image (mode "F"); images already of `size`
    are returned unchanged, so resizing is idempotent.
    """
    x = np.asarray(x)
    height, width = size
    if x.ndim not in (3, 4):
        raise DataError(
            f"Resizing applies to images of shape (N, H, W) or (N, H, W, C); received shape "
            f"{x.shape}. Drop --resize for tabular or sequence data."
        )
    if x.shape[1:3] == (height, width):
        return x
    try:
        from PIL import Image
    except ImportError:
        raise MissingExtraError("pillow", "dicom", "Resizing images") from None

    def one(plane: np.ndarray) -> np.ndarray:
        image = Image.fromarray(np.ascontiguousarray(plane, dtype=np.float32), mode="F")
        return np.asarray(image.resize((width, height), Image.Resampling.BILINEAR))

    planes = x[..., None] if x.ndim == 3 else x
    out = np.empty((len(x), height, width, planes.shape[-1]), np.float32)
    for i in range(len(x)):
        for c in range(planes.shape[-1]):
            out[i, :, :, c] = one(planes[i, :, :, c])
    return out[..., 0] if x.ndim == 3 else out


def conform_channels(x: np.ndarray, sample_rank: int, channels: int | None) -> np.ndarray:
    """Adds the channel axis and converts the channel count the model expects.

    Args:
        x: a batch (N, ...) of decoded samples.
        sample_rank: the rank of one model input sample, e.g. 3 for (H, W, C).
        channels: the model's channel count (last axis), or None to leave it.

    Returns:
        The batch with `sample_rank` sample axes and `channels` channels; unchanged when it
        already has them.

    Raises:
        DataError: the channel count cannot be converted (e.g. 2 channels to 3).
    """
    x = np.asarray(x)
    if x.ndim == sample_rank:  # one axis short: samples without a channel axis
        x = x[..., None]
    if channels is None or x.ndim != sample_rank + 1 or x.shape[-1] == channels:
        return x
    have = x.shape[-1]
    if have == 1 and channels == 3:
        return np.repeat(x, 3, axis=-1)
    if have in (3, 4) and channels == 1:
        rgb = x[..., :3].astype(np.float32)
        return (rgb @ np.asarray(LUMA_BT601, np.float32))[..., None]
    if have == 4 and channels == 3:
        return x[..., :3]
    raise DataError(
        f"Samples have {have} channels and the model expects {channels}; only gray <-> RGB "
        "(1 <-> 3) and dropping an alpha channel (4 -> 3 or 1) are converted. Pass images "
        f"with {channels} channel(s)."
    )


def _vector(values: Any) -> np.ndarray:
    arr = np.asarray(values, np.float32)
    return arr.reshape(()) if arr.size == 1 else arr.reshape(-1)


@dataclass(frozen=True)
class Preprocessing:
    """Host- and device-side preprocessing: resize, channels, then x * scale + offset.

    `scale` and `offset` are scalars or per-feature/per-channel vectors (broadcast over the
    last axis). `mean` and `std` are kept when the spec was given as a standardisation.
    """

    scale: np.ndarray
    offset: np.ndarray
    description: str = "identity"  # one of KINDS
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    resize: tuple[int, int] | None = None  # (height, width)
    sample_rank: int | None = None  # rank of one model input sample; None: as loaded
    channels: int | None = None  # channels the model expects; None: as loaded
    decode: dict[str, Any] | None = field(default=None, compare=False)
    front: HostFront | None = field(default=None, compare=False)  # --host-preprocessing

    @classmethod
    def identity(cls) -> Preprocessing:
        return cls(np.float32(1.0), np.float32(0.0))

    @classmethod
    def affine(
        cls, scale: float | Sequence[float] | None, offset: float | Sequence[float] | None
    ) -> Preprocessing:
        """model_input = raw * scale + offset (defaults 1 and 0)."""
        scale_v = _vector(1.0 if scale is None else scale)
        offset_v = _vector(0.0 if offset is None else offset)
        identity = np.all(scale_v == 1.0) and np.all(offset_v == 0.0)
        return cls(scale_v, offset_v, "identity" if identity else "affine")

    @classmethod
    def from_mean_std(
        cls, mean: float | Sequence[float] | np.ndarray, std: float | Sequence[float] | np.ndarray
    ) -> Preprocessing:
        """model_input = (raw - mean) / std, scalar or per channel/feature."""
        mean64 = np.asarray(mean, np.float64)
        std64 = np.asarray(std, np.float64)
        if np.any(~np.isfinite(std64)) or np.any(std64 <= 0):
            raise DataError(f"Standard deviations must be finite and > 0; received {std}.")
        return cls(
            _vector(1.0 / std64),
            _vector(-mean64 / std64),
            "standardize",
            mean=_vector(mean64),
            std=_vector(std64),
        )

    @classmethod
    def standardize(cls, x_train: np.ndarray) -> Preprocessing:
        """Per-feature (x - mean) / std over the last axis, fitted on the training split."""
        x = np.asarray(x_train, np.float64).reshape(-1, np.shape(x_train)[-1])
        std = x.std(axis=0)
        return cls.from_mean_std(x.mean(axis=0), np.where(std > 0, std, 1.0))

    def with_geometry(
        self,
        *,
        resize: tuple[int, int] | None = None,
        sample_rank: int | None = None,
        channels: int | None = None,
    ) -> Preprocessing:
        """A copy with the resize and channel steps set (None keeps the current value)."""
        return replace(
            self,
            resize=self.resize if resize is None else resize,
            sample_rank=self.sample_rank if sample_rank is None else sample_rank,
            channels=self.channels if channels is None else channels,
        )

    def with_decode(self, decode: dict[str, Any] | None) -> Preprocessing:
        return replace(self, decode=decode)

    def geometry(self, x: np.ndarray) -> np.ndarray:
        """Steps 1 and 2 (resize, channels) on a batch; idempotent."""
        if self.resize is not None:
            x = resize_images(x, self.resize)
        if self.sample_rank is not None:
            x = conform_channels(x, self.sample_rank, self.channels)
        return x

    def apply(self, x: np.ndarray) -> np.ndarray:
        """All steps on a batch of decoded samples: what the model and the .tflite receive
        (then the model's front, when `--host-preprocessing` moved it to the host)."""
        x = self.geometry(np.asarray(x))
        x = (np.asarray(x, np.float32) * self.scale + self.offset).astype(np.float32)
        return x if self.front is None else self.front.apply(x)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "kind": self.description,
            "order": ["decode", "resize", "channels", "normalize"],
            "decode": self.decode,
            "resize": None
            if self.resize is None
            else {
                "height": int(self.resize[0]),
                "width": int(self.resize[1]),
                "method": "bilinear",
                "implementation": "Pillow Image.resize(BILINEAR) per channel, mode F "
                "(float32), antialiased when shrinking",
            },
            "sample_rank": self.sample_rank,
            "channels": None
            if self.channels is None
            else {
                "count": int(self.channels),
                "rules": "add a missing channel axis; 1 -> 3 repeats gray; 3 -> 1 is BT.601 "
                "luma 0.299 R + 0.587 G + 0.114 B; a 4th (alpha) channel is dropped",
            },
            "formula": "model_input = raw * scale + offset",
            "scale": np.asarray(self.scale, np.float64).tolist(),
            "offset": np.asarray(self.offset, np.float64).tolist(),
            "dtype": "float32",
            "layout": "channels_last",
        }
        if self.mean is not None and self.std is not None:
            doc["standardize"] = {
                "formula": "model_input = (raw - mean) / std",
                "mean": np.asarray(self.mean, np.float64).tolist(),
                "std": np.asarray(self.std, np.float64).tolist(),
            }
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Preprocessing:
        """The spec back from `to_json()` output (or the `preprocessing` of the JSON file).

        Raises:
            DataError: the document is not a preprocessing spec.
        """
        try:
            kind = doc["kind"]
            if kind not in KINDS:
                raise ValueError(f"kind {kind!r} is not one of {KINDS}")
            std_doc = doc.get("standardize")
            resize = doc.get("resize")
            channels = doc.get("channels")
            return cls(
                scale=_vector(doc["scale"]),
                offset=_vector(doc["offset"]),
                description=kind,
                mean=None if std_doc is None else _vector(std_doc["mean"]),
                std=None if std_doc is None else _vector(std_doc["std"]),
                resize=None if resize is None else (int(resize["height"]), int(resize["width"])),
                sample_rank=doc.get("sample_rank"),
                channels=None if channels is None else int(channels["count"]),
                decode=doc.get("decode"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(
                f"Not a bedside-lite preprocessing spec ({type(exc).__name__}: {exc}); expected "
                "the 'preprocessing' object of preprocessing.json."
            ) from None


def with_front(spec: Preprocessing, doc: dict[str, Any]) -> dict[str, Any]:
    """`doc` and, when `--host-preprocessing` moved the model's front, its `host_front`."""
    return doc if spec.front is None else {**doc, "host_front": spec.front.to_json()}
