"""The report.json keys reference, generated from the report schema's dataclasses.

`python -m pipeline.release.report.keys_doc --markdown` prints the block that
docs/reference/report-keys.md holds between `<!-- report-keys:start -->` and
`<!-- report-keys:end -->` (a test checks that they agree). One section per record reachable
from `BuildReport`, in the order report.json writes them: each key with its type, whether
it is always there, and the comment the schema gives it.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import sys
import types
import typing
from typing import Any

from pipeline.config import SCHEMA_VERSION
from pipeline.release.report import schema
from pipeline.release.report.schema import BuildReport, Record, View

_COMMENT = re.compile(r"^\s+(\w+):[^#]*#\s*(.+)$")


def _comments(cls: type) -> dict[str, str]:
    """The trailing `# comment` of each field line in the class's source."""
    found: dict[str, str] = {}
    for line in inspect.getsource(cls).splitlines():
        match = _COMMENT.match(line)
        if match:
            found[match.group(1)] = match.group(2).strip()
    return found


def _type(tp: Any, seen: list[type]) -> str:
    """A field type as the JSON reader sees it; records and views link to their section."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        parts = [_type(a, seen) for a in args if a is not type(None)]
        text = " or ".join(parts)
        if type(None) not in args:
            return text
        return f"({text}) or null" if " " in text else f"{text} or null"
    if origin in (list, tuple):
        item = _type(args[0], seen) if args else "any"
        return f"list of ({item})" if " or " in item else f"list of {item}"
    if origin is dict:
        return f"object: key → {_type(args[1], seen)}"
    if isinstance(tp, type) and issubclass(tp, Record | View):
        if tp not in seen:
            seen.append(tp)
        return f"[{tp.__name__}](#{tp.__name__.lower()})"
    names = {int: "integer", float: "number", str: "string", bool: "boolean"}
    return names.get(tp, "any") if tp is not Any else "any"


def _rows(cls: type, seen: list[type]) -> list[str]:
    hints = typing.get_type_hints(cls, vars(schema))
    notes = _comments(cls)
    rows = ["| key | type | present | note |", "| --- | --- | --- | --- |"]
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if f.metadata.get("omit") or f.metadata.get("flat"):  # absent, never null, when None
            tp = typing.Union[tuple(a for a in typing.get_args(tp) if a is not type(None))]  # noqa: UP007
        kind = _type(tp, seen)
        if f.metadata.get("flat"):
            present = "its keys sit in this object (binary tasks)"
            key = f"({f.name})"
        else:
            present = "only when set" if f.metadata.get("omit") else "always"
            key = f"`{f.name}`"
        note = notes.get(f.name, "").replace("|", "\\|")
        rows.append(f"| {key} | {kind} | {present} | {note} |")
    return rows


def _doc(cls: type) -> str:
    own = cls.__dict__.get("__doc__")
    if not own or own.startswith(f"{cls.__name__}("):  # dataclass's generated signature
        return ""
    return inspect.cleandoc(own).replace("\n", " ")


def markdown() -> str:
    """The report keys reference: a section per record, BuildReport first."""
    seen: list[type] = [BuildReport]
    out = [f"`schema_version` {SCHEMA_VERSION}: keys are only ever added, never renamed."]
    index = 0
    while index < len(seen):
        cls = seen[index]
        index += 1
        out += ["", f"### {cls.__name__}", ""]
        if _doc(cls):
            out += [_doc(cls), ""]
        if issubclass(cls, View):
            out.append("A JSON object whose keys depend on the method; see the notes below.")
            continue
        out += _rows(cls, seen)
    return "\n".join(out) + "\n"


if __name__ == "__main__":  # pragma: no cover - `python -m ...keys_doc --markdown`
    if sys.argv[1:] != ["--markdown"]:
        sys.exit("usage: python -m pipeline.release.report.keys_doc --markdown")
    sys.stdout.write(markdown())
