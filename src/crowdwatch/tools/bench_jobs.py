"""The benchmark's measurements, each run in a fresh interpreter
(`python -m crowdwatch.tools.bench_jobs JOB.json`): the ultralytics loop, crowdwatch over
clips, and live cameras over a measured window."""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from crowdwatch.errors import CrowdwatchError
from crowdwatch.tools.clips import clip_size

if TYPE_CHECKING:
    from crowdwatch.config import AppConfig
    from crowdwatch.detect.base import Detector
    from crowdwatch.pipeline import Pipeline
    from crowdwatch.types import FrameResult

# Seconds after every camera's first result before the capacity window opens.
CAPACITY_SETTLE_S = 3.0
# Longest wait for every camera's first result (RTSP opens take ~2.5 s each, in parallel).
CAPACITY_START_S = 60.0
WORKER_TIMEOUT_S = 900


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
    # Settings of every camera (e.g. analysis_fps), as CameraConfig fields.
    camera: dict[str, Any] = field(default_factory=dict)


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
    # Live runs: frames the source delivered in the window (analysed, skipped or dropped).
    received: int | None = None


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


def _bench_config(job: Job, realtime: bool = False) -> AppConfig:
    """One camera per job clip (or live URL), the whole frame as its one zone."""
    from crowdwatch.config import WHOLE_FRAME, AppConfig, CameraConfig, DetectorConfig, ZoneConfig

    zone = ZoneConfig(name="all", polygon=WHOLE_FRAME, normalized=True)
    cameras = [CameraConfig(id=f"cam{i}", source=source, zones=[zone], realtime=realtime,
                            **job.camera)
               for i, source in enumerate(job.clips)]
    return AppConfig(cameras=cameras, detector=DetectorConfig(model=job.model, **job.detector))


def _bench_pipeline(config: AppConfig, detector: Detector, on_frame: Callable[[FrameResult], None],
                    max_frames: int | None = None) -> Pipeline:
    """The cameras' chains with the metrics sink first: on_frame then sees each frame as
    exported (age, export stage)."""
    from crowdwatch.app import CallbackSink
    from crowdwatch.build import build_pipeline
    from crowdwatch.health import HealthState
    from crowdwatch.outputs.metrics import MetricsSink

    health = HealthState(c.id for c in config.cameras)
    return build_pipeline(config, detector, [MetricsSink(config, health), CallbackSink(on_frame)],
                          health, max_frames)


def _run_crowdwatch(job: Job) -> WorkerResult:
    from crowdwatch.density.serve import counting_detector

    config = _bench_config(job, job.realtime)
    detector = counting_detector(config)
    for clip in set(job.clips):
        # Compile for the clip's size now: model loading is not part of the measurement.
        width, height = (int(v) for v in clip_size(Path(clip)).split("x"))
        detector.prepare(width, height)
    rows: dict[str, list[tuple[float, float, int, int, int, dict[str, float]]]] = {
        c.id: [] for c in config.cameras}
    cpu: list[float] = []

    def on_frame(result: FrameResult) -> None:
        cpu.append(time.process_time())
        now = time.perf_counter()
        stages = {**result.stage_seconds, "export": now - result.analysed_at}
        rows[result.camera].append((now, time.time() - result.captured_at,
                                    result.frame_index, result.people_raw, result.people, stages))

    _bench_pipeline(config, detector, on_frame, job.frames).run()
    streams = {}
    for camera, got in rows.items():
        run = _stream_run([r[0] for r in got], _medians([r[5] for r in got]),
                          [r[1] for r in got], (cpu[0], cpu[-1]) if len(rows) == 1 else None)
        run.frame_index = [r[2] for r in got]
        run.counts = [r[3] for r in got]
        run.counts_smoothed = [r[4] for r in got]
        streams[camera] = run
    return WorkerResult(streams, backend=detector.name)


@dataclass
class _Window:
    """The measured window of a live run (perf_counter seconds; CPU seconds in it)."""

    seen: set[str] = field(default_factory=set)
    first: float | None = None
    start: float | None = None
    end: float | None = None
    cpu_s: float = 0.0

    def open(self, now: float) -> bool:
        return self.start is not None and self.end is not None and now < self.end


