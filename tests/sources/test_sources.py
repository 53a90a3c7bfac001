"""Frame sources: redaction, backoff, video files, image folders and live captures (faked)."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from crowdwatch.config import CameraConfig
from crowdwatch.errors import SourceError
from crowdwatch.sources import FrameSource, open_source, redact
from crowdwatch.sources.live import Backoff
from crowdwatch.types import Frame

# Pixel value step per frame index: survives lossy mp4v/JPEG coding when rounded back.
STEP = 12


def camera(source: str | int, **options: object) -> CameraConfig:
    return CameraConfig(id="cam", source=source, **options)


def write_video(path: Path, frames: int = 20, fps: float = 25.0) -> Path:
    """A 64x48 mp4v clip whose frame i is uniformly i * STEP."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (64, 48))
    assert writer.isOpened()
    for i in range(frames):
        writer.write(np.full((48, 64, 3), i * STEP, np.uint8))
    writer.release()
    return path


def value(frame: Frame) -> int:
    return round(float(frame.image.mean()) / STEP)


def drain(source: FrameSource, limit: int = 1000) -> list[Frame]:
    """Every frame until the source finishes; a 5 s gap fails the test."""
    frames: list[Frame] = []
    while not source.finished and len(frames) < limit:
        frame = source.read(5.0)
        if frame is None:
            assert source.finished, "no frame within 5 s"
        else:
            frames.append(frame)
    return frames


def wait_until(condition: Callable[[], object], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


def read_until(source: FrameSource, done: Callable[[Frame], bool],
               timeout: float = 3.0) -> list[Frame]:
    """Frames read until one satisfies done (included); fails after timeout."""
    frames: list[Frame] = []
    deadline = time.monotonic() + timeout
    while not frames or not done(frames[-1]):
        assert time.monotonic() < deadline, "expected frame not read in time"
        frame = source.read(0.1)
        if frame is not None:
            frames.append(frame)
    return frames


def reader_threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"source {name}"]


# --- redact -----------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("rtsp://user:pass@host/x", "rtsp://***@host/x"),
    ("rtsp://user:pass@host", "rtsp://***@host"),
    ("rtsp://user:p@ss@host:554/x", "rtsp://***@host:554/x"),
    ("http://token@host/x", "http://***@host/x"),
    ("RTSP://U:P@HOST/x", "RTSP://***@HOST/x"),
    ("rtsp://host/x", "rtsp://host/x"),
    # Up to the last '@' of the line: a password may hold any character, so an '@' after a
    # host (a query, a second URL) hides more than the password rather than less.
    ("rtsp://host/x?mail=a@b", "rtsp://***@b"),
    ("open rtsp://a:b@h1/x, then http://c:d@h2/y.", "open rtsp://***@h2/y."),
    ("user@example.com", "user@example.com"),
    ("no url here", "no url here"),
])
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


# --- backoff ----------------------------------------------------------------------------

@pytest.mark.parametrize(("base", "cap", "expected"), [
    (0.5, 30.0, [0.5, 1, 2, 4, 8, 16, 30, 30]),
    (0.5, 4.0, [0.5, 1, 2, 4, 4]),
    (0.5, 3.0, [0.5, 1, 2, 3, 3]),
    (1.0, 0.2, [0.2, 0.2]),
])
def test_backoff_doubles_up_to_cap(base: float, cap: float, expected: list[float]) -> None:
    backoff = Backoff(base, cap)
    assert [backoff.next_delay() for _ in expected] == pytest.approx(expected)


def test_backoff_reset_and_no_overflow() -> None:
    backoff = Backoff(0.5, 30.0)
    for _ in range(5000):
        delay = backoff.next_delay()
    assert delay == 30.0
    backoff.reset()
    assert [backoff.next_delay(), backoff.next_delay()] == [0.5, 1.0]


@pytest.mark.parametrize(("base", "cap", "factor"), [(0, 1, 2), (1, 0, 2), (1, 1, 0.5)])
def test_backoff_rejects_bad_arguments(base: float, cap: float, factor: float) -> None:
    with pytest.raises(ValueError):
        Backoff(base, cap, factor)


