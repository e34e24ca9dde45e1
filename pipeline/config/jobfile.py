"""The TOML job file: `bedside-lite build --config job.toml`.

A job file holds every `build` option in flat sections ([model], [data], [prune],
[quantize], [bench], [export], [gates], [device]; `sweep` also reads [sweep]). Values resolve as
command-line flag the user actually passed > job file > the flag's default. Unknown
sections or keys and values of the wrong type are a `ConfigError` naming the file and the
key, raised before TensorFlow is imported. The resolved job is written beside the
artifacts as `job.resolved.toml`; re-running it reproduces the build.

The keys, their kinds, defaults and help are the job-file side of the option registry
(`pipeline.config.options.OPTIONS`). Paths in a job file are taken relative to the working
directory, as on the command line (CI runs from the repository root).
"""

from __future__ import annotations

import argparse
import difflib
import enum
import json
import math
import re
import sys
import textwrap
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.config.convert import convert, convert_sweep
from pipeline.config.option import Option, shown
from pipeline.config.options import OPTIONS, SECTIONS, SWEEP
from pipeline.config.types import BuildConfig, parse_operating_point
from pipeline.errors import ConfigError, DeprecatedOption

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "BY_DEST",
    "EXCLUSIVE_DESTS",
    "GATE_KEYS",
    "KEYS",
    "PRESENTATION_DESTS",
    "SECTIONS",
    "SWEEP",
    "SWEEP_KEYS",
    "JobFile",
    "Origin",
    "check_rules",
    "dests",
    "dumps",
    "gate_assignment",
    "job_from_config",
    "load",
    "named",
    "origins",
    "parse",
    "resolve",
    "template",
    "tomllib",
    "uncovered",
]

KEYS: tuple[Option, ...] = tuple(o for o in OPTIONS if o.section in SECTIONS)
SWEEP_KEYS: dict[str, Option] = {o.name: o for o in OPTIONS if o.section == SWEEP}
BY_DEST = {k.dest: k for k in KEYS}
GATE_KEYS = {k.name: k for k in KEYS if k.section == "gates" and k.name != "baseline"}
# Flags of `build` that say how this run prints, not what it builds: no job key.
PRESENTATION_DESTS = frozenset({o.dest for o in OPTIONS if not o.section} | {"command", "help"})
# Flags that exclude each other: passing one on the command line clears the file's others.
EXCLUSIVE_DESTS = tuple(
    tuple(o.dest for o in KEYS if o.exclusive == group)
    for group in dict.fromkeys(o.exclusive for o in KEYS if o.exclusive)
)


@dataclass(frozen=True)
class JobFile:
    """A parsed job file: `build` values by argparse dest, and the [sweep] section."""

    path: Path | None
    values: dict[str, Any]
    sweep: dict[str, Any]


def _unknown(
    where: str, what: str, name: str, known: Iterable[str], hint: str = "", within: str = ""
) -> None:
    known = list(known)
    close = difflib.get_close_matches(name, known, n=1)
    raise ConfigError(
        f"{where}: unknown {what} '{name}'"
        + (f" in {within}" if within else "")
        + (f" (did you mean '{close[0]}'?)" if close else "")
        + f"; expected one of: {', '.join(known)}.{hint}"
    )


