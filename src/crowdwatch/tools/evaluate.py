"""`crowdwatch eval`: run the real pipeline over a clip with ground truth and score its counts.

Every setting is the config with dotted-key overrides (``conf35:detector.confidence=0.35``).
Settings with the same detector settings share one detection pass: the first decodes the clip
and runs the detector through the pipeline; the others replay the people it found through the
same Pipeline (smoothing, zones), so every row measures what operators get, each detection
pass is paid once, and no per-frame logic is written twice.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import shapely
import yaml

from crowdwatch.config import AppConfig, CameraConfig, CountingConfig, parse_config
from crowdwatch.config.detector import TilingConfig
from crowdwatch.errors import CrowdwatchError
from crowdwatch.tools.groundtruth import GroundTruth
from crowdwatch.tools.scoring import (
    DetectionTally,
    EvalResult,
    count_errors,
    people_in_zone,
)
from crowdwatch.types import Detections, Frame, FrameResult

if TYPE_CHECKING:  # the pipeline pulls in cv2 and the detector: imported where used
    from crowdwatch.detect.base import Detector, Image, Pending
    from crowdwatch.sources import FrameSource
    from crowdwatch.tools.flow import TrackingQuality

PRIMARY = "crowdwatch"
BASELINE = "baseline"
# What "raw YOLO" means: ultralytics' own predict() defaults on the same model (square
# 640 letterbox, confidence 0.25, NMS IoU 0.7), every frame, boxes counted as they come.
BASELINE_OVERRIDES: dict[str, object] = {
    "detector.backend": "ultralytics",
    "detector.input_shape": "square",
    "detector.confidence": 0.25,
    "detector.iou": 0.7,
    "detector.imgsz": 640,
    "detector.detect_every": 1,
    "counting.smoothing": "none",
    "counting.window": 1,
}
BASELINE_HELP = ("baseline = raw YOLO: the same model through ultralytics' predict() at its "
                 "defaults (square 640 input, confidence 0.25, NMS IoU 0.7), every frame, "
                 "no smoothing")
# Keys that say one thing two ways: overriding one replaces the config's other, so a
# --compare of counting.window=5 works on a config that sets counting.window_s.
ALTERNATIVE_KEYS = {"counting.window": "counting.window_s", "counting.window_s": "counting.window"}
EXIT_THRESHOLD = 3
NO_TILES = TilingConfig(mode="off")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")

DetectFactory = Callable[[AppConfig], "Detector"]


# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """One row of the comparison: a name, its overrides and the config they give."""

    name: str
    config: AppConfig
    overrides: Mapping[str, object] = field(default_factory=dict)


def parse_overrides(text: str, origin: str) -> dict[str, object]:
    """'key=value[,key=value...]' → {dotted key: value read as YAML (0.35, 7, none, true)}."""
    overrides: dict[str, object] = {}
    for item in text.split(","):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise CrowdwatchError(f"{origin}: {item!r} is not key=value "
                                  "(e.g. detector.confidence=0.35)")
        try:
            overrides[key.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            overrides[key.strip()] = value.strip()
    return overrides


def parse_compare(text: str) -> tuple[str, dict[str, object]]:
    """'NAME:key=value[,key=value...]' → (name, {dotted key: YAML-parsed value})."""
    name, sep, body = text.partition(":")
    if not sep or not _NAME.match(name.strip()):
        raise CrowdwatchError(f"--compare {text!r}: expected NAME:key=value[,key=value...] "
                              "with NAME made of letters, digits, _ . -")
    return name.strip(), parse_overrides(body, f"--compare {text!r}")


def apply_overrides(config: AppConfig, overrides: Mapping[str, object], origin: str) -> AppConfig:
    """A copy of config with dotted keys (detector.iou, counting.window ...) replaced.

    Only what the config set and the overrides are written into the copy: a key left at its
    default stays unset (counting.smoothing on an image folder, counting.window_s beside a
    fixed counting.window).
    """
    full = config.model_dump(mode="python")
    data = config.model_dump(mode="python", exclude_unset=True)
    for key in overrides:
        other = ALTERNATIVE_KEYS.get(key)
        if other is not None and other not in overrides:
            section, _, name = other.partition(".")
            data.get(section, {}).pop(name, None)
    for key, value in overrides.items():
        node: Any = full
        target: Any = data
        parts = key.split(".")
        for depth, part in enumerate(parts):
            if not isinstance(node, dict) or part not in node:
                where = ".".join(parts[:depth]) or "the top level"
                valid = ", ".join(sorted(node)) if isinstance(node, dict) else "none"
                raise CrowdwatchError(f"{origin}: unknown key {key!r} ({part!r} is not a key "
                                      f"of {where}; valid: {valid})")
            if depth == len(parts) - 1:
                target[part] = value
            else:
                node = node[part]
                target = target.setdefault(part, {})
    return parse_config(data, origin)


def _known_overrides(config: AppConfig, overrides: Mapping[str, object]) -> dict[str, object]:
    """The section.key overrides this config has: the baseline pins only settings that exist."""
    data = config.model_dump()
    known = {}
    for key, value in overrides.items():
        section, _, name = key.partition(".")
        if name in data.get(section, {}):
            known[key] = value
    return known


def build_settings(config: AppConfig, compare: Sequence[str], baseline: bool,
                   primary: str = PRIMARY, changes: Sequence[str] = ()) -> list[Setting]:
    """The config with --set changes (named primary), each --compare entry on top of that
    config, then the raw-YOLO baseline."""
    if not _NAME.match(primary):
        raise CrowdwatchError(f"--name {primary!r}: use letters, digits, _ . - (1-40)")
    own: dict[str, object] = {}
    for text in changes:
        own.update(parse_overrides(text, f"--set {text!r}"))
    if own:
        config = apply_overrides(config, own, "--set")
    settings = [Setting(primary, config, own)]
    for text in compare:
        name, overrides = parse_compare(text)
        if "detector.model" in overrides and os.environ.get("CROWDWATCH_MODEL"):
            raise CrowdwatchError(
                f"--compare {name}: CROWDWATCH_MODEL is set and overrides every model; unset "
                "it and point CROWDWATCH_MODEL_DIR at the models folder to compare models")
        settings.append(Setting(name, apply_overrides(config, overrides, f"--compare {name}"),
                                overrides))
    if baseline:
        overrides = _known_overrides(config, BASELINE_OVERRIDES)
        settings.append(Setting(BASELINE, apply_overrides(config, overrides, BASELINE),
                                overrides))
    names = [s.name for s in settings]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise CrowdwatchError(f"setting names must be unique, repeated: {', '.join(duplicates)}")
    return settings


# ---------------------------------------------------------------------------------------------
# Running the pipeline
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FrameInfo:
    """What a replay needs to stand in for a decoded frame."""

    index: int
    position_s: float | None
    width: int
    height: int


class RecordingSource:
    """Wraps a file source: drops frames before `start` and notes each frame handed over."""

    def __init__(self, inner: FrameSource, start: int) -> None:
        self._inner = inner
        self._start = start
        self.frames: list[FrameInfo] = []
        self.name = inner.name
        self.live = inner.live

    def __getattr__(self, attribute: str) -> Any:
        # frames_dropped, reconnects, ... come from the wrapped source.
        return getattr(self._inner, attribute)

    def read(self, timeout: float) -> Frame | None:
        while True:
            frame = self._inner.read(timeout)
            if frame is None or frame.index >= self._start:
                break
        if frame is not None:
            self.frames.append(FrameInfo(frame.index, frame.position_s, frame.width, frame.height))
        return frame

    @property
    def finished(self) -> bool:
        return bool(self._inner.finished)

    @property
    def up(self) -> bool:
        return bool(self._inner.up)

    def close(self) -> None:
        self._inner.close()


class ReplaySource:
    """Hands out recorded frames again, as blank images of the recorded size (no decoding)."""

    live = False
    frames_dropped = 0
    frames_skipped = 0
    reconnects = 0

    def __init__(self, frames: Sequence[FrameInfo], name: str = "replay",
                 sequence: bool = True) -> None:
        self.name = name
        # As the recorded source: an image folder's replay is filtered as the folder was.
        self.sequence = sequence
        self._frames = list(frames)
        self._next = 0

    def read(self, timeout: float) -> Frame | None:
        del timeout
        if self._next >= len(self._frames):
            return None
        info = self._frames[self._next]
        self._next += 1
        # A broadcast view: the size is right and no image memory is allocated.
        blank = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (info.height, info.width, 3))
        return Frame(blank, info.index, info.position_s, time.time())

    @property
    def finished(self) -> bool:
        return self._next >= len(self._frames)

    @property
    def up(self) -> bool:
        return True

    def close(self) -> None:
        pass


@dataclass
class Pass:
    """The frames and results of one setting's run through the pipeline."""

    frames: list[FrameInfo]
    results: list[FrameResult]
    seconds: float
    replayed: bool
    # The frames show one scene at real times (not an image folder): see counting_smoother.
    sequence: bool = True


