"""argparse declarations generated from the option registry, and the flags' value types.

`add_options(parser, command)` adds every registered option `command` takes, grouped by
job-file section; `add_option` adds one (renamed or with another default if need be) to
any parser, e.g. a benchmark script's.
"""

from __future__ import annotations

import argparse
import dataclasses
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pipeline.config.enums import AUTO_SPARSITY
from pipeline.config.option import Option, shown
from pipeline.config.options import BY_DEST, for_command
from pipeline.errors import DeprecatedOption


def _sparsity(value: str) -> float | str:
    """`--sparsity`: a number (range checked by PruneConfig) or 'auto'."""
    if value.strip().lower() == AUTO_SPARSITY:
        return AUTO_SPARSITY
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number in [0, 1) or '{AUTO_SPARSITY}', received '{value}'"
        ) from None


def _floats(value: str) -> tuple[float, ...]:
    """`--mean`/`--std`: one number, or one per channel/feature separated by commas."""
    try:
        return tuple(float(v) for v in value.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number or comma-separated numbers such as 0.485,0.456,0.406, "
            f"received '{value}'"
        ) from None


def _size(value: str) -> tuple[int, int]:
    """`--resize`: HxW (e.g. 64x64) or one number for a square."""
    try:
        parts = [int(v) for v in value.lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected HxW such as 64x64, received '{value}'")
    return parts[0], parts[1]


def _class_ref(value: str) -> int | str:
    """`--positive-class`: a class index or a class name."""
    return int(value) if value.strip().lstrip("-").isdigit() else value


def _list(item: Callable[[str], Any], choices: Sequence[str] = ()) -> Callable[[str], list[Any]]:
    """A comma-separated list of `item` values (sweep axes)."""

    def parse(value: str) -> list[Any]:
        try:
            out = [item(v.strip()) for v in value.split(",") if v.strip()]
        except (ValueError, argparse.ArgumentTypeError):
            out = []
        if not out or (choices and not all(v in choices for v in out)):
            allowed = f" from {', '.join(choices)}" if choices else ""
            raise argparse.ArgumentTypeError(
                f"expected comma-separated values{allowed}, received '{value}'"
            )
        return out

    return parse


def _gate(value: str) -> tuple[str, Any]:
    """`--gate KEY=VALUE`; an unknown key or a bad value is a ConfigError naming it."""
    from pipeline.config.jobfile import gate_assignment

    return gate_assignment(value)


# argparse keywords of each kind of value (see pipeline.config.option)
_KINDS: dict[str, Callable[[Option], dict[str, Any]]] = {
    "bool": lambda o: {"action": "store_true"},
    "int": lambda o: {"type": int},
    "float": lambda o: {"type": float},
    "str": lambda o: {},
    "path": lambda o: {"type": Path},
    "strs": lambda o: {"action": "append"},
    "floats": lambda o: {"type": _floats},
    "size": lambda o: {"type": _size},
    "class_ref": lambda o: {"type": _class_ref},
    "sparsity": lambda o: {"type": _sparsity},
    "choice": lambda o: {"choices": list(o.choices)},
    "choices": lambda o: {"action": "append", "choices": list(o.choices)},
    "targets": lambda o: {"action": "append"},
    "sparsity_list": lambda o: {"type": _list(_sparsity)},
    "floats_list": lambda o: {"type": _list(float)},
    "ints_list": lambda o: {"type": _list(int)},
    "choice_list": lambda o: {"type": _list(str, o.choices)},
    "gate": lambda o: {"action": "append", "type": _gate},
}


def _help(option: Option) -> str:
    """The option's help with its default, escaped for argparse's %-formatting."""
    text = option.help
    if option.kind == "gate":
        from pipeline.config.jobfile import GATE_KEYS

        text += ". Keys: " + ", ".join(GATE_KEYS)
    default = shown(option.default)
    if default and option.kind != "bool":
        text += f" (default: {default})"
    return text.replace("%", "%%")


def argument(option: Option, **overrides: Any) -> tuple[str, dict[str, Any]]:
    """The flag and `add_argument` keywords of an option; `overrides` replace keywords."""
    if "default" in overrides:  # the help shows the default in force
        option = dataclasses.replace(option, default=overrides["default"])
    kwargs = {
        "dest": option.dest,
        "default": option.default,
        "help": _help(option),
        **_KINDS[option.kind](option),
    }
    if option.metavar is not None:
        kwargs["metavar"] = option.metavar
    if kwargs.get("action") == "store_true":
        kwargs.pop("metavar", None)
    kwargs.update(overrides)
    return option.flag, kwargs


def add_option(
    parser: argparse.ArgumentParser | argparse._ActionsContainer,
    dest: str,
    flag: str = "",
    **overrides: Any,
) -> argparse.Action:
    """Adds the registered option `dest` to any parser, as `flag` if given.

    Args:
        parser: the parser (or argument group) to add it to.
        dest: the option's dest in the registry (e.g. `structured_distill`).
        flag: another flag for it (e.g. `--distill` in a benchmark script).
        **overrides: `add_argument` keywords that replace the registry's (e.g. `default`).
    """
    name, kwargs = argument(BY_DEST[dest], **overrides)
    if flag:
        kwargs["dest"] = overrides.get("dest", flag.lstrip("-").replace("-", "_"))
    return parser.add_argument(flag or name, **kwargs)


def add_options(parser: argparse.ArgumentParser, command: str) -> None:
    """Adds every registered option of `command`, one argument group per job section."""
    groups: dict[str, Any] = {}
    exclusive: dict[str, Any] = {}
    for option in for_command(command):
        section = option.section or "output"
        if command == "main":
            group: Any = parser
        elif section not in groups:
            title = f"[{section}] options" if option.section else "output options"
            group = groups[section] = parser.add_argument_group(title)
        else:
            group = groups[section]
        if option.cli_exclusive:
            if option.exclusive not in exclusive:
                exclusive[option.exclusive] = group.add_mutually_exclusive_group()
            group = exclusive[option.exclusive]
        flag, kwargs = argument(option)
        group.add_argument(flag, **kwargs)
        if option.renamed_from:
            _add_renamed(group, option, kwargs)


class _Renamed(argparse.Action):
    """The deprecated flag of a renamed option: stores the value under the new option's
    dest and warns, naming the new flag."""

    def __init__(self, *args: Any, option: Option, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.option = option

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        message = self.option.deprecation(self.option.old_flag)
        warnings.warn(message, DeprecatedOption, stacklevel=2)
        setattr(namespace, self.dest, values)


def _add_renamed(group: Any, option: Option, kwargs: dict[str, Any]) -> None:
    """The old flag of a renamed option, hidden from `--help` (the README names it)."""
    group.add_argument(
        option.old_flag,
        dest=option.dest,
        type=kwargs.get("type"),
        metavar=kwargs.get("metavar"),
        default=argparse.SUPPRESS,
        help=argparse.SUPPRESS,
        action=_Renamed,
        option=option,
    )