def parse(doc: Mapping[str, Any], where: str = "job file") -> JobFile:
    """Validates a job document (as from `tomllib`) into values by argparse dest.

    Raises:
        ConfigError: an unknown section or key, or a value of the wrong type.
    """
    values: dict[str, Any] = {}
    sweep: dict[str, Any] = {}
    for section, table in doc.items():
        if section not in (*SECTIONS, SWEEP):
            if not isinstance(table, dict):
                owner = next((k.section for k in KEYS if k.name == section), "model")
                raise ConfigError(
                    f"{where}: key '{section}' must be inside a section; expected sections "
                    f"{', '.join(f'[{s}]' for s in (*SECTIONS, SWEEP))}. Put it under a "
                    f"section, e.g. [{owner}]."
                )
            _unknown(where, "section", f"[{section}]", (f"[{s}]" for s in (*SECTIONS, SWEEP)))
        if not isinstance(table, dict):
            raise ConfigError(
                f"{where}: [{section}] must be a table; received {json.dumps(table, default=str)}."
            )
        if section == SWEEP:
            for name, value in table.items():
                if name not in SWEEP_KEYS:
                    _unknown(where, "key", name, SWEEP_KEYS, within=f"[{SWEEP}]")
                sweep[name] = convert_sweep(SWEEP_KEYS[name], value, where)
            continue
        keys = {k.name: k for k in KEYS if k.section == section}
        for name, value in _renamed(table, section, where).items():
            if name not in keys:
                elsewhere = [k.section for k in KEYS if k.name == name]
                hint = f" '{name}' belongs in [{elsewhere[0]}]." if elsewhere else ""
                _unknown(where, "key", name, keys, hint, within=f"[{section}]")
            values[keys[name].dest] = convert(keys[name], value, where)
    _check_exclusive(values, where)
    return JobFile(None, values, sweep)


def _renamed(table: Mapping[str, Any], section: str, where: str) -> dict[str, Any]:
    """`table` with the deprecated keys of renamed options under their new names (warning
    for each; an error when a table holds both)."""
    renamed = {k.renamed_from: k for k in KEYS if k.section == section and k.renamed_from}
    out: dict[str, Any] = {}
    for name, value in table.items():
        key = renamed.get(name)
        if key is None:
            out[name] = value
            continue
        if key.name in table:
            raise ConfigError(
                f"{where}: {key.old_label} and {key.label} are one option; received both. "
                f"Keep {key.label}."
            )
        message = f"{where}: {key.deprecation(key.old_label)}"
        warnings.warn(message, DeprecatedOption, stacklevel=4)
        out[key.name] = value
    return out


def _check_exclusive(values: Mapping[str, Any], where: str) -> None:
    """Keys of a group that is exclusive in one file too (e.g. [prune] sparsity, threshold)."""
    for group in EXCLUSIVE_DESTS:
        keys = [BY_DEST[d] for d in group if d in values]
        if len(keys) > 1 and keys[0].cli_exclusive:
            names = " and ".join(k.name for k in keys)
            raise ConfigError(
                f"{where}: [{keys[0].section}] {names} exclude each other; received both. "
                "Keep one of them."
            )


def load(path: Path) -> JobFile:
    """Reads and validates a job file.

    Raises:
        ConfigError: the file is missing, not TOML, or holds an unknown or mistyped key.
    """
    if not path.is_file():
        raise ConfigError(
            f"Job file '{path}' does not exist or is not a file; expected a TOML job file. "
            "Write a template with `bedside-lite init job.toml`."
        )
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Job file '{path}' is not valid TOML: {exc}.") from None
    job = parse(doc, where=str(path))
    return JobFile(path, job.values, job.sweep)


def gate_assignment(text: str) -> tuple[str, Any]:
    """Parses `--gate KEY=VALUE` into (dest, value); raises ConfigError naming the key."""
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise ConfigError(
            f"--gate expects KEY=VALUE such as min_specificity=0.9; received '{text}'."
        )
    if name not in GATE_KEYS:
        _unknown("--gate", "gate", name, GATE_KEYS)
    key = GATE_KEYS[name]
    raw = raw.strip()
    value: Any
    if key.kind in ("choices", "targets"):
        value = [v.strip() for v in raw.split(",") if v.strip()]
    elif key.kind == "bool":
        value = {"true": True, "false": False, "1": True, "0": False}.get(raw.lower(), raw)
    else:
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
    return key.dest, convert(key, value, "--gate")


