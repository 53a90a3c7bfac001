"""People flow of one camera: line crossings and zone dwell from tracked detections.

Only confirmed tracks (tracker_id >= 0) count; the tracker itself runs in the pipeline.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from crowdwatch.analytics.dwell import DwellTracker
from crowdwatch.analytics.lines import Line, LineCounter
from crowdwatch.boxes import foot_points
from crowdwatch.config import CameraConfig
from crowdwatch.config.flow import DwellConfig, RelinkConfig
from crowdwatch.types import Detections, FlowResult, LineTotals, ZoneDwell


class PeopleFlow:
    """Line totals and zone dwell of one camera, updated with each detected frame."""

    def __init__(self, camera: CameraConfig, lines: list[Line], relink: RelinkConfig,
                 dwell: DwellConfig) -> None:
        self._lines = LineCounter(lines, relink) if lines else None
        # Dwell is timed in the zones that ask for it; membership rows are picked by index.
        self._dwell_rows = np.array([i for i, z in enumerate(camera.zones) if z.dwell], np.intp)
        names = [camera.zones[i].name for i in self._dwell_rows]
        self._dwell = DwellTracker(names, dwell, relink) if names else None
        self.lines: dict[str, LineTotals] = {
            line.name: LineTotals(0, 0) for line in lines}
        self.dwell: dict[str, ZoneDwell] = {name: ZoneDwell(0, 0.0) for name in names}

    def resume(self, totals: Mapping[str, tuple[int, int]]) -> None:
        """Line totals go on from saved (in, out) values (the state file, at start)."""
        if self._lines is None:
            return
        self._lines.resume(totals)
        self.lines = {line.name: LineTotals(int(i), int(o)) for line, i, o in zip(
            self._lines.lines, self._lines.total_in, self._lines.total_out, strict=True)}

    def update(self, detections: Detections, membership: npt.NDArray[np.bool_],
               timestamp: float) -> None:
        """Advance with one detected frame's tracked people and their (zones, N) membership."""
        ids = detections.tracker_id
        if ids is None:
            raise ValueError("people flow needs tracked detections (tracker_id)")
        foot = foot_points(detections.xyxy)
        if self._lines is not None:
            counts = self._lines.update(ids, foot, timestamp)
            self.lines = {
                name: LineTotals(int(t_in), int(t_out), int(n_in), int(n_out))
                for name, t_in, t_out, n_in, n_out in zip(
                    counts.names, counts.total_in, counts.total_out, counts.new_in,
                    counts.new_out, strict=True)}
        if self._dwell is not None:
            stats = self._dwell.update(ids, membership[self._dwell_rows], timestamp, foot)
            self.dwell = {
                name: ZoneDwell(int(inside), float(longest), completed)
                for name, inside, longest, completed in zip(
                    stats.names, stats.inside_now, stats.longest_s, stats.completed,
                    strict=True)}

    def result(self) -> FlowResult:
        """The values of the frame just updated, with its new crossings and visits."""
        return FlowResult(self.lines, self.dwell)

    def carried(self) -> FlowResult:
        """The last values for a frame the detector skipped: totals stay, nothing new."""
        lines = {n: LineTotals(t.people_in, t.people_out) for n, t in self.lines.items()}
        dwell = {n: ZoneDwell(d.inside, d.longest_s) for n, d in self.dwell.items()}
        return FlowResult(lines, dwell)

    def forget_tracks(self) -> None:
        """A source that went back in time (a looping file): keep totals, drop tracks."""
        if self._lines is not None:
            self._lines.forget_tracks()
        if self._dwell is not None:
            self._dwell.reset()


def move_to_predicted(last: Detections, predicted: Detections) -> Detections:
    """The last detected people, with each confirmed track's box replaced by its predicted
    box (unconfirmed boxes stay where they were, so the zone counts keep every person)."""
    if last.tracker_id is None or not len(predicted) or predicted.tracker_id is None:
        return last
    order = np.argsort(predicted.tracker_id)
    sorted_ids = predicted.tracker_id[order]
    at = np.clip(np.searchsorted(sorted_ids, last.tracker_id), 0, len(sorted_ids) - 1)
    found = (sorted_ids[at] == last.tracker_id) & (last.tracker_id >= 0)
    xyxy = last.xyxy.copy()
    xyxy[found] = predicted.xyxy[order[at[found]]]
    return Detections(xyxy, last.confidence, last.tracker_id)
