"""The pipeline with fake sources and a fake detector: wiring, dead sources, errors."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from crowdwatch.app import CallbackSink
from crowdwatch.build import build_pipeline
from crowdwatch.config import AppConfig, CameraConfig, parse_config
from crowdwatch.config.detector import TilingConfig
from crowdwatch.detect.base import Detector, Done, Image
from crowdwatch.detect.fair import FairLane
from crowdwatch.health import HealthState
from crowdwatch.outputs.metrics import MetricsSink
from crowdwatch.pipeline import Pipeline
from crowdwatch.sources import FrameSource
from crowdwatch.types import Detections, Frame, FrameResult

IMAGE = np.zeros((100, 200, 3), np.uint8)


class FakeSource(FrameSource):
    """Hands out `frames` frames, then (live) stays down or (file) finishes."""

    def __init__(self, frames: int, live: bool = False, fps: float = 10.0) -> None:
        self.name = "fake"
        self.fps = fps  # frame times: index / fps, as a file source gives them
        self.live = live
        self.frames_dropped = 0
        self.frames_skipped = 0
        self.reconnects = 0
        self._left = frames
        self._index = 0
        self.closed = False
        self.down_reads = 0

    def read(self, timeout: float) -> Frame | None:
        if self._left > 0:
            self._left -= 1
            self._index += 1
            now = time.time()
            image = IMAGE.copy()
            image[0, 0, 0] = (self._index - 1) % 256  # lets a fake detector tell frames apart
            return Frame(image, self._index - 1, (self._index - 1) / self.fps, now)
        if self.live:
            self.down_reads += 1
            time.sleep(min(timeout, 0.01))
        return None

    @property
    def finished(self) -> bool:
        return not self.live and self._left == 0

    @property
    def up(self) -> bool:
        return self._left > 0

    def close(self) -> None:
        self.closed = True


def frame_index(image: Image) -> int:
    return int(image[0, 0, 0])


class FnDetector(Detector):
    """A synchronous Detector that calls a function on each image."""

    name = "fake"

    def __init__(self, fn) -> None:
        self.fn = fn

    def submit(self, image: Image) -> Done:
        return Done(self.fn(image))

    def prepare(self, width: int, height: int) -> None:
        pass


def _two_people(image: Image) -> Detections:
    # One person in the left half, one in the right half of the 200x100 image.
    xyxy = np.array([[10, 10, 30, 90], [150, 10, 170, 90]], np.float32)
    return Detections(xyxy, np.array([0.9, 0.8], np.float32))


two_people = FnDetector(_two_people)


def config(*cameras: str) -> AppConfig:
    zone = {"name": "left", "polygon": [[0, 0], [0.5, 0], [0.5, 1], [0, 1]], "normalized": True,
            "capacity": 2}
    return parse_config({"cameras": [{"id": c, "source": f"{c}.mp4", "zones": [zone]}
                                     for c in cameras]})


def run(cfg: AppConfig, sources: dict[str, FakeSource], sinks: list,
        max_frames: int | None = None, detect=two_people) -> Pipeline:
    pipeline = build_pipeline(cfg, detect, sinks, max_frames=max_frames,
                        source_opener=lambda camera: sources[camera.id])
    pipeline.run()
    return pipeline


def test_every_frame_of_every_camera_is_analysed() -> None:
    results: list[FrameResult] = []
    lock = threading.Lock()

    def collect(result: FrameResult) -> None:
        with lock:
            results.append(result)

    sources = {"a": FakeSource(7), "b": FakeSource(4)}
    pipeline = run(config("a", "b"), sources, [CallbackSink(collect)])
    assert pipeline.processed == {"a": 7, "b": 4}
    assert sorted(r.frame_index for r in results if r.camera == "a") == list(range(7))
    assert all(r.people == 2 and r.zones["left"].people == 1 for r in results)
    assert all(r.zones["left"].occupancy == 0.5 for r in results)
    assert all(s.closed for s in sources.values())


def test_max_frames_stops_each_camera() -> None:
    pipeline = run(config("a"), {"a": FakeSource(50)}, [], max_frames=5)
    assert pipeline.processed == {"a": 5}


def test_dead_live_source_never_reports_zero_people() -> None:
    cfg = config("cam")
    health = HealthState(["cam"])
    exporter = MetricsSink(cfg, health)
    source = FakeSource(3, live=True)
    pipeline = build_pipeline(cfg, two_people, [exporter], health,
                        source_opener=lambda camera: source)
    worker = threading.Thread(target=pipeline.run)
    worker.start()
    deadline = time.monotonic() + 10
    while source.down_reads < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    pipeline.stop()
    worker.join(10)
    assert not worker.is_alive()
    text = generate_latest(exporter.registry).decode()
    values = {(s.name, tuple(sorted(s.labels.items()))): s.value
              for f in text_string_to_metric_families(text) for s in f.samples}
    assert values[("crowdwatch_source_up", (("camera", "cam"),))] == 0
    # The zone keeps its last real count; it does not fall to 0 because the camera died.
    assert values[("crowdwatch_zone_people", (("camera", "cam"), ("zone", "left")))] == 1
    assert values[("crowdwatch_frames_processed_total", (("camera", "cam"),))] == 3


def test_an_error_in_a_camera_thread_reaches_the_caller_and_closes_sources() -> None:
    def _broken(image: Image) -> Detections:
        raise RuntimeError("detector broke")

    broken = FnDetector(_broken)

    sources = {"a": FakeSource(5)}
    with pytest.raises(RuntimeError, match="detector broke"):
        run(config("a"), sources, [], detect=broken)
    assert sources["a"].closed


def test_a_source_that_fails_to_open_closes_the_ones_already_open() -> None:
    opened: list[FakeSource] = []

    def opener(camera: CameraConfig) -> FakeSource:
        if camera.id == "b":
            raise FileNotFoundError("b.mp4")
        opened.append(FakeSource(1))
        return opened[-1]

    with pytest.raises(FileNotFoundError):
        build_pipeline(config("a", "b"), two_people, [], source_opener=opener)
    assert opened and all(s.closed for s in opened)


# --- pipelined detectors -------------------------------------------------------------------


class FakePending:
    def __init__(self, detector: FakeAsyncDetect, image: Image) -> None:
        self._detector = detector
        self._image = image
        self.stage_seconds = {"preprocess": 0.001, "inference": 0.01, "postprocess": 0.001}

    def done(self) -> bool:
        return self._detector.ready

    def result(self) -> Detections:
        with self._detector.lock:
            self._detector.in_flight -= 1
        return self._detector(self._image)


class FakeAsyncDetect(Detector):
    """Detects frame.index % 5 people; counts the frames submitted but not yet collected."""

    def __init__(self, ready: bool = False) -> None:
        # ready=False: results report not done, so only a full pipeline or the end of the
        # source makes the pipeline collect them.
        self.ready = ready
        self.lock = threading.Lock()
        self.in_flight = 0
        self.most_in_flight = 0
        self.submitted: list[int] = []

    name = "fake-async"

    def __call__(self, image: Image) -> Detections:
        n = frame_index(image) % 5
        xyxy = np.tile(np.array([[10, 10, 30, 90]], np.float32), (n, 1))
        return Detections(xyxy, np.full(n, 0.9, np.float32))

    def submit(self, image: Image) -> FakePending:
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            self.submitted.append(frame_index(image))
        return FakePending(self, image)

    def prepare(self, width: int, height: int) -> None:
        pass


def test_pipelined_detector_keeps_frames_in_order_and_few_in_flight() -> None:
    from crowdwatch.pipeline import PIPELINE_DEPTH

    results: list[FrameResult] = []
    detect = FakeAsyncDetect()
    pipeline = run(config("a"), {"a": FakeSource(12)}, [CallbackSink(results.append)],
                   detect=detect)
    assert pipeline.processed == {"a": 12}
    assert [r.frame_index for r in results] == list(range(12))
    assert [r.people_raw for r in results] == [i % 5 for i in range(12)]
    assert 1 < detect.most_in_flight <= PIPELINE_DEPTH
    assert detect.in_flight == 0
    assert {"wait", "decode", "preprocess", "inference", "postprocess", "detect", "zones"} <= set(
        results[0].stage_seconds)


@pytest.mark.parametrize(("every", "detected"), [(1, list(range(7))), (3, [0, 3, 6])])
def test_detect_every_reuses_the_last_people_between_detections(every: int,
                                                                detected: list[int]) -> None:
    cfg = config("a")
    cfg = cfg.model_copy(update={"detector": cfg.detector.model_copy(
        update={"detect_every": every})})
    results: list[FrameResult] = []
    detect = FakeAsyncDetect()
    run(cfg, {"a": FakeSource(7)}, [CallbackSink(results.append)], detect=detect)
    assert detect.submitted == detected
    # Each frame shows the people of the newest detected frame at or before it.
    assert [r.people_raw for r in results] == [(i - i % every) % 5 for i in range(7)]


class BlockedSource(FakeSource):
    """A live camera whose reads hang until their timeout and never deliver a frame."""

    def __init__(self) -> None:
        super().__init__(0, live=True)

    def read(self, timeout: float) -> Frame | None:
        self.down_reads += 1
        time.sleep(timeout)
        return None


def test_a_dead_camera_does_not_hold_up_the_others() -> None:
    cfg = config("dead", "ok")
    sources = {"dead": BlockedSource(), "ok": FakeSource(30)}
    pipeline = build_pipeline(cfg, FakeAsyncDetect(), [],
                        source_opener=lambda camera: sources[camera.id])
    worker = threading.Thread(target=pipeline.run)
    worker.start()
    deadline = time.monotonic() + 10  # guards against a hang; not a speed check
    while pipeline.processed["ok"] < 30 and time.monotonic() < deadline:
        time.sleep(0.01)
    pipeline.stop()
    worker.join(10)
    assert pipeline.processed == {"dead": 0, "ok": 30}
    assert sources["dead"].down_reads >= 1


def test_a_live_frame_is_handed_on_when_its_result_is_ready() -> None:
    # No waiting for the next frame (or a full pipeline): frame age stays low.
    results: list[FrameResult] = []
    source = FakeSource(3, live=True)
    pipeline = build_pipeline(config("cam"), FakeAsyncDetect(ready=True),
                        [CallbackSink(results.append)], source_opener=lambda camera: source)
    worker = threading.Thread(target=pipeline.run)
    worker.start()
    deadline = time.monotonic() + 10  # guards against a hang; not a speed check
    while len(results) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    running = worker.is_alive()
    pipeline.stop()
    worker.join(10)
    assert running and [r.frame_index for r in results] == [0, 1, 2]


# Right half of the 200x100 image, in pixels and normalized; two_people's right person
# stands at (160, 90), the left one at (20, 90).
RIGHT_HALF_PX = {"polygon": [[100, 0], [200, 0], [200, 100], [100, 100]]}
RIGHT_HALF_NORM = {"polygon": [[0.5, 0], [1, 0], [1, 1], [0.5, 1]], "normalized": True}
FEET_ROW = {"polygon": [[0, 85], [200, 85], [200, 90], [0, 90]]}  # both feet on its edge
ABOVE_FEET = {"polygon": [[0, 0], [200, 0], [200, 80], [0, 80]]}  # bodies, not feet


@pytest.mark.parametrize(
    ("regions", "people"),
    [([], 2), ([RIGHT_HALF_PX], 1), ([RIGHT_HALF_NORM], 1), ([FEET_ROW], 0), ([ABOVE_FEET], 2)],
)
def test_people_standing_in_ignore_regions_are_not_counted(regions: list, people: int) -> None:
    cfg = parse_config({"cameras": [{"id": "a", "source": "a.mp4", "ignore": regions}],
                        "detector": {"tiling": {"mode": "off"}}})
    results: list[FrameResult] = []
    run(cfg, {"a": FakeSource(3)}, [CallbackSink(results.append)])
    assert [r.people_raw for r in results] == [people] * 3
    assert all(len(r.detections) == people for r in results)


class MarkedSource(FakeSource):
    """A FakeSource whose images carry `mark` in every pixel's red channel."""

    def __init__(self, frames: int, mark: int) -> None:
        super().__init__(frames)
        self.mark = mark

    def read(self, timeout: float) -> Frame | None:
        frame = super().read(timeout)
        if frame is not None:
            frame.image[..., 2] = self.mark
        return frame