def resolve(
    defaults: Mapping[str, Any], explicit: Mapping[str, Any], job: JobFile | None
) -> argparse.Namespace:
    """The build's options: flags the user passed > job file > flag defaults.

    Args:
        defaults: every `build` dest with its argparse default.
        explicit: only the dests the user passed on the command line.
        job: the parsed job file, if any.
    """
    values = {k.dest: None for k in KEYS}
    values.update(defaults)
    if job is not None:
        values.update(job.values)
    passed = dict(explicit)
    for group in EXCLUSIVE_DESTS:
        if any(d in passed for d in group):
            for d in group:
                values[d] = None
    for assignment in passed.pop("gate", None) or []:
        dest, value = gate_assignment(assignment) if isinstance(assignment, str) else assignment
        values[dest] = value
    values.update(passed)
    namespace = argparse.Namespace(**values)
    namespace.origins = origins(explicit, job)
    return namespace


@dataclass(frozen=True)
class Origin:
    """Where an option's value came from: a flag (`file` is "") or a job file's key."""

    option: Option
    value: Any  # as the argparse dest holds it
    file: str = ""

    @property
    def written(self) -> str:
        """The value as the user wrote it there."""
        value = not self.value if self.option.invert else self.value
        if self.file:
            return _toml_value(_to_toml(self.option, value))
        if self.option.kind == "bool":
            return ""
        text = shown(value) if isinstance(value, list | tuple) else str(value)
        return f"{self.option.name}={text}" if self.option.section == "gates" else text

    def __str__(self) -> str:
        if self.file:
            return f"{self.file}: {self.option.label} = {self.written}"
        flag = "--gate" if self.option.section == "gates" else self.option.flag
        return f"{flag} {self.written}".rstrip()


def origins(explicit: Mapping[str, Any], job: JobFile | None) -> dict[str, Origin]:
    """The origin of each value set by a flag or the job file, by dest (flags win)."""
    found: dict[str, Origin] = {}
    if job is not None:
        where = str(job.path) if job.path is not None else "job file"
        found = {dest: Origin(BY_DEST[dest], value, where) for dest, value in job.values.items()}
    for group in EXCLUSIVE_DESTS:
        if any(d in explicit for d in group):
            for dest in group:
                found.pop(dest, None)
    for dest, value in explicit.items():
        if dest == "gate":
            for assignment in value or []:
                gate, parsed = (
                    gate_assignment(assignment) if isinstance(assignment, str) else assignment
                )
                found[gate] = Origin(BY_DEST[gate], parsed)
        elif dest in BY_DEST:
            found[dest] = Origin(BY_DEST[dest], value)
    return found


def named(message: str, found: Mapping[str, Origin]) -> str:
    """`message` with each flag it names whose value came from the job file named as that
    file's key: `--sparsity must be...` -> `job.toml: [prune] sparsity = 1.5 must be...`."""
    files = []
    for origin in found.values():
        flag = origin.option.flag
        match = re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", message)
        if not origin.file or match is None:
            continue
        end = match.end()
        for spelling in _spellings(origin.value):  # `--threshold 0.1` names its value too
            after = end + 1 + len(spelling)
            if message.startswith(" " + spelling, end) and not message[after : after + 1].isalnum():
                end = after
                break
        key = f"{origin.option.label} = {origin.written}"
        message = message[: match.start()] + key + message[end:]
        files.append(origin.file)
    return f"{files[0]}: {message}" if files else message


def _spellings(value: Any) -> list[str]:
    """How a validation message may write a value after its flag."""
    value = value.value if isinstance(value, enum.Enum) else value
    texts = [str(value), f"'{value}'"]
    if isinstance(value, float):
        texts.append(f"{value:g}")
    return texts


def check_rules(found: Mapping[str, Origin]) -> None:
    """Refuses two different operating-point rules, wherever each came from.

    `--decision-threshold T` is a synonym of `--operating-point threshold=T`; both set to
    different rules (flags, job keys or one of each) exit 2 naming both.

    Raises:
        ConfigError: naming both sources.
    """
    threshold, point = found.get("decision_threshold"), found.get("operating_point")
    if threshold is None or point is None or point.value is None or threshold.value is None:
        return
    try:
        rule = parse_operating_point(point.value)
    except ConfigError:
        return  # a bad rule is the evaluation config's error, named as any other value
    if rule == ("threshold", threshold.value):
        return
    raise ConfigError(
        f"{threshold} conflicts with {point}: two different rules for the decision threshold. "
        f"{threshold.option.flag} T is a synonym of {point.option.flag} threshold=T; keep "
        "only one of them."
    )


