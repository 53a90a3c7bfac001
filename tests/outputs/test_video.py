"""VideoRecorder and RecordingSink: a playable H.264 MP4 per camera, and skipped frames counted
instead of blocking."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from crowdwatch.outputs.video import RecordingSink, VideoRecorder, recording_path
from crowdwatch.types import FrameResult

av = pytest.importorskip("av", reason="PyAV (pip install av) is needed for recordings")


def _frame(i: int, width: int = 320, height: int = 240) -> np.ndarray:
    image = np.zeros((height, width, 3), np.uint8)
    image[:, (i * 7) % width] = 255  # a moving bar: frames differ
    return image


def _result(i: int, fps: float = 10.0) -> FrameResult:
    return FrameResult("cam0", i, i / fps, time.time(), 0, 0)


def test_records_every_frame_to_a_playable_mp4(tmp_path: Path) -> None:
    path = tmp_path / "cam0.mp4"
    recorder = VideoRecorder(path, fps=10, queue_size=64)
    for i in range(30):
        assert recorder.write(_frame(i), _result(i))
        time.sleep(0.002)
    assert not path.exists()  # still being written, as cam0.mp4.part
    recorder.close()
    assert recorder.frames_written == 30 and recorder.frames_skipped == 0
    assert not recorder.part_path.exists()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        frames = sum(1 for _ in container.decode(stream))
        assert frames == 30
        assert container.duration / 1e6 == pytest.approx(3.0, abs=0.15)


def test_odd_size_and_size_change_are_handled(tmp_path: Path) -> None:
    recorder = VideoRecorder(tmp_path / "odd.mp4", queue_size=16, width=161)
    recorder.write(_frame(0, 321, 241), _result(0))
    recorder.write(_frame(1, 640, 480), _result(1))
    recorder.close()
    with av.open(str(tmp_path / "odd.mp4")) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (160, 120)
        assert sum(1 for _ in container.decode(stream)) == 2


class SlowEncoder:
    """Takes 50 ms a frame: the recorder must skip frames rather than wait."""

    def __init__(self) -> None:
        self.frames = 0
        self.closed = threading.Event()

    def encode(self, image: np.ndarray, pts_ms: int) -> None:
        time.sleep(0.05)
        self.frames += 1

    def close(self) -> None:
        self.closed.set()


def test_a_slow_writer_skips_and_counts_frames(tmp_path: Path) -> None:
    encoder = SlowEncoder()
    recorder = VideoRecorder(tmp_path / "slow.mp4", queue_size=2,
                             encoder_factory=lambda path, w, h: encoder)
    started = time.perf_counter()
    accepted = [recorder.write(_frame(i), _result(i)) for i in range(40)]
    assert time.perf_counter() - started < 0.2  # never waited for the 50 ms encoder
    recorder.close()
    assert recorder.frames_skipped > 0
    assert accepted.count(False) == recorder.frames_skipped
    assert recorder.frames_written == encoder.frames == 40 - recorder.frames_skipped
    assert encoder.closed.is_set()


def test_render_runs_on_the_writer_thread(tmp_path: Path) -> None:
    threads: list[str] = []

    def render(image: np.ndarray, result: FrameResult) -> np.ndarray:
        threads.append(threading.current_thread().name)
        return image

    recorder = VideoRecorder(tmp_path / "r.mp4", render=render,
                             encoder_factory=lambda path, w, h: SlowEncoder())
    recorder.write(_frame(0), _result(0))
    recorder.close()
    assert threads and threads[0] != threading.current_thread().name


def test_an_encoder_failure_is_reported_by_close(tmp_path: Path) -> None:
    def broken(path: Path, width: int, height: int) -> SlowEncoder:
        raise OSError("disk full")

    recorder = VideoRecorder(tmp_path / "x.mp4", encoder_factory=broken)
    recorder.write(_frame(0), _result(0))
    time.sleep(0.1)
    recorder.write(_frame(1), _result(1))  # taken, and skipped while the disk is full
    with pytest.raises(RuntimeError, match="disk full"):
        recorder.close()
    assert (recorder.frames_written, recorder.frames_skipped) == (0, 2)
    assert list(tmp_path.iterdir()) == []  # no .part left behind


class FileEncoder:
    """Writes one line per frame into its file; fails while `disk["full"]`."""

    def __init__(self, path: Path, disk: dict[str, bool]) -> None:
        self.path, self.disk, self.frames = path, disk, 0
        path.write_text("")

    def encode(self, image: np.ndarray, pts_ms: int) -> None:
        if self.disk["full"]:
            raise OSError(28, "No space left on device")
        self.frames += 1

    def close(self) -> None:
        self.path.write_text("frame\n" * self.frames)


def test_recording_resumes_in_a_new_file_when_space_returns(tmp_path: Path) -> None:
    disk = {"full": False}
    now = [0.0]
    recorder = VideoRecorder(tmp_path / "cam-20260101-120000.mp4", queue_size=64,
                             encoder_factory=lambda path, w, h: FileEncoder(path, disk),
                             retry_s=5.0, clock=lambda: now[0])

    def write(index: int) -> None:
        recorder.write(_frame(index), _result(index))
        deadline = time.monotonic() + 5
        while recorder._queue.qsize() and time.monotonic() < deadline:  # written in order
            time.sleep(0.01)
        time.sleep(0.05)

    for index in range(3):
        write(index)
    disk["full"] = True
    write(3)        # fails: the first file is finished with its 3 frames
    disk["full"] = False
    write(4)        # within the retry interval: skipped
    now[0] = 6.0
    write(5)
    write(6)
    with pytest.raises(RuntimeError, match="No space left"):
        recorder.close()  # reported, so the run ends non-zero
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["cam-20260101-120000-2.mp4", "cam-20260101-120000.mp4"]
    assert (tmp_path / "cam-20260101-120000.mp4").read_text() == "frame\n" * 3
    assert (tmp_path / "cam-20260101-120000-2.mp4").read_text() == "frame\n" * 2
    assert (recorder.frames_written, recorder.frames_skipped) == (5, 2)


def test_recording_path_is_safe(tmp_path: Path) -> None:
    path = recording_path(tmp_path, "cam/../x", 0.0)
    assert path.parent == tmp_path and "/" not in path.name and path.suffix == ".mp4"


class ListEncoder:
    """Keeps the size it was opened with and the frames' pts."""

    def __init__(self, width: int, height: int) -> None:
        self.size = (width, height)
        self.pts: list[int] = []

    def encode(self, image: np.ndarray, pts_ms: int) -> None:
        self.pts.append(pts_ms)

    def close(self) -> None:
        pass


