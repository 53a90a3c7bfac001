"""People counts of one camera: the whole frame and each zone, through one temporal filter.

This is where a counting method per zone or camera (detections, a density estimate) plugs in:
PeopleCounter.count gives the counts every output reads, whatever produced them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from crowdwatch.analytics.scene import SceneGeometry
from crowdwatch.analytics.smoothing import counting_smoother
from crowdwatch.analytics.zones import ZoneMapper
from crowdwatch.config import CameraConfig, CountingConfig, LevelThresholds
from crowdwatch.types import Detections, ZoneStats


@dataclass(frozen=True, slots=True)
class FrameCounts:
    """The counts of one frame: the whole frame's own, and each zone's."""

    people: int
    people_raw: int
    zones: dict[str, ZoneStats]
    # (zones, people): True where a person stands in a zone (for dwell).
    membership: npt.NDArray[np.bool_]


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

    def _mapper_for(self, geometry: SceneGeometry) -> ZoneMapper:
        if self._mapper is None or geometry is not self._geometry:
            self._mapper = ZoneMapper(geometry.zones, self._thresholds)
            self._geometry = geometry
        return self._mapper

    def count(self, detections: Detections, geometry: SceneGeometry,
              timestamp: float) -> FrameCounts:
        """This frame's counts (timestamp: seconds, the frames' own times)."""
        mapper = self._mapper_for(geometry)
        membership = mapper.membership(detections)
        raw = membership.sum(axis=1)
        smoothed = self._smoother.update(np.append(raw, len(detections)), timestamp)
        zones = mapper.update(smoothed[:-1], raw)
        return FrameCounts(int(smoothed[-1]), len(detections), zones, membership)
