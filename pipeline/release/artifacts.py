"""The output directory: checked before work starts, staged, and swapped in atomically.

All artifacts are written to a staging directory beside `--out` and renamed into place only
when every stage succeeded, so a failed or interrupted build never leaves a half-written
model where a good one stood.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from pipeline.errors import OutputError


def check_output_dir(out: Path, overwrite: bool) -> None:
    """Refuses an output path that is a file, or a non-empty directory without overwrite."""
    if out.exists() and not out.is_dir():
        raise OutputError(
            f"--out '{out}' is a file; expected a directory (new or empty). Choose another "
            "path or remove the file."
        )
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise OutputError(
            f"--out '{out}' is not empty. Pass --overwrite to replace its contents, or choose "
            "an empty directory."
        )


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def describe(path: Path, final_dir: Path) -> dict[str, Any]:
    """`path`, `bytes`, `sha256` of an artifact (path as it will be after the swap)."""
    return {
        "path": str(final_dir / path.name),
        "bytes": path.stat().st_size,
        "sha256": sha256(path),
    }


class Staging:
    """A staging directory that becomes `out` on commit and vanishes on failure.

    Use as a context manager; call `commit()` once every artifact is written.
    """

    def __init__(self, out: Path) -> None:
        self.out = out
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.dir, 0o777 & ~umask)  # mkdtemp makes it private; the output is not
        self._committed = False

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._committed:
            shutil.rmtree(self.dir, ignore_errors=True)

    def write_bytes(self, name: str, data: bytes) -> Path:
        path = self.dir / name
        path.write_bytes(data)
        return path

    def commit(self) -> None:
        """Swaps the staging directory into place; the previous output is removed after."""
        old = None
        if self.out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.old-", dir=self.out.parent))
            os.replace(self.out, old / self.out.name)
        os.replace(self.dir, self.out)
        self._committed = True
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
