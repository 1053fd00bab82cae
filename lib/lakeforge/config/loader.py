"""Load YAML config: base + environment overlay, `${VAR}` references, validation.

Errors name the file and the key path (`conf/datasets/flights.yaml:
source.csv.delimter: unknown key`) and are raised before any Spark work.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from lakeforge import secrets
from lakeforge.config.models import DatasetConfig, Settings
from lakeforge.errors import ConfigError
from lakeforge.storage.paths import is_uri, lakehouse_root

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class JobConfig:
    """Everything a job needs: where it runs (settings) and on what (dataset)."""

    settings: Settings
    dataset: DatasetConfig
    env: str
    files: tuple[Path, ...]


def read_yaml(path: Path) -> dict[str, Any]:
    """Parse one YAML file into a mapping; an empty file is an empty mapping."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: config file not found") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}".replace("\n", " ")) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def deep_merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """Overlay wins key by key; nested mappings merge, lists and scalars replace."""
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def resolve_env_refs(data: Any, source: str, path: str = "") -> Any:
    """Replace `${VAR}` / `${VAR:-default}` in every string with the environment's value.

    Secrets stay out of files this way. A missing variable with no default is a
    ConfigError naming the key path and the variable.
    """
    if isinstance(data, dict):
        return {
            k: resolve_env_refs(v, source, f"{path}.{k}" if path else str(k))
            for k, v in data.items()
        }
    if isinstance(data, list):
        return [resolve_env_refs(v, source, f"{path}[{i}]") for i, v in enumerate(data)]
    if isinstance(data, str):

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            value = os.environ.get(name)
            if value is not None and (default is None or secrets.looks_secret(name)):
                # kept out of the file (no default written beside it), or named
                # like a credential: never echoed to logs, errors or MLflow
                secrets.register(value)
            if value is None:
                if default is None:
                    raise ConfigError(
                        f"{source}: {path or '<root>'}: environment variable {name} is not set"
                    )
                return default
            return value

        return _ENV_REF.sub(substitute, data)
    return data


def validate(model: type[M], data: Mapping[str, Any], source: str) -> M:
    """Build `model` from `data`; a ValidationError becomes a ConfigError naming key paths."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "<root>"
            message = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            problems.append(f"{where}: {message}")
        raise ConfigError(f"{source}: " + "; ".join(problems)) from None


def conf_root_for(dataset_path: Path) -> Path:
    """The conf folder: LAKEFORGE_CONF_DIR, else the folder above `datasets/`."""
    env = os.environ.get("LAKEFORGE_CONF_DIR")
    if env:
        return Path(env)
    parent = dataset_path.resolve().parent
    return parent.parent if parent.name == "datasets" else parent


def load_settings(conf_root: Path, env: str) -> tuple[Settings, tuple[Path, ...]]:
    """Settings from conf_root/base.yaml (optional) + conf_root/env/ENV.yaml.

    `LAKEFORGE_LAKEHOUSE` and `MLFLOW_TRACKING_URI`, when set, win over both.
    """
    files: list[Path] = []
    data: dict[str, Any] = {}
    base = conf_root / "base.yaml"
    if base.is_file():
        data = resolve_env_refs(read_yaml(base), str(base))
        files.append(base)
    overlay = conf_root / "env" / f"{env}.yaml"
    if overlay.is_file():
        data = deep_merge(data, resolve_env_refs(read_yaml(overlay), str(overlay)))
        files.append(overlay)
    elif env != "local":
        known = sorted(p.stem for p in (conf_root / "env").glob("*.yaml"))
        raise ConfigError(
            f"{overlay}: no such environment {env!r}"
            + (f" (known: {', '.join(known)})" if known else "")
        )
    if os.environ.get("LAKEFORGE_LAKEHOUSE"):
        data["lakehouse"] = os.environ["LAKEFORGE_LAKEHOUSE"]
    if os.environ.get("MLFLOW_TRACKING_URI"):
        data = deep_merge(data, {"mlflow": {"tracking_uri": os.environ["MLFLOW_TRACKING_URI"]}})
    source = " + ".join(str(f) for f in files) or "embedded defaults"
    return validate(Settings, data, source), tuple(files)


def load_dataset(path: Path) -> DatasetConfig:
    """Parse and validate one dataset file."""
    data = resolve_env_refs(read_yaml(path), str(path))
    return validate(DatasetConfig, data, str(path))


def load_job_config(dataset_path: str | Path, env: str = "local") -> JobConfig:
    """Everything a job needs, validated: raises ConfigError before Spark starts."""
    path = Path(dataset_path)
    dataset = load_dataset(path)
    settings, files = load_settings(conf_root_for(path), env)
    dataset = _place_source(dataset, settings, path)
    return JobConfig(settings=settings, dataset=dataset, env=env, files=(*files, path))


def _place_source(dataset: DatasetConfig, settings: Settings, where: Path) -> DatasetConfig:
    """Resolve source.path against the lakehouse root and refuse one outside it
    unless `allow_external_paths` (ConfigError naming the file and key)."""
    given = dataset.source.path
    if given is None or given.startswith("pkg://"):
        return dataset
    root = lakehouse_root(settings)
    if is_uri(given) or given.startswith("/"):
        resolved = given
    else:
        resolved = posixpath.normpath(posixpath.join(root, given))
    inside = resolved == root or resolved.startswith(root.rstrip("/") + "/")
    if not inside and not settings.allow_external_paths:
        raise ConfigError(
            f"{where}: source.path: {given} is outside the lakehouse {root}; "
            "give a path inside it, or set allow_external_paths: true in conf/base.yaml "
            "(or the environment's overlay) to read from anywhere"
        )
    source = dataset.source.model_copy(update={"path": resolved})
    return dataset.model_copy(update={"source": source})
