"""`crowdwatch bench`: crowdwatch's speed against the plain ultralytics loop, side by side.

Scenarios, all on the PETS2009 clip and H.264 copies of it made by ffmpeg:

- single: one stream per clip (768x576, 1280x720, 1920x1080); the baseline is what a user
  writes by hand, ``for r in YOLO(model).predict(clip, stream=True, classes=[0])``;
- multi: several 1280x720 streams in one process, frames/s of each;
- live: one stream paced at its own frame rate (like a camera); age of each frame when its
  counts reach the metrics;
- capacity: N live RTSP cameras at once (a 1280x720 25 frames/s clip served over loopback by
  GStreamer's RTSP server, tools/rtsp_server.py): analysed frames/s of each camera, frames
  dropped, frame age; with and without detect_every 2.

Each run is a fresh subprocess (peak memory is per run, no run warms the next), runs of the
baseline and of crowdwatch alternate, and the tables show medians over runs. Frames/s count
from a stream's first result to its last, so model loading is left out of both sides.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from crowdwatch.errors import CrowdwatchError
from crowdwatch.tools.groundtruth import load_ground_truth
from crowdwatch.tools.scoring import count_errors
from crowdwatch.types import STAGES

SIZES = {"1280x720": (1280, 720), "1920x1080": (1920, 1080)}
SCENARIOS = ("single", "multi", "live", "capacity")
# What a live camera must get to count as served in the capacity scenario.
SERVED_MIN_FPS = 5.0
SERVED_MAX_AGE_S = 1.0
CAPACITY_SIZE = (1280, 720)
CAPACITY_FPS = 25
# Frames of the capacity clip (looped by the server): 10 s at 25 frames/s.
CAPACITY_CLIP_FRAMES = 250
# Seconds after every camera's first result before the capacity window opens.
CAPACITY_SETTLE_S = 3.0
# Longest wait for every camera's first result (RTSP opens take ~2.5 s each, in parallel).
CAPACITY_START_S = 60.0
# Stage columns of the single-stream table: every stage but "detect" (the sum of three).
STAGE_COLUMNS = tuple(s for s in STAGES if s != "detect")
WORKER_TIMEOUT_S = 900


@dataclass
class BenchOptions:
    """What `crowdwatch bench` measures."""

    clip: Path
    model: str
    ground_truth: Path | None = None
    cache_dir: Path = field(default_factory=lambda: Path(tempfile.gettempdir())
                            / "crowdwatch-bench")
    runs: int = 3
    frames: int = 400
    streams: int = 4
    live_frames: int = 150
    scenarios: Sequence[str] = ("single", "multi", "live")
    # Capacity scenario: cameras per run, seconds measured per run, and the settings compared
    # (name -> detector overrides).
    cameras: Sequence[int] = (4, 8, 12, 16)
    seconds: float = 20.0
    # Serve the clip itself (an H.264 MP4) instead of a 1280x720 25 frames/s copy.
    capacity_native: bool = False
    capacity_settings: dict[str, dict[str, Any]] = field(default_factory=lambda: {
        "every frame": {},
        "detect_every 2": {"detect_every": 2},
    })
    # Generated clip sizes of the single scenario (multi always uses 1280x720).
    sizes: Sequence[str] = tuple(SIZES)
    # Extra crowdwatch settings run on the PETS clip only, as name -> detector overrides.
    variants: dict[str, dict[str, Any]] = field(default_factory=lambda: {
        "square input": {"input_shape": "square"},
        "detect_every=2": {"detect_every": 2},
    })


@dataclass
class Job:
    """One measurement, run in a subprocess by `python -m crowdwatch.tools.bench JOB.json`."""

    kind: str  # "baseline" or "crowdwatch"
    clips: list[str]
    model: str
    frames: int
    detector: dict[str, Any] = field(default_factory=dict)
    realtime: bool = False
    output: str = ""
    # Live run (capacity scenario): seconds measured once every camera delivers, and the
    # frame size to compile for before the cameras start.
    seconds: float = 0.0
    size: str = ""


@dataclass
class StreamRun:
    """One stream of one run, as the worker measured it."""

    frames: int
    fps: float | None
    stages: dict[str, float]
    cpu_ms_per_frame: float | None = None
    age_p50_s: float | None = None
    age_p95_s: float | None = None
    frame_index: list[int] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    counts_smoothed: list[int] | None = None
    # Live runs: frames the source decoded but replaced by a newer one before analysis.
    dropped: int | None = None


@dataclass
class WorkerResult:
    """What one Job's subprocess measured (sent back as JSON)."""

    streams: dict[str, StreamRun]
    peak_rss_mb: float = 0.0
    backend: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WorkerResult:
        streams = {name: StreamRun(**value) for name, value in data["streams"].items()}
        return cls(streams, data.get("peak_rss_mb", 0.0), data.get("backend"))