def _run_pipeline(config: AppConfig, detector: Detector, source: FrameSource,
                  max_frames: int | None) -> list[FrameResult]:
    from crowdwatch.app import CallbackSink
    from crowdwatch.pipeline import Pipeline

    results: list[FrameResult] = []
    pipeline = Pipeline(config, detector, [CallbackSink(results.append)],
                        max_frames=max_frames, source_opener=lambda _camera: source)
    pipeline.run()
    return sorted(results, key=lambda r: r.frame_index)


def real_detect(config: AppConfig) -> Detector:
    """The detector operators run, built from the config's detector settings."""
    from crowdwatch.detect import create_detector

    return create_detector(config.detector)


def run_settings(settings: Sequence[Setting], start_frame: int = 0,
                 max_frames: int | None = None, detect_factory: DetectFactory | None = None,
                 log: Callable[[str], None] | None = None) -> dict[str, Pass]:
    """Run each setting's single camera through the pipeline; one detection pass per detector.

    detect_factory builds the detector of a setting (default: the real one, real_detect).
    """
    from crowdwatch.sources import open_source

    make_detect = detect_factory or real_detect

    passes: dict[str, Pass] = {}
    detected: dict[str, Pass] = {}
    for setting in settings:
        key = setting.config.detector.model_dump_json()
        started = time.perf_counter()
        if key in detected:
            first = detected[key]
            # The same detector settings submit the same frames in the same order.
            every = setting.config.detector.detect_every
            recorded = [r.detections for r in first.results[::every]]
            # The recorded people are already merged from any tiles: replay them untiled.
            replay = setting.config.model_copy(update={"detector": setting.config.detector
                                                       .model_copy(update={"tiling": NO_TILES})})
            results = _run_pipeline(replay, ReplayDetector(recorded),
                                    ReplaySource(first.frames, sequence=first.sequence), None)
            passes[setting.name] = Pass(first.frames, results,
                                        time.perf_counter() - started, True, first.sequence)
        else:
            camera = setting.config.cameras[0]
            detect = make_detect(setting.config)
            source = RecordingSource(open_source(camera), start_frame)
            results = _run_pipeline(setting.config, detect, source, max_frames)
            passes[setting.name] = detected[key] = Pass(
                source.frames, results, time.perf_counter() - started, False,
                bool(getattr(source, "sequence", True)))
        if log is not None:
            done = passes[setting.name]
            how = "replayed" if done.replayed else "detected"
            log(f"{setting.name}: {how} {len(done.results)} frames in {done.seconds:.1f} s")
    return passes


