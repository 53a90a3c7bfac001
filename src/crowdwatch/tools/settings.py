"""Settings of `crowdwatch eval`: the config with dotted-key overrides, named
(``conf35:detector.confidence=0.35``), and the raw-YOLO baseline."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from crowdwatch.config import AppConfig, parse_config
from crowdwatch.errors import CrowdwatchError

PRIMARY = "crowdwatch"
BASELINE = "baseline"
# What "raw YOLO" means: ultralytics' own predict() defaults on the same model (square
# 640 letterbox, confidence 0.25, NMS IoU 0.7), every frame, boxes counted as they come.
BASELINE_OVERRIDES: dict[str, object] = {
    "detector.backend": "ultralytics",
    "detector.input_shape": "square",
    "detector.confidence": 0.25,
    "detector.iou": 0.7,
    "detector.imgsz": 640,
    "detector.detect_every": 1,
    "counting.smoothing": "none",
    "counting.window": 1,
}
BASELINE_MISSING = ("baseline left out: raw YOLO runs through ultralytics, which this "
                    'install lacks (pip install "crowdwatch[ultralytics]" adds it)')


def installed(module: str) -> bool:
    """The module can be imported (an optional extra is installed)."""
    from importlib.util import find_spec

    try:
        return find_spec(module) is not None
    except ValueError:  # a module blocked with None in sys.modules
        return False


def baseline_available() -> bool:
    """The raw-YOLO baseline runs ultralytics' predict(): the [ultralytics] extra."""
    return installed("ultralytics")


BASELINE_HELP = ("baseline = raw YOLO: the same model through ultralytics' predict() at its "
                 "defaults (square 640 input, confidence 0.25, NMS IoU 0.7), every frame, "
                 "no smoothing")
# Keys that say one thing two ways: overriding one replaces the config's other, so a
# --compare of counting.window=5 works on a config that sets counting.window_s.
ALTERNATIVE_KEYS = {"counting.window": "counting.window_s", "counting.window_s": "counting.window"}
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")


@dataclass(frozen=True)
class Setting:
    """One row of the comparison: a name, its overrides and the config they give."""

    name: str
    config: AppConfig
    overrides: Mapping[str, object] = field(default_factory=dict)


def parse_overrides(text: str, origin: str) -> dict[str, object]:
    """'key=value[,key=value...]' → {dotted key: value read as YAML (0.35, 7, none, true)}."""
    overrides: dict[str, object] = {}
    for item in text.split(","):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise CrowdwatchError(f"{origin}: {item!r} is not key=value "
                                  "(e.g. detector.confidence=0.35)")
        try:
            overrides[key.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            overrides[key.strip()] = value.strip()
    return overrides


def parse_compare(text: str) -> tuple[str, dict[str, object]]:
    """'NAME:key=value[,key=value...]' → (name, {dotted key: YAML-parsed value})."""
    name, sep, body = text.partition(":")
    if not sep or not _NAME.match(name.strip()):
        raise CrowdwatchError(f"--compare {text!r}: expected NAME:key=value[,key=value...] "
                              "with NAME made of letters, digits, _ . -")
    return name.strip(), parse_overrides(body, f"--compare {text!r}")


def apply_overrides(config: AppConfig, overrides: Mapping[str, object], origin: str) -> AppConfig:
    """A copy of config with dotted keys (detector.iou, counting.window ...) replaced.

    Only what the config set and the overrides are written into the copy: a key left at its
    default stays unset (counting.smoothing on an image folder, counting.window_s beside a
    fixed counting.window).
    """
    full = config.model_dump(mode="python")
    data = config.model_dump(mode="python", exclude_unset=True)
    for key in overrides:
        other = ALTERNATIVE_KEYS.get(key)
        if other is not None and other not in overrides:
            section, _, name = other.partition(".")
            data.get(section, {}).pop(name, None)
    for key, value in overrides.items():
        node: Any = full
        target: Any = data
        parts = key.split(".")
        for depth, part in enumerate(parts):
            if not isinstance(node, dict) or part not in node:
                where = ".".join(parts[:depth]) or "the top level"
                valid = ", ".join(sorted(node)) if isinstance(node, dict) else "none"
                raise CrowdwatchError(f"{origin}: unknown key {key!r} ({part!r} is not a key "
                                      f"of {where}; valid: {valid})")
            if depth == len(parts) - 1:
                target[part] = value
            else:
                node = node[part]
                target = target.setdefault(part, {})
    return parse_config(data, origin)


def _known_overrides(config: AppConfig, overrides: Mapping[str, object]) -> dict[str, object]:
    """The section.key overrides this config has: the baseline pins only settings that exist."""
    data = config.model_dump()
    known = {}
    for key, value in overrides.items():
        section, _, name = key.partition(".")
        if name in data.get(section, {}):
            known[key] = value
    return known


def build_settings(config: AppConfig, compare: Sequence[str], baseline: bool,
                   primary: str = PRIMARY, changes: Sequence[str] = ()) -> list[Setting]:
    """The config with --set changes (named primary), each --compare entry on top of that
    config, then the raw-YOLO baseline."""
    if not _NAME.match(primary):
        raise CrowdwatchError(f"--name {primary!r}: use letters, digits, _ . - (1-40)")
    own: dict[str, object] = {}
    for text in changes:
        own.update(parse_overrides(text, f"--set {text!r}"))
    if own:
        config = apply_overrides(config, own, "--set")
    settings = [Setting(primary, config, own)]
    for text in compare:
        name, overrides = parse_compare(text)
        if "detector.model" in overrides and os.environ.get("CROWDWATCH_MODEL"):
            raise CrowdwatchError(
                f"--compare {name}: CROWDWATCH_MODEL is set and overrides every model; unset "
                "it and point CROWDWATCH_MODEL_DIR at the models folder to compare models")
        settings.append(Setting(name, apply_overrides(config, overrides, f"--compare {name}"),
                                overrides))
    if baseline:
        overrides = _known_overrides(config, BASELINE_OVERRIDES)
        settings.append(Setting(BASELINE, apply_overrides(config, overrides, BASELINE),
                                overrides))
    names = [s.name for s in settings]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise CrowdwatchError(f"setting names must be unique, repeated: {', '.join(duplicates)}")
    return settings