def _run_live(job: Job) -> WorkerResult:
    """Live cameras (job.clips are their URLs) for job.seconds once every one delivers.

    Per camera: frames analysed in the window over its length, frames its source dropped in
    it, and the age of each frame at the metrics. "cpu" holds the process CPU seconds and the
    wall seconds of the window.
    """
    import threading

    from crowdwatch.density.serve import counting_detector

    config = _bench_config(job)
    detector = counting_detector(config)
    width, height = (int(v) for v in job.size.split("x"))
    detector.prepare(width, height)
    window = _Window()
    got: dict[str, list[tuple[float, float]]] = {c.id: [] for c in config.cameras}
    lock = threading.Lock()

    def on_frame(result: FrameResult) -> None:
        now = time.perf_counter()
        if window.open(now):
            with lock:
                got[result.camera].append((now, time.time() - result.captured_at))
        elif window.first is None:
            with lock:
                window.seen.add(result.camera)

    pipeline = _bench_pipeline(config, detector, on_frame)
    sources = {w.camera_id: w.source for w in pipeline.workers}
    workers = {w.camera_id: w for w in pipeline.workers}
    dropped: dict[str, int] = {}
    received: dict[str, int] = {}

    def received_now() -> dict[str, int]:
        return {c: w.received + w.source.frames_dropped for c, w in workers.items()}

    def clock() -> None:
        deadline = time.monotonic() + CAPACITY_START_S
        while (time.monotonic() < deadline and not pipeline.stop_event.is_set()
               and len(window.seen) < len(config.cameras)):
            time.sleep(0.05)
        window.first = time.perf_counter()
        if pipeline.stop_event.wait(CAPACITY_SETTLE_S):
            return
        dropped.update({c: s.frames_dropped for c, s in sources.items()})
        received.update(received_now())
        cpu_before = time.process_time()
        window.end = time.perf_counter() + job.seconds
        window.start = time.perf_counter()
        pipeline.stop_event.wait(job.seconds)
        window.cpu_s = time.process_time() - cpu_before
        for camera, source in sources.items():
            dropped[camera] = source.frames_dropped - dropped[camera]
        received.update({c: n - received[c] for c, n in received_now().items()})
        pipeline.stop()

    timer = threading.Thread(target=clock, daemon=True)
    timer.start()
    pipeline.run()
    timer.join()
    streams = {}
    for camera, rows in got.items():
        ages = [r[1] for r in rows]
        run = StreamRun(frames=len(rows), fps=len(rows) / job.seconds, stages={},
                        dropped=dropped.get(camera), received=received.get(camera))
        if ages:
            run.age_p50_s = float(np.percentile(ages, 50))
            run.age_p95_s = float(np.percentile(ages, 95))
            # Every camera's ages, for the p95 over all frames of the run.
            run.counts = [round(a * 1000) for a in ages]
        streams[camera] = run
    frames = sum(r.frames for r in streams.values())
    cpu_s = window.cpu_s
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


def run_job(job: Job, workdir: Path) -> WorkerResult:
    """Run a Job in a fresh interpreter and return its result."""
    workdir.mkdir(parents=True, exist_ok=True)
    spec = workdir / f"job-{os.getpid()}-{time.monotonic_ns()}.json"
    job.output = str(spec.with_suffix(".out.json"))
    spec.write_text(json.dumps(asdict(job)), encoding="utf-8")
    try:
        done = subprocess.run([sys.executable, "-m", "crowdwatch.tools.bench_jobs", str(spec)],
                              capture_output=True, text=True, timeout=WORKER_TIMEOUT_S)
        if done.returncode != 0:
            tail = "\n".join(done.stderr.strip().splitlines()[-5:])
            raise CrowdwatchError(f"bench {job.kind} run on {job.clips[0]} failed:\n{tail}")
        return WorkerResult.from_json(json.loads(Path(job.output).read_text(encoding="utf-8")))
    finally:
        spec.unlink(missing_ok=True)
        Path(job.output).unlink(missing_ok=True)


if __name__ == "__main__":
    worker_main(sys.argv[1])
