"""Captures: the part of cv2.VideoCapture sources use, and how they are opened (files through
PyAV, sources/decode.py; cameras and streams through OpenCV)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import cv2

from crowdwatch.sources.urls import is_url
from crowdwatch.types import Image

# OpenCV's FFmpeg backend opens one capture at a time (a process-wide lock held through
# avformat_find_stream_info, which reads the live stream until it has seen enough of it: 2.4 s
# of a 10 frames/s H.264 stream with B-frames). 16 cameras took 40 s to all connect, the last
# ones starved in every measurement window (issue 23). Half a second still finds the size and
# frame rate (measured on the loopback server: 0.63 s per open, fps 10.0) and 16 cameras
# connect in about 10 s.
ANALYZE_DURATION_US = 500_000
CAPTURE_OPTIONS = f"rtsp_transport;tcp|analyzeduration;{ANALYZE_DURATION_US}"


class CaptureLike(Protocol):
    """The part of cv2.VideoCapture that sources use."""

    def isOpened(self) -> bool: ...

    def read(self) -> tuple[bool, Image | None]: ...

    def get(self, prop: int) -> float: ...

    def release(self) -> None: ...


CaptureFactory = Callable[[str | int], CaptureLike]


def configure_opencv() -> None:
    """Process-wide OpenCV settings for camera streams; called before the first capture opens."""
    # RTSP over TCP: no frame is lost to UDP packet loss or a firewall, and a server that dies
    # resets the connection at once. An operator's own FFmpeg options (e.g. rtsp_transport;udp)
    # win.
    os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", CAPTURE_OPTIONS)
    if "OPENCV_LOG_LEVEL" not in os.environ:
        # OpenCV's own warnings repeat what crowdwatch logs (in one line, credentials
        # redacted) and dump C++ exceptions for a missing device; FFmpeg's errors still show.
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def nominal_fps(capture: CaptureLike) -> float | None:
    """The frame rate the stream declares (FFmpeg's guess for a live stream); None if unknown."""
    try:
        fps = float(capture.get(cv2.CAP_PROP_FPS))
    except Exception:  # a capture that cannot tell
        return None
    # FFmpeg reports 0 when unknown and 90000 (the RTP clock) for some cameras.
    return fps if 0 < fps <= 240 else None


def device_hint(index: int) -> str:
    """Why device `index` may not open, where the system can tell (Linux: no /dev/videoN)."""
    if sys.platform.startswith("linux") and not Path(f"/dev/video{index}").exists():
        return f" (no /dev/video{index}: is the camera connected?)"
    return ""


def default_factory(read_timeout_s: float) -> CaptureFactory:
    """PyAVCapture for files, else cv2.VideoCapture, with FFmpeg open/read timeouts for URLs
    so a dead stream returns."""
    # Opening RTSP takes several round trips; below a second healthy cameras time out.
    timeout_ms = int(max(read_timeout_s, 1.0) * 1000)

    def factory(source: str | int) -> CaptureLike:
        if isinstance(source, str) and Path(source).is_file():
            # Files through PyAV, which says which frames did not decode whole (decode.py);
            # OpenCV for what PyAV cannot open.
            from crowdwatch.sources.decode import PyAVCapture

            try:
                return PyAVCapture(source)
            except Exception:
                return cv2.VideoCapture(source)
        if isinstance(source, str) and is_url(source):
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms,
                      cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms]
            try:
                return cv2.VideoCapture(source, cv2.CAP_FFMPEG, params)
            except (TypeError, cv2.error):
                # An OpenCV without the params overload: open without timeouts.
                return cv2.VideoCapture(source)
        return cv2.VideoCapture(source)

    from crowdwatch.sources.diagnose import diagnose

    factory.diagnose = diagnose  # type: ignore[attr-defined]  # why a URL fails (live.py)
    return factory