@dataclass
class StreamSummary:
    """One stream over all runs of a setting: medians, and count errors of the first run."""

    frames: int
    fps: float | None
    fps_runs: list[float]
    stages: dict[str, float]
    cpu_ms_per_frame: float | None
    mae: float | None
    mae_smoothed: float | None
    age_p50_s: float | None = None
    age_p95_s: float | None = None


@dataclass
class Summary:
    streams: dict[str, StreamSummary]
    peak_rss_mb: float
    runs: int


@dataclass
class SingleRow:
    """One setting on one clip in the single-stream table."""

    clip: str
    setting: str
    stream: StreamSummary
    ratio: float | None
    decode_ms: float
    peak_rss_mb: float


@dataclass
class MultiRow:
    clip: str
    streams: int
    fps_per_stream: dict[str, float | None]
    min_fps: float | None
    total_fps: float
    peak_rss_mb: float


@dataclass
class LiveRow:
    clip: str
    frames: int
    fps: float | None
    age_p50_s: float | None
    age_p95_s: float | None
    peak_rss_mb: float


@dataclass
class CapacityRow:
    """N live cameras with one setting, over the measured window."""

    cameras: int
    setting: str
    fps_per_camera: list[float]
    min_fps: float
    median_fps: float
    total_fps: float
    dropped_per_s: float
    age_p95_s: float | None
    cpu_ms_per_frame: float | None
    cpu_cores: float | None
    peak_rss_mb: float
    clip: str = "1280x720 25 frames/s"

    @property
    def served(self) -> bool:
        """Every camera counted at least SERVED_MIN_FPS times a second, fresh enough."""
        return (self.min_fps >= SERVED_MIN_FPS and self.age_p95_s is not None
                and self.age_p95_s < SERVED_MAX_AGE_S)


@dataclass
class BenchReport:
    """Everything `crowdwatch bench` measured; format_report prints it."""

    hardware: str
    model: str
    runs: int
    frames: int
    python: str
    versions: dict[str, str]
    notes: list[str] = field(default_factory=list)
    single: list[SingleRow] = field(default_factory=list)
    multi: list[MultiRow] = field(default_factory=list)
    live: list[LiveRow] = field(default_factory=list)
    capacity: list[CapacityRow] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Workers (run in the subprocess)
# ---------------------------------------------------------------------------------------------


def _stream_run(done_at: list[float], stages: dict[str, float],
                ages: list[float] | None = None, cpu: tuple[float, float] | None = None,
                ) -> StreamRun:
    """Frames/s between a stream's first and last result, and frame-age percentiles.

    cpu: process CPU seconds at the first and last result; CPU time per frame is steadier
    than frames/s on a machine shared with other work.
    """
    span = done_at[-1] - done_at[0] if len(done_at) > 1 else 0.0
    run = StreamRun(frames=len(done_at), fps=(len(done_at) - 1) / span if span > 0 else None,
                    stages=stages)
    if cpu is not None and len(done_at) > 1:
        run.cpu_ms_per_frame = (cpu[1] - cpu[0]) / (len(done_at) - 1) * 1000
    if ages:
        run.age_p50_s = float(np.percentile(ages, 50))
        run.age_p95_s = float(np.percentile(ages, 95))
    return run


def _medians(stages: list[dict[str, float]]) -> dict[str, float]:
    names = {name for s in stages for name in s}
    return {name: statistics.median(s[name] for s in stages if name in s) for name in names}


