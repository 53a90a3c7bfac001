"""Reading a YAML config file into AppConfig; every problem is one ConfigError line."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from crowdwatch.config.app import AppConfig, MetricsConfig
from crowdwatch.config.camera import CameraConfig
from crowdwatch.config.detector import DetectorConfig
from crowdwatch.config.integrations import check_secrets_from_environment
from crowdwatch.config.zones import WHOLE_FRAME, ZoneConfig
from crowdwatch.errors import ConfigError

# Keys printed bare in an error's key path; any other key is printed quoted.
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")
# ${VAR} in a string value: replaced by the environment variable (secrets stay out of files).
_ENV_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# "rtsp://...", "rtsp:/broken", "C:" ...: not a relative file path.
_HAS_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


# The values meant to come from the environment: camera sources (URLs with credentials) and
# the MQTT credentials, which are never published. Nowhere else: a ${VAR} in a zone name would
# publish the variable (a token, a password) in metrics labels, events and the page.
ENV_KEYS = ("cameras[].source", "mqtt.username", "mqtt.password")


def expand_env(data: Any, origin: str) -> Any:
    """Replace ${VAR} by its environment value in the keys of ENV_KEYS only; ConfigError naming
    the key and the variable if it is not set. Every other value is left as written."""
    if not isinstance(data, dict) or not isinstance(data.get("cameras"), list):
        return data
    cameras = []
    for index, camera in enumerate(data["cameras"]):
        if isinstance(camera, dict) and isinstance(camera.get("source"), str):
            where = f"cameras[{index}].source"
            camera = {**camera, "source": _expand(camera["source"], origin, where)}
        cameras.append(camera)
    expanded = {**data, "cameras": cameras}
    mqtt = data.get("mqtt")
    if isinstance(mqtt, dict):
        expanded["mqtt"] = {key: _expand(value, origin, f"mqtt.{key}")
                            if key in ("username", "password") and isinstance(value, str)
                            else value for key, value in mqtt.items()}
    return expanded


def _expand(text: str, origin: str, path: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        found = os.environ.get(name)
        if found is None:
            raise ConfigError(f"{origin}: {path}: environment variable {name} "
                              f"is not set; export {name}=..., or write the value in the config")
        return found

    return _ENV_VAR.sub(value, text)


def resolve_paths(config: AppConfig, folder: Path) -> AppConfig:
    """Relative file paths in a config (camera sources, a model path) are relative to the
    config file's folder, so a config works from any working directory."""

    def resolved(value: str) -> str:
        path = Path(value).expanduser()
        return value if path.is_absolute() else str(folder / path)

    cameras = []
    for camera in config.cameras:
        source = camera.source
        if (isinstance(source, str) and not _HAS_SCHEME.match(source)
                and not source.strip().isdigit()):
            source = resolved(source)
        cameras.append(camera.model_copy(update={"source": source}))
    detector = config.detector
    model = detector.model
    # A bare name is looked up in the model folders (detect/models.py); a path is a path.
    if len(Path(model).parts) > 1:
        detector = detector.model_copy(update={"model": resolved(model)})
    update: dict[str, Any] = {"cameras": cameras, "detector": detector}
    if config.state.path is not None:
        update["state"] = config.state.model_copy(update={"path": resolved(config.state.path)})
    return config.model_copy(update=update)


def format_validation_error(error: ValidationError, limit: int = 3) -> str:
    """One line naming the key path and the problem of each error (the first few)."""
    parts = []
    for item in error.errors()[:limit]:
        path = ""
        for key in item["loc"]:
            if isinstance(key, int):
                path += f"[{key}]"
            elif not _PLAIN_KEY.fullmatch(key):
                # Quoted: an odd key (a newline, a dot, nothing at all) stays on one line
                # and cannot be mistaken for a path.
                path += f"[{key!r}]"
            else:
                path += f".{key}" if path else key
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key (check its spelling)"
        elif item["type"] == "missing":
            message = "is required"
        parts.append(f"{path or '(top level)'}: {message}")
    more = len(error.errors()) - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def parse_config(data: object, origin: str = "config") -> AppConfig:
    """Validate already-parsed YAML data."""
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: must be a mapping with a 'cameras' list at the top level")
    try:
        return AppConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(f"{origin}: {format_validation_error(error)}") from None


def load_config(path: str | Path) -> AppConfig:
    """Read and validate a YAML config file; every problem is a ConfigError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found; check the path") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read config file ({error})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}: YAML syntax error{where}: {problem}") from None
    problem = check_secrets_from_environment(data)
    if problem is not None:
        raise ConfigError(f"{path}: {problem}")
    config = parse_config(expand_env(data, str(path)), str(path))
    return resolve_paths(config, path.parent)


def quick_config(source: str | int, model: str | None = None) -> AppConfig:
    """A config for one source with the whole frame as a single zone named 'all'."""
    detector = DetectorConfig(model=model) if model else DetectorConfig()
    zone = ZoneConfig(name="all", polygon=WHOLE_FRAME, normalized=True)
    # This machine only, as the README says: a config file opens it to others.
    return AppConfig(cameras=[CameraConfig(id="cam0", source=source, zones=[zone])],
                     detector=detector, metrics=MetricsConfig(host="127.0.0.1"))