class ReplayDetector:
    """Hands back recorded detections in the order frames are submitted."""

    name = "replay"

    def __init__(self, recorded: Sequence[Detections]) -> None:
        self._recorded = iter(recorded)

    def submit(self, image: Image) -> Pending:
        from crowdwatch.detect.base import Done

        return Done(next(self._recorded))

    def prepare(self, width: int, height: int) -> None:
        pass


# ---------------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------------


def truth_zone_counts(camera: CameraConfig, truth: GroundTruth, frames: npt.NDArray[np.int64],
                      width: int, height: int) -> dict[str, npt.NDArray[np.int64]]:
    """Ground-truth people per zone and frame: annotated feet in the configured polygon.

    A person is in a zone when the bottom centre of its annotated box (where the feet touch
    the ground) lies in the polygon, whatever anchor the zone stage is set to, and the
    polygon is read from the config with plain shapely, not built by the zone stage: a
    change to the pipeline's anchors or zone geometry moves its counts, never the truth.
    """
    scale = np.array([width, height], np.float64)
    counts: dict[str, npt.NDArray[np.int64]] = {}
    for zone in camera.zones:
        points = np.asarray(zone.polygon, np.float64) * (scale if zone.normalized else 1.0)
        polygon = shapely.Polygon(points)
        counts[zone.name] = np.array(
            [people_in_zone(truth.boxes(int(i)), polygon, "bottom_center") for i in frames],
            np.int64)
    return counts