def _run_baseline(job: Job) -> WorkerResult:
    from crowdwatch.detect.ultralytics import configure_ultralytics

    configure_ultralytics()  # offline and quiet; no effect on speed
    from ultralytics import YOLO

    done_at: list[float] = []
    counts: list[int] = []
    stages: list[dict[str, float]] = []
    # Exactly the loop a user writes by hand, with ultralytics' defaults.
    cpu: list[float] = []
    for r in YOLO(job.model).predict(job.clips[0], stream=True, classes=[0]):
        done_at.append(time.perf_counter())
        cpu.append(time.process_time())
        counts.append(len(r.boxes))
        stages.append({k: v / 1000 for k, v in r.speed.items() if v is not None})
        if len(counts) >= job.frames:
            break
    run = _stream_run(done_at, _medians(stages), cpu=(cpu[0], cpu[-1]))
    run.counts = counts
    return WorkerResult({"baseline": run}, backend="ultralytics")


def _run_crowdwatch(job: Job) -> WorkerResult:
    from crowdwatch.app import CallbackSink
    from crowdwatch.config import WHOLE_FRAME, AppConfig, CameraConfig, DetectorConfig, ZoneConfig
    from crowdwatch.detect import create_detector
    from crowdwatch.health import HealthState
    from crowdwatch.outputs.metrics import MetricsSink
    from crowdwatch.pipeline import Pipeline
    from crowdwatch.types import FrameResult

    zone = ZoneConfig(name="all", polygon=WHOLE_FRAME, normalized=True)
    cameras = [CameraConfig(id=f"cam{i}", source=clip, zones=[zone], realtime=job.realtime)
               for i, clip in enumerate(job.clips)]
    config = AppConfig(cameras=cameras,
                       detector=DetectorConfig(model=job.model, **job.detector))
    detector = create_detector(config.detector)
    for clip in set(job.clips):
        # Compile for the clip's size now: model loading is not part of the measurement.
        width, height = (int(v) for v in clip_size(Path(clip)).split("x"))
        detector.prepare(width, height)
    rows: dict[str, list[tuple[float, float, int, int, int, dict[str, float]]]] = {
        c.id: [] for c in cameras}

    cpu: list[float] = []

    def on_frame(result: FrameResult) -> None:
        cpu.append(time.process_time())
        now = time.perf_counter()
        stages = {**result.stage_seconds, "export": now - result.analysed_at}
        rows[result.camera].append((now, time.time() - result.captured_at,
                                    result.frame_index, result.people_raw, result.people, stages))

    health = HealthState(c.id for c in cameras)
    # The metrics sink first: on_frame then sees each frame as exported (age, export stage).
    sinks = [MetricsSink(config, health), CallbackSink(on_frame)]
    Pipeline(config, detector, sinks, health, job.frames).run()
    streams = {}
    for camera, got in rows.items():
        run = _stream_run([r[0] for r in got], _medians([r[5] for r in got]),
                          [r[1] for r in got], (cpu[0], cpu[-1]) if len(rows) == 1 else None)
        run.frame_index = [r[2] for r in got]
        run.counts = [r[3] for r in got]
        run.counts_smoothed = [r[4] for r in got]
        streams[camera] = run
    return WorkerResult(streams, backend=detector.name)


