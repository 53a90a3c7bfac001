"""Latest frame per camera for the live page: stored by reference, encoded only when watched.

The counting thread calls PreviewHub.write(result) (a Sink) or offer(), which only swaps a
reference to the frame's image. JPEG encoding
(with optional annotation, blur and downscaling) runs in the HTTP handler thread of a
client that watches, at most `fps` times a second, and one encoded frame is shared by all
clients watching the same camera. Nobody watching costs one assignment per frame.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import cv2

from crowdwatch.types import FrameResult, Image

# Draws the overlay (or only blurs people) onto a frame; built by the app from outputs/.
Render = Callable[[Image, FrameResult], Image]
BOUNDARY = "crowdwatchframe"
KEEPALIVE_S = 5.0


@dataclass(frozen=True, slots=True)
class _Latest:
    seq: int
    image: Image
    result: FrameResult
    annotated: bool
    at: float


class PreviewHub:
    """Per-camera latest frame and result; JPEG previews and status for the web page."""

    def __init__(self, cameras: Iterable[str] = (), *, width: int = 640, fps: float = 5.0,
                 quality: int = 70, render: dict[str, Render] | None = None,
                 overlays: dict[str, Render] | None = None) -> None:
        self.width = width
        self.fps = fps
        self.quality = quality
        # Per camera: draws zones/lines/boxes onto a raw frame, or only blurs its people (run
        # only when encoding).
        self.render: dict[str, Render] = dict(render or {})
        # Named extras a watcher may ask for (?overlay=heatmap), drawn after `render`.
        self.overlays: dict[str, Render] = dict(overlays or {})
        self.cameras: list[str] = list(cameras)
        self.frames_encoded = 0
        self.encode_seconds = 0.0
        self._latest: dict[str, _Latest] = {}
        self._seq = itertools.count(1)
        self._watchers: dict[str, int] = {}
        self._encoded: dict[tuple[str, str | None], tuple[int, bytes]] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()

    def offer(self, camera: str, image: Image, result: FrameResult,
              annotated: bool = False) -> None:
        """Keep a reference to the camera's newest frame (cheap; call it for every frame).

        Pass annotated=True when the image already has the overlay drawn (e.g. the
        recorder's rendering) so it is not drawn twice. The image must not be modified later.
        """
        # next() on a count and a dict store are atomic under the GIL: no lock needed on the
        # counting thread's path.
        self._latest[camera] = _Latest(next(self._seq), image, result, annotated, time.monotonic())
        if camera not in self.cameras:
            self.cameras.append(camera)

    def write(self, result: FrameResult) -> None:
        """Sink: offer the result's frame (results without an image only update counts)."""
        image = result.image
        if image is None:
            latest = self._latest.get(result.camera)
            if latest is None:
                return
            image = latest.image
        self.offer(result.camera, image, result)

    def watching(self, camera: str) -> bool:
        """Someone streams this camera's preview (the pipeline may skip extra work if not)."""
        return self._watchers.get(camera, 0) > 0

    def latest_image(self, camera: str) -> Image | None:
        """The newest raw-or-annotated frame as offered (for the editor's still frame)."""
        latest = self._latest.get(camera)
        return None if latest is None else latest.image

    def status(self) -> dict[str, Any]:
        """Counts and levels per camera for the page (JSON-ready)."""
        now = time.monotonic()
        cameras = []
        for camera in self.cameras:
            latest = self._latest.get(camera)
            if latest is None:
                cameras.append({"id": camera, "people": None, "zones": [], "age_s": None})
                continue
            result = latest.result
            zones = [{"name": name, "people": stats.people, "occupancy": stats.occupancy,
                      "level": None if stats.level is None else stats.level.label}
                     for name, stats in result.zones.items()]
            cameras.append({"id": camera, "people": result.people, "zones": zones,
                            "frame_index": result.frame_index,
                            "age_s": round(now - latest.at, 3)})
        return {"cameras": cameras}

    def rendered(self, camera: str) -> Image | None:
        """The newest frame as the preview shows it (annotated or blurred, downscaled)."""
        latest = self._latest.get(camera)
        return None if latest is None else self._render(latest)

    def _render(self, latest: _Latest, overlay: str | None = None) -> Image:
        image = latest.image
        render = self.render.get(latest.result.camera)
        if not latest.annotated and render is not None:
            image = render(image, latest.result)  # renders copy the frame first
        if overlay is not None:
            image = self.overlays[overlay](image, latest.result)
        height, width = image.shape[:2]
        if width > self.width:
            size = (self.width, max(1, round(height * self.width / width)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        return image

    def jpeg(self, camera: str, overlay: str | None = None) -> tuple[int, bytes] | None:
        """(sequence number, JPEG) of the newest frame, encoded at most once per frame (and
        overlay: a name of `overlays`)."""
        latest = self._latest.get(camera)
        if latest is None:
            return None
        with self._lock:
            cached = self._encoded.get((camera, overlay))
            if cached is not None and cached[0] == latest.seq:
                return cached
        started = time.perf_counter()
        image = self._render(latest, overlay)
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            return None
        encoded = (latest.seq, data.tobytes())
        with self._lock:
            self.frames_encoded += 1
            self.encode_seconds += time.perf_counter() - started
            self._encoded[(camera, overlay)] = encoded
        return encoded

    def stream(self, camera: str, overlay: str | None = None) -> Iterator[bytes]:
        """multipart/x-mixed-replace parts: a new JPEG at most fps times a second."""
        with self._lock:
            self._watchers[camera] = self._watchers.get(camera, 0) + 1
        try:
            sent = -1
            sent_at = time.monotonic()
            interval = 1.0 / self.fps
            while not self._closed.is_set():
                started = time.monotonic()
                latest = self._latest.get(camera)
                # Resend now and then when the camera is quiet: writing is the only way to
                # notice a client that went away, and to stop counting it as a watcher.
                stale = started - sent_at > KEEPALIVE_S
                if latest is not None and (latest.seq != sent or stale):
                    encoded = self.jpeg(camera, overlay)
                    if encoded is not None:
                        sent, sent_at = encoded[0], started
                        yield (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                               f"Content-Length: {len(encoded[1])}\r\n\r\n").encode() + \
                            encoded[1] + b"\r\n"
                self._closed.wait(max(0.0, interval - (time.monotonic() - started)))
        finally:  # runs when the client disconnects (the server closes the generator)
            with self._lock:
                self._watchers[camera] -= 1

    def close(self) -> None:
        """End every open stream (on shutdown)."""
        self._closed.set()