def _with_image(camera: str, i: int, image: np.ndarray | None) -> FrameResult:
    return FrameResult(camera, i, i / 10, time.time(), 0, 0, image=image)


def test_recording_sink_keeps_one_file_per_camera(tmp_path: Path) -> None:
    encoders: dict[str, ListEncoder] = {}

    def recorder_for(camera: str) -> VideoRecorder:
        def factory(path: Path, width: int, height: int) -> ListEncoder:
            encoders[camera] = ListEncoder(width, height)
            return encoders[camera]

        return VideoRecorder(tmp_path / f"{camera}.mp4", queue_size=64,
                             encoder_factory=factory)

    sink = RecordingSink(recorder_for)
    for i in range(5):
        sink.write(_with_image("a", i, _frame(i, 64, 48)))
        sink.write(_with_image("b", i, _frame(i, 32, 24)))
    sink.write(_with_image("c", 0, None))  # no image: nothing to record, no file
    sink.close()
    sink.write(_with_image("d", 0, _frame(0)))  # after close: no new recorder
    assert sorted(sink.recorders) == ["a", "b"]
    assert encoders["a"].size == (64, 48) and encoders["b"].size == (32, 24)
    # 10 fps positions: 0, 100, ... 400 ms.
    assert encoders["a"].pts == [0, 100, 200, 300, 400]


def test_recording_sink_exports_written_and_skipped_frames(tmp_path: Path) -> None:
    encoder = SlowEncoder()
    sink = RecordingSink(lambda camera: VideoRecorder(
        tmp_path / "slow.mp4", queue_size=2, encoder_factory=lambda path, w, h: encoder))
    for i in range(20):
        sink.write(_with_image("cam0", i, _frame(i)))
    sink.close()
    registry = CollectorRegistry()
    registry.register(sink)
    recorder = sink.recorders["cam0"]
    skipped = registry.get_sample_value("crowdwatch_recording_frames_skipped_total",
                                        {"camera": "cam0"})
    written = registry.get_sample_value("crowdwatch_recording_frames_written_total",
                                        {"camera": "cam0"})
    assert skipped == recorder.frames_skipped > 0
    assert written == encoder.frames == 20 - skipped
