"""Adapters over Roboflow's `trackers` package (Apache-2.0; numpy/scipy, no torch).

The library works on supervision Detections and may reorder and drop boxes; the adapters give
back the caller's boxes in the caller's order with a tracker_id each, so tracker output lines
up with the detector's arrays.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import numpy as np
import numpy.typing as npt

from crowdwatch.config.flow import TrackerConfig
from crowdwatch.types import Detections

# The library counts its lost-track buffer in frames of a 30 fps video.
_LIBRARY_FPS = 30.0
# Kalman step rate when neither the config nor the source gives one.
DEFAULT_FPS = 10.0


class ByteTrack:
    """ByteTrack: two-stage IoU association that keeps low-confidence boxes on live tracks."""

    def __init__(self, config: TrackerConfig | None = None, fps: float | None = None) -> None:
        """fps: the source's nominal frame rate, used unless config.frame_rate is set."""
        self.config = config or TrackerConfig(name=self._name())
        self.frame_rate = self.config.frame_rate or fps or DEFAULT_FPS
        self._tracker: Any = self._build(self.config)
        self._last_timestamp: float | None = None

    @staticmethod
    def _name() -> str:
        return "bytetrack"

    def _build(self, config: TrackerConfig) -> Any:
        from trackers import ByteTrackTracker

        return ByteTrackTracker(
            lost_track_buffer=max(1, round(config.lost_s * _LIBRARY_FPS)),
            frame_rate=self.frame_rate,
            track_activation_threshold=config.activation_confidence,
            minimum_consecutive_frames=config.confirm_frames,
            minimum_iou_threshold=config.min_iou,
            high_conf_det_threshold=config.high_confidence,
        )

    def update(self, detections: Detections, timestamp: float) -> Detections:
        """The input boxes in input order with tracker_id; -1 where no confirmed track holds it.

        Raises ValueError for a timestamp earlier than the previous one: the library would skip
        the frame silently, and a camera clock going back is a bug upstream worth seeing.
        """
        if self._last_timestamp is not None and timestamp < self._last_timestamp:
            raise ValueError(f"timestamp {timestamp} is earlier than the previous "
                             f"{self._last_timestamp}; pass capture times in order")
        import supervision as sv

        n = len(detections)
        sv_detections = sv.Detections(
            xyxy=detections.xyxy.astype(np.float32, copy=False),
            confidence=detections.confidence.astype(np.float32, copy=False),
            class_id=np.zeros(n, int),
            data={"index": np.arange(n)},
        )
        with warnings.catch_warnings():
            # A repeated timestamp (two frames in one clock tick) is fine: the library skips
            # its Kalman predict and warns, which would flood the log on coarse clocks.
            warnings.simplefilter("ignore", UserWarning)
            tracked = self._tracker.update(sv_detections, timestamp=float(timestamp))
        self._last_timestamp = float(timestamp)
        ids = np.full(n, -1, np.int64)
        if len(tracked):
            ids[np.asarray(tracked.data["index"], np.int64)] = tracked.tracker_id
        # Library ids start at 0 for the first confirmed track; keep them >= 0, -1 is "none".
        return Detections(detections.xyxy, detections.confidence, ids)

    def predict(self, timestamp: float) -> Detections:
        """Boxes of the confirmed, recently matched tracks moved by their Kalman velocity to
        timestamp (for frames the detector skips); tracker state is left untouched, so the next
        update() predicts from the last real detection as usual."""
        tracks = [t for t in self._tracker.tracks
                  if t.tracker_id >= 0 and t.time_since_update == 0]
        if not tracks:
            return Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                              np.zeros(0, np.int64))
        step = 0.0
        if self._last_timestamp is not None:
            step = max(0.0, timestamp - self._last_timestamp) * self.frame_rate
        boxes = np.empty((len(tracks), 4), np.float32)
        for i, track in enumerate(tracks):
            # Predicting mutates the filter; a copy (8x8 matrices, microseconds) keeps the
            # tracker's own state for the next real update.
            estimator = copy.deepcopy(track.state_estimator)
            if step > 0:
                estimator.predict(step, self.frame_rate)
            boxes[i] = estimator.state_to_bbox()
        ids: npt.NDArray[np.int64] = np.array([t.tracker_id for t in tracks], np.int64)
        # Predicted boxes carry no detector confidence; 1.0 marks them as "assumed present".
        return Detections(boxes, np.ones(len(tracks), np.float32), ids)

    def reset(self) -> None:
        """Forget every track and restart ids."""
        self._tracker.reset()
        self._last_timestamp = None


class Sort(ByteTrack):
    """SORT: one-stage IoU association; ignores confidence except for starting tracks."""

    @staticmethod
    def _name() -> str:
        return "sort"

    def _build(self, config: TrackerConfig) -> Any:
        from trackers import SORTTracker

        return SORTTracker(
            lost_track_buffer=max(1, round(config.lost_s * _LIBRARY_FPS)),
            frame_rate=self.frame_rate,
            track_activation_threshold=config.activation_confidence,
            minimum_consecutive_frames=config.confirm_frames,
            minimum_iou_threshold=config.min_iou,
        )


class OCSort(ByteTrack):
    """OC-SORT: observation-centric re-update; boxes below high_confidence are dropped."""

    @staticmethod
    def _name() -> str:
        return "ocsort"

    def _build(self, config: TrackerConfig) -> Any:
        from trackers import OCSORTTracker

        return OCSORTTracker(
            lost_track_buffer=max(1, round(config.lost_s * _LIBRARY_FPS)),
            frame_rate=self.frame_rate,
            minimum_consecutive_frames=config.confirm_frames,
            minimum_iou_threshold=config.min_iou,
            high_conf_det_threshold=config.high_confidence,
        )
