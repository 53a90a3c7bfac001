"""People counts of one camera: the whole frame and each zone, through one temporal filter.

PeopleCounter.count gives the counts every output reads, whatever produced them: boxes (one
per person whose anchor lies in a zone) or, with `counting.method: density` or `auto` and a
frame's density map, the map integrated over each zone and the whole frame (ignore regions
excluded), rounded to whole people before the count filter. Under auto a MethodChooser picks
the method per camera. Boxes always give the zone membership lines and dwell use.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely

from crowdwatch.analytics.scene import SceneGeometry
from crowdwatch.analytics.smoothing import counting_smoother
from crowdwatch.analytics.zones import ZoneMapper
from crowdwatch.config import CameraConfig, CountingConfig, LevelThresholds
from crowdwatch.density.choice import Method, MethodChooser
from crowdwatch.density.zones import ZoneIntegrator
from crowdwatch.detect.densitymap import DensityMap
from crowdwatch.types import Detections, ZoneStats


@dataclass(frozen=True, slots=True)
class FrameCounts:
    """The counts of one frame: the whole frame's own, and each zone's."""

    people: int
    people_raw: int
    zones: dict[str, ZoneStats]
    # (zones, people): True where a person stands in a zone (for dwell).
    membership: npt.NDArray[np.bool_]
    # What the counts came from.
    method: Method = "boxes"


class PeopleCounter:
    """Counts people in the whole frame and per zone, and stabilises the counts over time.

    timed: the source's frames show one scene at real times (see counting_smoother).
    """

    def __init__(self, camera: CameraConfig, counting: CountingConfig,
                 levels: LevelThresholds, timed: bool) -> None:
        self._thresholds = [z.levels or levels for z in camera.zones]
        # One filter for the zones' counts and the whole frame's: the strategies work element
        # by element, and the frame rate is measured once per frame, not once per count.
        self._smoother = counting_smoother(counting, timed)
        self._geometry: SceneGeometry | None = None
        self._mapper: ZoneMapper | None = None
        self._integrator: ZoneIntegrator | None = None
        self.method_config = counting.method
        self._chooser = MethodChooser()
        # What the last frame counted from (the tiler reads it: build.build_chain).
        self.last_method: Method = "boxes"

    def _mapper_for(self, geometry: SceneGeometry) -> ZoneMapper:
        if self._mapper is None or geometry is not self._geometry:
            self._mapper = ZoneMapper(geometry.zones, self._thresholds)
            # The whole frame is the last "zone": ignore regions come out of it too.
            ignore = [] if geometry.ignore is None else [geometry.ignore]
            frame = shapely.box(0, 0, geometry.width, geometry.height)
            self._integrator = ZoneIntegrator([*(z.polygon for z in geometry.zones), frame],
                                              ignore)
            self._geometry = geometry
        return self._mapper

    def method(self, detections: Detections, density: DensityMap | None) -> Method:
        """The method for this frame: the configured one, auto's choice, or boxes without a
        density map."""
        if density is None or self.method_config == "boxes":
            return "boxes"
        if self.method_config == "density":
            return "density"
        heights = detections.xyxy[:, 3] - detections.xyxy[:, 1]
        return self._chooser.update(heights, density.total(), density.letterbox.frame_hw[0])

    def count(self, detections: Detections, geometry: SceneGeometry, timestamp: float,
              density: DensityMap | None = None) -> FrameCounts:
        """This frame's counts (timestamp: seconds, the frames' own times; density: the
        frame's density map, when the detector gives one)."""
        mapper = self._mapper_for(geometry)
        membership = mapper.membership(detections)
        method = self.last_method = self.method(detections, density)
        if method == "density":
            assert density is not None and self._integrator is not None
            # Whole people: a density sum rounded to the nearest integer (halves to even).
            raw = np.rint(np.maximum(self._integrator.counts(density), 0)).astype(np.int64)
        else:
            raw = np.append(membership.sum(axis=1), len(detections))
        smoothed = self._smoother.update(raw, timestamp)
        zones = mapper.update(smoothed[:-1], raw[:-1])
        return FrameCounts(int(smoothed[-1]), int(raw[-1]), zones, membership, method)
