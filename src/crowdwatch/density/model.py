"""Where the density head is found, and its load with the shipped sums checked.

The head ships inside the package beside the detector it was trained on
(crowdwatch/models/yolo11n_density_head/; sha256 in models/manifest.yaml and detect/integrity.py).
A name is searched like a detector model (detect.models.model_search_dirs), the package last.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from crowdwatch.detect.integrity import KNOWN_MODELS, first_damaged
from crowdwatch.detect.models import model_search_dirs
from crowdwatch.errors import ModelError

if TYPE_CHECKING:
    import openvino as ov

DEFAULT_HEAD = "yolo11n_density_head"
# The detector whose neck features the head reads: another detector's features mean nothing
# to it, even one of the same architecture trained again.
HEAD_DETECTOR = "yolo11n_int8_openvino_model"
HEAD_XML = "density_head.xml"
# Their sums live with every known model's (detect/integrity.py, models/manifest.yaml).
EMBEDDED_HEADS = {DEFAULT_HEAD: KNOWN_MODELS[DEFAULT_HEAD]}


def resolve_head(name: str = DEFAULT_HEAD) -> Path:
    """The head's .xml: a path to it or its folder, or a name in the model folders."""
    given = Path(name).expanduser()
    if given.exists():
        candidates = [given]
    elif given.is_absolute() or len(given.parts) > 1:
        raise ModelError(f"density model {name!r} not found; check the path, or reinstall "
                         "crowdwatch for the shipped one")
    else:
        candidates = [d / name for d in model_search_dirs()]
    for path in candidates:
        if not path.exists():
            continue
        xml = path / HEAD_XML if path.is_dir() else path
        if path.name in EMBEDDED_HEADS:
            verify_embedded_head(path)
        if not xml.is_file() or xml.suffix != ".xml":
            raise ModelError(f"density model {path} holds no {HEAD_XML}")
        return xml
    raise ModelError(f"density model {name!r} not found in "
                     f"{', '.join(str(d) for d in model_search_dirs())}; reinstall crowdwatch "
                     "for the shipped one or give its path")


def verify_embedded_head(folder: Path) -> None:
    """ModelError unless every file of the shipped head has its recorded sha256."""
    damaged = first_damaged(folder, EMBEDDED_HEADS[folder.name])
    if damaged is not None:
        raise ModelError(
            f"density model {folder} is damaged ({damaged} is missing or its sha256 differs "
            "from the shipped head's); remove that copy, or reinstall crowdwatch "
            "(pip install --force-reinstall crowdwatch) if it is the shipped one")


def load_head(xml: Path, core: ov.Core | None = None) -> ov.Model:
    """The head as an OpenVINO model with inputs p3 and p4 (and p2, where a head reads it)
    and its density output, then optionally the crowd head's (named crowd)."""
    import openvino as ov

    try:
        model = (core or ov.Core()).read_model(xml)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else "unreadable"
        raise ModelError(f"cannot load density model {xml}: {first}") from None
    names = sorted(p.get_friendly_name() for p in model.get_parameters())
    outputs = [output.get_names() for output in model.outputs]
    one_or_crowd = len(outputs) == 1 or (len(outputs) == 2 and "crowd" in outputs[1])
    if names not in (["p3", "p4"], ["p2", "p3", "p4"]) or not one_or_crowd:
        raise ModelError(f"{xml} is not a crowdwatch density head (inputs p3 and p4, "
                         "optionally p2, a density output and optionally a crowd output)")
    return model
