"""The report's record machinery: `Record` (a frozen dataclass written to and read from
its JSON object in field order), `View` (a block kept as its JSON object), and the field
markers `omit()` (key absent when None) and `flat()` (keys in the parent's object).

`pipeline.release.report.schema` declares the report's records with them.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

R = TypeVar("R", bound="Record")
Interval = tuple[float, float]  # a 95% interval [low, high] in report.json


def omit() -> Any:
    """A field whose key is absent from the JSON when its value is None."""
    return field(default=None, metadata={"omit": True})


def flat() -> Any:
    """A record field whose keys are written into its parent's object (absent when None)."""
    return field(default=None, metadata={"flat": True})


def _to_json(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_json()
    if isinstance(value, View):
        return value.doc
    if isinstance(value, list | tuple):
        return [_to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    return value


def _hints(cls: Any) -> dict[str, Any]:
    """The resolved field types of a record class (cached: from_json runs per object)."""
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


_HINTS: dict[Any, dict[str, Any]] = {}


def from_json_value(tp: Any, value: Any, strict: bool = True) -> Any:
    """`value` (JSON) as type `tp`: records, views, lists, tuples and dicts of them."""
    if value is None:
        return None
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return from_json_value(options[0], value, strict)
        records = [a for a in options if isinstance(a, type) and issubclass(a, Record)]
        if not records:
            return value
        errors = []
        # the first record whose keys match exactly; reading leniently, the first that reads
        for record, exact in [(r, True) for r in records] + [(r, strict) for r in records]:
            try:
                return record.from_json(value, strict=exact)
            except ValueError as exc:
                errors.append(str(exc))
        raise ValueError("; ".join(dict.fromkeys(errors)))
    if isinstance(tp, type) and issubclass(tp, Record):
        return tp.from_json(value, strict=strict)
    if isinstance(tp, type) and issubclass(tp, View):
        return tp.from_json(value)
    if origin is list:
        return [from_json_value(args[0], v, strict) for v in value]
    if origin is tuple:
        return tuple(from_json_value(args[0], v, strict) for v in value)
    if origin is dict:
        return {k: from_json_value(args[1], v, strict) for k, v in value.items()}
    return value


class Record:
    """A dataclass written as one JSON object, in its fields' order."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if f.metadata.get("flat"):
                out.update({} if value is None else value.to_json())
            elif value is not None or not f.metadata.get("omit"):
                out[f.name] = _to_json(value)
        return out

    @classmethod
    def keys(cls) -> set[str]:
        """Every key this record can write."""
        names: set[str] = set()
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            flat = _record_type(_hints(cls)[f.name]) if f.metadata.get("flat") else None
            names |= flat.keys() if flat is not None else {f.name}
        return names

    @classmethod
    def from_json(cls: type[R], doc: Mapping[str, Any], strict: bool = True) -> R:
        """The record of a JSON object.

        Args:
            doc: the JSON object.
            strict: demand exactly the record's keys (a build's own blocks). False reads
                what a partial or hand-made report holds: a missing key reads as None and
                a key the record does not name is ignored.

        Raises:
            ValueError: (strict) a key the record requires is missing, or one it does not
                name is present.
        """
        if not isinstance(doc, Mapping):
            raise ValueError(f"{cls.__name__}: expected a JSON object; received {doc!r}.")
        unknown = set(doc) - cls.keys()
        if unknown and strict:
            raise ValueError(
                f"{cls.__name__}: report key(s) {sorted(unknown)} are not part of schema "
                f"version 1; expected only {sorted(cls.keys())}."
            )
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            tp = _hints(cls)[f.name]
            if f.metadata.get("flat"):
                flat = _record_type(tp)
                assert flat is not None, f"{cls.__name__}.{f.name} is not a record"
                present = {k: doc[k] for k in flat.keys() if k in doc}
                kwargs[f.name] = flat.from_json(present, strict) if present else None
            elif f.name in doc:
                kwargs[f.name] = from_json_value(tp, doc[f.name], strict)
            elif not strict and f.default_factory is dataclasses.MISSING:
                kwargs[f.name] = None if f.default is dataclasses.MISSING else f.default
            elif strict and not f.metadata.get("omit"):
                raise ValueError(
                    f"{cls.__name__}: report key '{f.name}' is missing; received keys "
                    f"{sorted(doc)}."
                )
        return cls(**kwargs)


def _record_type(tp: Any) -> type[Record] | None:
    for candidate in (tp, *typing.get_args(tp)):
        if isinstance(candidate, type) and issubclass(candidate, Record):
            return candidate
    return None


@dataclass(frozen=True)
class View:
    """A block kept as its JSON object (a stage owns its keys), read through properties."""

    doc: dict[str, Any]

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Any:
        return cls(dict(doc))

    def get(self, key: str, default: Any = None) -> Any:
        return self.doc.get(key, default)
