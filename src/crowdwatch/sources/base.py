"""What the pipeline reads frames from, and closing many sources at once."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from crowdwatch.types import Frame


@runtime_checkable
class FrameSource(Protocol):
    """What the pipeline reads frames from."""

    name: str
    live: bool
    frames_dropped: int
    frames_skipped: int
    reconnects: int

    def read(self, timeout: float) -> Frame | None:
        """The next frame, or None when none is ready within timeout seconds."""
        ...

    @property
    def finished(self) -> bool:
        """A file or folder source has handed over its last frame."""
        ...

    @property
    def up(self) -> bool:
        """Frames are arriving."""
        ...

    def close(self) -> None:
        """Stop threads and release captures; safe to call twice."""
        ...


def close_all(sources: Iterable[FrameSource]) -> None:
    """Close sources side by side: readers blocked in a dead network are waited for together,
    so stopping takes one join timeout however many cameras hang (SIGTERM within 5 s)."""
    closers = [threading.Thread(target=s.close, name=f"close {s.name}", daemon=True)
               for s in sources]
    for closer in closers:
        closer.start()
    for closer in closers:
        closer.join()