def test_tiling_auto_is_decided_per_camera_on_its_first_frames() -> None:
    # Camera "crowd" shows 20 people 20 px tall (64 model px at imgsz 640 on a 200 px wide
    # frame: < large_px 96, and 20 >= crowd_people 15); "sparse" shows two_people (80 px =
    # 256 model px). After probe_frames=2 whole frames, only "crowd" gets tiles: zoom 2 gives
    # 100 px tiles, stretched to 3 columns of 80 px (overlap 20 px) by 1 row of 100 px.
    small = np.array([[10 * i, 40, 10 * i + 8, 60] for i in range(20)], np.float32)
    calls: list[tuple[int, tuple[int, ...]]] = []
    lock = threading.Lock()

    def detect(image: Image) -> Detections:
        mark = int(image[0, 0, 2])
        with lock:
            calls.append((mark, image.shape[:2]))
        if mark == 1 and image.shape[:2] == (100, 200):
            return Detections(small, np.full(20, 0.9, np.float32))
        return _two_people(image) if mark == 2 else Detections.empty()

    cfg = parse_config({"cameras": [{"id": "crowd", "source": "c.mp4"},
                                    {"id": "sparse", "source": "s.mp4"}],
                        "detector": {"tiling": {"mode": "auto", "probe_frames": 2}}})
    results: list[FrameResult] = []
    sources = {"crowd": MarkedSource(5, 1), "sparse": MarkedSource(5, 2)}
    run(cfg, sources, [CallbackSink(results.append)], detect=FnDetector(detect))
    crowd = [shape for mark, shape in calls if mark == 1]
    sparse = [shape for mark, shape in calls if mark == 2]
    assert crowd == [(100, 200)] * 2 + [(100, 200), (100, 80), (100, 80), (100, 80)] * 3
    assert sparse == [(100, 200)] * 5
    assert all(r.people_raw == 20 for r in results if r.camera == "crowd")
    # Each result tells the tiles its own detection ran on (crowdwatch_detector_tiles).
    assert [r.tiles for r in results if r.camera == "crowd"] == [0, 0, 3, 3, 3]
    assert [r.tiles for r in results if r.camera == "sparse"] == [0] * 5


