"""Provenance: what went into each shipped file.

Two records, one rule:

- Inside every `.tflite` a metadata buffer named `bedside_lite_manifest` holds the
  *embedded manifest*: the tool and library versions, the seed, the job sections that shape
  the model ([model], [data], [prune], [quantize]) and the sha256 of the input model and
  data. A file cannot contain its own final hash, so it lists inputs, never outputs, and no
  wall-clock date: the same job on the same inputs and versions gives the same bytes. Set
  SOURCE_DATE_EPOCH to pin a date into it.
- `manifest.json` beside the artifacts holds the same and, in addition, the creation date,
  the whole resolved job and the sha256 and size of every other file in the output
  directory (the final .tflite bytes, with their embedded manifest, included).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import tempfile
from collections.abc import Mapping
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import BuildConfig
from pipeline.data.memory import InMemory
from pipeline.errors import ModelError
from pipeline.release.artifacts import sha256

METADATA_NAME = "bedside_lite_manifest"
MANIFEST_VERSION = 1
MANIFEST_FILE = "manifest.json"
MODEL_SECTIONS = ("model", "data", "prune", "quantize")
LIBRARIES = ("tensorflow", "keras", "ai-edge-litert", "numpy")
_BUFFER_ALIGNMENT = 16  # TFLite's schema force-aligns Buffer.data to 16 bytes


def tool_version() -> str:
    """bedside-lite's version: the installed distribution's, else pyproject.toml's."""
    try:
        return importlib_metadata.version("bedside-lite")
    except importlib_metadata.PackageNotFoundError:
        pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
        for line in pyproject.read_text().splitlines() if pyproject.is_file() else []:
            if line.startswith("version"):
                return line.split("=", 1)[1].strip().strip('"') + "+source"
        return "unknown"


def versions() -> dict[str, str]:
    """Versions of the tool, the libraries that shape the bytes, and Python."""
    out = {"bedside-lite": tool_version()}
    for name in LIBRARIES:
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            out[name] = "not installed"
    out["python"] = platform.python_version()
    return out


def hash_path(path: Path, shown: str | None = None) -> dict[str, Any]:
    """sha256 of a file, or of a directory tree (sorted relative paths and file hashes)."""
    entry: dict[str, Any] = {"path": shown or str(path)}
    if path.is_file():
        entry.update(sha256=sha256(path), bytes=path.stat().st_size)
    elif path.is_dir():
        digest = hashlib.sha256()
        files = sorted(p for p in path.rglob("*") if p.is_file())
        for p in files:
            digest.update(f"{p.relative_to(path).as_posix()}\0{sha256(p)}\n".encode())
        entry.update(sha256=digest.hexdigest(), files=len(files), kind="directory")
    else:
        entry.update(sha256=None, note="not found")
    return entry


def _data_entry(source: Path) -> dict[str, Any]:
    text = str(source)
    if text.lower().startswith("medmnist:"):
        from pipeline.config.medmnist import parse_spec
        from pipeline.data.loaders.medmnist import cache_dir

        return hash_path(cache_dir() / parse_spec(text).filename, text)
    return hash_path(source)


