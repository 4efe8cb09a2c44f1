"""A classic's keys: a frozen dataclass whose fields say their range and meaning, parsed from a spec and checked.

Each classic declares its keys as fields made with `key(default, low, high,
meaning)` (numbers: the inclusive range), `flag(default, meaning)` (true or
false) or `choice(default, options, meaning)` (a word); a classic whose keys
depend on each other adds a `check()` method.  `parse(cls, given, defaults,
convert)` turns a spec's text values into an instance: an unknown key, a
value of the wrong kind or out of its range is a ValueError naming the key
(`key 'threads': must be an integer in 1..511, got 0`), which the catalog
prefixes with the spec and the command line prints as one line (exit 2).
`describe(cls)` lists the keys with their defaults and meanings (the
classics' docstrings and README text use it).
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any


def key(default: int | float, low: int | float, high: int | float, meaning: str) -> Any:
    """A number key in low..high (an int key if `default` is an int)."""
    return dataclasses.field(default=default, metadata={"range": (low, high), "meaning": meaning})


def flag(default: bool, meaning: str) -> Any:
    """A true/false key."""
    return dataclasses.field(default=default, metadata={"meaning": meaning})


def choice(default: str, options: tuple[str, ...], meaning: str) -> Any:
    """A key that takes one of `options`."""
    return dataclasses.field(default=default, metadata={"options": options, "meaning": meaning})


def _kinds(cls: type) -> dict[str, type]:
    hints = typing.get_type_hints(cls)
    return {item.name: hints[item.name] for item in dataclasses.fields(cls)}


def check(instance: Any) -> None:
    """Every field within its declared range or options, then the class's own `check()` (ValueError naming the
    key)."""
    kinds = _kinds(type(instance))
    for item in dataclasses.fields(instance):
        value, kind = getattr(instance, item.name), kinds[item.name]
        if kind is bool:
            if not isinstance(value, bool):
                raise ValueError(f"key '{item.name}': must be true or false, got {value!r}")
            continue
        if "options" in item.metadata:
            if value not in item.metadata["options"]:
                raise ValueError(f"key '{item.name}': must be one of {', '.join(item.metadata['options'])}, "
                                 f"got {value!r}")
            continue
        low, high = item.metadata["range"]
        number_ok = isinstance(value, int) and not isinstance(value, bool) if kind is int else (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value))
        if not number_ok or not low <= value <= high:
            what = "an integer" if kind is int else "a number"
            raise ValueError(f"key '{item.name}': must be {what} in {low:g}..{high:g}, got {value!r}")
    own_check = getattr(instance, "check", None)
    if own_check is not None:
        own_check()


def parse(cls: type, given: dict[str, str], defaults: dict[str, Any], convert: Any) -> Any:
    """An instance of `cls` from the catalog entry's `defaults` and a spec's `given` text values, checked.

    `convert(key, type, text)` parses one value (the catalog's parser: integers with binary units, booleans as
    true/false/yes/no/on/off/1/0)."""
    kinds = _kinds(cls)
    unknown = [name for name in given if name not in kinds]
    if unknown:
        raise ValueError(f"unknown key '{unknown[0]}'; valid keys: {', '.join(sorted(kinds))}")
    values = {name: value for name, value in defaults.items() if name in kinds}
    for name, text in given.items():
        values[name] = convert(name, kinds[name], text)
    instance = cls(**values)
    check(instance)
    return instance


def describe(cls: type) -> list[tuple[str, Any, str]]:
    """(key, default, meaning) of every key of `cls`, in declaration order."""
    return [(item.name, item.default, item.metadata.get("meaning", "")) for item in dataclasses.fields(cls)]