class _Lazy:
    """A Pending that is never done before result() is asked for (a busy detector)."""

    def __init__(self, compute) -> None:
        self._compute = compute
        self.stage_seconds: dict[str, float] = {}

    def done(self) -> bool:
        return False

    def result(self) -> Detections:
        return self._compute()


class LazyDetector(FnDetector):
    """FnDetector whose results wait until collected: the pipeline keeps frames in flight."""

    def submit(self, image: Image) -> _Lazy:  # type: ignore[override]
        return _Lazy(lambda: self.fn(image))


def test_each_result_reports_the_tiles_its_frame_ran_on_with_frames_in_flight() -> None:
    # 20 small people (as above): with probe_frames 2, frames 0-1 are probed whole and the
    # tiler chooses when frame 2 is submitted (block end), even though frames 0-1 were not
    # collected yet. Frame 2 runs on 3 tiles and its result must say so.
    small = np.array([[10 * i, 40, 10 * i + 8, 60] for i in range(20)], np.float32)
    shapes: list[tuple[int, ...]] = []

    def detect(image: Image) -> Detections:
        shapes.append(image.shape[:2])
        if image.shape[:2] == (100, 200):
            return Detections(small, np.full(20, 0.9, np.float32))
        return Detections.empty()

    cfg = parse_config({"cameras": [{"id": "crowd", "source": "c.mp4"}],
                        "detector": {"tiling": {"mode": "auto", "probe_frames": 2}}})
    results: list[FrameResult] = []
    run(cfg, {"crowd": FakeSource(5)}, [CallbackSink(results.append)],
        detect=LazyDetector(detect))
    assert shapes.count((100, 80)) == 3 * 3  # frames 2, 3 and 4 ran on 3 tiles each
    assert [r.tiles for r in results] == [0, 0, 3, 3, 3]


