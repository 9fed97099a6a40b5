"""Run configs: read a YAML file, check every key, apply `--set section.key=value` overrides, name the run.

A config has three sections; any key left out takes its value from DEFAULTS:

    data:     {source: sklearn-digits}
    model:    {name: mlp}
    training: {epochs: 3, batch_size: 64, lr: 0.001, seed: 0}

Every problem is a ConfigError that names where (the file, or the --set option), which key, and what was expected.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

# section -> key -> rule. A rule is ("int", low, high), ("float", low, high) or ("choice", [allowed values]);
# the bounds are inclusive.
SCHEMA: dict[str, dict[str, tuple]] = {
    "data": {"source": ("choice", ["sklearn-digits", "mnist"])},
    "model": {"name": ("choice", ["mlp", "cnn"])},
    "training": {
        "epochs": ("int", 1, 50),
        "batch_size": ("int", 1, 1024),
        "lr": ("float", 1e-5, 1.0),
        "seed": ("int", 0, 2**31 - 1),
    },
}
DEFAULTS: dict[str, dict[str, Any]] = {
    "data": {"source": "sklearn-digits"},
    "model": {"name": "mlp"},
    "training": {"epochs": 3, "batch_size": 64, "lr": 0.001, "seed": 0},
}


class ConfigError(ValueError):
    """One line a person can act on: `<where>: <key>: <what was expected>`."""

    def __init__(self, source: str | Path, key: str, problem: str):
        self.source, self.key, self.problem = str(source), key, problem
        super().__init__(f"{source}: {key}: {problem}")


class _Loader(yaml.SafeLoader):
    """PyYAML follows YAML 1.1, where `1e-3` (no dot) is a string; configs mean a number."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
    list("-+0123456789."),
)


def parse_value(text: str) -> Any:
    """A value as YAML reads it: "0.01" -> 0.01, "1e-3" -> 0.001, "cnn" -> "cnn", "true" -> True."""
    return yaml.load(text, Loader=_Loader)


def load_yaml(path: str | Path) -> Any:
    """The file's contents, or a ConfigError naming the file (and the line, for a syntax error)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(path, "-", "no such file")
    try:
        return yaml.load(path.read_text(), Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "-"
        raise ConfigError(path, where, f"not valid YAML ({getattr(exc, 'problem', None) or exc})") from None


def check_value(source: str | Path, key: str, value: Any) -> Any:
    """`value` for the dotted `key` (e.g. "training.lr") if SCHEMA allows it, else a ConfigError.

    - "int" needs a whole number (bool is not one, although Python says True == 1);
    - "float" takes an int or a float and returns a float;
    - both must lie within the rule's bounds; "choice" must be one of the listed values.
    The problem says what was expected and what was found, e.g. "expected a whole number between 1 and 50, got 0".
    """
    section, _, name = key.partition(".")
    rule = SCHEMA[section][name]
    # YOUR CODE HERE
    raise NotImplementedError()


def validate(raw: Any, source: str | Path) -> dict[str, dict[str, Any]]:
    """A complete, checked config from what a YAML file held: DEFAULTS for every key left out, each value
    passed through check_value. Raises ConfigError for a file that is not a mapping, an unknown section, a
    section that is not a mapping, or an unknown key (naming the allowed ones). Never changes `raw`."""
    # YOUR CODE HERE
    raise NotImplementedError()


def apply_overrides(config: dict[str, dict[str, Any]], overrides: Iterable[str]) -> dict[str, dict[str, Any]]:
    """A copy of `config` with each "section.key=value" applied (the value read by parse_value, then checked
    with check_value). A malformed item, an unknown key or a bad value raises ConfigError with the source
    "--set <item>". Never changes `config`."""
    # YOUR CODE HERE
    raise NotImplementedError()


def resolve(path: str | Path, overrides: Iterable[str] = ()) -> dict[str, dict[str, Any]]:
    """The config a run really uses: the file, checked and completed, then the overrides."""
    return apply_overrides(validate(load_yaml(path), source=path), overrides)


def run_id(resolved: dict[str, dict[str, Any]]) -> str:
    """A name for the run derived from the resolved config alone: the same config always gets the same id,
    any change gets a new one, whatever the order of the keys. Shape: "<model name>-<10 hex digits>"."""
    # YOUR CODE HERE
    raise NotImplementedError()