# --- video files ------------------------------------------------------------------------

def test_video_frames_in_order(tmp_path: Path) -> None:
    path = write_video(tmp_path / "clip.mp4", frames=20, fps=25.0)
    before = time.time()
    source = open_source(camera(str(path)))
    try:
        assert isinstance(source, FrameSource)
        assert (source.name, source.live, source.up) == (str(path), False, True)
        frames = drain(source)
        assert [value(f) for f in frames] == list(range(20))
        assert [f.index for f in frames] == list(range(20))
        assert [f.position_s for f in frames] == pytest.approx([i / 25 for i in range(20)])
        captured = [f.captured_at for f in frames]
        assert captured == sorted(captured)
        assert before <= captured[0] <= captured[-1] <= time.time()
        assert (frames[0].width, frames[0].height) == (64, 48)
        # Decoder time, measured on the reader thread (the first frame is read at open).
        assert all(f.decode_s >= 0 for f in frames) and all(f.decode_s > 0 for f in frames[1:])
        assert source.finished
        assert source.read(5.0) is None  # at once, not after the timeout
        assert (source.frames_dropped, source.frames_skipped, source.reconnects) == (0, 0, 0)
    finally:
        source.close()
    assert not source.up


def test_video_loop_keeps_counting(tmp_path: Path) -> None:
    path = write_video(tmp_path / "clip.mp4", frames=10, fps=25.0)
    with open_source(camera(str(path), loop=True)) as source:
        frames = [source.read(5.0) for _ in range(25)]
        assert all(frames)
        assert [value(f) for f in frames] == [i % 10 for i in range(25)]
        assert [f.index for f in frames] == list(range(25))
        assert [f.position_s for f in frames] == pytest.approx([i / 25 for i in range(25)])
        assert not source.finished


def test_video_realtime_paces_at_fps(tmp_path: Path) -> None:
    path = write_video(tmp_path / "clip.mp4", frames=10, fps=50.0)
    with open_source(camera(str(path), realtime=True)) as source:
        start = time.monotonic()
        frames = drain(source)
        elapsed = time.monotonic() - start
    assert len(frames) == 10
    # Frame 9 is due 0.18 s after frame 0.
    assert 0.15 <= elapsed < 3.0


def test_realtime_frame_not_due_is_kept_for_next_read(tmp_path: Path) -> None:
    path = write_video(tmp_path / "clip.mp4", frames=5, fps=20.0)
    with open_source(camera(str(path), realtime=True)) as source:
        first = source.read(5.0)
        assert first is not None and value(first) == 0
        assert source.read(0.001) is None  # frame 1 is due 50 ms after frame 0
        assert not source.finished
        second = source.read(5.0)
        assert second is not None and (value(second), second.index) == (1, 1)


def test_realtime_frames_are_captured_when_due_not_when_decoded(tmp_path: Path) -> None:
    # Frame age counts from capture; a paced file is "captured" when its frame is due.
    path = write_video(tmp_path / "clip.mp4", frames=6, fps=20.0)
    with open_source(camera(str(path), realtime=True)) as source:
        first = source.read(5.0)
        time.sleep(0.3)  # meanwhile the reader decodes ahead into its queue
        after_wait = time.time()
        rest = drain(source)
    assert first is not None and len(rest) == 5
    assert all(f.captured_at >= after_wait for f in rest)
    assert [f.captured_at for f in rest] == sorted(f.captured_at for f in rest)