@pytest.mark.parametrize(("frames", "crowd", "tiles"), [
    # Shorter than the 4-frame probe: decided when the source ends, for all its frames.
    (3, True, [3, 3, 3]),
    (1, True, [3]),
    (3, False, [0, 0, 0]),
    # Longer: the probe's frames stay whole, as before; the choice applies from frame 4 on.
    (6, True, [0, 0, 0, 0, 3, 3]),
])
def test_a_source_shorter_than_the_probe_gets_the_choice_a_longer_one_gets(
        frames: int, crowd: bool, tiles: list[int]) -> None:
    small = np.array([[10 * i, 40, 10 * i + 8, 60] for i in range(20)], np.float32)
    shapes: list[tuple[int, ...]] = []

    def detect(image: Image) -> Detections:
        shapes.append(image.shape[:2])
        if image.shape[:2] == (100, 200):
            return (Detections(small, np.full(20, 0.9, np.float32)) if crowd
                    else _two_people(image))
        return Detections.empty()

    cfg = parse_config({"cameras": [{"id": "crowd", "source": "c.mp4"}],
                        "detector": {"tiling": {"mode": "auto", "probe_frames": 4}}})
    results: list[FrameResult] = []
    run(cfg, {"crowd": FakeSource(frames)}, [CallbackSink(results.append)],
        detect=LazyDetector(detect))
    assert [r.tiles for r in results] == tiles
    assert [r.frame_index for r in results] == list(range(frames))
    assert shapes.count((100, 80)) == sum(tiles)  # each tiled frame ran on its 3 tiles
    assert all(r.people_raw == (20 if crowd else 2) for r in results)


