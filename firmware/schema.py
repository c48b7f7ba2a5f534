"""TOML tables -> validated frozen dataclasses, with one-line errors.

Used by the hardware profile (``firmware.config``) and by the simulator's scenario files.
A dataclass field declares its constraints in ``metadata``:

- ``range=(lo, hi)``: inclusive bounds for a number, or for each item of a list;
- ``choices=(a, b, ...)``: the allowed values;
- ``doc="..."``: one line for the documentation.

Unknown keys, missing keys, wrong types and out-of-range values raise ``SchemaError``
whose message names the key (dotted path) and what is allowed.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class SchemaError(ValueError):
    """A TOML file or table does not fit its schema. ``str()`` is one line."""


def field(default: Any = dataclasses.MISSING, *, range: tuple[float, float] | None = None,
          choices: tuple[Any, ...] | None = None, doc: str = "") -> Any:
    """A dataclass field with validation metadata (see the module docstring)."""
    meta = {"range": range, "choices": choices, "doc": doc}
    if isinstance(default, list | dict):
        value = default
        return dataclasses.field(default_factory=lambda: type(value)(value), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file; a missing, unreadable or malformed file is a ``SchemaError``."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise SchemaError(f"{path}: no such file") from None
    except OSError as exc:
        raise SchemaError(f"{path}: cannot read ({exc.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SchemaError(f"{path}: not valid TOML ({exc})") from None


def build(cls: type[T], table: dict[str, Any], where: str = "") -> T:
    """Build dataclass ``cls`` from ``table``, validating every key (``where``: dotted path)."""
    if not isinstance(table, dict):
        raise SchemaError(f"{where or 'file'}: expected a table")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(table) - set(fields))
    if unknown:
        allowed = ", ".join(sorted(fields))
        raise SchemaError(f"{_join(where, unknown[0])}: unknown key (allowed: {allowed})")
    values: dict[str, Any] = {}
    for name, f in fields.items():
        path = _join(where, name)
        if name not in table:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                if dataclasses.is_dataclass(hints[name]):
                    values[name] = build(hints[name], {}, path)
                    continue
                raise SchemaError(f"{path}: missing")
            continue
        values[name] = _convert(hints[name], table[name], path, f.metadata)
    try:
        return cls(**values)
    except SchemaError:
        raise
    except (ValueError, TypeError) as exc:
        raise SchemaError(str(exc)) from None


def describe(cls: type) -> list[tuple[str, str, str, str]]:
    """Rows (key, type, allowed, doc) documenting ``cls`` and its nested tables."""
    rows: list[tuple[str, str, str, str]] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            rows += [(f"{f.name}.{k}", t, a, d) for k, t, a, d in describe(hint)]
            continue
        allowed = ""
        if f.metadata.get("range"):
            lo, hi = f.metadata["range"]
            allowed = f"{lo} .. {hi}"
        elif f.metadata.get("choices"):
            allowed = ", ".join(repr(c) for c in f.metadata["choices"])
        rows.append((f.name, _type_name(hint), allowed, f.metadata.get("doc", "")))
    return rows


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (list, tuple):
        return f"list of {_type_name(typing.get_args(hint)[0])}"
    if origin in (types.UnionType, typing.Union):
        return " or ".join(_type_name(a) for a in typing.get_args(hint))
    return getattr(hint, "__name__", str(hint))


def _convert(hint: Any, value: Any, path: str, meta: Any) -> Any:
    if dataclasses.is_dataclass(hint):
        return build(hint, value, path)
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, path, meta)
            except SchemaError as exc:
                errors.append(str(exc))
        raise SchemaError(errors[0])
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise SchemaError(f"{path}: expected a list, got {value!r}")
        (item,) = typing.get_args(hint)[:1]
        items = [_convert(item, v, f"{path}[{i}]", meta) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    return _scalar(hint, value, path, meta)


def _scalar(hint: Any, value: Any, path: str, meta: Any) -> Any:
    if hint is bool:
        if not isinstance(value, bool):
            raise SchemaError(f"{path}: expected true or false, got {value!r}")
    elif hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SchemaError(f"{path}: expected a whole number, got {value!r}")
    elif hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SchemaError(f"{path}: expected a number, got {value!r}")
        value = float(value)
        if value != value or value in (float("inf"), float("-inf")):
            raise SchemaError(f"{path}: expected a finite number, got {value!r}")
    elif hint is str:
        if not isinstance(value, str):
            raise SchemaError(f"{path}: expected a string, got {value!r}")
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise SchemaError(f"{path}: {value!r} is not allowed (allowed: {allowed})")
    bounds = meta.get("range")
    if bounds is not None and not bounds[0] <= value <= bounds[1]:
        raise SchemaError(f"{path}: {value!r} is out of range ({bounds[0]} .. {bounds[1]})")
    return value
