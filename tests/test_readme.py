"""README.md is what a newcomer reads first: short, the quick start CI runs, and links that
lead somewhere (mkdocs checks the links inside docs/, not the README's)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
QUICK_START = (
    "python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/bedside-lite build\n"
    "python3 -m venv .venv && .venv/bin/pip install '.[dev]' && .venv/bin/python -m pytest\n"
)


def test_readme_is_short_and_keeps_the_quick_start() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200, "README.md grew past 200 lines: move detail to docs/"
    assert QUICK_START in text
    assert '.venv/bin/python -m pytest -m "not slow"' in text  # the quick tier


def test_readme_links_resolve() -> None:
    text = README.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    local = [t for t in targets if not t.startswith(("http://", "https://"))]
    assert local, "README.md links nowhere"
    missing = [t for t in local if not (ROOT / t).exists()]
    assert not missing, f"README.md links to missing files: {missing}"
