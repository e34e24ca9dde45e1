"""Job-file values checked and converted into what the option's argparse dest holds.

Each message names the file and the key, says what was expected and what was received,
and gives an example line.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from pipeline.config.enums import AUTO_SPARSITY
from pipeline.config.option import Option
from pipeline.errors import ConfigError


def _type_name(value: Any) -> str:
    names = {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "a table",
    }
    return names.get(type(value), type(value).__name__)


def bad(where: str, key: str, expected: str, value: Any, example: str) -> ConfigError:
    return ConfigError(
        f"{where}: {key} must be {expected}; received {json.dumps(value, default=str)} "
        f"({_type_name(value)}). Write e.g. {example}."
    )


def number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def convert(key: Option, value: Any, where: str) -> Any:
    """A TOML value of `key` in the form its argparse dest holds.

    Raises:
        ConfigError: naming `where` and the key, when the value has the wrong type.
    """
    if key.kind in ("strs", "floats", "size", "targets", "choices"):
        return _array(key, value, where)
    return _scalar(key, value, where)


def _scalar(key: Option, value: Any, where: str) -> Any:
    """A single TOML value (a number, a boolean, a string, a path, a choice)."""
    name, kind = key.label, key.kind
    ex = f"{key.name} = {key.example}" if key.example else f"{key.name} = ..."
    if kind == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            raise bad(where, name, "an integer", value, f"{key.name} = 3")
        return value
    if kind == "float":
        if not number(value) or not math.isfinite(value):
            raise bad(where, name, "a finite number", value, f"{key.name} = 0.5")
        return float(value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise bad(where, name, "true or false", value, f"{key.name} = true")
        return not value if key.invert else value
    if kind == "str":
        if not isinstance(value, str):
            raise bad(where, name, "a string", value, f'{key.name} = "label"')
        return value
    if kind == "path":
        if not isinstance(value, str) or not value:
            raise bad(where, name, "a non-empty path string", value, ex)
        return Path(value)
    if kind == "class_ref":
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise bad(where, name, "a class index or a class name", value, ex)
        return value
    if kind == "sparsity":
        if isinstance(value, str) and value.strip().lower() == AUTO_SPARSITY:
            return AUTO_SPARSITY
        if not number(value):
            raise bad(
                where, name, f'a number in [0, 1) or "{AUTO_SPARSITY}"', value, f"{key.name} = 0.5"
            )
        return float(value)
    if kind == "choice":
        if value not in key.choices:
            raise bad(
                where,
                name,
                f"one of {', '.join(key.choices)}",
                value,
                f'{key.name} = "{key.choices[0]}"',
            )
        return value
    raise AssertionError(f"unknown key kind {kind}")  # pragma: no cover - schema defect


def _array(key: Option, value: Any, where: str) -> Any:
    """A TOML array (or what stands for one: a scalar mean, "64x64")."""
    name, kind = key.label, key.kind
    ex = f"{key.name} = {key.example}" if key.example else f"{key.name} = ..."
    if kind == "strs":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad(where, name, "an array of strings", value, f'{key.name} = ["conv*"]')
        return list(value)
    if kind == "floats":
        items = value if isinstance(value, list) else [value]
        if not items or not all(number(v) for v in items):
            raise bad(where, name, "a number or an array of numbers", value, ex)
        return tuple(float(v) for v in items)
    if kind == "size":
        if isinstance(value, str):
            parts = value.lower().split("x")
            value = [int(p) for p in parts] if all(p.isdigit() for p in parts) else value
        items = [value, value] if isinstance(value, int) and not isinstance(value, bool) else value
        if (
            not isinstance(items, list)
            or len(items) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in items)
        ):
            raise bad(where, name, "[height, width]", value, ex)
        return int(items[0]), int(items[1])
    if kind == "targets":
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise bad(
                where,
                name,
                f"an array of {', '.join(key.choices)} or device names",
                value,
                f'{key.name} = ["{key.choices[0]}"]',
            )
        return list(value)
    if kind == "choices":
        if not isinstance(value, list) or not all(v in key.choices for v in value):
            raise bad(
                where,
                name,
                f"an array of {', '.join(key.choices)}",
                value,
                f'{key.name} = ["{key.choices[0]}"]',
            )
        return list(value)
    raise AssertionError(f"unknown key kind {kind}")  # pragma: no cover - schema defect


def convert_sweep(key: Option, value: Any, where: str) -> Any:
    """A TOML value of a `[sweep]` key."""
    name = key.label
    ex = f"{key.name} = {key.example}"
    if key.kind in ("floats_list", "sparsity_list"):
        if not isinstance(value, list) or not value or not all(number(v) for v in value):
            raise bad(where, name, "a non-empty array of numbers", value, ex)
        return [float(v) for v in value]
    if key.kind == "ints_list":
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        ):
            raise bad(where, name, "a non-empty array of integers", value, ex)
        return list(value)
    if key.kind == "choice_list":
        if not isinstance(value, list) or not value or not all(v in key.choices for v in value):
            raise bad(where, name, f"a non-empty array of {', '.join(key.choices)}", value, ex)
        return list(value)
    if key.kind == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            raise bad(where, name, "an integer", value, ex)
        return value
    if key.kind == "float":
        if not number(value):
            raise bad(where, name, "a number", value, ex)
        return float(value)
    if key.kind == "str":
        if not isinstance(value, str) or not value.strip():
            raise bad(where, name, "a non-empty string", value, ex)
        return value
    if key.kind == "choice":
        if value not in key.choices:
            raise bad(where, name, f"one of {', '.join(key.choices)}", value, ex)
        return value
    if not isinstance(value, str) or not value:
        raise bad(where, name, "a non-empty path string", value, ex)
    return Path(value)
