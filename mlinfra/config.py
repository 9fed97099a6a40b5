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

import difflib
import hashlib
import json
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import annotated_types
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mlinfra.base.errors import BadConfig

PACKAGED_CONFIGS = Path(__file__).resolve().parent / "configs"


class ConfigError(BadConfig):
    """A config file or override is wrong: the message names the file, the dotted key and what was wanted."""


class _Section(BaseModel):
    # strict: a YAML `2.5` is not an epoch count and `'yes'` is not a boolean; no key outside the schema.
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, validate_default=True)


class DataConfig(_Section):
    source: Literal["auto", "mnist", "sklearn-digits"] = "auto"
    root: str = Field("data", min_length=1)  # where MNIST lives (or is downloaded to); the digits need no folder
    download: bool = False
    seed: int = Field(0, ge=0)
    val_fraction: float = Field(0.1, ge=0, lt=0.5)
    test_fraction: float = Field(0.2, ge=0, lt=0.5)
    limit_train: int | None = Field(None, ge=1)  # train on the first N (seeded shuffle) images: smoke runs


class ModelConfig(_Section):
    name: Literal["mlp", "cnn", "resnet18"] = "cnn"
    input_size: int = Field(28, ge=8, le=512)  # images are resized to this before the model sees them


class TrainingConfig(_Section):
    epochs: int = Field(8, ge=1, le=1000)
    batch_size: int = Field(64, ge=1, le=65536)
    optimizer: Literal["adam", "adamw", "sgd"] = "adamw"
    lr: float = Field(0.01, gt=0, le=10)
    momentum: float = Field(0.9, ge=0, lt=1)  # sgd only
    weight_decay: float = Field(1e-4, ge=0, le=1)
    schedule: Literal["constant", "onecycle", "cosine"] = "onecycle"
    seed: int = Field(0, ge=0)


class OutputConfig(_Section):
    runs_dir: str = Field("runs", min_length=1)  # relative paths are relative to the current directory


class TrainConfig(_Section):
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)


# Keys that say where things live, not what is computed: they do not change the run id.
NOT_IDENTITY = ("data.root", "data.download", "output.runs_dir")
SECTIONS: dict[str, type[_Section]] = {
    name: info.annotation for name, info in TrainConfig.model_fields.items()  # type: ignore[misc]
}


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
    try:
        return TrainConfig.model_validate(merged)
    except ValidationError as exc:
        raise _config_error(exc, source, overrides) from None


def config_to_dict(cfg: TrainConfig) -> dict[str, dict[str, Any]]:
    return cfg.model_dump()


def resolve(cfg: TrainConfig) -> TrainConfig:
    """The config with ``data.source: auto`` replaced by the data set it means here (nothing is loaded)."""
    from mlinfra.data import resolve_source

    source = resolve_source(cfg.data.source, cfg.data.root, cfg.data.download)
    return cfg.model_copy(update={"data": cfg.data.model_copy(update={"source": source})})


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


def _config_error(exc: ValidationError, source: str, overrides: Sequence[str]) -> ConfigError:
    """pydantic's first complaint as the course's one line: file (and --set), dotted key, what was expected."""
    error = exc.errors()[0]
    section, name = (str(part) for part in (*error["loc"], "")[:2])
    dotted = f"{section}.{name}" if name else section
    where = next((f"{source} (--set {o})" for o in overrides if o.split("=", 1)[0].strip() == dotted), source)
    if error["type"] == "extra_forbidden":
        return ConfigError(where, dotted, _unknown("key", name, list(SECTIONS[section].model_fields)))
    if not name:
        return ConfigError(where, section, f"expected a mapping of keys, got {error['input']!r}")
    return ConfigError(where, dotted, f"expected {_describe(SECTIONS[section], name)}, got {error['input']!r}")


def _describe(section: type[_Section], name: str) -> str:
    """What a key accepts, in words, from its declared type and bounds."""
    info = section.model_fields[name]
    kind = info.annotation
    optional = type(None) in typing.get_args(kind)
    if optional:
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    if typing.get_origin(kind) is Literal:
        return "one of " + ", ".join(typing.get_args(kind))
    if kind is bool:
        return "true or false"
    if kind is str:
        return "a non-empty string"
    words = {annotated_types.Gt: (">", "gt"), annotated_types.Ge: (">=", "ge"), annotated_types.Lt: ("<", "lt"),
             annotated_types.Le: ("<=", "le")}
    bounds = [f"{words[type(m)][0]} {getattr(m, words[type(m)][1]):g}" for m in info.metadata if type(m) in words]
    text = f"{'an integer' if kind is int else 'a number'} {' and '.join(bounds)}".strip()
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
