"""Reading a YAML config file into AppConfig; every problem is one ConfigError line."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from pydantic import ValidationError

from crowdwatch.config.app import AppConfig
from crowdwatch.config.camera import CameraConfig
from crowdwatch.config.detector import DetectorConfig
from crowdwatch.config.zones import WHOLE_FRAME, ZoneConfig
from crowdwatch.errors import ConfigError

# Keys printed bare in an error's key path; any other key is printed quoted.
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


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
    return parse_config(data, str(path))


def quick_config(source: str | int, model: str | None = None) -> AppConfig:
    """A config for one source with the whole frame as a single zone named 'all'."""
    detector = DetectorConfig(model=model) if model else DetectorConfig()
    zone = ZoneConfig(name="all", polygon=WHOLE_FRAME, normalized=True)
    return AppConfig(cameras=[CameraConfig(id="cam0", source=source, zones=[zone])],
                     detector=detector)
