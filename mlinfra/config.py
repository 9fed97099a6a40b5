"""Training runs described by YAML: load, override, validate, and name them by what they compute.

A config has four sections; every key has a default, so a file lists only what it changes:

    data:     {source: auto, root: data, download: false, seed: 0, val_fraction: 0.1, test_fraction: 0.2,
               limit_train: null}
    model:    {name: cnn, input_size: 28}
    training: {epochs: 8, batch_size: 64, optimizer: adamw, lr: 0.01, momentum: 0.9, weight_decay: 0.0001,
               schedule: onecycle, seed: 0}
    output:   {runs_dir: runs}

``load_config("configs/x.yaml", ["training.lr=0.01"])`` applies overrides (values read as YAML scalars) and
checks every key; a mistake raises ``ConfigError`` naming the file, the dotted key and what was expected.
``run_id(cfg)`` hashes what determines the result (not where files live), so the same experiment always lands
in the same ``runs/<run-id>/`` folder.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlinfra.base.errors import BadConfig

PACKAGED_CONFIGS = Path(__file__).resolve().parent / "configs"


class ConfigError(BadConfig):
    """A config file or override is wrong: the message names the file, the dotted key and what was wanted."""


def _rule(
    default: Any,
    *,
    check: str = "",
    choices: Sequence[str] = (),
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    hi_open: bool = False,
) -> Any:
    meta = {"choices": tuple(choices), "lo": lo, "hi": hi, "lo_open": lo_open, "hi_open": hi_open}
    return field(default=default, metadata=meta)


@dataclass
class DataConfig:
    source: str = _rule("auto", choices=("auto", "mnist", "sklearn-digits"))
    root: str = "data"  # where MNIST lives (or is downloaded to); the offline digits need no folder
    download: bool = False
    seed: int = _rule(0, lo=0)
    val_fraction: float = _rule(0.1, lo=0, hi=0.5, hi_open=True)
    test_fraction: float = _rule(0.2, lo=0, hi=0.5, hi_open=True)
    limit_train: int | None = _rule(None, lo=1)  # train on the first N (seeded shuffle) images: smoke runs


@dataclass
class ModelConfig:
    name: str = _rule("cnn", choices=("mlp", "cnn", "resnet18"))
    input_size: int = _rule(28, lo=8, hi=512)  # images are resized to this before the model sees them


@dataclass
class TrainingConfig:
    epochs: int = _rule(8, lo=1, hi=1000)
    batch_size: int = _rule(64, lo=1, hi=65536)
    optimizer: str = _rule("adamw", choices=("adam", "adamw", "sgd"))
    lr: float = _rule(0.01, lo=0, hi=10, lo_open=True)
    momentum: float = _rule(0.9, lo=0, hi=1, hi_open=True)  # sgd only
    weight_decay: float = _rule(1e-4, lo=0, hi=1)
    schedule: str = _rule("onecycle", choices=("constant", "onecycle", "cosine"))
    seed: int = _rule(0, lo=0)


@dataclass
class OutputConfig:
    runs_dir: str = "runs"  # relative paths are relative to the current directory


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    output: OutputConfig = field(default_factory=OutputConfig)


# Keys that say where things live, not what is computed: they do not change the run id.
NOT_IDENTITY = ("data.root", "data.download", "output.runs_dir")
SECTIONS: dict[str, type] = {f.name: f.default_factory for f in dataclasses.fields(TrainConfig)}  # type: ignore[misc]


def packaged_configs() -> list[str]:
    """Names of the configs shipped with the library (``mlinfra/configs/<name>.yaml``)."""
    return sorted(p.stem for p in PACKAGED_CONFIGS.glob("*.yaml"))


def config_path(name_or_path: Path | str) -> Path:
    """A path as given when it exists, else a packaged config by name (``baseline`` or ``baseline.yaml``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    packaged = PACKAGED_CONFIGS / (path.name if path.suffix == ".yaml" else f"{path.name}.yaml")
    if path.parent == Path(".") and packaged.is_file():
        return packaged
    raise ConfigError(
        path, "", f"no such file; give a path, or a packaged config: {', '.join(packaged_configs())}"
    )


def load_config(path: Path | str, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read a YAML config (a path or a packaged name), apply ``section.key=value`` overrides, check it all."""
    import yaml

    path = config_path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(
            path, where, f"not valid YAML ({problem}); check the indentation and the colons"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, "", f"cannot be read ({exc})") from None
    return config_from_dict(data if data is not None else {}, source=str(path), overrides=overrides)


def config_from_dict(data: Any, source: str = "<config>", overrides: Sequence[str] = ()) -> TrainConfig:
    """Validate a nested mapping (as read from YAML) into a TrainConfig; ``source`` names it in errors."""
    if not isinstance(data, Mapping):
        raise ConfigError(
            source, "", f"expected a mapping with sections {', '.join(SECTIONS)}, got {type(data).__name__}"
        )
    merged: dict[str, dict[str, Any]] = {}
    for section, body in data.items():
        if section not in SECTIONS:
            raise ConfigError(source, str(section), _unknown("section", str(section), list(SECTIONS)))
        if body is None:
            body = {}
        if not isinstance(body, Mapping):
            raise ConfigError(source, str(section), f"expected a mapping of keys, got {body!r}")
        merged[section] = dict(body)
    for item in overrides:
        key, sep, raw = item.partition("=")
        where = f"{source} (--set {item})"
        if not sep or key.count(".") != 1:
            raise ConfigError(where, key or item, "an override is section.key=value, e.g. training.lr=0.01")
        section, name = key.strip().split(".")
        if section not in SECTIONS:
            raise ConfigError(where, key, _unknown("section", section, list(SECTIONS)))
        merged.setdefault(section, {})[name] = _yaml_scalar(raw, where, key)
    parts = {}
    for section, cls in SECTIONS.items():
        parts[section] = _build_section(cls, section, merged.get(section, {}), source, overrides)
    return TrainConfig(**parts)


def config_to_dict(cfg: TrainConfig) -> dict[str, dict[str, Any]]:
    return dataclasses.asdict(cfg)


def resolve(cfg: TrainConfig) -> TrainConfig:
    """The config with ``data.source: auto`` replaced by the data set it means here (nothing is loaded)."""
    from mlinfra.data import resolve_source

    source = resolve_source(cfg.data.source, cfg.data.root, cfg.data.download)
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, source=source))


def identity(cfg: TrainConfig) -> dict[str, Any]:
    """What determines a run's result: the resolved config minus the keys in NOT_IDENTITY."""
    flat = flatten(config_to_dict(resolve(cfg)))
    return {k: v for k, v in flat.items() if k not in NOT_IDENTITY}


def run_id(cfg: TrainConfig) -> str:
    """``<model>-<10 hex>``: a stable hash of the resolved config, the same on every machine and every run."""
    blob = json.dumps(identity(cfg), sort_keys=True, separators=(",", ":"))
    return f"{cfg.model.name}-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"


def dump_config(cfg: TrainConfig) -> str:
    import yaml

    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False)


def flatten(nested: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in nested.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def _build_section(
    cls: type, section: str, values: dict[str, Any], source: str, overrides: Sequence[str]
) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in values.items():
        dotted = f"{section}.{name}"
        where = next(
            (f"{source} (--set {o})" for o in overrides if o.split("=", 1)[0].strip() == dotted), source
        )
        if name not in fields:
            raise ConfigError(where, dotted, _unknown("key", str(name), list(fields)))
        kwargs[name] = _check(value, hints[name], fields[name].metadata, where, dotted)
    return cls(**kwargs)


def _check(value: Any, hint: Any, meta: Mapping[str, Any], where: str, dotted: str) -> Any:
    optional = type(None) in typing.get_args(hint)
    base = next((a for a in typing.get_args(hint) if a is not type(None)), hint) if optional else hint
    if value is None and optional:
        return None
    want = _describe(base, meta, optional)
    fail = ConfigError(where, dotted, f"expected {want}, got {value!r}")
    if base is bool:
        if not isinstance(value, bool):
            raise fail
        return value
    if base is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail
    elif base is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            raise fail
        value = float(value)
    elif base is str:
        if not isinstance(value, str) or not value:
            raise fail
        if meta.get("choices") and value not in meta["choices"]:
            raise fail
        return value
    lo, hi = meta.get("lo"), meta.get("hi")
    if lo is not None and (value < lo or (meta.get("lo_open") and value == lo)):
        raise fail
    if hi is not None and (value > hi or (meta.get("hi_open") and value == hi)):
        raise fail
    return value


def _describe(base: Any, meta: Mapping[str, Any], optional: bool) -> str:
    if base is bool:
        return "true or false"
    if base is str:
        choices = meta.get("choices")
        return "one of " + ", ".join(choices) if choices else "a non-empty string"
    kind = "an integer" if base is int else "a number"
    lo, hi = meta.get("lo"), meta.get("hi")
    bounds = []
    if lo is not None:
        bounds.append(f"{'>' if meta.get('lo_open') else '>='} {lo:g}")
    if hi is not None:
        bounds.append(f"{'<' if meta.get('hi_open') else '<='} {hi:g}")
    text = f"{kind} {' and '.join(bounds)}".strip()
    return text + " or null" if optional else text


def _unknown(what: str, name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown {what}{hint}; expected one of {', '.join(known)}"


def _yaml_scalar(raw: str, where: str, key: str) -> Any:
    import yaml

    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        raise ConfigError(where, key, f"the value {raw!r} is not a YAML scalar") from None
    if isinstance(value, (dict, list)):
        raise ConfigError(where, key, f"expected a single value, got {raw!r}")
    return value
