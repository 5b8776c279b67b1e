"""YAML configs: defaults, then the file, then command-line overrides; unknown keys and wrong types
are errors that name the key."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import yaml

from asr_gr.utils import ConfigError

# Sub-dicts whose keys are checked by the classes they configure (encoders, heads), not here.
FREE_FORM = {"encoder_conf", "aux_conf", "specaug"}


def load_yaml(path) -> dict:
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file does not exist") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: invalid YAML: {getattr(e, 'problem', e)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of keys to values")
    return data


def _check_type(key: str, value, default, source: str):
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: key '{key}' must be true or false, got {value!r}")
    elif isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: key '{key}' must be an integer, got {value!r}")
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{source}: key '{key}' must be a number, got {value!r}")
        value = float(value)
    elif isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{source}: key '{key}' must be a string, got {value!r}")
    elif isinstance(default, dict):
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: key '{key}' must be a mapping, got {value!r}")
    return value


def merge(defaults: dict, update: dict, source: str) -> dict:
    """Return defaults updated by ``update``; unknown keys or mismatched types raise ConfigError."""
    out = copy.deepcopy(defaults)
    for key, value in update.items():
        if key not in defaults:
            raise ConfigError(f"{source}: unknown key '{key}'; known: {', '.join(sorted(defaults))}")
        value = _check_type(key, value, defaults[key], source)
        if isinstance(defaults[key], dict) and key not in FREE_FORM and value is not None:
            value = merge(defaults[key], value, f"{source} ({key})")
        out[key] = value
    return out


def parse_override(text: str) -> tuple[list[str], object]:
    """``a.b=value`` -> (['a', 'b'], value parsed as YAML scalar)."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like key=value (dots for nested keys)")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def resolve(defaults: dict, path=None, overrides=()) -> dict:
    """defaults <- YAML file <- overrides (``key=value`` strings or (keys, value) pairs)."""
    cfg = copy.deepcopy(defaults)
    if path is not None:
        cfg = merge(cfg, load_yaml(path), str(path))
    for ov in overrides:
        keys, value = parse_override(ov) if isinstance(ov, str) else ov
        update = value
        for k in reversed(keys[1:]):
            update = {k: update}
        if len(keys) > 1:
            sub = copy.deepcopy(cfg.get(keys[0]) or {})
            _deep_update(sub, update)
            update = sub
        cfg = merge(cfg, {keys[0]: update}, "command line")
    return cfg


def _deep_update(dst: dict, src: dict) -> None:
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            _deep_update(dst[k], v)
        else:
            dst[k] = v


def dump(cfg: dict) -> str:
    return yaml.safe_dump(cfg, sort_keys=False, default_flow_style=None)


def flatten(cfg: dict, prefix: str = "") -> dict:
    """``{'a': {'b': 1}}`` -> ``{'a.b': 1}`` (lists and scalars are leaves)."""
    out = {}
    for k, v in cfg.items():
        if isinstance(v, dict) and v:
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_diff(old: dict, new: dict, ignore=()) -> list[tuple[str, object, object]]:
    """``(dotted key, old value, new value)`` for every leaf that differs (a missing side is
    ``MISSING``), skipping keys in ``ignore`` and keys below them."""
    a, b = flatten(old), flatten(new)
    out = []
    for key in sorted(set(a) | set(b)):
        if any(key == i or key.startswith(i + ".") for i in ignore):
            continue
        va, vb = a.get(key, MISSING), b.get(key, MISSING)
        if va != vb:
            out.append((key, va, vb))
    return out


class _Missing:
    def __repr__(self):
        return "(absent)"


MISSING = _Missing()


def format_diff(diff) -> str:
    """``lr: 0.003 -> 0.001, encoder_conf.dropout: 0.2 -> 0.1`` (values as JSON: strings quoted)."""
    def show(v):
        return repr(v) if v is MISSING else json.dumps(v, default=str)
    return ", ".join(f"{k}: {show(a)} -> {show(b)}" for k, a, b in diff)
