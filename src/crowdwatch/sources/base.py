"""What the pipeline reads frames from, and closing many sources at once."""

from __future__ import annotations

import threading
from collections.abc import Iterable

from crowdwatch.types import Frame


class FrameSource:
    """What the pipeline reads frames from. Sources subclass it; the optional abilities below
    have defaults, so a source declares only what it knows."""

    name: str = "source"
    live: bool = False
    frames_dropped: int = 0
    frames_skipped: int = 0
    reconnects: int = 0
    # The nominal frame rate the source declares (files, folders): the tracker's Kalman step.
    # None for live sources, whose declared rate is often wrong.
    fps: float | None = None
    # The stream's nominal frame rate as its decoder reports it (live streams too, for the
    # received-rate warning and metrics); None when unknown.
    stream_fps: float | None = None
    # The frames show one scene at real times; False for an image folder of unrelated
    # pictures, which smoothing must not carry people across.
    sequence: bool = True
    # How many frames it will hand over, when known (files; None: unknown, live or looping).
    expected_frames: int | None = None

    def read(self, timeout: float) -> Frame | None:
        """The next frame, or None when none is ready within timeout seconds."""
        raise NotImplementedError

    @property
    def finished(self) -> bool:
        """A file or folder source has handed over its last frame."""
        return False

    @property
    def up(self) -> bool:
        """Frames are arriving."""
        return True

    @property
    def why(self) -> str:
        """Why no frames arrive ("cannot open: connection refused ..."); "" when they do."""
        return ""

    def close(self) -> None:
        """Stop threads and release captures; safe to call twice."""

    def reader_stuck(self) -> bool:
        """Its reader thread is still alive after close(): blocked in a native read (a hung
        network stream) that cannot be interrupted."""
        return False


def close_all(sources: Iterable[FrameSource]) -> None:
    """Close sources side by side: readers blocked in a dead network are waited for together,
    so stopping takes one join timeout however many cameras hang (SIGTERM within 5 s)."""
    closers = [threading.Thread(target=s.close, name=f"close {s.name}", daemon=True)
               for s in sources]
    for closer in closers:
        closer.start()
    for closer in closers:
        closer.join()
