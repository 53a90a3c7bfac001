"""Where a detector model is found: a path, CROWDWATCH_MODEL, a name in the model folders, or
the model that ships inside the package."""

from __future__ import annotations

import os
from pathlib import Path

from crowdwatch.detect.integrity import KNOWN_MODELS, first_damaged, verify_model
from crowdwatch.errors import ModelError

MODELS_HELP = "see models/README.md for how to download or export it"

# Models shipped inside the package (crowdwatch/models/), found after every user folder so a
# user's copy always wins. Their sha256 sums (also in models/manifest.yaml) are checked at
# load: a damaged install must fail, not count with broken weights.
EMBEDDED_DIR = Path(__file__).resolve().parent.parent / "models"
SHIPPED_MODEL = "yolo11n_int8_openvino_model"
EMBEDDED_MODELS: dict[str, dict[str, str]] = {SHIPPED_MODEL: KNOWN_MODELS[SHIPPED_MODEL]}


def model_search_dirs() -> list[Path]:
    """Folders searched, in order, for a model given by name (the package's own folder last)."""
    dirs = []
    if env_dir := os.environ.get("CROWDWATCH_MODEL_DIR"):
        dirs.append(Path(env_dir))
    dirs.append(Path.cwd() / "models")
    dirs.append(Path.home() / ".cache" / "crowdwatch" / "models")
    dirs.append(EMBEDDED_DIR)
    return dirs


def verify_embedded(path: Path) -> None:
    """ModelError unless every file of an embedded model has its recorded sha256."""
    damaged = first_damaged(path, EMBEDDED_MODELS[path.name])
    if damaged is not None:
        raise ModelError(
            f"the model shipped with crowdwatch is damaged ({path / damaged} is missing or its "
            "sha256 differs); reinstall crowdwatch (pip install --force-reinstall crowdwatch) "
            "or set CROWDWATCH_MODEL to another copy")


def resolve_model(name: str) -> Path:
    """Find a model file or OpenVINO folder; CROWDWATCH_MODEL overrides the configured name."""
    name = os.environ.get("CROWDWATCH_MODEL") or name
    given = Path(name).expanduser()
    if given.exists():
        candidates = [given]
    elif given.is_absolute() or len(given.parts) > 1:
        raise ModelError(f"model {name!r} not found; check the path, or {MODELS_HELP}")
    else:
        candidates = [d / name for d in model_search_dirs()]
    for path in candidates:
        if path.exists():
            if path.is_dir() and not any(path.glob("*.xml")):
                raise ModelError(f"model folder {path} holds no OpenVINO .xml file; {MODELS_HELP}")
            if not (path.is_dir() or path.suffix in (".pt", ".onnx")):
                raise ModelError(f"model {path} is not a .pt, .onnx or OpenVINO folder")
            if path.parent == EMBEDDED_DIR and path.name in EMBEDDED_MODELS:
                verify_embedded(path)
            verify_model(path)  # any copy with a known name, or with a SHA256SUMS file
            return path
    searched = ", ".join(str(d) for d in model_search_dirs())
    raise ModelError(
        f"model {name!r} not found in {searched} (it is never downloaded at run time); "
        f"set CROWDWATCH_MODEL to its path, or {MODELS_HELP}"
    )
