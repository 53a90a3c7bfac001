"""`crowdwatch eval`: run the real pipeline over a clip with ground truth and score its counts.

Every setting is the config with dotted-key overrides (tools/settings.py); tools/replay.py
runs them with one detection pass per detector; this module scores counts (whole frame and
zones), tools/flowscore.py line crossings, tools/headpoints.py head-point ground truth.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely

from crowdwatch.config import AppConfig, CameraConfig
from crowdwatch.errors import CrowdwatchError
from crowdwatch.tools.flowscore import FLOW_BASELINE_HELP, FlowScore, score_flow
from crowdwatch.tools.groundtruth import GroundTruth
from crowdwatch.tools.replay import DetectFactory, Pass, run_settings
from crowdwatch.tools.scoring import (
    DetectionTally,
    EvalResult,
    count_errors,
    people_in_zone,
)
from crowdwatch.tools.settings import (
    BASELINE_HELP,
    BASELINE_MISSING,
    PRIMARY,
    Setting,
    baseline_available,
    build_settings,
)
from crowdwatch.types import FrameResult

EXIT_THRESHOLD = 3


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


def truth_mismatch(source: str, truth: GroundTruth) -> list[str]:
    """Why the ground truth may belong to another clip: a different frame count, boxes
    beyond the frame. Scores against another dataset's truth would look like real errors."""
    import cv2

    path = Path(source)
    if path.is_dir():
        from crowdwatch.sources.files import IMAGE_EXTENSIONS

        images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        first = cv2.imread(str(images[0])) if images else None
        count = len(images)
        size = None if first is None else (first.shape[1], first.shape[0])
    else:
        capture = cv2.VideoCapture(source)
        try:
            count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
                    int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        finally:
            capture.release()
    problems = []
    if count > 0 and count != truth.num_frames:
        problems.append(f"the clip has {count} frames and the ground truth {truth.num_frames}; "
                        "only frames in both are scored: check that it is this clip's truth")
    boxes = truth.tracks()[2]
    if size is not None and size[0] > 0 and len(boxes):
        right, bottom = float(boxes[:, 2].max()), float(boxes[:, 3].max())
        if right > size[0] * 1.05 or bottom > size[1] * 1.05:
            problems.append(f"ground-truth boxes reach x {right:.0f}, y {bottom:.0f} in a "
                            f"{size[0]}x{size[1]} clip: truth of another resolution or clip?")
    return problems


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
    flows: list[FlowScore] = field(default_factory=list)

    def flow(self, setting: str | None = None) -> FlowScore | None:
        name = self.settings[0].name if setting is None else setting
        return next((f for f in self.flows if f.setting == name), None)


def evaluate(config: AppConfig, truth: GroundTruth, compare: Sequence[str] = (),
             baseline: bool = True, start_frame: int = 0, max_frames: int | None = None,
             split: int | None = None, detect_factory: DetectFactory | None = None,
             log: Callable[[str], None] | None = None, name: str = PRIMARY,
             changes: Sequence[str] = ()) -> Evaluation:
    """Run and score the config (see eval_config) with its --set changes, each --compare
    entry and the baseline."""
    for warning in truth_mismatch(str(config.cameras[0].source), truth):
        (log or (lambda _message: None))(f"warning: {warning}")
    if baseline and not baseline_available():
        baseline = False
        (log or (lambda _message: None))(BASELINE_MISSING)
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
