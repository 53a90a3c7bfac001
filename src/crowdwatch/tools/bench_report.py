"""What `crowdwatch bench` reports: the rows of each scenario and the Markdown tables."""

from __future__ import annotations

import contextlib
import platform
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from crowdwatch.types import STAGES

# What a live camera must get to count as served in the capacity scenario.
SERVED_MIN_FPS = 5.0
SERVED_MAX_AGE_S = 1.0
# Stage columns of the single-stream table: every stage but "detect" (the sum of three).
STAGE_COLUMNS = tuple(s for s in STAGES if s != "detect")


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
    # Frames/s each camera received (analysed, skipped by analysis_fps, or dropped).
    received_per_camera: list[float] = field(default_factory=list)

    @property
    def min_received(self) -> float | None:
        return min(self.received_per_camera) if self.received_per_camera else None

    @property
    def median_received(self) -> float | None:
        return (statistics.median(self.received_per_camera) if self.received_per_camera
                else None)

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
    for clip in dict.fromkeys(row.clip for row in report.capacity):
        rows = [row for row in report.capacity if row.clip == clip]
        lines += [f"Live cameras: {clip} H.264 over loopback RTSP, "
                  "all analysed in one process; frames/s analysed per camera (lowest, median, "
                  "lowest / median), frames dropped per second (all cameras: decoded, then "
                  "replaced by a newer one before analysis), p95 age of a frame at the metrics, "
                  "CPU ms per analysed frame and CPU cores busy (crowdwatch's process: decode "
                  "included), frames/s received per camera (lowest, median); served = every "
                  f"camera ≥ {SERVED_MIN_FPS:.0f} frames/s with p95 age < "
                  f"{SERVED_MAX_AGE_S:.0f} s.", "",
                  "| cameras | setting | lowest | median | lowest / median | total | "
                  "dropped/s | p95 age ms | CPU ms | cores | peak RSS MB | received lowest | "
                  "received median | served |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for row in rows:
            share = row.min_fps / row.median_fps if row.median_fps else None
            lines.append(f"| {row.cameras} | {row.setting} | {_num(row.min_fps)} | "
                         f"{_num(row.median_fps)} | {_num(share, 2)} | {_num(row.total_fps)} | "
                         f"{_num(row.dropped_per_s)} | {_num(row.age_p95_s, 0, 1000)} | "
                         f"{_num(row.cpu_ms_per_frame)} | {_num(row.cpu_cores, 2)} | "
                         f"{row.peak_rss_mb:.0f} | {_num(row.min_received)} | "
                         f"{_num(row.median_received)} | {'yes' if row.served else 'no'} |")
        lines.append("")
        if any(row.received_per_camera for row in rows):
            lines += ["Per camera (analysed / received frames/s):", ""]
            for row in rows:
                cameras = ", ".join(
                    f"{i}: {a:.1f}/{r:.1f}" for i, (a, r) in enumerate(
                        zip(row.fps_per_camera, row.received_per_camera, strict=False)))
                lines.append(f"- {row.cameras} cameras, {row.setting}: {cameras}")
            lines.append("")
    lines += [f"Note: {note}" for note in report.notes]
    return "\n".join(lines).rstrip() + "\n"