def input_files(config: BuildConfig, memory: InMemory | None = None) -> dict[str, Any]:
    """sha256 of the input model and of every data file the job reads; a model or arrays
    held in memory (`memory`) by the sha256 of their weights or bytes."""
    if memory is not None and memory.model is not None:
        model: dict[str, Any] = {
            "path": None,
            "in_memory": "keras.Model (sha256 of its weights)",
            "sha256": memory.model_sha256,
        }
    elif config.model is None:
        model = {
            "path": None,
            "embedded": "reference MLP trained on the embedded data with the job's seed",
        }
    else:
        model = hash_path(config.model)
    data: list[dict[str, Any]] = []
    if memory is not None and memory.arrays is not None:
        data.append(
            {
                "role": "data",
                "path": None,
                "in_memory": "numpy arrays",
                "sha256": memory.arrays_sha256,
            }
        )
    elif config.data.path is None:
        entry: dict[str, Any] = {"path": None, "embedded": "sklearn:breast_cancer"}
        try:
            import sklearn

            csv = Path(sklearn.__file__).parent / "datasets" / "data" / "breast_cancer.csv"
            if csv.is_file():
                entry.update(sha256=sha256(csv), bytes=csv.stat().st_size)
        except ImportError:  # pragma: no cover - scikit-learn is a dependency
            pass
        data.append(entry)
    else:
        data.append({"role": "data", **_data_entry(config.data.path)})
    if config.data.labels is not None:
        data.append({"role": "labels", **hash_path(config.data.labels)})
    if config.data.calibration is not None:
        data.append({"role": "calibration", **_data_entry(config.data.calibration)})
    return {"model": model, "data": data}