def score(name: str, results: Sequence[FrameResult], truth: GroundTruth,
          zone_truth: Mapping[str, npt.NDArray[np.int64]], iou: float = 0.5) -> EvalResult:
    """Count errors (whole frame and per zone) and detection precision/recall of one run.

    zone_truth holds one ground-truth count per result, in the same order.
    """
    frames = np.array([r.frame_index for r in results], np.int64)
    counts = count_errors([r.people for r in results], truth.counts()[frames])
    zones = {zone: count_errors([r.zones[zone].people for r in results], expected)
             for zone, expected in zone_truth.items()}
    tally = DetectionTally(iou_threshold=iou)
    for result in results:
        tally.add_frame(result.detections.xyxy, result.detections.confidence,
                        truth.boxes(result.frame_index))
    return EvalResult(name, counts, tally, zones)


@dataclass(frozen=True)
class Row:
    """One line of the table: a setting scored over a span of frames."""

    setting: str
    span: tuple[int, int]
    result: EvalResult
    whole: bool


@dataclass
class Report:
    """Scores of every setting over the whole run, and over each side of an optional split."""

    rows: list[Row]
    frames: tuple[int, int]
    scored: int
    unscored: int

    def result(self, setting: str | None = None) -> EvalResult:
        """The whole-run row of one setting (default: the first, the config's own)."""
        name = self.rows[0].setting if setting is None else setting
        return next(row.result for row in self.rows if row.setting == name and row.whole)


def score_passes(settings: Sequence[Setting], passes: Mapping[str, Pass], truth: GroundTruth,
                 split: int | None = None) -> Report:
    """Score each setting over the scored frames, then over frames < split and >= split."""
    rows: list[Row] = []
    frames = np.zeros(0, np.int64)
    unscored = 0
    zone_truth_cache: dict[tuple[object, ...], dict[str, npt.NDArray[np.int64]]] = {}
    for setting in settings:
        done = passes[setting.name]
        if not done.results:
            raise CrowdwatchError("the clip gave no frames to score; check --video, "
                                  "--start-frame and --max-frames")
        results = [r for r in done.results if r.frame_index < truth.num_frames]
        unscored = max(unscored, len(done.results) - len(results))
        if not results:
            raise CrowdwatchError(
                f"no analysed frame has ground truth (it covers frames 0-"
                f"{truth.num_frames - 1}); check --gt and --start-frame")
        frames = np.array([r.frame_index for r in results], np.int64)
        camera = setting.config.cameras[0]
        size = (done.frames[0].width, done.frames[0].height)
        key = (camera.model_dump_json(), *size, frames.tobytes())
        if key not in zone_truth_cache:
            zone_truth_cache[key] = truth_zone_counts(camera, truth, frames, *size)
        zone_truth = zone_truth_cache[key]
        parts = [np.ones(len(frames), bool)]
        if split is not None:
            parts += [frames < split, frames >= split]
        for number, mask in enumerate(parts):
            # A split outside the analysed frames would repeat the whole-run row.
            if number and (mask.all() or not mask.any()):
                continue
            chosen = [r for r, keep in zip(results, mask, strict=True) if keep]
            span = (int(frames[mask][0]), int(frames[mask][-1]))
            label = f"{setting.name} [{span[0]}-{span[1]}]" if number else setting.name
            zones = {zone: counts[mask] for zone, counts in zone_truth.items()}
            rows.append(Row(setting.name, span, score(label, chosen, truth, zones), not number))
    return Report(rows, (int(frames[0]), int(frames[-1])), len(frames), unscored)


# ---------------------------------------------------------------------------------------------
# People flow: line crossings and tracking quality
# ---------------------------------------------------------------------------------------------

FLOW_BASELINE_HELP = ("peers' line counting (Ultralytics ObjectCounter): box centre, each "
                      "track id counted once per line, on the same tracks")


@dataclass(frozen=True)
class LineScore:
    """(in, out) crossings of one line: ground truth, crowdwatch and the peers' method."""

    line: str
    truth: tuple[int, int]
    counted: tuple[int, int]
    baseline: tuple[int, int]

    def errors(self, which: str = "counted") -> tuple[int, int, int]:
        """Signed errors of in, out and total against the truth."""
        got = getattr(self, which)
        return (got[0] - self.truth[0], got[1] - self.truth[1],
                sum(got) - sum(self.truth))


