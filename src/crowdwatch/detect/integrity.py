"""Is this the model it claims to be? sha256 checks of every model with a known name or a
manifest, and the identity (path, checksum) of the model a run loaded.

A damaged copy of a known model loads without complaint and finds nobody: 0 people on every
frame, which looks like an empty scene. So a model folder or file that carries a known name
(models/manifest.yaml) must match its recorded sums, and a folder with its own SHA256SUMS
file (the output of `sha256sum *`) must match that; anything else is the user's own model,
loaded as it is, and its checksum is still logged and exported.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from crowdwatch.errors import ModelError

log = logging.getLogger("crowdwatch.detect")

MANIFEST_FILE = "SHA256SUMS"
# Every model of models/manifest.yaml with pinned sums: name -> file (relative to the model
# folder, or the file itself) -> sha256.
KNOWN_MODELS: dict[str, dict[str, str]] = {
    "yolo11n_int8_openvino_model": {
        "yolo11n.xml": "fedac70f9389c55a2a604e957f66ed8195cda1dd6eb4eb7d8b98919d8c43753d",
        "yolo11n.bin": "df1ce92b661e326a11e016ba380fde8cb7ddda528a920d0c4fcba98b69322a9b",
        "metadata.yaml": "229ff30357afb80d9ee8a7bef0fbe6ed2c9ec431e976b0c84ba4f931be85e682",
    },
    "yolov8n_int8_openvino_model": {
        "yolov8n.xml": "1682ff7d4aff419e758f7f0ad2121f60a4ee13fcf4d4445aee8d4e7198fd7c7a",
        "yolov8n.bin": "7117e3ec0eb6ed5677c875a16044d9f41e5c0666ed1ae8bf1245b49ad0f2eb1a",
        "metadata.yaml": "feabea974a025fae849fab76f397764cd1bdacc266fc6dd9173b9ad1d30910ea",
    },
    # The density head (crowdwatch/density/model.py), shipped beside the detector.
    "yolo11n_density_head": {
        "density_head.xml": "f0781993f1303536d318c23ac5fa9f341d63ec5e5babdc8200a7cc574608dc07",
        "density_head.bin": "ce6dcc8ce928a6315404eea01b04fdd9060d6055bcaad3a8c699ba5f516c54d0",
        "metadata.yaml": "cddad7597aff2f024ab4ec1ef6df31f77fecedbb61c29796c6d6cd7869403c32",
    },
    "yolo11n_int8_320.onnx": {
        "": "5ea9b19c6c4d89041175fd2d4f9d2e1581d16f37b817021d547278fc5e2f2b58",
    },
}


@dataclass(frozen=True, slots=True)
class ModelIdentity:
    """The model a run uses: its path and one sha256 over all its files."""

    path: Path
    sha256: str
    checked: str  # "known name", "SHA256SUMS" or "unchecked"

    @property
    def short(self) -> str:
        return self.sha256[:12]


_loaded: ModelIdentity | None = None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def first_damaged(folder: Path, sums: dict[str, str]) -> str | None:
    """The first file of `sums` that is missing from `folder` or has another sha256."""
    for file_name, expected in sums.items():
        file = folder / file_name
        if not file.is_file() or sha256_file(file) != expected:
            return file_name
    return None


def _expected(path: Path) -> tuple[dict[str, str], str] | None:
    if path.name in KNOWN_MODELS:
        return KNOWN_MODELS[path.name], "known name"
    sums = path / MANIFEST_FILE
    if path.is_dir() and sums.is_file():
        expected = {}
        for number, line in enumerate(sums.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            digest, _, name = line.strip().partition(" ")
            name = name.strip().lstrip("*")
            if len(digest) != 64 or not name or "/" in name or name.startswith("."):
                raise ModelError(f"{sums}: line {number} is not '<sha256>  <file name>'; "
                                 "write it with: sha256sum * > SHA256SUMS")
            expected[name] = digest.lower()
        return expected, MANIFEST_FILE
    return None


def verify_model(path: Path) -> ModelIdentity:
    """ModelError naming the file unless a model with a known name or a SHA256SUMS file
    matches its sums; the model's identity otherwise."""
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    actual = {("" if p == path else p.name): sha256_file(p) for p in files}
    expected = _expected(path)
    checked = "unchecked"
    if expected is not None:
        sums, checked = expected
        for name, digest in sums.items():
            file = path / name if name else path
            if actual.get(name) != digest:
                state = "is missing" if name not in actual else "has another sha256"
                raise ModelError(
                    f"model {path} is damaged or not the model its {checked} says: {file} "
                    f"{state}; copy it again (models/README.md), or, if it is another export, "
                    "give its folder another name")
    overall = hashlib.sha256("".join(f"{name}:{digest}\n" for name, digest
                                     in sorted(actual.items())).encode()).hexdigest()
    return ModelIdentity(path.resolve(), overall, checked)


def record_loaded(identity: ModelIdentity) -> None:
    """Remember the model this process loaded (crowdwatch_build_info shows it)."""
    global _loaded
    _loaded = identity
    log.info("model %s (sha256 %s, %s)", identity.path, identity.short, identity.checked)


def loaded_model() -> ModelIdentity | None:
    return _loaded
