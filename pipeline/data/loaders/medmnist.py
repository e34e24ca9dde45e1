"""`--data medmnist:NAME[@SIZE]`: the MedMNIST v2/v3 files from Zenodo, cached like Keras.

Files come from Zenodo record 10519652 (`breastmnist.npz`, `breastmnist_64.npz`, ...) and are
cached in the Keras dataset cache (`$KERAS_HOME/datasets`, else `~/.keras/datasets`). A file
already there is used without network access.

Checksums: the MD5s below are those the official `medmnist` package (MedMNIST/MedMNIST,
`medmnist/info.py`, version 3.0.2) lists for this record. A download whose MD5 differs is
refused and deleted. A file already in the cache whose MD5 differs is used as found, with a
warning in the report (`data.warnings`, `data.details.md5_verified = false`): users place
re-saved copies there by hand (e.g. a BreastMNIST copy with labels stored flat, MD5
098de56cd2d92ef2f7170e6153c02849) and the arrays are validated like any other .npz.
ChestMNIST is multi-label and not offered.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

from pipeline.config.medmnist import ZENODO_RECORD, MedMNISTSpec
from pipeline.errors import DataError


def cache_dir() -> Path:
    """The Keras dataset cache: $KERAS_HOME/datasets, else ~/.keras/datasets."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "datasets"


def md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(spec: MedMNISTSpec) -> tuple[Path, dict[str, object], tuple[str, ...]]:
    """The cached file of `spec`, downloaded first if it is not in the cache.

    Returns:
        The path, provenance for the report, and warnings (an unverified cached file).

    Raises:
        DataError: the download failed (e.g. no network) or its MD5 is not the official one.
    """
    path = cache_dir() / spec.filename
    expected = spec.info.md5[spec.size]
    downloaded = False
    if not path.is_file():
        _download(spec, path, expected)
        downloaded = True
    got = expected if downloaded else md5_of(path)
    warnings: tuple[str, ...] = ()
    if got != expected:
        warnings = (
            f"MedMNIST file '{path}' has MD5 {got}, not the official {expected} of "
            f"{spec.filename} (Zenodo record {ZENODO_RECORD}); it was used as found after "
            "validating its arrays. Delete it to download the official file.",
        )
    details: dict[str, object] = {
        "format": "medmnist",
        "dataset": spec.name,
        "size": spec.size,
        "file": str(path),
        "url": spec.url,
        "md5": got,
        "md5_official": expected,
        "md5_verified": got == expected,
        "downloaded": downloaded,
    }
    return path, details, warnings


def _download(spec: MedMNISTSpec, path: Path, expected: str) -> None:
    hand = (
        f"Without network access, download {spec.filename} from "
        f"https://zenodo.org/records/{ZENODO_RECORD} on another machine and place it at "
        f"'{path}' (or pass the file itself with --data PATH.npz)."
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"Cannot create the dataset cache '{path.parent}': {exc}. {hand}") from None
    part = path.with_name(path.name + ".part")
    digest = hashlib.md5()
    try:
        with urllib.request.urlopen(spec.url, timeout=60) as response, part.open("wb") as out:
            while chunk := response.read(1 << 20):
                out.write(chunk)
                digest.update(chunk)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        part.unlink(missing_ok=True)
        reason = getattr(exc, "reason", exc)
        raise DataError(f"Could not download {spec.url} ({reason}). {hand}") from None
    if digest.hexdigest() != expected:
        part.unlink(missing_ok=True)
        raise DataError(
            f"The download of {spec.url} has MD5 {digest.hexdigest()}, not the official "
            f"{expected}; it was discarded (incomplete or changed upstream). Retry, or place "
            f"a verified copy at '{path}'."
        )
    os.replace(part, path)
