"""The Sink interface: where the pipeline hands each analysed frame."""

from __future__ import annotations

from typing import Protocol

from crowdwatch.types import FrameResult


class Sink(Protocol):
    """An output of analysed frames; called from camera threads, so it must be thread-safe."""

    def write(self, result: FrameResult) -> None:
        """Take one analysed frame (after analysis ended at result.analysed_at)."""
        ...

    def close(self) -> None:
        """Flush and release; nothing already written may be lost. Safe to call twice."""
        ...
