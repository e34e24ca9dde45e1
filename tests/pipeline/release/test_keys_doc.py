"""The report keys reference (docs/reference/report-keys.md) is generated from the schema."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

from pipeline.release.report import keys_doc
from pipeline.release.report.schema import BuildReport, Record

ROOT = Path(__file__).resolve().parents[3]
PAGE = ROOT / "docs" / "reference" / "report-keys.md"
GOLDEN = ROOT / "tests" / "pipeline" / "golden" / "report_keys.json"


def _block(text: str) -> str:
    start, end = "<!-- report-keys:start -->\n", "<!-- report-keys:end -->"
    assert start in text and end in text, f"{PAGE} lost its generated report keys block"
    return text[text.index(start) + len(start) : text.index(end)]


def _sections(markdown: str) -> dict[str, set[str]]:
    """Record name -> the keys its table lists (flat records' rows in parentheses)."""
    sections: dict[str, set[str]] = {}
    current = ""
    for line in markdown.splitlines():
        if line.startswith("### "):
            current = line[4:]
            sections[current] = set()
        match = re.match(r"^\| (?:`(\w+)`|\((\w+)\)) \|", line)
        if match and current:
            sections[current].add(match.group(1) or match.group(2))
    return sections


def test_docs_report_keys_are_the_schema() -> None:
    assert _block(PAGE.read_text(encoding="utf-8")) == keys_doc.markdown(), (
        f"{PAGE} differs from the report schema; regenerate the block between its markers "
        "with `python -m pipeline.release.report.keys_doc --markdown`"
    )


def test_every_field_of_every_record_has_a_row() -> None:
    sections = _sections(keys_doc.markdown())
    assert "BuildReport" in sections and "VariantMetrics" in sections, sorted(sections)
    for name, keys in sections.items():
        cls = getattr(keys_doc.schema, name)
        if dataclasses.is_dataclass(cls) and issubclass(cls, Record):
            assert keys == {f.name for f in dataclasses.fields(cls)}, name


def test_every_top_level_key_of_a_default_build_is_listed() -> None:
    top = {path.split(".")[0] for path in json.loads(GOLDEN.read_text(encoding="utf-8"))}
    listed = _sections(keys_doc.markdown())["BuildReport"]
    assert top <= listed, sorted(top - listed)
    assert listed == {f.name for f in dataclasses.fields(BuildReport)}