def test_truncated_video_ends_without_error(tmp_path: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    # Matroska keeps no index at the end, so the first half still opens (a cut mp4 does not).
    whole = write_video(tmp_path / "whole.mkv", frames=20).read_bytes()
    path = tmp_path / "cut.mkv"
    path.write_bytes(whole[: len(whole) // 2])
    with caplog.at_level(logging.WARNING, "crowdwatch.sources"), \
            open_source(camera(str(path))) as source:
        frames = drain(source)
        assert source.finished
    assert 0 < len(frames) < 20
    assert [value(f) for f in frames] == list(range(len(frames)))
    assert any("truncated" in r.getMessage() for r in caplog.records)


class FakeCapture:
    """A capture whose images carry its tag and a frame counter; scripted faults."""

    def __init__(self, opened: bool = True, frames: int | None = None, period: float = 0.001,
                 block_at: int | None = None, block_s: float = 0.0, tag: int = 1,
                 fps: float = 25.0, raise_at_end: str | None = None):
        self.opened = opened
        self.frames = frames
        self.period = period
        self.block_at = block_at
        self.block_s = block_s
        self.tag = tag
        self.fps = fps
        self.raise_at_end = raise_at_end
        self.count = 0
        self.released = False

    def isOpened(self) -> bool:
        return self.opened and not self.released

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.frames is not None and self.count >= self.frames:
            if self.raise_at_end:
                raise cv2.error(self.raise_at_end)
            return False, None
        if self.count == self.block_at:
            time.sleep(self.block_s)
        time.sleep(self.period)
        self.count += 1
        image = np.zeros((4, 4, 3), np.uint8)
        image[0, 0] = (self.tag, self.count % 256, 0)
        return True, image

    def get(self, prop: int) -> float:
        return self.fps if prop == cv2.CAP_PROP_FPS else 0.0

    def release(self) -> None:
        self.released = True


class Factory:
    """Hands out the given captures in order, then working ones tagged 99."""

    def __init__(self, *captures: FakeCapture, error: str | None = None):
        self.captures = list(captures)
        self.error = error
        self.calls: list[str | int] = []

    def __call__(self, source: str | int) -> FakeCapture:
        self.calls.append(source)
        if self.error:
            raise RuntimeError(self.error)
        return self.captures.pop(0) if self.captures else FakeCapture(tag=99)


def tag(frame: Frame) -> int:
    return int(frame.image[0, 0, 0])


def count(frame: Frame) -> int:
    return int(frame.image[0, 0, 1])


@pytest.mark.parametrize(("fps", "expected"), [
    (0.0, 10.0), (math.nan, 10.0), (-1.0, 10.0), (30.0, 30.0),
])
def test_video_fps_fallback(tmp_path: Path, fps: float, expected: float) -> None:
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"opened by the fake")
    factory = Factory(FakeCapture(frames=3, fps=fps))
    with open_source(camera(str(path)), factory) as source:
        frames = drain(source)
    assert factory.calls == [str(path)]
    assert [f.position_s for f in frames] == pytest.approx([0, 1 / expected, 2 / expected])


def test_file_close_stops_reader(tmp_path: Path) -> None:
    path = write_video(tmp_path / "clip.mp4", frames=5)
    source = open_source(camera(str(path), loop=True))
    assert source.read(5.0) is not None
    start = time.monotonic()
    source.close()
    source.close()
    assert time.monotonic() - start < 1.0
    assert reader_threads(str(path)) == []
    assert source.read(5.0) is None


# --- errors at open ---------------------------------------------------------------------

def _text_as_mp4(tmp: Path) -> str:
    path = tmp / "notes.mp4"
    path.write_text("not a video\n" * 50)
    return str(path)


def _empty_file(tmp: Path) -> str:
    path = tmp / "empty.mp4"
    path.touch()
    return str(path)


def _cut_mp4(tmp: Path) -> str:
    # mp4 writes its index (moov) last: without it nothing can be decoded.
    data = write_video(tmp / "whole.mp4").read_bytes()
    path = tmp / "cut.mp4"
    path.write_bytes(data[: len(data) // 2])
    return str(path)


def _empty_folder(tmp: Path) -> str:
    folder = tmp / "frames"
    folder.mkdir()
    (folder / "readme.txt").write_text("no images")
    return str(folder)


@pytest.mark.parametrize(("make", "fragment"), [
    (lambda tmp: str(tmp / "missing.mp4"), "file not found; check the camera's source path"),
    (lambda tmp: str(tmp / "videos" / "cam1"), "file not found"),
    (_empty_file, "cannot decode video"),
    (_text_as_mp4, "is it a video file?"),
    (_cut_mp4, "cannot decode video"),
    (_empty_folder, "accepted extensions: .bmp, .jpeg, .jpg, .png, .tif, .tiff, .webp"),
    (lambda tmp: "definitely not a camera", "no such file or folder, and not a URL or device"),
    (lambda tmp: "ftp://host/clip.mp4", "unsupported URL scheme 'ftp'; use rtsp://"),
], ids=["missing", "missing-no-suffix", "empty", "text", "cut-mp4", "empty-folder",
        "nonsense", "ftp"])
def test_open_errors(tmp_path: Path, make: Callable[[Path], str], fragment: str) -> None:
    source = make(tmp_path)
    with pytest.raises(SourceError) as error:
        open_source(camera(source))
    assert str(error.value).startswith(f"{source}: ")
    assert fragment in str(error.value)


def test_unsupported_scheme_error_hides_credentials() -> None:
    with pytest.raises(SourceError, match=r"ftp://\*\*\*@host/x: unsupported") as error:
        open_source(camera("ftp://user:hunter2@host/x"))
    assert "hunter2" not in str(error.value)


def test_digit_string_is_a_file_when_one_exists(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "0").touch()
    with pytest.raises(SourceError, match=r"^0: cannot decode video"):
        open_source(camera("0"))


@pytest.mark.parametrize(("kind", "loop", "expected"), [
    ("video", False, 12), ("video", True, None), ("folder", False, 5), ("folder", True, None)])
def test_expected_frames_for_the_progress_bar(tmp_path: Path, kind: str, loop: bool,
                                              expected: int | None) -> None:
    if kind == "video":
        path = write_video(tmp_path / "clip.mp4", frames=12, fps=25.0)
    else:
        path = tmp_path / "images"
        path.mkdir()
        for v in range(5):
            cv2.imwrite(str(path / f"{v}.png"), np.full((8, 8, 3), v * STEP, np.uint8))
    with open_source(camera(str(path), loop=loop)) as source:
        assert source.expected_frames == expected


# --- image folders ----------------------------------------------------------------------

def test_image_folder_in_name_order_skipping_bad_files(tmp_path: Path) -> None:
    for name, v in [("f05.tif", 5), ("f01.jpg", 1), ("f00.png", 0), ("f03.JPEG", 3),
                    ("f06.webp", 6), ("f02.bmp", 2)]:
        assert cv2.imwrite(str(tmp_path / name), np.full((24, 32, 3), v * STEP, np.uint8))
    (tmp_path / "f04.jpg").write_text("not really a jpeg")
    (tmp_path / "notes.txt").write_text("ignored, not counted")
    with open_source(camera(str(tmp_path))) as source:
        assert (source.live, source.name) == (False, str(tmp_path))
        frames = drain(source)
        assert source.frames_skipped == 1
    assert [value(f) for f in frames] == [0, 1, 2, 3, 5, 6]
    # The unreadable f04.jpg leaves a gap, as a damaged video frame does.
    assert [f.index for f in frames] == [0, 1, 2, 3, 5, 6]
    assert [f.position_s for f in frames] == pytest.approx([i / 10 for i in (0, 1, 2, 3, 5, 6)])
    assert [Path(f.source_file).name for f in frames] == [
        "f00.png", "f01.jpg", "f02.bmp", "f03.JPEG", "f05.tif", "f06.webp"]


def test_image_folder_loop(tmp_path: Path) -> None:
    for v in range(3):
        cv2.imwrite(str(tmp_path / f"{v}.png"), np.full((8, 8, 3), v * STEP, np.uint8))
    with open_source(camera(str(tmp_path), loop=True)) as source:
        frames = [source.read(5.0) for _ in range(7)]
        assert all(frames)
        assert [value(f) for f in frames] == [0, 1, 2, 0, 1, 2, 0]
        assert [f.position_s for f in frames] == pytest.approx([i / 10 for i in range(7)])
        assert not source.finished


def test_looping_folder_of_broken_images_finishes(tmp_path: Path) -> None:
    for name in ("a.jpg", "b.png"):
        (tmp_path / name).write_text("broken")
    with open_source(camera(str(tmp_path), loop=True)) as source:
        assert drain(source) == []
        assert source.finished
        assert source.frames_skipped == 2


# --- live sources (fake captures) -------------------------------------------------------

FAST = {"read_timeout_s": 0.25, "max_backoff_s": 0.1}


class RecordingBackoff(Backoff):
    def __init__(self, base: float = 0.01, cap: float = 0.04):
        super().__init__(base, cap)
        self.delays: list[float] = []

    def next_delay(self) -> float:
        delay = super().next_delay()
        self.delays.append(delay)
        return delay


@pytest.mark.parametrize(("source", "name", "target"), [
    (0, "device 0", 0),
    ("2", "device 2", 2),
    ("rtsp://user:pw@cam.local:554/s", "rtsp://***@cam.local:554/s",
     "rtsp://user:pw@cam.local:554/s"),
    ("rtsps://cam.local/s", "rtsps://cam.local/s", "rtsps://cam.local/s"),
    ("HTTPS://cam.local/video.mjpg", "HTTPS://cam.local/video.mjpg",
     "HTTPS://cam.local/video.mjpg"),
    ("rtmp://cam.local/live", "rtmp://cam.local/live", "rtmp://cam.local/live"),
])
def test_live_kinds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str | int,
                    name: str, target: str | int) -> None:
    monkeypatch.chdir(tmp_path)  # no file named "2" here
    factory = Factory(FakeCapture(opened=False))
    with open_source(camera(source), factory, backoff=Backoff(10, 10)) as live:
        assert (live.name, live.live, live.finished, live.up) == (name, True, False, False)
        wait_until(lambda: factory.calls)
        assert factory.calls == [target]


def test_live_open_returns_before_connecting() -> None:
    # The capture's open blocks until the test releases it: open_source must return while
    # the connection is still pending (no timing involved).
    release = threading.Event()
    opening = threading.Event()

    def blocked_factory(source: str | int) -> FakeCapture:
        opening.set()
        assert release.wait(10)
        return FakeCapture(opened=False)

    live = open_source(camera("rtsp://cam.local/s"), blocked_factory, backoff=Backoff(10, 10))
    assert opening.wait(10)
    assert not release.is_set() and not live.up
    release.set()
    live.close()


def test_default_factory_passes_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[object, ...]] = []

    class Recorder(FakeCapture):
        def __init__(self, *args: object):
            super().__init__(opened=False)
            calls.append(args)

    monkeypatch.setattr(cv2, "VideoCapture", Recorder)
    with open_source(camera("rtsp://cam.local/s", read_timeout_s=2.5), backoff=Backoff(10, 10)):
        wait_until(lambda: calls)
    with open_source(camera(3), backoff=Backoff(10, 10)):
        wait_until(lambda: len(calls) == 2)
    assert calls == [
        ("rtsp://cam.local/s", cv2.CAP_FFMPEG,
         [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 2500, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 2500]),
        (3,),
    ]


def test_live_keeps_only_newest_frame() -> None:
    factory = Factory(FakeCapture(period=0.001))
    with open_source(camera("rtsp://cam.local/s", **FAST), factory) as live:
        frames = []
        for _ in range(5):
            frame = live.read(2.0)
            assert frame is not None
            frames.append(frame)
            time.sleep(0.03)  # a consumer slower than the camera
        assert live.up
    # Stopped: every published frame was taken, dropped (replaced unseen) or is still waiting.
    waiting = 1 if live._latest is not None else 0
    assert live.frames_dropped == live._produced - len(frames) - waiting > 0
    indices = [f.index for f in frames]
    assert indices == sorted(set(indices))
    assert indices[-1] - indices[0] > len(indices) - 1  # frames were skipped, not queued
    assert [count(f) - 1 for f in frames] == [i % 256 for i in indices]
    for f in frames:
        assert f.position_s is None  # live frames have a capture time only
        assert abs(f.captured_at - time.time()) < 5


def test_live_recovers_after_failed_opens(caplog: pytest.LogCaptureFixture) -> None:
    factory = Factory(*(FakeCapture(opened=False) for _ in range(3)))
    backoff = RecordingBackoff(0.01, 0.04)
    caplog.set_level(logging.INFO, "crowdwatch.sources")
    with open_source(camera("rtsp://cam.local/s", **FAST), factory, backoff=backoff) as live:
        assert not live.up  # three failures take at least 70 ms of backoff
        frame = live.read(3.0)
        assert frame is not None and tag(frame) == 99
        assert live.up
        assert live.reconnects == 1
        assert len(factory.calls) == 4
    assert backoff.delays == [0.01, 0.02, 0.04]
    messages = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert sum(level == logging.WARNING and "cannot open" in m for level, m in messages) == 3
    assert any(level == logging.INFO and "reconnected" in m for level, m in messages)


@pytest.mark.parametrize("error", [None, "decoder crashed on rtsp://u:hunter2@cam.local/s"],
                         ids=["returns-false", "raises"])
def test_live_reconnects_when_read_fails(caplog: pytest.LogCaptureFixture,
                                         error: str | None) -> None:
    first = FakeCapture(frames=5, tag=1, raise_at_end=error)
    factory = Factory(FakeCapture(opened=False), first, FakeCapture(tag=2))
    backoff = RecordingBackoff(0.01, 0.04)
    caplog.set_level(logging.WARNING, "crowdwatch.sources")
    with open_source(camera("rtsp://cam.local/s", **FAST), factory, backoff=backoff) as live:
        frames = read_until(live, lambda f: tag(f) == 2)
        assert live.up
        assert live.reconnects == 2
    assert first.released
    # Frames from the first capture reset the backoff: no 0.02 for the second failure.
    assert backoff.delays == [0.01, 0.01]
    assert [f.index for f in frames] == sorted({f.index for f in frames})
    messages = [r.getMessage() for r in caplog.records]
    assert any("read failed" in m for m in messages)
    assert not any("hunter2" in m for m in messages)


def test_live_stall_marks_down_then_recovers(caplog: pytest.LogCaptureFixture) -> None:
    stalling = FakeCapture(tag=1, block_at=5, block_s=1.2)
    factory = Factory(stalling, FakeCapture(tag=2))
    caplog.set_level(logging.WARNING, "crowdwatch.sources")
    with open_source(camera("rtsp://cam.local/s", **FAST), factory,
                     backoff=Backoff(0.01, 0.04)) as live:
        first = live.read(3.0)
        wait_until(lambda: not live.up, 2.0)
        assert stalling.count == 5 and not stalling.released  # still blocked in read()
        pending = live.read(0.0)  # at most the last frame from before the stall
        assert live.read(0.2) is None
        assert any("no frame for" in r.getMessage() for r in caplog.records)
        later = read_until(live, lambda f: tag(f) == 2)
        assert live.up
        assert live.reconnects == 1
    assert stalling.released
    # The frame the blocked read finally returned (count 6) is dropped with the capture.
    frames = [f for f in (first, pending, *later) if f is not None]
    assert all(count(f) <= 5 for f in frames if tag(f) == 1)


def test_live_credentials_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    url = "rtsp://admin:p@ss-w0rd@cam.example:554/stream"
    factory = Factory(error=f"cannot connect to {url}")
    caplog.set_level(logging.DEBUG, "crowdwatch.sources")
    with open_source(camera(url), factory, backoff=Backoff(0.01, 0.02)) as live:
        wait_until(lambda: len(factory.calls) >= 3)
        assert live.name == "rtsp://***@cam.example:554/stream"
    assert factory.calls[0] == url  # the real URL still reaches the capture
    messages = [r.getMessage() for r in caplog.records]
    assert any("cam.example" in m for m in messages)
    assert not any("p@ss" in m or "admin" in m for m in messages)


@pytest.mark.parametrize("failing", [False, True], ids=["streaming", "in-backoff"])
def test_live_close_is_prompt(failing: bool) -> None:
    capture = FakeCapture(opened=not failing)
    factory = Factory(capture)
    live = open_source(camera("rtsp://cam.local/s"), factory, backoff=Backoff(10, 30))
    wait_until(lambda: factory.calls)
    if not failing:
        assert live.read(2.0) is not None
    start = time.monotonic()
    live.close()
    live.close()
    assert time.monotonic() - start < 1.0
    assert capture.released
    assert reader_threads("rtsp://cam.local/s") == []
    assert not live.up
    assert live.read(1.0) is None