@dataclass(frozen=True)
class FlowResult:
    """Line crossings and tracking quality of one setting."""

    setting: str
    lines: list[LineScore]
    tracking: TrackingQuality

    def to_dict(self) -> dict[str, Any]:
        t = self.tracking
        return {
            "setting": self.setting,
            "lines": [{"line": s.line, "truth": dict(zip(("in", "out"), s.truth, strict=True)),
                       "counted": dict(zip(("in", "out"), s.counted, strict=True)),
                       "baseline": dict(zip(("in", "out"), s.baseline, strict=True))}
                      for s in self.lines],
            "tracking": {"idf1": round(t.idf1, 4), "id_switches": t.id_switches,
                         "mota": round(t.mota, 4)},
        }


def score_flow(setting: Setting, done: Pass, truth: GroundTruth) -> FlowResult | None:
    """Crossings of the camera's lines against ground-truth tracks over the scored frames;
    None when the camera has no lines or the ground truth has no track ids."""
    from crowdwatch.analytics.lines import build_lines
    from crowdwatch.tools.flow import (
        Tracks,
        baseline_crossings,
        gt_crossings,
        tracking_quality,
    )

    camera = setting.config.cameras[0]
    results = [r for r in done.results if r.frame_index < truth.num_frames]
    if not camera.lines or not results:
        return None
    frames, ids, xyxy = truth.tracks()
    first, last = results[0].frame_index, results[-1].frame_index
    scored = (frames >= first) & (frames <= last)
    if (ids[scored] < 0).any():
        return None
    gt = Tracks(frames[scored], ids[scored], xyxy[scored].astype(np.float64))
    kept = [(r.frame_index, r.detections) for r in results
            if r.detections.tracker_id is not None]
    predicted = Tracks(
        np.concatenate([np.full(len(d), f, np.int64) for f, d in kept] or [np.zeros(0, int)]),
        np.concatenate([d.tracker_id for _, d in kept] or [np.zeros(0, np.int64)]),  # type: ignore[misc]
        np.concatenate([d.xyxy for _, d in kept] or [np.zeros((0, 4))]).astype(np.float64))
    confirmed = predicted.track_id >= 0
    tracked = Tracks(predicted.frame[confirmed], predicted.track_id[confirmed],
                     predicted.xyxy[confirmed])
    size = (done.frames[0].width, done.frames[0].height)
    scores = []
    flow = results[-1].flow
    assert flow is not None  # a camera with lines is tracked
    for line in build_lines(camera.lines, *size):
        total = flow.lines[line.name]
        scores.append(LineScore(line.name, gt_crossings(gt, line),
                                (total.people_in, total.people_out),
                                baseline_crossings(tracked, line)))
    return FlowResult(setting.name, scores, tracking_quality(gt, predicted))


def format_flow(flows: Sequence[FlowResult]) -> str:
    """A table: per setting and line, truth / crowdwatch / peers' (in, out, total)."""
    lines = [f"{'setting':<14} {'line':<12} {'truth in/out':>12} {'counted':>9} "
             f"{'err in/out/tot':>15} {'peers':>9} {'peers err':>11}"]
    for flow in flows:
        for s in flow.lines:
            ours, peers = s.errors("counted"), s.errors("baseline")
            lines.append(
                f"{flow.setting:<14} {s.line:<12} {s.truth[0]:>5}/{s.truth[1]:<6} "
                f"{s.counted[0]:>4}/{s.counted[1]:<4} "
                f"{ours[0]:>+5}/{ours[1]:+d}/{ours[2]:+d}".ljust(72)
                + f" {s.baseline[0]:>4}/{s.baseline[1]:<4} {peers[0]:+d}/{peers[1]:+d}/"
                f"{peers[2]:+d}")
        t = flow.tracking
        lines.append(f"{flow.setting:<14} tracking: IDF1 {t.idf1:.3f}, ID switches "
                     f"{t.id_switches}, MOTA {t.mota:.3f}")
    return "\n".join(lines)


def flow_failures(flow: FlowResult, max_error: Mapping[str, Mapping[str, int]],
                  beat_baseline: bool = True) -> list[str]:
    """One message per line and direction whose |error| exceeds its limit, and per line where
    crowdwatch's total error is worse than the peers' in the same run."""
    failures = []
    by_line = {s.line: s for s in flow.lines}
    for line, limits in max_error.items():
        if line not in by_line:
            failures.append(f"{flow.setting}: line {line} has a threshold but is not in the "
                            "config")
            continue
        score = by_line[line]
        errors = dict(zip(("in", "out", "total"), score.errors(), strict=True))
        for direction, limit in limits.items():
            if abs(errors[direction]) > limit:
                failures.append(f"{flow.setting}: line {line} {direction} error "
                                f"{errors[direction]:+d} (truth {score.truth}, counted "
                                f"{score.counted}) exceeds {limit}")
        if beat_baseline:
            ours = sum(abs(e) for e in score.errors()[:2])
            peers = sum(abs(e) for e in score.errors("baseline")[:2])
            if ours > peers:
                failures.append(f"{flow.setting}: line {line} in+out error {ours} is worse "
                                f"than the peers' method's {peers}")
    return failures


