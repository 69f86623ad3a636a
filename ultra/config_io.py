"""Typed configuration loaded from YAML, with errors that name the bad field."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

ConfigT = TypeVar("ConfigT", bound=BaseModel)


class ConfigError(ValueError):
    """A configuration file that cannot be read or does not validate."""


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "<root>"
        lines.append(f"  {field}: {item['msg']}")
    return "\n".join(lines)


def parse_config(data: dict, model: type[ConfigT], source: str = "<dict>") -> ConfigT:
    """Validate a mapping against ``model``; the error lists every bad field by its dotted path."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise ConfigError(f"{source}: invalid configuration\n{_describe(error)}") from None


def apply_overrides(data: dict, overrides: Sequence[str]) -> dict:
    """A copy of ``data`` with each ``dotted.path=VALUE`` set (VALUE read as YAML; a number in
    the path indexes a list, and a last key ``+N`` inserts VALUE before item N, e.g. a stage in
    front): an experiment is a one-line change of a committed recipe, not an edited copy of it.
    Missing mapping keys are created; a bad path is a ConfigError naming it."""
    data = copy.deepcopy(data)
    for override in overrides:
        path, sep, text = override.partition("=")
        keys = path.strip().split(".")
        if not sep or not all(keys):
            raise ConfigError(f"override {override!r}: expected dotted.path=VALUE")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            raise ConfigError(f"override {override!r}: the value is not valid YAML") from None
        node: Any = data
        for depth, key in enumerate(keys):
            last = depth == len(keys) - 1
            inserting = key.startswith("+") and key[1:].isdigit()
            if inserting and not (last and isinstance(node, list)):
                where = ".".join(keys[:depth]) or "the config"
                raise ConfigError(
                    f"override {override!r}: {key} inserts, so it must be the last key after a list ({where} is not)"
                )
            if inserting:
                if int(key[1:]) > len(node):
                    where = ".".join(keys[:depth])
                    raise ConfigError(f"override {override!r}: {where} has {len(node)} items, no place {key}")
                node.insert(int(key[1:]), value)
                break
            if isinstance(node, list):
                if not key.isdigit() or int(key) >= len(node):
                    where = ".".join(keys[:depth])
                    raise ConfigError(f"override {override!r}: {where} has no item {key} ({len(node)} items)")
                index: Any = int(key)
            elif isinstance(node, dict):
                index = key
                if not last:
                    node.setdefault(key, {})
            else:
                raise ConfigError(f"override {override!r}: {'.'.join(keys[:depth])} is not a mapping or list")
            if last:
                node[index] = value
            else:
                node = node[index]
    return data


def load_config(path: str | Path, model: type[ConfigT], overrides: Sequence[str] = ()) -> ConfigT:
    """Read a YAML file into a typed config model (``overrides``: see :func:`apply_overrides`)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: configuration file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({error})") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text (byte at position {error.start + 1})") from None
    except RecursionError:
        raise ConfigError(f"{path}: YAML nested too deeply to read") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return parse_config(apply_overrides(data, overrides), model, source=str(path))


def dump_config(config: BaseModel, path: str | Path) -> None:
    """Write a config back to YAML (round-trips through ``load_config``)."""
    Path(path).write_text(
        yaml.safe_dump(config.model_dump(mode="json"), allow_unicode=True, sort_keys=False), encoding="utf-8"
    )