def test_a_zone_outside_the_frame_is_an_error_at_the_first_frame() -> None:
    # Like a line outside the frame: it would export 0 forever and look healthy.
    cfg = parse_config({"cameras": [{"id": "gate", "source": "gate.mp4", "zones": [
        {"name": "far", "polygon": [[500, 0], [600, 0], [600, 50]]}]}]})
    from crowdwatch.errors import ConfigError

    with pytest.raises(ConfigError) as error:
        run(cfg, {"gate": FakeSource(3)}, [])
    assert str(error.value) == (
        "cameras[0].zones[0] (far): the zone lies outside the 200x100 frame (x 500..600, "
        "y 0..50); give its polygon in pixels of this image, or 0-1 with normalized: true")


class SlowLiveSource(FakeSource):
    """A live source whose frames take `wait_s` to arrive and took 7 ms to decode."""

    def __init__(self, frames: int, wait_s: float) -> None:
        super().__init__(frames, live=False)
        self.wait_s = wait_s

    def read(self, timeout: float) -> Frame | None:
        frame = super().read(timeout)
        if frame is None:
            return None
        time.sleep(self.wait_s)
        return Frame(frame.image, frame.index, frame.position_s, frame.captured_at, 0.007)


def test_waiting_for_a_frame_is_not_counted_as_decoding() -> None:
    results: list[FrameResult] = []
    run(config("a"), {"a": SlowLiveSource(3, 0.05)}, [CallbackSink(results.append)])
    assert [r.stage_seconds["decode"] for r in results] == [0.007] * 3
    assert all(r.stage_seconds["wait"] >= 0.05 for r in results)


@pytest.mark.parametrize(("frames", "max_frames"), [(3, None), (10, 3)], ids=["eof", "max-frames"])
def test_an_ended_file_is_finished_and_not_up_the_same_way(frames: int,
                                                          max_frames: int | None) -> None:
    now = [0.0]
    health = HealthState(["a"], stale_after_s=30.0, clock=lambda: now[0])
    pipeline = build_pipeline(config("a"), two_people, [], health, max_frames,
                        source_opener=lambda camera: FakeSource(frames))
    pipeline.run()
    assert pipeline.processed == {"a": 3}
    assert health.sources()["a"].up is False
    now[0] = 3600.0  # long after: a finished camera never turns stalled
    assert health.cameras()["a"]["state"] == "finished"
    assert health.ready() and health.alive()


class FolderSource(FakeSource):
    sequence = False  # like sources.files.ImageFolderSource: maybe unrelated pictures


def _two_on_even_frames(image: Image) -> Detections:
    return _two_people(image) if frame_index(image) % 2 == 0 else Detections.empty()


@pytest.mark.parametrize(
    ("source_type", "counting", "people"),
    [
        # persistence over 3 frames holds 2 through each one-frame drop to 0
        (FakeSource, {"window": 3}, [2, 2, 2, 2, 2]),
        # a folder is not smoothed unless the config names a smoothing
        (FolderSource, {"window": 3}, [2, 0, 2, 0, 2]),
        (FolderSource, {"window": 3, "smoothing": "persistence"}, [2, 2, 2, 2, 2]),
    ],
)
def test_image_folders_are_not_smoothed_unless_configured(source_type: type, counting: dict,
                                                          people: list[int]) -> None:
    cfg = parse_config({"cameras": [{"id": "a", "source": "a"}], "counting": counting})
    results: list[FrameResult] = []
    run(cfg, {"a": source_type(5)}, [CallbackSink(results.append)],
        detect=FnDetector(_two_on_even_frames))
    assert [r.people_raw for r in results] == [2, 0, 2, 0, 2]
    assert [r.people for r in results] == people


