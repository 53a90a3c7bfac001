"""Where a detector model is found: a path, CROWDWATCH_MODEL, or a name in the model folders."""

from __future__ import annotations

import os
from pathlib import Path

from crowdwatch.errors import ModelError

MODELS_HELP = "see models/README.md for how to download or export it"


def model_search_dirs() -> list[Path]:
    """Folders searched, in order, for a model given by name."""
    dirs = []
    if env_dir := os.environ.get("CROWDWATCH_MODEL_DIR"):
        dirs.append(Path(env_dir))
    dirs.append(Path.cwd() / "models")
    dirs.append(Path.home() / ".cache" / "crowdwatch" / "models")
    return dirs


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
            return path
    searched = ", ".join(str(d) for d in model_search_dirs())
    raise ModelError(
        f"model {name!r} not found in {searched} (it is never downloaded at run time); "
        f"set CROWDWATCH_MODEL to its path, or {MODELS_HELP}"
    )
