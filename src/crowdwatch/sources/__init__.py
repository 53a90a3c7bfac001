"""Frame sources: video files, image folders and live cameras behind one small interface.

Every source decodes on its own daemon thread so decoding overlaps inference. File sources
hand over every frame in order through a short queue; live sources keep only the newest
frame, so a slow consumer drops frames instead of falling behind the camera.

`open_source` decides what kind of source a camera's `source` names, then builds it through
SOURCE_KINDS; a new kind of source registers itself there.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from crowdwatch.config import CameraConfig
from crowdwatch.errors import SourceError
from crowdwatch.registry import Registry
from crowdwatch.sources.base import FrameSource, close_all
from crowdwatch.sources.urls import (
    BROKEN_SCHEME,
    LIVE_SCHEMES,
    SCHEME,
    URL_FORM,
    check_url,
    redact,
)

if TYPE_CHECKING:  # OpenCV loads with the first source, not with the config or --help
    from crowdwatch.sources.capture import CaptureFactory
    from crowdwatch.sources.live import Backoff

__all__ = ["SOURCE_KINDS", "FrameSource", "close_all", "open_source", "readers_stuck", "redact",
           "source_kind"]

# (target, camera, capture factory, reconnect backoff) -> source
SourceFactory = Callable[[str | int, CameraConfig, "CaptureFactory", "Backoff | None"],
                         FrameSource]
SOURCE_KINDS: Registry[SourceFactory] = Registry("source kind")


@SOURCE_KINDS.register("device")
def _device(target: str | int, camera: CameraConfig, factory: CaptureFactory,
            backoff: Backoff | None) -> FrameSource:
    from crowdwatch.sources.live import LiveSource

    name = f"device {target}" if isinstance(target, int) else str(target)
    return LiveSource(target, name, camera, factory, backoff)


@SOURCE_KINDS.register("stream")
def _stream(target: str | int, camera: CameraConfig, factory: CaptureFactory,
            backoff: Backoff | None) -> FrameSource:
    from crowdwatch.sources.live import LiveSource

    return LiveSource(target, redact(str(target)), camera, factory, backoff)


@SOURCE_KINDS.register("folder")
def _folder(target: str | int, camera: CameraConfig, factory: CaptureFactory,
            backoff: Backoff | None) -> FrameSource:
    from crowdwatch.sources.files import ImageFolderSource

    return ImageFolderSource(Path(str(target)), camera)


@SOURCE_KINDS.register("video")
def _video(target: str | int, camera: CameraConfig, factory: CaptureFactory,
           backoff: Backoff | None) -> FrameSource:
    from crowdwatch.sources.files import VideoFileSource

    return VideoFileSource(Path(str(target)), camera, factory)


def source_kind(source: str | int) -> tuple[str, str | int]:
    """The kind of source a config value names and the target to open; SourceError if none."""
    if isinstance(source, int):
        return "device", source
    match = SCHEME.match(source)
    if match:
        scheme = match.group(1).lower()
        if scheme not in LIVE_SCHEMES:
            raise SourceError(f"{redact(source)}: unsupported URL scheme '{scheme}'; use "
                              "rtsp://, http(s)://, a file, a folder or a device index")
        check_url(source)
        return "stream", source
    if BROKEN_SCHEME.match(source) and not Path(source).expanduser().exists():
        raise SourceError(f"{redact(source)}: malformed URL (the scheme needs '://'); "
                          f"{URL_FORM}")
    path = Path(source).expanduser()
    if path.is_dir():
        return "folder", str(path)
    if path.is_file():
        return "video", str(path)
    if path.exists():
        # A character device such as /dev/video0: a camera opened by path.
        return "device", str(path)
    if re.fullmatch(r"[0-9]+", source.strip()):
        return "device", int(source)
    if "/" in source or "\\" in source or path.suffix:
        raise SourceError(f"{source}: file not found; check the camera's source path")
    raise SourceError(f"{source}: no such file or folder, and not a URL or device index")


def open_source(camera: CameraConfig, capture_factory: CaptureFactory | None = None, *,
                backoff: Backoff | None = None) -> FrameSource:
    """Open camera.source as a file, folder or live source; SourceError if it cannot be used.

    Live sources never raise for network problems: they connect in the background.
    backoff overrides the reconnect delays of a live source (tests use short ones).
    """
    from crowdwatch.sources.capture import configure_opencv, default_factory

    kind, target = source_kind(camera.source)
    configure_opencv()
    factory = capture_factory or default_factory(camera.read_timeout_s)
    source = SOURCE_KINDS.get(kind)(target, camera, factory, backoff)
    _opened.add(source)
    return source


# Every source open_source made that still exists (their reader threads keep them alive).
_opened: weakref.WeakSet[FrameSource] = weakref.WeakSet()


def readers_stuck() -> bool:
    """A source's reader thread is still alive, blocked in a native read (a hung network
    stream) that close() could not interrupt."""
    return any(source.reader_stuck() for source in list(_opened))
