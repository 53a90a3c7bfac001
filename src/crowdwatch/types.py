"""Small typed values passed between the pipeline stages."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded image and where it came from."""

    image: npt.NDArray[np.uint8]
    index: int
    # Position in the file for file sources, wall-clock (Unix seconds) for live sources.
    timestamp: float
    # Wall-clock time (time.time()) when the frame left the decoder; measures frame age.
    captured_at: float

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])


@dataclass(frozen=True, slots=True)
class Detections:
    """People found in one frame: boxes as (N, 4) xyxy pixels and (N,) confidences."""

    xyxy: FloatArray
    confidence: FloatArray

    def __post_init__(self) -> None:
        if self.xyxy.ndim != 2 or self.xyxy.shape[1] != 4:
            raise ValueError(f"xyxy must have shape (N, 4), got {self.xyxy.shape}")
        if self.confidence.shape != (len(self.xyxy),):
            raise ValueError("confidence must have one value per box")

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32))

    def __len__(self) -> int:
        return len(self.xyxy)


@dataclass(frozen=True, slots=True)
class ZoneStats:
    """What one zone holds in one frame; density and occupancy are None when undefined."""

    people: int
    people_raw: int | None = None
    density: float | None = None
    occupancy: float | None = None
    level: str | None = None


@dataclass(frozen=True, slots=True)
class FrameResult:
    """Everything the outputs need about one processed frame."""

    camera: str
    frame_index: int
    timestamp: float
    captured_at: float
    people: int
    people_raw: int
    zones: dict[str, ZoneStats] = field(default_factory=dict)
    detections: Detections = field(default_factory=Detections.empty)
    stage_seconds: dict[str, float] = field(default_factory=dict)
