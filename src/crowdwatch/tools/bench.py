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

import os
import platform
import statistics
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from crowdwatch.errors import CrowdwatchError
from crowdwatch.tools.bench_jobs import Job, WorkerResult, _medians, run_job
from crowdwatch.tools.bench_report import (
    BenchReport,
    CapacityRow,
    LiveRow,
    MultiRow,
    SingleRow,
    StreamSummary,
    Summary,
    _versions,
    hardware,
)
from crowdwatch.tools.clips import clip_fps, clip_size, decode_ms, make_clip
from crowdwatch.tools.groundtruth import load_ground_truth
from crowdwatch.tools.scoring import count_errors

SIZES = {"1280x720": (1280, 720), "1920x1080": (1920, 1080)}
SCENARIOS = ("single", "multi", "live", "capacity")
CAPACITY_SIZE = (1280, 720)
CAPACITY_FPS = 25
# Frames of the capacity clip (looped by the server): 10 s at 25 frames/s.
CAPACITY_CLIP_FRAMES = 250


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
    # Capacity scenario, second part (issue 23): the repository's 768x576 10 frames/s clip,
    # a loopback server per camera, each setting name -> (detector, camera) overrides.
    fair_clip: Path | None = Path("samples") / "vtest_h264.mp4"
    fair_settings: dict[str, tuple[dict[str, Any], dict[str, Any]]] = field(
        default_factory=lambda: {"every frame": ({}, {}),
                                 "analysis_fps 5": ({}, {"analysis_fps": 5})})
    # Generated clip sizes of the single scenario (multi always uses 1280x720).
    sizes: Sequence[str] = tuple(SIZES)
    # Extra crowdwatch settings run on the PETS clip only, as name -> detector overrides.
    variants: dict[str, dict[str, Any]] = field(default_factory=lambda: {
        "square input": {"input_shape": "square"},
        "detect_every=2": {"detect_every": 2},
    })


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
        from crowdwatch.tools.settings import baseline_available

        # The loop runs ultralytics: on the lean install crowdwatch is measured alone.
        baseline = baseline_available()
        if not baseline:
            self.log('ultralytics loop left out: not installed (pip install '
                     '"crowdwatch[ultralytics]" adds it); no speed ratios')
        for size, clip in clips.items():
            settings = [("ultralytics loop", self.job("baseline", [clip]))] if baseline else []
            settings += [("crowdwatch", self.job("crowdwatch", [clip]))]
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
            base_fps = (summaries["ultralytics loop"].streams["baseline"].fps
                        if baseline else None)
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
        if options.fair_clip is not None and options.fair_clip.exists():
            rows += self.capacity_per_camera_servers(options.fair_clip)
        return rows

    def capacity_per_camera_servers(self, clip: Path) -> list[CapacityRow]:
        """N cameras, each on its own loopback server of the clip itself (issue 23)."""
        from crowdwatch.tools.rtsp_server import RtspServer

        options = self.options
        size = clip_size(clip)
        described = f"{size} {clip_fps(clip):.0f} frames/s, a server per camera"
        rows = []
        servers: list[RtspServer] = []
        try:
            for n in options.cameras:
                while len(servers) < n:
                    server = RtspServer(clip, log=options.cache_dir / "rtsp-servers.log")
                    server.start()
                    servers.append(server)
                urls = [s.url() for s in servers[:n]]
                for name, (detector, camera) in options.fair_settings.items():
                    self.log(f"capacity: {n} cameras ({size}), {name}, {options.seconds:.0f} s")
                    job = Job("live", urls, options.model, 0, dict(detector),
                              seconds=options.seconds, size=size, camera=dict(camera))
                    rows.append(_capacity_row(n, name, run_job(job, self.work), options.seconds,
                                              described))
        finally:
            for server in servers:
                server.kill()
        return rows


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
        peak_rss_mb=result.peak_rss_mb, clip=clip,
        received_per_camera=[(s.received or 0) / seconds for s in streams
                             if s.received is not None])


def default_clip() -> Path:
    if pets := os.environ.get("CROWDWATCH_PETS_DIR"):
        return Path(pets) / "vtest.avi"
    return Path("samples") / "vtest_h264.mp4"


def default_truth(clip: Path) -> Path | None:
    if pets := os.environ.get("CROWDWATCH_PETS_DIR"):
        return Path(pets) / "gt" / "PETS2009-S2L1.xml"
    return None
