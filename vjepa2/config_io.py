"""One configuration path for runs: dataclass defaults, then a YAML file, then ``key=value`` overrides.

The resolved config is written into the run folder. Unknown keys are errors that name the key.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from vjepa2.errors import ConfigError

T = TypeVar("T")


def _bad(key: str, want: str, value: Any) -> ConfigError:
    return ConfigError(f"config key {key}: expected {want}, got {value!r}")


def _coerce(tp: Any, value: Any, key: str) -> Any:
    """Check and convert a YAML/CLI ``value`` to the field type ``tp`` (dataclasses, Literal choices, unions, tuples,
    bool/int/float/str); :class:`ConfigError` names the key, the expected type or choices and the value."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, prefix=f"{key}.")
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        if value not in choices or isinstance(value, bool) != any(isinstance(c, bool) for c in choices):
            raise ConfigError(f"config key {key}: {value!r} is not one of {list(choices)}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, key)
            except ConfigError as err:
                errors.append(str(err).split(": ", 1)[1])
        raise ConfigError(f"config key {key}: " + "; or ".join(errors))
    if origin is tuple:
        args = typing.get_args(tp)
        items = value if isinstance(value, (list, tuple)) else [value]
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, key) for v in items)
        if len(items) != len(args):
            raise _bad(key, f"a list of {len(args)} values", value)
        return tuple(_coerce(a, v, key) for a, v in zip(args, items, strict=True))
    if tp is bool:
        if not isinstance(value, bool):
            raise _bad(key, "true or false", value)
        return value
    if tp is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                raise _bad(key, "an integer", value) from None
        if isinstance(value, bool) or not isinstance(value, int):
            raise _bad(key, "an integer", value)
        return value
    if tp is float:
        if isinstance(value, bool):
            raise _bad(key, "a number", value)
        try:
            return float(value)
        except (TypeError, ValueError):
            raise _bad(key, "a number", value) from None
    if tp is str and not isinstance(value, str):
        raise _bad(key, "a string", value)
    return value


def check_choices(section: str, obj: Any) -> None:
    """The ``Literal`` fields of a config section hold one of their choices (also for configs built in Python)."""
    for name, tp in typing.get_type_hints(type(obj)).items():
        if typing.get_origin(tp) is typing.Literal and getattr(obj, name) not in typing.get_args(tp):
            choices = list(typing.get_args(tp))
            raise ConfigError(f"config key {section}.{name}: {getattr(obj, name)!r} is not one of {choices}")


def check_fields(section: str, obj: Any, rule: str, *names: str) -> None:
    """Range checks of config fields: ``rule`` is ``">=0"``, ``">=1"``, ``">0"`` or ``"[0,1]"``."""
    tests = {
        ">=0": lambda v: v >= 0,
        ">=1": lambda v: v >= 1,
        ">0": lambda v: v > 0,
        "[0,1]": lambda v: 0 <= v <= 1,
    }
    for name in names:
        value = getattr(obj, name)
        values = value if isinstance(value, tuple) else (value,)
        if any(v is not None and not tests[rule](v) for v in values):
            raise ConfigError(f"config key {section}.{name}: must be {rule.replace(',', ', ')}, got {value!r}")


def from_dict(cls: type[T], data: dict[str, Any] | None, prefix: str = "") -> T:
    """Build dataclass ``cls`` from a (nested) dict; missing fields keep their defaults."""
    data = data or {}
    if not isinstance(data, dict):
        raise ConfigError(f"config section {prefix.rstrip('.') or '<root>'} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown config key(s) {[prefix + k for k in unknown]}; valid: {sorted(names)}")
    return cls(**{k: _coerce(hints[k], v, prefix + k) for k, v in data.items()})


def to_dict(cfg: Any) -> Any:
    """A dataclass config as plain nested dicts/lists (YAML- and ``weights_only``-safe)."""
    if dataclasses.is_dataclass(cfg):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, (tuple, list)):
        return [to_dict(v) for v in cfg]
    return cfg


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides (values parsed as YAML) to a nested dict."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, raw = item.split("=", 1)
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part} is not a section")
        node[leaf] = yaml.safe_load(raw)
    return data


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """Defaults of ``cls``, overridden by the YAML file at ``path``, then by ``overrides``."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise ConfigError(f"{path}: cannot read config ({err})") from err
    return from_dict(cls, apply_overrides(data, overrides or []))


def save_config(cfg: Any, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
