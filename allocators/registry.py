"""Name -> allocator class, so the CLI, the conformance suite and the sweep see all allocators alike.

An allocator *spec* is `name`, `name:preset` or `name:key=value,key=value`
(e.g. `freelist:glibc`, `freelist:policy=best,order=address`).
"""

from __future__ import annotations

from typing import Any

from allocators.errors import BadParameter
from allocators.protocol import Allocator
from labcore.units import is_byte_count, parse_bytes

_REGISTRY: dict[str, type[Allocator]] = {}


def register(cls: type[Allocator]) -> type[Allocator]:
    """Class decorator: make an allocator known by its `name`."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"allocator name '{cls.name}' registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def names() -> list[str]:
    return list(_REGISTRY)


def get(name: str) -> type[Allocator]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise BadParameter(f"unknown allocator '{name}' (known: {', '.join(_REGISTRY)})") from None


def parse_value(text: str) -> Any:
    """'16' -> 16, '1.5' -> 1.5, 'true' -> True, '64KiB' -> 65536, '1TiB' -> 2**40, anything else stays a string."""
    lowered = text.strip().lower()
    if lowered in ("true", "yes", "on"):
        return True
    if lowered in ("false", "no", "off"):
        return False
    if is_byte_count(lowered):
        return parse_bytes(lowered)
    try:
        return int(lowered, 0)  # a signed integer (gogc=-1)
    except ValueError:
        pass
    try:
        return float(lowered)
    except ValueError:
        return text.strip()


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """Split an allocator spec into (name, params)."""
    name, _, rest = spec.partition(":")
    cls = get(name.strip())
    params: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        if "=" in item:
            key, _, value = item.partition("=")
            if key.strip() in params:
                raise BadParameter(f"allocator spec '{spec}': key '{key.strip()}' given twice")
            params[key.strip()] = parse_value(value)
        elif item in cls.presets:
            params["preset"] = item
        else:
            raise BadParameter(f"allocator spec '{spec}': '{item}' is neither key=value nor a preset of {name}")
    return cls.name, params


def general_purpose(spec: str) -> bool:
    """Whether the allocator of `spec` is general purpose (`Allocator.general_purpose`); BadParameter if unknown."""
    name, params = parse_spec(spec)
    return get(name).general_purpose_with(params)


def create(spec: str, capacity_bytes: int, **params: Any) -> Allocator:
    """Build an allocator from a spec; explicit `params` override those in the spec."""
    name, spec_params = parse_spec(spec)
    spec_params.update(params)
    return get(name)(capacity_bytes, **spec_params)