# ---------------------------------------------------------------------------------------------
# Thresholds
# ---------------------------------------------------------------------------------------------


def threshold_failures(result: EvalResult, max_mae: float | None,
                       max_zone_mae: float | Mapping[str, float] | None,
                       max_abs_bias: float | None = None,
                       max_zone_abs_bias: float | Mapping[str, float] | None = None) -> list[str]:
    """One message per exceeded threshold: metric, measured value, threshold.

    MAE bounds the size of the errors, |bias| (mean signed error) their lean: a change that
    over-counts a little on every frame can keep the MAE and still move every dashboard.
    """
    failures = []
    if max_mae is not None and result.counts.mae > max_mae:
        failures.append(f"{result.name}: whole-frame count MAE {result.counts.mae:.3f} "
                        f"> threshold {max_mae:.3f}")
    if max_abs_bias is not None and abs(result.counts.bias) > max_abs_bias:
        failures.append(f"{result.name}: whole-frame count bias {result.counts.bias:+.3f} "
                        f"beyond ±{max_abs_bias:.3f}")
    for metric, limits in (("MAE", max_zone_mae), ("bias", max_zone_abs_bias)):
        if limits is None:
            continue
        if not isinstance(limits, Mapping):
            limits = dict.fromkeys(result.zones, limits)
        for zone, limit in limits.items():
            if zone not in result.zones:
                failures.append(f"{result.name}: zone {zone} has a threshold but is not in "
                                "the config")
            elif metric == "MAE" and result.zones[zone].mae > limit:
                failures.append(f"{result.name}: zone {zone} count MAE "
                                f"{result.zones[zone].mae:.3f} > threshold {limit:.3f}")
            elif metric == "bias" and abs(result.zones[zone].bias) > limit:
                failures.append(f"{result.name}: zone {zone} count bias "
                                f"{result.zones[zone].bias:+.3f} beyond ±{limit:.3f}")
    return failures


# ---------------------------------------------------------------------------------------------
# One call for the command line and the CI gate
# ---------------------------------------------------------------------------------------------


def eval_config(config: AppConfig | None, video: Path, camera_id: str | None = None,
                model: str | None = None) -> AppConfig:
    """The config to evaluate: one camera reading `video`, unpaced, not looping."""
    if not video.exists():
        raise CrowdwatchError(f"{video}: video not found; check --video")
    if config is None:
        config = AppConfig(cameras=[CameraConfig(id="eval", source=str(video))])
    if camera_id is not None:
        cameras = [c for c in config.cameras if c.id == camera_id]
        if not cameras:
            known = ", ".join(c.id for c in config.cameras)
            raise CrowdwatchError(f"--camera {camera_id}: no such camera; the config has {known}")
    elif len(config.cameras) > 1:
        known = ", ".join(c.id for c in config.cameras)
        raise CrowdwatchError(f"eval scores one camera and the config has several ({known}); "
                              "choose one with --camera")
    else:
        cameras = config.cameras
    camera = cameras[0].model_copy(update={"source": str(video), "realtime": False,
                                           "loop": False})
    update: dict[str, Any] = {"cameras": [camera]}
    if model:
        update["detector"] = config.detector.model_copy(update={"model": model})
    return config.model_copy(update=update)


@dataclass
class Evaluation:
    """Everything `crowdwatch eval` measured."""

    settings: list[Setting]
    passes: dict[str, Pass]
    report: Report
    # Settings whose camera has lines, when the ground truth has track ids.
    flows: list[FlowResult] = field(default_factory=list)

    def flow(self, setting: str | None = None) -> FlowResult | None:
        name = self.settings[0].name if setting is None else setting
        return next((f for f in self.flows if f.setting == name), None)


