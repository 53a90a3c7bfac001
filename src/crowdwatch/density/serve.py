"""The density head put into the running detector for `counting.method: auto | density`.

The openvino backend on the detector the head was trained on compiles the main head spliced
onto its own neck (neck.py), so each pass gives boxes and the density map, and the crowd head
apart, for the frames that read its map. Anything else (another
backend or model, a missing or damaged head): `density` fails at start with one line (run
and check), `auto` warns once and counts with boxes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from crowdwatch.errors import ModelError

if TYPE_CHECKING:
    import openvino as ov

    from crowdwatch.config import AppConfig
    from crowdwatch.detect.base import Detector

log = logging.getLogger("crowdwatch.density")


def use_head(use_density_head: Callable[..., None], head: ov.Model) -> None:
    """Hand a backend's use_density_head the head: its density output spliced into the pass,
    its crowd output (where it has one) run apart, only for frames the dense rule picks
    (density/tiles.py): its map is read nowhere else (docs/ACCURACY.md, "The crowd head only
    where it is read")."""
    from crowdwatch.density.neck import head_inputs, sized_for, splice_head, split_head

    main, crowd = split_head(head)
    if crowd is None:
        use_density_head(lambda model: splice_head(model, main.clone()))
        return
    features = head_inputs(crowd)
    use_density_head(lambda model: splice_head(model, main.clone(), expose=features),
                     lambda input_hw: sized_for(crowd, input_hw))


def _attach(detector: Detector, model_path: Path | None) -> None:
    from crowdwatch.density.model import HEAD_DETECTOR, load_head, resolve_head

    use = getattr(detector, "use_density_head", None)
    if use is None:
        raise ModelError(f"the {detector.name} detector backend gives no density map; set "
                         "detector.backend: openvino or counting.method: boxes")
    if model_path is not None and model_path.name != HEAD_DETECTOR:
        raise ModelError(f"the density model reads the features of {HEAD_DETECTOR}, not of "
                         f"{model_path.name}; use that detector model or counting.method: "
                         "boxes")
    use_head(use, load_head(resolve_head()))


def serve_density(detector: Detector, method: str, model_path: Path | None) -> bool:
    """Whether the detector now gives density maps. method boxes: never asked; density:
    ModelError when it cannot; auto: a warning (once, here) and boxes."""
    if method == "boxes":
        return False
    try:
        _attach(detector, model_path)
    except ModelError as error:
        if method == "density":
            raise
        log.warning("counting.method auto counts with boxes only: %s", error)
        return False
    return True


def counting_detector(config: AppConfig) -> Detector:
    """The configured detector, serving density maps where config.counting.method asks."""
    from crowdwatch.detect import create_detector
    from crowdwatch.detect.models import resolve_model

    detector = create_detector(config.detector)
    serve_density(detector, config.counting.method, resolve_model(config.detector.model))
    return detector
