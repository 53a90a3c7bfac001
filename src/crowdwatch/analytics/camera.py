"""Everything after detection for one camera: ignore regions, tracking, counts, flow.

CameraAnalysis turns one frame's people (or, on a frame the detector skips, the last ones)
into the FrameResult the sinks get. Its parts are built by crowdwatch.build; the camera loop
in crowdwatch.pipeline calls analyse() once per frame, in frame order.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from crowdwatch.analytics.counting import PeopleCounter
from crowdwatch.analytics.flow import PeopleFlow, move_to_predicted
from crowdwatch.analytics.ignore import drop_ignored
from crowdwatch.analytics.scene import CameraScene, SceneGeometry
from crowdwatch.types import TRACK_STAGE, Detections, FlowResult, Frame, FrameResult

if TYPE_CHECKING:
    from crowdwatch.analytics.sites import SiteTracker
    from crowdwatch.detect.densitymap import DensityMap
    from crowdwatch.track import Tracker

# Builds a camera's people flow for the geometry of a frame size (None: not tracked).
FlowFactory = Callable[[SceneGeometry], PeopleFlow]


class CameraAnalysis:
    """One camera's analytics; not thread-safe (its camera loop is the only caller)."""

    def __init__(self, camera_id: str, scene: CameraScene, counter: PeopleCounter,
                 tracker: Tracker | None = None, flow: FlowFactory | None = None,
                 sites: SiteTracker | None = None) -> None:
        """sites: the sites across cameras (analytics/sites.py) this camera feeds, if any."""
        self.camera_id = camera_id
        self.scene = scene
        self._counter = counter
        self._tracker = tracker
        self._make_flow = flow
        self._flow: PeopleFlow | None = None
        self._sites = sites if sites is not None and camera_id in sites.cameras() else None
        self._geometry: SceneGeometry | None = None
        self._last = Detections.empty()
        self._last_ts: float | None = None
        self._density: DensityMap | None = None

    def analyse(self, frame: Frame, detected: Detections | None,
                stage_seconds: dict[str, float], tiles: int = 0,
                density: DensityMap | None = None) -> FrameResult:
        """The result of one frame; detected is None on a frame the detector skipped
        (detector.detect_every), which reuses the last people (moved by the tracker) and the
        last density map. density: the detector's density map of this frame, if it gives
        one."""
        geometry = self.scene.at(frame.width, frame.height)
        if geometry is not self._geometry:
            self._geometry = geometry
            if self._tracker is not None and self._make_flow is not None:
                old, self._flow = self._flow, self._make_flow(geometry)
                if old is not None:  # a new frame size keeps the totals counted so far
                    self._flow.resume({n: (t.people_in, t.people_out)
                                       for n, t in old.lines.items()})
        tracker, flow = self._tracker, self._flow
        timestamp = frame.captured_at if frame.position_s is None else frame.position_s
        if tracker is not None and self._last_ts is not None and timestamp < self._last_ts:
            # A looping file starts over: old tracks would jump; totals stay.
            tracker.reset()
            if flow is not None:
                flow.forget_tracks()
        self._last_ts = timestamp
        if detected is not None:
            self._density = density
            # People in ignore regions are gone before anything counts or sees them.
            self._last = drop_ignored(detected, geometry.ignore)
        t0 = time.perf_counter()
        if tracker is not None:
            if detected is not None:
                self._last = tracker.update(self._last, timestamp)
                detections = self._last
            else:
                # Skipped frame: tracked people where the tracker expects them now.
                detections = move_to_predicted(self._last, tracker.predict(timestamp))
            stage_seconds[TRACK_STAGE] = time.perf_counter() - t0
        else:
            detections = self._last
        t1 = time.perf_counter()
        counts = self._counter.count(detections, geometry, timestamp, self._density)
        flow_result: FlowResult | None = None
        if flow is not None:
            if detected is not None:
                flow.update(detections, counts.membership, timestamp)
                flow_result = flow.result()
            else:
                flow_result = flow.carried()
        sites = (self._sites.update(self.camera_id, counts.zones,
                                    flow_result.lines if flow_result is not None else {})
                 if self._sites is not None else {})
        t2 = time.perf_counter()
        stage_seconds["zones"] = t2 - t1
        return FrameResult(
            camera=self.camera_id,
            frame_index=frame.index,
            position_s=frame.position_s,
            captured_at=frame.captured_at,
            people=counts.people,
            people_raw=counts.people_raw,
            zones=counts.zones,
            detections=detections,
            stage_seconds=stage_seconds,
            flow=flow_result,
            sites=sites,
            analysed_at=t2,
            tiles=tiles,
            method=counts.method,
            density=self._density,
            image=frame.image,
            source_file=frame.source_file,
        )