def evaluate(config: AppConfig, truth: GroundTruth, compare: Sequence[str] = (),
             baseline: bool = True, start_frame: int = 0, max_frames: int | None = None,
             split: int | None = None, detect_factory: DetectFactory | None = None,
             log: Callable[[str], None] | None = None, name: str = PRIMARY,
             changes: Sequence[str] = ()) -> Evaluation:
    """Run and score the config (see eval_config) with its --set changes, each --compare
    entry and the baseline."""
    settings = build_settings(config, compare, baseline, name, changes)
    passes = run_settings(settings, start_frame, max_frames, detect_factory, log)
    flows = [f for s in settings
             if (f := score_flow(s, passes[s.name], truth)) is not None]
    return Evaluation(settings, passes, score_passes(settings, passes, truth, split), flows)


def report_json(evaluation: Evaluation, video: Path, gt: Path, config_path: Path | None,
                failures: Sequence[str]) -> dict[str, Any]:
    """The --report document: inputs, each setting's effective settings, every row."""
    report = evaluation.report
    return {
        "video": str(video),
        "ground_truth": str(gt),
        "config": None if config_path is None else str(config_path),
        "frames": {"first": report.frames[0], "last": report.frames[1],
                   "scored": report.scored, "unscored": report.unscored},
        "baseline": BASELINE_HELP,
        "matching": "greedy one-to-one by descending confidence, IoU >= 0.5 (COCO rule)",
        "settings": [
            {"name": s.name, "overrides": dict(s.overrides),
             "detector": s.config.detector.model_dump(),
             "counting": s.config.counting.model_dump(),
             "seconds": round(evaluation.passes[s.name].seconds, 2),
             "replayed": evaluation.passes[s.name].replayed}
            for s in evaluation.settings
        ],
        "results": [{"setting": row.setting, "frames": list(row.span), "whole": row.whole,
                     **row.result.to_dict()} for row in report.rows],
        "flow_baseline": FLOW_BASELINE_HELP,
        "flow": [f.to_dict() for f in evaluation.flows],
        "failures": list(failures),
    }


def describe_setting(setting: Setting, timed: bool = True) -> str:
    """One line: the detector settings and the count filter as it runs on this source
    (timed False: an image folder, see counting_smoother)."""
    from crowdwatch.analytics.smoothing import counting_smoother

    d = setting.config.detector
    smoothing = counting_smoother(setting.config.counting, timed)
    extra = "".join(f" {k}={getattr(d, k)}" for k in ("backend", "input_shape", "detect_every")
                    if hasattr(d, k))
    return (f"{setting.name}: conf {d.confidence:g}, iou {d.iou:g}, imgsz {d.imgsz}{extra}, "
            f"smoothing {smoothing}")


def write_report(path: Path, document: Mapping[str, Any]) -> None:
    import json

    try:
        path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    except OSError as error:
        raise CrowdwatchError(f"{path}: cannot write report ({error.strerror})") from None



# ---------------------------------------------------------------------------------------------
# Head-point ground truth (crowd datasets): counts and point-matched detections in an ROI
# ---------------------------------------------------------------------------------------------


def is_points_file(path: Path) -> bool:
    """Whether a ground-truth file is head points: a CSV whose header is frame,x,y."""
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            header = handle.readline()
    except OSError:
        return False
    return [c.strip().lower() for c in header.split(",")] == ["frame", "x", "y"]


def load_roi(roi: str, width: int, height: int) -> npt.NDArray[np.bool_]:
    """ROI mask of a frame size: a mask image (white inside) or a polygon "x,y;x,y;x,y"."""
    from crowdwatch.tools.points import load_mask, polygon_mask

    path = Path(roi)
    if path.exists():
        try:
            mask = load_mask(path)
        except ValueError as error:
            raise CrowdwatchError(f"--roi {error}; give a PNG mask, white inside") from None
        if mask.shape != (height, width):
            raise CrowdwatchError(f"--roi {roi}: mask is {mask.shape[1]}x{mask.shape[0]}, the "
                                  f"frames are {width}x{height}; give a mask of the frame size")
        return mask
    try:
        points = [tuple(float(v) for v in pair.split(",")) for pair in roi.split(";")]
    except ValueError:
        points = []
    if len(points) < 3 or any(len(p) != 2 for p in points):
        raise CrowdwatchError(f"--roi {roi}: neither a mask image nor a polygon; give a PNG "
                              "mask (white inside) or x,y;x,y;x,y in pixels")
    return polygon_mask(points, width, height)  # type: ignore[arg-type]