def _get(obj: Any, attr: str) -> Any:
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _to_toml(key: Option, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple | list):
        return [_to_toml(key, v) for v in value]
    if key.kind == "float" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def job_from_config(config: BuildConfig) -> dict[str, dict[str, Any]]:
    """The resolved job of a build, by section (unset values are left out).

    Keys whose attribute the config does not have (a flag another version adds) are
    skipped, so this never fails on a build that already ran.
    """
    job: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    for key in KEYS:
        try:
            value = _get(config, key.attr)
        except AttributeError:
            continue
        value = _to_toml(key, value)  # inverted keys: the attribute is already positive
        if key.section == "release":
            continue  # where the build is published, not what it is (and may hold a token)
        if value == [] and key.section == "device":
            continue  # a build without devices writes no [device] section
        if value is not None:
            job[key.section][key.name] = value
    if config.evaluation.operating_point is not None:
        # the rule holds the threshold; both keys would be two rules to `check_rules`
        job["model"].pop("decision_threshold", None)
    return {s: t for s, t in job.items() if t}


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a valid TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def dumps(job: Mapping[str, Mapping[str, Any]], header: str = "") -> str:
    """Writes flat sections of scalars and arrays as TOML (all a job file holds)."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    for section, table in job.items():
        if lines:
            lines.append("")
        lines.append(f"[{section}]")
        for name, value in table.items():
            if value is not None:
                lines.append(f"{name} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _comment(text: str) -> list[str]:
    """A help text as comment lines of at most 100 characters."""
    return ["# " + line for line in textwrap.wrap(text, 98, break_on_hyphens=False)]


def template(defaults: Mapping[str, Any]) -> str:
    """A commented job file holding every key: defaults written, unset keys commented."""
    lines = [
        "# bedside-lite job file: `bedside-lite build --config job.toml`.",
        "# Flags passed on the command line override these values. Paths are relative to the",
        "# working directory. Unknown keys are an error. Each key names its flag.",
    ]
    for section in (*SECTIONS, SWEEP):
        lines += ["", f"[{section}]"]
        if section == "gates":
            lines.append("# Release gates: unset gates are not checked; a failed gate exits 1.")
        if section == SWEEP:
            lines.append("# `bedside-lite sweep --config job.toml`: one point per combination.")
            for skey in SWEEP_KEYS.values():
                lines += [*_comment(skey.help), f"# {skey.name} = {skey.example}"]
            continue
        for key in (k for k in KEYS if k.section == section):
            extra = f" ({', '.join(key.choices)})" if key.kind == "choice" else ""
            lines += _comment(f"{key.help}{extra}; {key.flag}")
            default = defaults.get(key.dest)
            if key.kind == "bool":
                default = bool(default) != key.invert
            if default is None or default == [] and key.kind in ("choices", "targets"):
                lists = ("choices", "targets")
                example = key.example or ('["litert"]' if key.kind in lists else '""')
                lines.append(f"# {key.name} = {example}")
            else:
                lines.append(f"{key.name} = {_toml_value(_to_toml(key, default))}")
    return "\n".join(lines) + "\n"


def dests(parser_actions: Iterable[argparse.Action]) -> dict[str, Any]:
    """Defaults of a parser's options by dest (`--help` excluded)."""
    return {
        a.dest: a.default
        for a in parser_actions
        if a.dest not in ("help",) and a.default is not argparse.SUPPRESS
    }


def uncovered(parser_actions: Iterable[argparse.Action]) -> list[str]:
    """`build` options without a job key (the schema must grow with the CLI)."""
    return sorted(
        a.dest
        for a in parser_actions
        if a.dest not in BY_DEST
        and a.dest not in PRESENTATION_DESTS
        and not a.dest.startswith("gate_")
    )
