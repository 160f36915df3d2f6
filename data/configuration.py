"""Typed configuration loaded from the complete YAML files under ``configs/``.

The YAML files are the single home of every default: the dataclasses here and in the modules that use them
declare fields without defaults, so a missing or unknown key fails loudly and names itself.
It lives in data/, the bottom layer, because every folder loads config (data/ too: reading.yaml, labels.yaml) and
imports only go serve -> models/training -> data.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from data.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"

T = TypeVar("T")


def config_path(name: str) -> Path:
    """Path of a shipped config file, e.g. ``config_path("reading")`` -> ``configs/reading.yaml``."""
    return CONFIG_DIR / f"{name}.yaml"


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Check (and gently convert) one value against its type hint, naming the key on failure."""
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}' must be a mapping, got {value!r}")
        return _build(hint, value, prefix=f"{key}.")
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError:
                continue
        raise ConfigError(f"config key '{key}' has a bad value {value!r} (expected {hint})")
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(f"config key '{key}' must be a list, got {value!r}")
        return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}' must be a mapping, got {value!r}")
        _, vtype = typing.get_args(hint)
        return {k: _coerce(v, vtype, f"{key}.{k}") for k, v in value.items()}
    if origin is typing.Literal:
        if value not in typing.get_args(hint):
            raise ConfigError(f"config key '{key}' must be one of {typing.get_args(hint)}, got {value!r}")
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and (type(value) is not hint):
        raise ConfigError(f"config key '{key}' must be {hint.__name__}, got {value!r}")
    return value


def _build(cls: type[T], raw: dict[str, Any], prefix: str = "") -> T:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ConfigError(f"unknown config key '{prefix}{unknown[0]}' (known: {', '.join(sorted(names))})")
    missing = sorted(names - set(raw))
    if missing:
        raise ConfigError(f"missing config key '{prefix}{missing[0]}'")
    return cls(**{name: _coerce(raw[name], hints[name], prefix + name) for name in names})


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` strings; values are parsed as YAML so ``lr=1e-4`` becomes a float."""
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"bad --set value '{item}': expected key=value")
        node = raw
        parts = key.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                raise ConfigError(f"unknown config key '{key}' in --set '{item}'")
            node = node[part]
        if parts[-1] not in node:
            raise ConfigError(f"unknown config key '{key}' in --set '{item}'")
        try:
            node[parts[-1]] = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ConfigError(f"bad --set value '{item}': {err}") from err
    return raw


def _read_mapping(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ConfigError(f"{path}: config file not found") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: config must be a YAML mapping")
    return raw


def _merge(defaults: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """``values`` over ``defaults``, recursively: keys missing from ``values`` keep the default."""
    merged = dict(defaults)
    for key, value in values.items():
        both_maps = isinstance(value, dict) and isinstance(defaults.get(key), dict)
        merged[key] = _merge(defaults[key], value) if both_maps else value
    return merged


def load_config(cls: type[T], path: str | Path, overrides: list[str] | None = None,
                defaults: str | Path | None = None) -> T:
    """Load ``path`` into the dataclass ``cls``, after applying ``--set`` overrides.

    ``defaults`` fills keys that ``path`` lacks: a model folder saved before a key was added still loads, with
    the key at the shipped value.
    """
    path = Path(path)
    raw = _read_mapping(path)
    if defaults is not None:
        raw = _merge(_read_mapping(Path(defaults)), raw)
    try:
        return _build(cls, apply_overrides(raw, overrides or []))
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from err


def to_dict(config: Any) -> dict[str, Any]:
    """Plain dict of a loaded config, for writing the resolved config into a run folder."""
    return dataclasses.asdict(config)