@dataclass
class PointsRow:
    """One scored frame range of a points evaluation."""

    name: str
    frames: int
    mae: float
    rmse: float
    bias: float
    precision: float
    recall: float

    def to_dict(self) -> dict[str, float | int | str]:
        return {"name": self.name, "frames": self.frames, "mae": self.mae, "rmse": self.rmse,
                "bias": self.bias, "precision": self.precision, "recall": self.recall}


@dataclass
class PointsEvaluation:
    """What `crowdwatch eval --gt points.csv` measured: all frames first, then the split."""

    rows: list[PointsRow]
    first: int
    last: int
    seconds: float
    # The count filter as it ran on this source (persistence 0.2 s, none ...).
    filter: str = "none"


def score_points(results: Sequence[FrameResult], truth: Mapping[int, npt.NDArray[np.float64]],
                 mask: npt.NDArray[np.bool_] | None, counting: CountingConfig, timed: bool,
                 split: int | None = None, name: str = PRIMARY) -> list[PointsRow]:
    """Score each frame's people against head points inside the ROI.

    The count of a frame is its people whose head point lies in the ROI, through the
    config's temporal filter as the pipeline runs it (counting_smoother; timed: the frames
    have real times, not an image folder's); matching uses the boxes themselves.
    Frames beyond the ground truth's last frame are not scored.
    """
    from crowdwatch.analytics.smoothing import counting_smoother
    from crowdwatch.tools.points import head_points, in_mask, score_frames

    last_truth = max(truth) if truth else -1
    ordered = [r for r in sorted(results, key=lambda r: r.frame_index)
               if r.frame_index <= last_truth]
    if not ordered:
        raise CrowdwatchError("no analysed frame has ground truth; check --gt and --video")
    boxes = {r.frame_index: r.detections.xyxy for r in ordered}
    smoother = counting_smoother(counting, timed)
    counts = {}
    for r in ordered:
        inside = int(in_mask(mask, head_points(r.detections.xyxy)).sum())
        counts[r.frame_index] = int(smoother.update(np.array([inside], np.int64),
                                                    r.timestamp)[0])
    frames = list(boxes)
    ranges = [(name, frames)]
    if split is not None:
        ranges += [(f"{name} <{split}", [f for f in frames if f < split]),
                   (f"{name} >={split}", [f for f in frames if f >= split])]
    rows = []
    for label, chosen in ranges:
        if not chosen:
            continue
        score = score_frames(boxes, truth, chosen, mask, counts)
        c = score.counts
        rows.append(PointsRow(label, c.frames, c.mae, c.rmse, c.bias, score.precision,
                              score.recall))
    return rows


def evaluate_points(config: AppConfig, points: Path, roi: str | None = None,
                    start_frame: int = 0, max_frames: int | None = None,
                    split: int | None = None, detect_factory: DetectFactory | None = None,
                    name: str = PRIMARY) -> PointsEvaluation:
    """Run the config over its clip and score it against head points (see score_points)."""
    from crowdwatch.analytics.smoothing import counting_smoother
    from crowdwatch.tools.points import load_points

    try:
        truth = load_points(points)
    except (OSError, ValueError) as error:
        raise CrowdwatchError(f"--gt {error}; points need a frame,x,y header") from None
    started = time.perf_counter()
    passes = run_settings([Setting(name, config)], start_frame, max_frames, detect_factory)
    done = passes[name]
    if not done.frames:
        raise CrowdwatchError(f"{config.cameras[0].source}: no frame was read")
    mask = None if roi is None else load_roi(roi, done.frames[0].width, done.frames[0].height)
    rows = score_points(done.results, truth, mask, config.counting, done.sequence, split, name)
    return PointsEvaluation(rows, done.frames[0].index, done.frames[-1].index,
                            time.perf_counter() - started,
                            str(counting_smoother(config.counting, done.sequence)))


def format_points_table(rows: Sequence[PointsRow]) -> str:
    """The rows as a plain-text table."""
    lines = [f"{'setting':<22} {'frames':>6} {'MAE':>7} {'RMSE':>7} {'bias':>7} "
             f"{'precision':>9} {'recall':>7}"]
    lines += [f"{r.name:<22} {r.frames:>6} {r.mae:>7.3f} {r.rmse:>7.3f} {r.bias:>+7.3f} "
              f"{r.precision:>9.3f} {r.recall:>7.3f}" for r in rows]
    return "\n".join(lines)