def _run_live(job: Job) -> WorkerResult:
    """Live cameras (job.clips are their URLs) for job.seconds once every one delivers.

    Per camera: frames analysed in the window over its length, frames its source dropped in
    it, and the age of each frame at the metrics. "cpu" holds the process CPU seconds and the
    wall seconds of the window.
    """
    import threading

    from crowdwatch.app import CallbackSink
    from crowdwatch.config import WHOLE_FRAME, AppConfig, CameraConfig, DetectorConfig, ZoneConfig
    from crowdwatch.detect import create_detector
    from crowdwatch.health import HealthState
    from crowdwatch.outputs.metrics import MetricsSink
    from crowdwatch.pipeline import Pipeline
    from crowdwatch.types import FrameResult

    zone = ZoneConfig(name="all", polygon=WHOLE_FRAME, normalized=True)
    cameras = [CameraConfig(id=f"cam{i}", source=url, zones=[zone])
               for i, url in enumerate(job.clips)]
    config = AppConfig(cameras=cameras,
                       detector=DetectorConfig(model=job.model, **job.detector))
    detector = create_detector(config.detector)
    width, height = (int(v) for v in job.size.split("x"))
    detector.prepare(width, height)
    window: dict[str, float] = {}
    got: dict[str, list[tuple[float, float]]] = {c.id: [] for c in cameras}
    lock = threading.Lock()

    def on_frame(result: FrameResult) -> None:
        now = time.perf_counter()
        if "start" in window and now < window["end"]:
            with lock:
                got[result.camera].append((now, time.time() - result.captured_at))
        elif "first" not in window:
            with lock:
                window.setdefault(f"seen {result.camera}", now)

    health = HealthState(c.id for c in cameras)
    pipeline = Pipeline(config, detector, [MetricsSink(config, health), CallbackSink(on_frame)],
                        health)
    sources = {w.camera.id: w.source for w in pipeline.workers}
    dropped: dict[str, int] = {}

    def clock() -> None:
        deadline = time.monotonic() + CAPACITY_START_S
        while (time.monotonic() < deadline and not pipeline.stop_event.is_set()
               and sum(k.startswith("seen ") for k in window) < len(cameras)):
            time.sleep(0.05)
        window["first"] = time.perf_counter()
        if pipeline.stop_event.wait(CAPACITY_SETTLE_S):
            return
        dropped.update({c: s.frames_dropped for c, s in sources.items()})
        window["cpu"] = time.process_time()
        window["end"] = time.perf_counter() + job.seconds
        window["start"] = time.perf_counter()
        pipeline.stop_event.wait(job.seconds)
        window["cpu"] = time.process_time() - window["cpu"]
        for camera, source in sources.items():
            dropped[camera] = source.frames_dropped - dropped[camera]
        pipeline.stop()

    timer = threading.Thread(target=clock, daemon=True)
    timer.start()
    pipeline.run()
    timer.join()
    streams = {}
    for camera, rows in got.items():
        ages = [r[1] for r in rows]
        run = StreamRun(frames=len(rows), fps=len(rows) / job.seconds, stages={},
                        dropped=dropped.get(camera))
        if ages:
            run.age_p50_s = float(np.percentile(ages, 50))
            run.age_p95_s = float(np.percentile(ages, 95))
            # Every camera's ages, for the p95 over all frames of the run.
            run.counts = [round(a * 1000) for a in ages]
        streams[camera] = run
    frames = sum(r.frames for r in streams.values())
    cpu_s = window.get("cpu", 0.0)
    for run in streams.values():
        run.cpu_ms_per_frame = cpu_s / frames * 1000 if frames else None
        run.stages = {"cpu_cores": cpu_s / job.seconds}
    return WorkerResult(streams, backend=detector.name)


