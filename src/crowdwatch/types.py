"""Small typed values passed between the pipeline stages."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from crowdwatch.detect.densitymap import DensityMap

# A BGR frame as decoded (H, W, 3) uint8: sources give it, detectors, sinks and the page read it.
Image = npt.NDArray[np.uint8]
# Box coordinates and confidences as detectors give them (float32); per-track analytics state
# in float64 is analytics.tracks.StateArray.
FloatArray = npt.NDArray[np.float32]
IdArray = npt.NDArray[np.int64]

# What a detector's Pending times; "detect" is their sum (or a synchronous backend's call).
DETECT_STAGES = ("preprocess", "inference", "postprocess")
# Every stage a frame passes, in pipeline order: the `stage` label of
# crowdwatch_stage_duration_seconds. wait is the camera loop blocked on its source, decode the
# source thread's decoder time for the frame; export runs from the end of analysis until the
# counts are in the metrics registry. Tracked cameras (lines, dwell) add TRACK_STAGE.
STAGES = ("wait", "decode", "detect", *DETECT_STAGES, "zones", "export")
TRACK_STAGE = "track"


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded image and where it came from."""

    image: Image
    index: int
    # Seconds into the file for file and folder sources; None for live sources.
    position_s: float | None
    # Unix time when the frame was captured (left the decoder); measures frame age.
    captured_at: float
    # Seconds the source's own thread spent decoding it (for live sources this includes
    # FFmpeg waiting for the camera's packets); the pipeline's "decode" stage.
    decode_s: float = 0.0
    # The image file it came from (image folders), for events.
    source_file: str | None = None

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])


@dataclass(frozen=True, slots=True)
class Detections:
    """People found in one frame: (N, 4) xyxy pixels, (N,) confidences, optional track ids."""

    xyxy: FloatArray
    confidence: FloatArray
    # Set by a tracker; -1 marks a track not yet confirmed.
    tracker_id: IdArray | None = None

    def __post_init__(self) -> None:
        if self.xyxy.ndim != 2 or self.xyxy.shape[1] != 4:
            raise ValueError(f"xyxy must have shape (N, 4), got {self.xyxy.shape}")
        if self.confidence.shape != (len(self.xyxy),):
            raise ValueError("confidence must have one value per box")
        if self.tracker_id is not None and self.tracker_id.shape != (len(self.xyxy),):
            raise ValueError("tracker_id must have one value per box")

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32))

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, keep: npt.NDArray[np.bool_] | npt.NDArray[np.intp]) -> Detections:
        """The people selected by a boolean mask or an index array."""
        ids = None if self.tracker_id is None else self.tracker_id[keep]
        return Detections(self.xyxy[keep], self.confidence[keep], ids)


class Level(IntEnum):
    """A zone's occupancy level; the value is what crowdwatch_zone_level exports."""

    OK = 0
    WARNING = 1
    CRITICAL = 2

    @property
    def label(self) -> str:
        """The name written in events: ok, warning, critical."""
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class ZoneStats:
    """What one zone holds in one frame; density and occupancy are None when undefined."""

    people: int
    people_raw: int | None = None
    density: float | None = None
    occupancy: float | None = None
    level: Level | None = None


@dataclass(frozen=True, slots=True)
class LineTotals:
    """Crossings of one counting line: totals since start, and those counted this frame."""

    people_in: int
    people_out: int
    new_in: int = 0
    new_out: int = 0


@dataclass(frozen=True, slots=True)
class ZoneDwell:
    """Tracked visits to one zone: confirmed people inside now, the longest current stay and
    the durations of the visits that ended this frame (seconds)."""

    inside: int
    longest_s: float
    completed_s: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class FlowResult:
    """People flow of one tracked camera: line crossings and dwell in the zones that ask."""

    lines: dict[str, LineTotals] = field(default_factory=dict)
    dwell: dict[str, ZoneDwell] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SiteStats:
    """One site across cameras now (analytics/sites.py). people: None without zones (or
    before one was seen); occupancy: None without entrances; ratio and level: None without
    capacity."""

    people: int | None
    occupancy: int | None
    ratio: float | None
    level: Level | None
    # People the occupancy was clamped by (at 0) since counting began, restarts included.
    drift: int = 0


@dataclass(frozen=True, slots=True)
class FrameResult:
    """Everything the outputs need about one processed frame of one camera.

    The counts every camera has come first (the whole frame's own, then per zone); each
    further analytic adds one optional member holding its own small result value, None where
    the camera does not run it (flow: tracked cameras only). A new analytic (e.g. a density
    estimate with its per-zone counts and map) adds its value type above and one member
    beside `flow`; sinks that know it read it, the others are untouched.
    """

    camera: str
    frame_index: int
    position_s: float | None
    captured_at: float
    # The whole frame's people (smoothed, as exported) and as detected in this frame.
    people: int
    people_raw: int
    zones: dict[str, ZoneStats] = field(default_factory=dict)
    detections: Detections = field(default_factory=Detections.empty)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    # Line crossings and dwell; None on cameras without tracking.
    flow: FlowResult | None = None
    # The sites across cameras this camera feeds (config sites:), after this frame; empty
    # for a camera that feeds none.
    sites: dict[str, SiteStats] = field(default_factory=dict)
    # What the counts came from ("boxes" or "density", analytics/counting.py), and the
    # frame's density map by reference when the detector gives one (None otherwise; a
    # skipped frame carries the last one): sinks must not modify it.
    method: str = "boxes"
    density: DensityMap | None = field(default=None, repr=False, compare=False)
    # perf_counter() when analysis ended: the export stage runs from here.
    analysed_at: float = 0.0
    # The analysed frame itself, by reference (not a copy) for the recorder and the live
    # preview: sinks must not modify it; one that draws on it copies it first.
    image: Image | None = field(default=None, repr=False, compare=False)
    # The image file of this frame (image folders); None for videos and live sources.
    source_file: str | None = None
    # Zoomed tiles this frame's detection ran on besides the whole frame (detector.tiling).
    tiles: int = 0

    @property
    def timestamp(self) -> float:
        """Seconds into the file for files, Unix time for live sources (the events' field)."""
        return self.captured_at if self.position_s is None else self.position_s
