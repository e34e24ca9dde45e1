"""One declared option: its flag, job-file key, type, default, help and where it goes.

`pipeline.config.options.OPTIONS` is the registry of every option; this module holds the
`Option` record and `declare`, which fills in what follows from the rest (the flag from
the dest, the attribute from the key, the default from the config dataclass field, the
choices from the `str` enum).
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.config.enums import choices as enum_choices
from pipeline.config.types import BuildConfig

# Kinds of value. Build options: int, float, bool, str, path, strs (repeatable string),
# floats (comma-separated numbers), size (HxW), class_ref (index or name), sparsity (number
# or 'auto'), choice, choices (repeatable choice), targets (repeatable runtime or device
# name). Sweep axes: sparsity_list, floats_list, ints_list, choice_list (comma-separated on
# the command line, arrays in the job file). Presentation: gate (`--gate KEY=VALUE`).
LIST_KINDS = frozenset({"strs", "choices", "targets"})  # repeatable flags (action=append)

_FROM_CONFIG: Any = object()  # `declare`: take the default from the config field


@dataclass(frozen=True)
class Option:
    """One option of a command, and its job-file key.

    Attributes:
        flag: the command-line flag (`--calibration-samples`); for a gate, the `--gate`
            form (`--gate max_int8_bytes=V`) as the template shows it.
        dest: the argparse dest; job-file values are resolved by it too.
        kind: the kind of value (see the module's comment).
        help: one text for `--help`, the job-file template and the README.
        section: the job-file section ("" for presentation flags without a job key).
        name: the key inside the section.
        attr: the dotted `BuildConfig` attribute it fills ("" for none).
        default: the value when neither a flag nor the job file sets it.
        choices: the allowed values, from the option's `str` enum.
        metavar: the flag's metavar.
        commands: the commands whose parser takes the flag (build, sweep, bench,
            export-onnx; `main` for the top-level parser).
        invert: the job key is true when the flag is absent (`[bench] enabled`, `--no-bench`).
        exclusive: options sharing a group name exclude each other: passing one on the
            command line clears the job file's others.
        cli_exclusive: the group is also exclusive on one command line and in one file.
        example: a TOML value for the template and error messages.
        renamed_from: the option's former dest; its flag (`--max-auroc-drop`) and its key in
            the same section still work, with a deprecation warning naming the new ones.
    """

    flag: str
    dest: str
    kind: str
    help: str
    section: str = ""
    name: str = ""
    attr: str = ""
    default: Any = None
    choices: tuple[str, ...] = ()
    metavar: str | None = None
    commands: tuple[str, ...] = ("build",)
    invert: bool = False
    exclusive: str = ""
    cli_exclusive: bool = False
    example: str = ""
    renamed_from: str = ""

    @property
    def label(self) -> str:
        """`[section] name`, as error messages name a job key."""
        return f"[{self.section}] {self.name}"

    @property
    def old_flag(self) -> str:
        """The deprecated flag of a renamed option ("" for none)."""
        return "--" + self.renamed_from.replace("_", "-") if self.renamed_from else ""

    @property
    def old_label(self) -> str:
        """The deprecated `[section] key` of a renamed option ("" for none)."""
        return f"[{self.section}] {self.renamed_from}" if self.renamed_from else ""

    def deprecation(self, old: str) -> str:
        """The warning for a use of the deprecated flag or key `old`."""
        new = self.flag if old.startswith("--") else self.label
        return (
            f"{old} is deprecated and will be removed; use {new} (same value). "
            f"It was renamed to say it is a validation budget, not a release gate."
        )


def config_default(attr: str) -> Any:
    """The default of a dotted `BuildConfig` attribute, read from the dataclass fields."""
    cls: Any = BuildConfig
    *path, last = attr.split(".")
    for part in path:
        cls = {f.name: f for f in dataclasses.fields(cls)}[part].default_factory
    spec = {f.name: f for f in dataclasses.fields(cls)}[last]
    if spec.default is not dataclasses.MISSING:
        return spec.default
    factory: Any = spec.default_factory
    return factory()


def _plain(value: Any) -> Any:
    """A config default as the parsers hold it: lists for tuples, values for enums."""
    if isinstance(value, enum.Enum):
        return value.value
    return list(value) if isinstance(value, tuple) else value


def declare(
    dest: str,
    kind: str,
    help: str,
    *,
    section: str = "",
    name: str = "",
    attr: str | None = None,
    flag: str = "",
    default: Any = _FROM_CONFIG,
    enum: type[enum.Enum] | None = None,
    **kw: Any,
) -> Option:
    """An `Option`: `flag` defaults to --dest, `name` to dest, `attr` to section.name (none
    for presentation flags), `default` to the config field's (negated when `invert`),
    `choices` to the values of `enum`.
    """
    name = name or (dest if section else "")
    if attr is None:
        attr = f"{section}.{name}" if section and section != "sweep" else ""
    if default is _FROM_CONFIG:
        default = _plain(config_default(attr)) if attr else None
        if kw.get("invert"):
            default = not default
    if kind == "bool" and default is None:
        default = False  # a presentation switch (store_true)
    return Option(
        flag=flag or "--" + dest.replace("_", "-"),
        dest=dest,
        kind=kind,
        help=help,
        section=section,
        name=name,
        attr=attr,
        default=default,
        choices=enum_choices(enum) if enum is not None else (),
        **kw,
    )


def shown(value: Any) -> str:
    """A default as `--help` and the README show it ("" when there is nothing to show)."""
    if value is None or value is False or value == [] or value == ():
        return ""
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, Path | str):
        return str(value)
    if value is True:
        return "true"
    if isinstance(value, list | tuple):
        return ",".join(shown(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)
