"""Video files decoded by PyAV, read like cv2.VideoCapture, with FFmpeg's word on each frame.

OpenCV's VideoCapture hides FFmpeg's error flags: after a damaged stretch of a file, the frames
that reference the damaged picture decode without a message, smeared, up to the next keyframe
(in the sample clip, whose only keyframe is its first frame, the whole second half: 9-11
people counted against 6). PyAV hands over each frame with FFmpeg's verdict (`is_corrupt`:
decode errors, concealment), whether it is a keyframe, and says which packets did not decode.
After damage, PyAVCapture skips every frame up to the next keyframe that decodes whole (where
the decoder has recovered) and counts them in `lost`; the file source counts them as skipped.

Pixels are the ones OpenCV's capture gives (both convert with FFmpeg's swscale; the sample
clip's 200 frames are byte-identical), so counts on an undamaged file do not change.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any

import av
import cv2
from av.video.reformatter import VideoReformatter

from crowdwatch.types import Image


class PyAVCapture:
    """The first video stream of a file; `read()` gives only frames that decoded whole."""

    def __init__(self, path: str) -> None:
        self._container: Any = av.open(path)  # FFmpegError / OSError when it cannot
        if not self._container.streams.video:
            self._container.close()
            raise ValueError(f"{path}: no video stream")
        self._stream = self._container.streams.video[0]
        # One decoding thread. With slice threads (PyAV's default) FFmpeg's h264 decoder
        # logged the error but did not flag the concealed keyframe of a clip without B-frames
        # (tests/sources/test_decode.py); frame threads flag it, but cost 20-30 MB more
        # resident memory that kept growing in a soak. One thread: the flag, no growth, the
        # same CPU time; files decode far faster than the detector runs.
        self._stream.codec_context.thread_count = 1
        self._packets: Iterator[Any] = self._container.demux(self._stream)
        self._decoded: deque[Any] = deque()
        self._to_bgr = VideoReformatter()  # one converter for the file, not one per frame
        self._ended = False
        self._damaged = False  # since a damaged frame, until a keyframe decodes whole
        # Frames skipped (damaged, depending on damage, or not decodable) since the last
        # frame read() returned; the reader takes and resets it.
        self.lost = 0

    def isOpened(self) -> bool:
        return self._container is not None

    def get(self, prop: int) -> float:
        """CAP_PROP_FPS and CAP_PROP_FRAME_COUNT as OpenCV computes them; 0 when unknown."""
        if prop == cv2.CAP_PROP_FPS:
            return self._fps()
        if prop == cv2.CAP_PROP_FRAME_COUNT:
            if self._stream.frames:
                return float(self._stream.frames)
            # Like OpenCV: the duration times the frame rate when the index has no count.
            duration = self._container.duration
            return float(round(duration / av.time_base * self._fps())) if duration else 0.0
        return 0.0

    def _fps(self) -> float:
        rate = self._stream.average_rate or self._stream.guessed_rate
        return float(rate) if rate else 0.0

    def read(self) -> tuple[bool, Image | None]:
        """The next frame that decoded whole; (False, None) at the end of the file."""
        while True:
            frame = self._next_frame()
            if frame is None:
                return False, None
            if frame.is_corrupt or (self._damaged and not frame.key_frame):
                self._damaged = True
                self.lost += 1
                continue
            self._damaged = False
            return True, self._to_bgr.reformat(frame, format="bgr24").to_ndarray()

    def _next_frame(self) -> Any:
        while not self._decoded:
            if self._ended:
                return None
            try:
                packet = next(self._packets, None)
            except av.error.FFmpegError:
                packet = None  # the container cannot be read past here: what is left ends it
            if packet is None:
                self._ended = True
            elif packet.is_corrupt:
                self._damaged = True
            try:
                # None drains the decoder's delayed frames at the end.
                self._decoded.extend(self._stream.codec_context.decode(packet))
            except av.error.EOFError:
                pass
            except av.error.FFmpegError:
                if packet is not None:  # a packet that did not decode: its frame is lost
                    self._damaged = True
                    self.lost += 1
        return self._decoded.popleft()

    def release(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None
            self._decoded.clear()
