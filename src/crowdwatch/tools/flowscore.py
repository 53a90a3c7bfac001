"""Eval's people-flow scores: line crossings against ground-truth tracks, and the peers'
method on the same tracks, with tracking quality (IDF1, MOTA)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from crowdwatch.tools.flow import TrackingQuality
from crowdwatch.tools.groundtruth import GroundTruth
from crowdwatch.tools.replay import Pass
from crowdwatch.tools.settings import Setting, installed

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
class FlowScore:
    """Line crossings and tracking quality of one setting."""

    setting: str
    lines: list[LineScore]
    tracking: TrackingQuality | None  # None: motmetrics is not installed

    def to_dict(self) -> dict[str, Any]:
        t = self.tracking
        tracking = None if t is None else {"idf1": round(t.idf1, 4),
                                           "id_switches": t.id_switches,
                                           "mota": round(t.mota, 4)}
        return {
            "setting": self.setting,
            "lines": [{"line": s.line, "truth": dict(zip(("in", "out"), s.truth, strict=True)),
                       "counted": dict(zip(("in", "out"), s.counted, strict=True)),
                       "baseline": dict(zip(("in", "out"), s.baseline, strict=True))}
                      for s in self.lines],
            "tracking": tracking,
        }


def score_flow(setting: Setting, done: Pass, truth: GroundTruth) -> FlowScore | None:
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
    # IDF1 and MOTA need motmetrics (the dev extra); line counts do not.
    quality = tracking_quality(gt, predicted) if installed("motmetrics") else None
    return FlowScore(setting.name, scores, quality)


def format_flow(flows: Sequence[FlowScore]) -> str:
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
                     f"{t.id_switches}, MOTA {t.mota:.3f}" if t is not None else
                     f"{flow.setting:<14} tracking: not scored (IDF1 and MOTA need "
                     "motmetrics: pip install motmetrics)")
    return "\n".join(lines)


def flow_failures(flow: FlowScore, max_error: Mapping[str, Mapping[str, int]],
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
