"""Line counts on PETS2009 S2.L1 (768 x 576, 7 fps): ground truth vs LineCounter vs the peers'
centre-once baseline, on GT tracks and optionally on detector + tracker output.

PYTHONPATH=src python benchmarks/flow_pets.py [--detect] [--frames N] [--tracker bytetrack]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from crowdwatch.analytics.lines import Line
from crowdwatch.config.flow import TrackerConfig
from crowdwatch.tools.flow import (
    Tracks,
    baseline_crossings,
    gt_crossings,
    run_line_counter,
    tracking_quality,
)

DATA = Path("/work/shared/datasets/pets2009-s2l1")
FPS = 7.0
# Lines across the walkways of the S2.L1 view, pixels (x1, y1) -> (x2, y2); no segment
# tolerance, so LineCounter and the GT count judge the segment ends alike.
LINES = [
    Line("west", (240, 170), (240, 380), segment_tolerance=0.0),  # vertical, left part of the path
    Line("centre", (420, 170), (420, 400), segment_tolerance=0.0),  # vertical, mid-scene
    Line("east", (560, 300), (740, 300), segment_tolerance=0.0),  # horizontal, right walkway
]


def report(title: str, tracks: Tracks, gt: Tracks) -> None:
    counted = run_line_counter(tracks, LINES, FPS)
    print(f"\n{title}: line  GT(in,out)  LineCounter(in,out)  baseline(in,out)")
    for line in LINES:
        print(f"  {line.name:7s} {gt_crossings(gt, line)!s:11s} {counted[line.name]!s:20s}"
              f" {baseline_crossings(tracks, line)}")


def detect_and_track(frames: int, tracker_name: str) -> Tracks:
    import cv2
    from crowdwatch.detector import PersonDetector

    from crowdwatch.config import DetectorConfig
    from crowdwatch.track import build_tracker

    model = "/work/shared/models/yolo11n_int8_openvino_model"
    detector = PersonDetector(DetectorConfig(model=model, threads=2))
    tracker = build_tracker(TrackerConfig(name=tracker_name), fps=FPS)
    capture = cv2.VideoCapture(str(DATA / "vtest.avi"))
    rows = []
    start = time.perf_counter()
    for index in range(frames):
        ok, image = capture.read()
        if not ok:
            break
        tracked = tracker.update(detector.detect(image), index / FPS)
        assert tracked.tracker_id is not None
        for box, tid in zip(tracked.xyxy, tracked.tracker_id, strict=True):
            rows.append((index, int(tid), *box.tolist()))
    print(f"detected + tracked {index + 1} frames in {time.perf_counter() - start:.0f} s")
    return Tracks.from_rows(rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--detect", action="store_true")
    parser.add_argument("--frames", type=int, default=795)
    parser.add_argument("--tracker", default="bytetrack")
    args = parser.parse_args()
    gt = Tracks.from_csv(DATA / "gt/PETS2009-S2L1_boxes.csv")
    keep = gt.frame < args.frames
    gt = Tracks(gt.frame[keep], gt.track_id[keep], gt.xyxy[keep])
    print("lines:", [(line.name, line.start, line.end) for line in LINES])
    report(f"GT tracks, {args.frames} frames", gt, gt)
    if args.detect:
        predicted = detect_and_track(args.frames, args.tracker)
        confirmed = predicted.track_id >= 0
        report(f"detector + {args.tracker}", Tracks(predicted.frame[confirmed],
               predicted.track_id[confirmed], predicted.xyxy[confirmed]), gt)
        print(tracking_quality(gt, predicted))


if __name__ == "__main__":
    main()
