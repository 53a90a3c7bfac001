"""The Detector interface every backend implements, and the Pending results it returns."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from crowdwatch.types import Detections, Image

# COCO's class 0.
PERSON_CLASS = 0


def available_cores() -> int:
    """CPU cores this process may run on (a container's limit, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class Pending(Protocol):
    """Detection started on one image; result() waits for it (call it once)."""

    def result(self) -> Detections: ...

    def done(self) -> bool:
        """result() would return at once."""
        ...

    @property
    def stage_seconds(self) -> dict[str, float]:
        """Seconds per detector stage (preprocess, inference, postprocess), after result()."""
        ...


@dataclass
class Done:
    """A detection that finished when it was submitted (synchronous backends)."""

    detections: Detections
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def result(self) -> Detections:
        return self.detections

    def done(self) -> bool:
        return True


class Detector:
    """Finds people in BGR images; safe to share between camera threads. Backends subclass it.

    Asynchronous backends return from submit() at once; synchronous ones return a Done.
    """

    name: str = "detector"
    # Requests the engine runs at once; None: one per CPU core. FairShare sizes its slots by it.
    parallel_streams: int | None = None

    def submit(self, image: Image, input_size: int | None = None) -> Pending:
        """Start detecting people in one image; the Pending's result() waits for them.

        input_size: the model input's long side for this image (None: the configured
        detector.imgsz); callers pass it only where it differs, so a backend that has one
        size may ignore it.
        """
        raise NotImplementedError

    def prepare(self, width: int, height: int) -> None:
        """Load what frames of this size need now, so the first one is not slow."""


def submit_at(submit: Callable[..., Pending], image: Image, input_size: int | None) -> Pending:
    """submit(image), with input_size only where one is asked for: a Detector whose submit
    predates input_size keeps working wherever nothing asks for another size."""
    return submit(image) if input_size is None else submit(image, input_size=input_size)


def detect(detector: Detector, image: Image) -> Detections:
    """People in one BGR image, waiting for them."""
    return detector.submit(image).result()


def detect_all(detector: Detector, images: Sequence[Image]) -> list[Detections]:
    """People in each of several images, all submitted before the first is awaited."""
    pending = [detector.submit(image) for image in images]
    return [p.result() for p in pending]