@pytest.mark.parametrize(
    ("fps", "every", "dip", "people"),
    [
        # 0.2 s at 10 frames/s: 3 frames, a one-frame dip is held back.
        (10.0, 1, {2}, [2, 2, 2, 2, 2, 2]),
        # 0.2 s at 2 frames/s: 1 frame, the same dip passes straight through.
        (2.0, 1, {2}, [2, 2, 0, 2, 2, 2]),
        # 0.2 s at 25 frames/s: 6 frames, a dip of 5 frames is held back.
        (25.0, 1, {2, 3, 4, 5, 6}, [2] * 8),
        # The smoothers update on every frame, detected or not: the rate is that of all analysed
        # frames, so 10 frames/s with detect_every 2 is still 3 frames, and a missed detection
        # (shown on 2 frames) is held back ...
        (10.0, 2, {2}, [2, 2, 2, 2, 2, 2]),
        # ... with detect_every 3 a missed detection is shown on 3 frames (0.3 s, longer than
        # the window): the count turns 0 on the third and back 3 frames after the next detection.
        (10.0, 3, {3}, [2, 2, 2, 2, 2, 0, 0, 0, 2]),
    ],
)
def test_the_count_filter_spans_a_time_of_analysed_frames(fps: float, every: int, dip: set[int],
                                                          people: list[int]) -> None:
    cfg = parse_config({"cameras": [{"id": "a", "source": "a.mp4"}],
                        "detector": {"detect_every": every}})
    frames = len(people)
    results: list[FrameResult] = []
    detect = FnDetector(lambda image: Detections.empty() if frame_index(image) in dip
                        else _two_people(image))
    run(cfg, {"a": FakeSource(frames, fps=fps)}, [CallbackSink(results.append)], detect=detect)
    assert [r.people for r in results] == people


def test_a_ground_plane_error_at_the_first_frame_names_its_camera() -> None:
    from crowdwatch.errors import ConfigError

    # Image points of a ground square seen in perspective: the horizon is the line y = 50,
    # which the normalised whole-frame zone (y 0..100 in the 200x100 frame) crosses.
    plane = {"image_points": [[0, 100], [100, 100], [75, 75], [25, 75]],
             "ground_points": [[0, 0], [4, 0], [4, 4], [0, 4]]}
    cfg = parse_config({"cameras": [
        {"id": "ok", "source": "ok.mp4"},
        {"id": "gate", "source": "gate.mp4", "ground_plane": plane, "zones": [
            {"name": "z", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]], "normalized": True}]}]})
    with pytest.raises(ConfigError) as error:
        run(cfg, {"ok": FakeSource(2), "gate": FakeSource(2)}, [])
    assert str(error.value).startswith(
        "cameras[1].zones[0].polygon (z): a zone reaches above the horizon")


class ScriptedLiveSource(FakeSource):
    """A live source following a script: a number is a frame with that many people, None a
    read that finds the source down. After the script it stays down. `on_down_read(n)` runs
    inside the n-th down read, while the camera loop is waiting on the source."""

    def __init__(self, script: list[int | None], on_down_read) -> None:
        super().__init__(0, live=True)
        self.script = list(script)
        self.on_down_read = on_down_read
        self.was_up = False

    def read(self, timeout: float) -> Frame | None:
        step = self.script.pop(0) if self.script else None
        if step is None:
            self.was_up = False
            self.down_reads += 1
            self.on_down_read(self.down_reads)
            time.sleep(0.001)
            return None
        self.was_up = True
        self._index += 1
        image = IMAGE.copy()
        image[0, 0, 1] = step
        return Frame(image, self._index - 1, None, 1000.0 + self._index)

    @property
    def up(self) -> bool:
        return self.was_up


def _people_in_left_half(image: Image) -> Detections:
    n = int(image[0, 0, 1])
    xyxy = np.tile(np.array([[10, 10, 30, 90]], np.float32), (n, 1))
    return Detections(xyxy, np.full(n, 0.9, np.float32))