def worker_main(job_path: str) -> None:
    """Run one Job and write its result, with this process's peak memory, as JSON."""
    job = Job(**json.loads(Path(job_path).read_text(encoding="utf-8")))
    if job.kind == "live":
        result = _run_live(job)
    else:
        result = _run_baseline(job) if job.kind == "baseline" else _run_crowdwatch(job)
    # Linux reports ru_maxrss in KiB.
    result.peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(job.output).write_text(json.dumps(asdict(result)), encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# Orchestration (the parent process)
# ---------------------------------------------------------------------------------------------


def run_job(job: Job, workdir: Path) -> WorkerResult:
    """Run a Job in a fresh interpreter and return its result."""
    workdir.mkdir(parents=True, exist_ok=True)
    spec = workdir / f"job-{os.getpid()}-{time.monotonic_ns()}.json"
    job.output = str(spec.with_suffix(".out.json"))
    spec.write_text(json.dumps(asdict(job)), encoding="utf-8")
    try:
        done = subprocess.run([sys.executable, "-m", "crowdwatch.tools.bench", str(spec)],
                              capture_output=True, text=True, timeout=WORKER_TIMEOUT_S)
        if done.returncode != 0:
            tail = "\n".join(done.stderr.strip().splitlines()[-5:])
            raise CrowdwatchError(f"bench {job.kind} run on {job.clips[0]} failed:\n{tail}")
        return WorkerResult.from_json(json.loads(Path(job.output).read_text(encoding="utf-8")))
    finally:
        spec.unlink(missing_ok=True)
        Path(job.output).unlink(missing_ok=True)


def make_clip(source: Path, size: tuple[int, int], frames: int, cache_dir: Path,
              fps: int | None = None) -> Path:
    """An H.264 copy of source at size (centre-cropped to its aspect first), cached.

    fps: the copy's frame rate (frames repeated or dropped to get it); None keeps the source's.
    """
    width, height = size
    rate = f"_{fps}fps" if fps else ""
    out = cache_dir / f"{source.stem}_{width}x{height}{rate}_{frames}f.mp4"
    if out.exists():
        return out
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise CrowdwatchError("ffmpeg not found: install it (Debian: apt install ffmpeg) to "
                              "make the 1280x720 and 1920x1080 clips")
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Crop before scaling so people keep their proportions.
    crop = f"crop='min(iw,ih*{width}/{height})':'min(ih,iw*{height}/{width})'"
    partial = out.with_suffix(".part.mp4")
    command = [ffmpeg, "-y", "-loglevel", "error", "-i", str(source), "-frames:v", str(frames),
               "-an", "-vf", f"{crop},scale={width}:{height}", *(["-r", str(fps)] if fps else []),
               "-c:v", "libx264",
               "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p", str(partial)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise CrowdwatchError(f"ffmpeg failed making {out.name}: {done.stderr.strip()[-300:]}")
    partial.replace(out)
    return out


def decode_ms(clip: Path, frames: int) -> float:
    """Median milliseconds OpenCV takes to decode one frame of clip."""
    import cv2

    capture = cv2.VideoCapture(str(clip))
    times = []
    try:
        for _ in range(frames):
            started = time.perf_counter()
            ok, _image = capture.read()
            if not ok:
                break
            times.append(time.perf_counter() - started)
    finally:
        capture.release()
    return statistics.median(times) * 1000 if times else float("nan")


def clip_size(clip: Path) -> str:
    import cv2

    capture = cv2.VideoCapture(str(clip))
    try:
        return f"{int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))}x" \
               f"{int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))}"
    finally:
        capture.release()


def hardware() -> str:
    """CPU model and the cores this process may use."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from crowdwatch.detect.base import available_cores

    return f"{model}, {available_cores()} cores"


def _count_mae(index: list[int], counts: list[int] | None,
               truth: npt.NDArray[np.int64] | None) -> float | None:
    """Count MAE over the frames the ground truth covers (scoring.count_errors)."""
    if truth is None or not counts:
        return None
    frames = np.asarray(index if index else range(len(counts)), np.int64)
    inside = frames < len(truth)
    if not inside.any():
        return None
    return count_errors(np.asarray(counts)[inside], truth[frames[inside]]).mae


def _summarise(runs: list[WorkerResult], truth: npt.NDArray[np.int64] | None) -> Summary:
    """Median over runs of each stream's frames/s, stages, ages; count errors of the runs."""
    per_stream = {}
    for name in runs[0].streams:
        got = [r.streams[name] for r in runs]
        fps = [g.fps for g in got if g.fps is not None]
        cpu = [g.cpu_ms_per_frame for g in got if g.cpu_ms_per_frame]
        ages_50 = [g.age_p50_s for g in got if g.age_p50_s is not None]
        ages_95 = [g.age_p95_s for g in got if g.age_p95_s is not None]
        first = got[0]
        per_stream[name] = StreamSummary(
            frames=first.frames,
            fps=statistics.median(fps) if fps else None,
            fps_runs=fps,
            stages=_medians([g.stages for g in got]),
            cpu_ms_per_frame=statistics.median(cpu) if cpu else None,
            mae=_count_mae(first.frame_index, first.counts, truth),
            mae_smoothed=_count_mae(first.frame_index, first.counts_smoothed, truth),
            age_p50_s=statistics.median(ages_50) if ages_50 else None,
            age_p95_s=statistics.median(ages_95) if ages_95 else None,
        )
    return Summary(per_stream, max(r.peak_rss_mb for r in runs), len(runs))


def run_bench(options: BenchOptions, log: Callable[[str], None] = lambda _m: None
              ) -> BenchReport:
    """Measure every scenario; returns the report that format_report prints."""
    for name in options.scenarios:
        if name not in SCENARIOS:
            raise CrowdwatchError(f"unknown scenario {name!r}; valid: {', '.join(SCENARIOS)}")
    if not options.clip.exists():
        raise CrowdwatchError(f"{options.clip}: clip not found; give --clip or set "
                              "CROWDWATCH_PETS_DIR")
    truth = None
    if options.ground_truth is not None:
        truth = load_ground_truth(options.ground_truth).counts()
    clips = {clip_size(options.clip): options.clip}
    notes = []
    needs_sizes = {"single": list(options.sizes), "multi": ["1280x720"], "live": [],
                   "capacity": []}
    for size in dict.fromkeys(s for n in options.scenarios for s in needs_sizes[n]):
        try:
            clips[size] = make_clip(options.clip, SIZES[size], options.frames, options.cache_dir)
        except CrowdwatchError as error:
            notes.append(f"{size} skipped: {error}")
    bench = _Bench(options, log)
    return BenchReport(
        hardware=hardware(), model=options.model, runs=options.runs, frames=options.frames,
        python=platform.python_version(), versions=_versions(), notes=notes,
        single=bench.single(clips, truth) if "single" in options.scenarios else [],
        multi=(bench.multi(clips["1280x720"])
               if "multi" in options.scenarios and "1280x720" in clips else []),
        live=bench.live(*next(iter(clips.items()))) if "live" in options.scenarios else [],
        capacity=bench.capacity() if "capacity" in options.scenarios else [],
    )


class _Bench:
    """The scenarios; the first clip is the PETS clip, the others are made from it."""

    def __init__(self, options: BenchOptions, log: Callable[[str], None]) -> None:
        self.options = options
        self.log = log
        self.work = options.cache_dir / "jobs"

    def job(self, kind: str, clips: list[Path], frames: int | None = None,
            realtime: bool = False, **detector: Any) -> Job:
        return Job(kind, [str(c) for c in clips], self.options.model,
                   frames or self.options.frames, detector, realtime)

    def single(self, clips: dict[str, Path],
               truth: npt.NDArray[np.int64] | None) -> list[SingleRow]:
        """Each clip through the loop, crowdwatch and (PETS only) the variants."""
        rows = []
        pets = next(iter(clips))
        for size, clip in clips.items():
            settings = [("ultralytics loop", self.job("baseline", [clip])),
                        ("crowdwatch", self.job("crowdwatch", [clip]))]
            if size == pets:
                settings += [(f"crowdwatch, {name}", self.job("crowdwatch", [clip], **overrides))
                             for name, overrides in self.options.variants.items()]
            results: dict[str, list[WorkerResult]] = {name: [] for name, _ in settings}
            for run in range(self.options.runs):
                # Alternate the order so neither side always runs on a warmer machine.
                for name, spec in settings if run % 2 == 0 else settings[::-1]:
                    self.log(f"single {size}: {name}, run {run + 1}/{self.options.runs}")
                    results[name].append(run_job(spec, self.work))
            summaries = {name: _summarise(r, truth if size == pets else None)
                         for name, r in results.items()}
            base_fps = summaries["ultralytics loop"].streams["baseline"].fps
            decode = decode_ms(clip, min(self.options.frames, 200))
            for name, summary in summaries.items():
                stream = next(iter(summary.streams.values()))
                ratio = stream.fps / base_fps if stream.fps and base_fps else None
                rows.append(SingleRow(size, name, stream, ratio, decode, summary.peak_rss_mb))
        return rows

    def multi(self, clip: Path) -> list[MultiRow]:
        """Several streams of one clip in one process."""
        streams = self.options.streams
        runs = []
        for run in range(self.options.runs):
            self.log(f"multi: {streams} x {clip_size(clip)}, run {run + 1}/{self.options.runs}")
            runs.append(run_job(self.job("crowdwatch", [clip] * streams), self.work))
        summary = _summarise(runs, None)
        fps = {name: s.fps for name, s in summary.streams.items()}
        known = [v for v in fps.values() if v is not None]
        return [MultiRow(clip_size(clip), streams, fps, min(known) if known else None,
                         sum(known), summary.peak_rss_mb)]

    def live(self, size: str, clip: Path) -> list[LiveRow]:
        """One stream paced at its frame rate: the age of frames at the metrics."""
        frames = self.options.live_frames
        self.log(f"live: {size} paced at its frame rate, {frames} frames")
        summary = _summarise([run_job(self.job("crowdwatch", [clip], frames, realtime=True),
                                      self.work)], None)
        stream = next(iter(summary.streams.values()))
        return [LiveRow(size, stream.frames, stream.fps, stream.age_p50_s, stream.age_p95_s,
                        summary.peak_rss_mb)]


    def capacity(self) -> list[CapacityRow]:
        """N live RTSP cameras of one 1280x720 25 frames/s clip, for each N and setting."""
        from crowdwatch.tools.rtsp_server import RtspServer, probe

        why = probe()
        if why is not None:
            raise CrowdwatchError(f"capacity scenario: {why}; install python3-gi "
                                  "gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good")
        options = self.options
        clip = options.clip if options.capacity_native else make_clip(
            options.clip, CAPACITY_SIZE, CAPACITY_CLIP_FRAMES, options.cache_dir, CAPACITY_FPS)
        size = clip_size(clip)
        described = f"{size} {clip_fps(clip):.0f} frames/s"
        rows = []
        with RtspServer(clip, log=options.cache_dir / "rtsp-server.log") as server:
            for n in options.cameras:
                for name, overrides in options.capacity_settings.items():
                    self.log(f"capacity: {n} cameras, {name}, {options.seconds:.0f} s")
                    job = Job("live", [server.url()] * n, options.model, 0, dict(overrides),
                              seconds=options.seconds, size=size)
                    rows.append(_capacity_row(n, name, run_job(job, self.work), options.seconds,
                                              described))
        return rows


def clip_fps(clip: Path) -> float:
    import cv2

    capture = cv2.VideoCapture(str(clip))
    try:
        return float(capture.get(cv2.CAP_PROP_FPS))
    finally:
        capture.release()


def _capacity_row(cameras: int, setting: str, result: WorkerResult, seconds: float,
                  clip: str) -> CapacityRow:
    streams = list(result.streams.values())
    fps = [s.fps or 0.0 for s in streams]
    ages = [a / 1000 for s in streams for a in s.counts]
    first = streams[0]
    return CapacityRow(
        cameras=cameras, setting=setting, fps_per_camera=fps, min_fps=min(fps),
        median_fps=statistics.median(fps), total_fps=sum(fps),
        dropped_per_s=sum(s.dropped or 0 for s in streams) / seconds,
        age_p95_s=float(np.percentile(ages, 95)) if ages else None,
        cpu_ms_per_frame=first.cpu_ms_per_frame, cpu_cores=first.stages.get("cpu_cores"),
        peak_rss_mb=result.peak_rss_mb, clip=clip)


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for package in ("openvino", "ultralytics", "opencv-python", "torch"):
        with contextlib.suppress(PackageNotFoundError):
            out[package] = version(package)
    return out


def _num(value: float | None, digits: int = 1, scale: float = 1.0) -> str:
    return "-" if value is None or value != value else f"{value * scale:.{digits}f}"


def format_report(report: BenchReport) -> str:
    """The report as Markdown tables (pasted as they are into docs/PERFORMANCE.md)."""
    lines = [f"Hardware: {report.hardware}; model {report.model}; "
             f"{report.runs} runs, {report.frames} frames per run; "
             + ", ".join(f"{k} {v}" for k, v in report.versions.items()), ""]
    if report.single:
        lines += ["Single stream: frames/s (median of runs, [min-max]); ratio = frames/s over "
                  "the ultralytics loop's; count MAE = mean |people - ground truth| per frame "
                  "(raw / smoothed); CPU = process CPU time per frame (steadier than frames/s on a "
                  "shared machine); stage medians in ms (decode: OpenCV alone; inference: "
                  "OpenVINO request latency, queueing included).", "",
                  "| clip | pipeline | frames/s | ratio | count MAE | CPU ms | "
                  + " | ".join(STAGE_COLUMNS) + " | peak RSS MB |",
                  "|---|---|---|---|---|---|" + "---|" * len(STAGE_COLUMNS) + "---|"]
        for row in report.single:
            stream = row.stream
            fps_runs = stream.fps_runs
            spread = f" [{min(fps_runs):.0f}-{max(fps_runs):.0f}]" if len(fps_runs) > 1 else ""
            mae = _num(stream.mae, 3)
            if stream.mae_smoothed is not None:
                mae += f" / {_num(stream.mae_smoothed, 3)}"
            stages = dict(stream.stages, decode=row.decode_ms / 1000)
            lines.append(f"| {row.clip} | {row.setting} | {_num(stream.fps)}{spread} | "
                         f"{_num(row.ratio, 2)}x | {mae} | {_num(stream.cpu_ms_per_frame)} | "
                         + " | ".join(_num(stages.get(s), 1, 1000) for s in STAGE_COLUMNS)
                         + f" | {row.peak_rss_mb:.0f} |")
        lines.append("")
    for multi in report.multi:
        per = ", ".join(f"{_num(v)}" for v in multi.fps_per_stream.values())
        lines += [f"{multi.streams} concurrent {multi.clip} streams in one process: "
                  f"frames/s per stream {per} (lowest {_num(multi.min_fps)}, total "
                  f"{_num(multi.total_fps)}); peak RSS {multi.peak_rss_mb:.0f} MB", ""]
    for live in report.live:
        lines += [f"Live ({live.clip} paced at its frame rate, {live.frames} frames): "
                  f"frame age p50 {_num(live.age_p50_s, 0, 1000)} ms, "
                  f"p95 {_num(live.age_p95_s, 0, 1000)} ms; peak RSS "
                  f"{live.peak_rss_mb:.0f} MB", ""]
    if report.capacity:
        lines += [f"Live cameras: {report.capacity[0].clip} H.264 over loopback RTSP, "
                  "all analysed in one process; frames/s analysed per camera (lowest, median, "
                  "lowest / median), frames dropped per second (all cameras: decoded, then "
                  "replaced by a newer one before analysis), p95 age of a frame at the metrics, "
                  "CPU ms per analysed frame and CPU cores busy (crowdwatch's process: decode "
                  f"included); served = every camera ≥ {SERVED_MIN_FPS:.0f} frames/s with p95 "
                  f"age < {SERVED_MAX_AGE_S:.0f} s.", "",
                  "| cameras | setting | lowest | median | lowest / median | total | "
                  "dropped/s | p95 age ms | CPU ms | cores | peak RSS MB | served |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for row in report.capacity:
            share = row.min_fps / row.median_fps if row.median_fps else None
            lines.append(f"| {row.cameras} | {row.setting} | {_num(row.min_fps)} | "
                         f"{_num(row.median_fps)} | {_num(share, 2)} | {_num(row.total_fps)} | "
                         f"{_num(row.dropped_per_s)} | {_num(row.age_p95_s, 0, 1000)} | "
                         f"{_num(row.cpu_ms_per_frame)} | {_num(row.cpu_cores, 2)} | "
                         f"{row.peak_rss_mb:.0f} | {'yes' if row.served else 'no'} |")
        lines.append("")
    lines += [f"Note: {note}" for note in report.notes]
    return "\n".join(lines).rstrip() + "\n"


def default_clip() -> Path:
    if pets := os.environ.get("CROWDWATCH_PETS_DIR"):
        return Path(pets) / "vtest.avi"
    return Path("samples") / "vtest_h264.mp4"


def default_truth(clip: Path) -> Path | None:
    if pets := os.environ.get("CROWDWATCH_PETS_DIR"):
        return Path(pets) / "gt" / "PETS2009-S2L1.xml"
    return None


if __name__ == "__main__":
    worker_main(sys.argv[1])