def source_date() -> str | None:
    """SOURCE_DATE_EPOCH as an ISO 8601 UTC date, if set (reproducible-builds.org)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if not epoch:
        return None
    try:
        stamp = dt.datetime.fromtimestamp(int(epoch), tz=dt.timezone.utc)
    except (ValueError, OverflowError, OSError):
        return None
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def embedded_manifest(
    config: BuildConfig, job: Mapping[str, Mapping[str, Any]], inputs: Mapping[str, Any]
) -> dict[str, Any]:
    """The manifest embedded in every .tflite: deterministic for a given job and inputs."""
    doc: dict[str, Any] = {
        "manifest_version": MANIFEST_VERSION,
        "tool": "bedside-lite",
        "versions": versions(),
        "seed": config.seed,
        "job": {s: dict(job[s]) for s in MODEL_SECTIONS if s in job},
        "inputs": dict(inputs),
        "note": "inputs and configuration only; artifact hashes are in manifest.json",
    }
    date = source_date()
    if date is not None:
        doc["source_date"] = date
    return doc


def encode(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def tflite_schema() -> Any:
    from converters.inspection import tflite_schema

    return tflite_schema()


def _aligned_buffer_type(schema: Any) -> type:
    class AlignedBuffer(schema.BufferT):  # type: ignore[name-defined,misc]
        """A Buffer whose data vector starts on a 16-byte boundary, as TFLite writes it."""

        def Pack(self, builder: Any) -> int:  # noqa: N802 - flatbuffers' name
            data = None
            if self.data is not None and len(self.data):
                payload = np.asarray(self.data, np.uint8).tobytes()
                builder.StartVector(1, len(payload), _BUFFER_ALIGNMENT)
                builder.head = builder.head - len(payload)
                builder.Bytes[builder.head : builder.head + len(payload)] = payload
                builder.vectorNumElems = len(payload)
                data = builder.EndVector()
            schema.BufferStart(builder)
            if data is not None:
                schema.BufferAddData(builder, data)
            schema.BufferAddOffset(builder, self.offset)
            schema.BufferAddSize(builder, self.size)
            return schema.BufferEnd(builder)

    return AlignedBuffer


def embed(tflite: bytes, payload: bytes, name: str = METADATA_NAME) -> bytes:
    """`tflite` with a metadata buffer `name` holding `payload` (replaced if present).

    Raises:
        ModelError: the bytes are not a TFLite flatbuffer, or keep weights outside it.
    """
    import flatbuffers

    schema = tflite_schema()
    if len(tflite) < 8 or tflite[4:8] != b"TFL3":
        raise ModelError("Cannot embed a manifest: the bytes are not a TFLite flatbuffer.")
    model = schema.ModelT.InitFromPackedBuf(tflite, 0)
    aligned = _aligned_buffer_type(schema)
    buffers = []
    for buf in model.buffers or []:
        if getattr(buf, "offset", 0) or getattr(buf, "size", 0):
            raise ModelError(
                "Cannot embed a manifest in a .tflite whose weights are stored outside the "
                "flatbuffer (a model above 2 GB); bedside models are far below that."
            )
        new = aligned()
        new.data, new.offset, new.size = buf.data, buf.offset, buf.size
        buffers.append(new)
    metadata = [m for m in (model.metadata or []) if _name(m.name) != name]
    holder = aligned()
    holder.data = np.frombuffer(payload, np.uint8)
    buffers.append(holder)
    entry = schema.MetadataT()
    entry.name = name
    entry.buffer = len(buffers) - 1
    metadata.append(entry)
    model.buffers, model.metadata = buffers, metadata
    builder = flatbuffers.Builder(len(tflite) + len(payload) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _name(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def read_embedded(source: bytes | Path) -> dict[str, Any] | None:
    """The embedded manifest of a .tflite, or None when it has none."""
    from converters.inspection import inspect_tflite

    raw = inspect_tflite(source).metadata.get(METADATA_NAME)
    if raw is None:
        return None
    try:
        return json.loads(raw.decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {"unreadable": raw[:64].hex()}


def check_same_outputs(original: bytes, embedded: bytes, inputs: np.ndarray) -> None:
    """Runs both files in the LiteRT interpreter; their outputs must be identical.

    Raises:
        ModelError: the file with the manifest no longer loads or computes differently.
    """
    from pipeline.device.client import run_model

    with tempfile.TemporaryDirectory(prefix="bedside-manifest-") as tmp:
        paths = []
        for name, data in (("original.tflite", original), ("embedded.tflite", embedded)):
            path = Path(tmp) / name
            path.write_bytes(data)
            paths.append(path)
        try:
            before = run_model(paths[0], inputs).outputs
            after = run_model(paths[1], inputs).outputs
        except Exception as exc:  # noqa: BLE001 - any runtime failure means a broken file
            raise ModelError(
                f"The .tflite with the embedded manifest does not run: {exc}"
            ) from None
    if not np.array_equal(np.asarray(before), np.asarray(after)):
        raise ModelError(
            "Embedding the manifest changed the model's outputs; this is a bug in "
            "bedside-lite (please report it). Nothing was written."
        )


def embed_files(paths: Mapping[Any, Path], doc: Mapping[str, Any], probe: np.ndarray) -> str:
    """Embeds the manifest into each .tflite in place, checking outputs are unchanged.

    Returns:
        The sha256 of the embedded payload.
    """
    payload = encode(doc)
    for path in paths.values():
        original = path.read_bytes()
        updated = embed(original, payload)
        check_same_outputs(original, updated, probe)
        path.write_bytes(updated)
    return hashlib.sha256(payload).hexdigest()


def created() -> str:
    """Creation date for manifest.json: SOURCE_DATE_EPOCH if set, else now (UTC)."""
    return source_date() or dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def write(
    stage_dir: Path,
    config: BuildConfig,
    job: Mapping[str, Mapping[str, Any]],
    embedded: Mapping[str, Any],
    embedded_sha256: str,
    embedded_in: list[str],
) -> Path:
    """Writes manifest.json listing every other file of `stage_dir` with its hash."""
    artifacts = {
        p.name: {"sha256": sha256(p), "bytes": p.stat().st_size}
        for p in sorted(stage_dir.iterdir())
        if p.is_file() and p.name != MANIFEST_FILE
    }
    doc = {
        "manifest_version": MANIFEST_VERSION,
        "tool": "bedside-lite",
        "created": created(),
        "versions": embedded["versions"],
        "seed": config.seed,
        "inputs": embedded["inputs"],
        "job": {s: dict(t) for s, t in job.items()},
        "artifacts": artifacts,
        "embedded": {
            "metadata_name": METADATA_NAME,
            "files": embedded_in,
            "sha256": embedded_sha256,
            "rule": "each .tflite embeds the inputs, versions, seed and model-shaping job "
            "(never its own hash, never a wall-clock date); this file adds the date, the "
            "whole job and the hash of every artifact",
        },
    }
    path = stage_dir / MANIFEST_FILE
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path