def test_camera_series_hold_their_last_values_during_an_outage() -> None:
    cfg = parse_config({
        "cameras": [{"id": "cam", "source": "rtsp://cam.local/s", "zones": [
            {"name": "left", "polygon": [[0, 0], [0.5, 0], [0.5, 1], [0, 1]],
             "normalized": True, "capacity": 2}]}],
        "counting": {"smoothing": "none"}})
    health = HealthState(["cam"])
    exporter = MetricsSink(cfg, health)
    results: list[FrameResult] = []
    snapshots: dict[int, dict] = {}

    def snapshot(down_read: int) -> None:
        if down_read in (1, 4, 8):
            text = generate_latest(exporter.registry).decode()
            snapshots[down_read] = {
                s.name: s.value for f in text_string_to_metric_families(text)
                for s in f.samples if s.labels.get("camera") == "cam" and "le" not in s.labels
                and "stage" not in s.labels}
            snapshots[down_read]["results"] = len(results)

    # 3 frames of 3 people, down for 4 reads, 2 frames of 1 person, then down for good.
    source = ScriptedLiveSource([3, 3, 3, None, None, None, None, 1, 1], snapshot)
    pipeline = build_pipeline(cfg, FnDetector(_people_in_left_half),
                        [exporter, CallbackSink(results.append)], health,
                        source_opener=lambda camera: source)
    worker = threading.Thread(target=pipeline.run)
    worker.start()
    deadline = time.monotonic() + 10
    while source.down_reads < 8 and time.monotonic() < deadline:
        time.sleep(0.01)
    pipeline.stop()
    worker.join(10)
    assert not worker.is_alive()

    during, after = snapshots[4], snapshots[8]
    # Down after 3 frames: every count keeps its last real value, never 0.
    assert during["results"] == 3
    assert during["crowdwatch_source_up"] == 0
    assert during["crowdwatch_camera_people"] == 3
    assert during["crowdwatch_camera_people_raw"] == 3
    assert during["crowdwatch_zone_people"] == 3
    assert during["crowdwatch_zone_occupancy_ratio"] == 1.5
    assert during["crowdwatch_zone_level"] == 2
    assert during["crowdwatch_frames_processed_total"] == 3
    assert during["crowdwatch_last_frame_timestamp_seconds"] == 1003.0
    assert snapshots[1]["crowdwatch_camera_people"] == 3
    # Back for 2 frames of 1 person, then down again: the new values hold.
    assert after["results"] == 5
    assert after["crowdwatch_camera_people"] == 1
    assert after["crowdwatch_zone_people"] == 1
    assert after["crowdwatch_zone_occupancy_ratio"] == 0.5
    assert after["crowdwatch_frames_processed_total"] == 5
    assert after["crowdwatch_last_frame_timestamp_seconds"] == 1005.0
    assert after["crowdwatch_source_up"] == 0
    assert [r.people for r in results] == [3, 3, 3, 1, 1]


@pytest.mark.parametrize(("cameras", "fair_share", "shared"), [
    (("a",), True, False),  # one camera has the detector to itself: no admission at all
    (("a", "b"), True, True),
    (("a", "b", "c"), False, False),  # detector.fair_share: false, first come first served
])
def test_several_cameras_submit_through_a_fair_share(cameras: tuple[str, ...], fair_share: bool,
                                                     shared: bool) -> None:
    cfg = config(*cameras)
    # Tiling off: each camera then submits straight to its lane (or the shared detector).
    cfg = cfg.model_copy(update={"detector": cfg.detector.model_copy(
        update={"fair_share": fair_share, "tiling": TilingConfig(mode="off")})})
    detect = FakeAsyncDetect(ready=True)
    pipeline = build_pipeline(cfg, detect, [], source_opener=lambda camera: FakeSource(6))
    shares = {c.detector.share for c in pipeline.chains if isinstance(c.detector, FairLane)}
    assert bool(shares) == shared
    if shared:
        assert len(shares) == 1 and len(pipeline.chains) == len(cameras)
        share = shares.pop()
        assert share.detector is detect and share.capacity >= 2
    else:
        assert all(c.detector is detect for c in pipeline.chains)
    pipeline.run()
    assert pipeline.processed == dict.fromkeys(cameras, 6)
    assert sorted(detect.submitted) == sorted(list(range(6)) * len(cameras))
    assert detect.in_flight == 0
