"""Cost of people flow in the real pipeline, and detect_every: 2 with predicted boxes.

Runs configs/pets_full.yaml on the PETS2009 clip through the pipeline with the real detector,
settings interleaved per run: without tracking (lines and dwell dropped), with tracking
(lines + plaza dwell), and both with detect_every: 2. Prints median frames/s, the median
track stage (ms/frame) and each setting's plaza count MAE. Prints, asserts nothing.

    CROWDWATCH_MODEL=... CROWDWATCH_PETS_DIR=... PYTHONPATH=src \\
        python benchmarks/flow_cost.py [--runs 3] [--frames 400]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np

from crowdwatch.config import AppConfig, load_config
from crowdwatch.detect import create_detector
from crowdwatch.sources import open_source
from crowdwatch.tools.evaluate import eval_config, truth_zone_counts
from crowdwatch.tools.groundtruth import load_ground_truth
from crowdwatch.tools.replay import run_pipeline

REPO = Path(__file__).resolve().parents[1]
BUSIEST = "plaza"


def settings(base: AppConfig) -> dict[str, AppConfig]:
    camera = base.cameras[0]
    plain_camera = camera.model_copy(update={
        "lines": [], "zones": [z.model_copy(update={"dwell": False}) for z in camera.zones]})
    plain = base.model_copy(update={"cameras": [plain_camera]})

    def every2(config: AppConfig) -> AppConfig:
        return config.model_copy(update={"detector": config.detector.model_copy(
            update={"detect_every": 2})})

    return {"untracked": plain, "tracked": base,
            "untracked e2": every2(plain), "tracked e2": every2(base)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--frames", type=int, default=400)
    args = parser.parse_args()
    pets = Path(os.environ["CROWDWATCH_PETS_DIR"])
    base = eval_config(load_config(REPO / "configs/pets_full.yaml"), pets / "vtest.avi",
                       model=os.environ.get("CROWDWATCH_MODEL"))
    truth = load_ground_truth(pets / "gt/PETS2009-S2L1.xml")
    chosen = settings(base)
    detector = create_detector(base.detector)
    fps: dict[str, list[float]] = {name: [] for name in chosen}
    track_ms: dict[str, list[float]] = {name: [] for name in chosen}
    # Process CPU time per frame: on a shared machine less noisy than frames/s, and what a
    # CPU-bound deployment pays.
    cpu_ms: dict[str, list[float]] = {name: [] for name in chosen}
    mae: dict[str, float] = {}
    for _ in range(args.runs):
        for name, config in chosen.items():
            source = open_source(config.cameras[0])
            started, cpu = time.perf_counter(), time.process_time()
            results = run_pipeline(config, detector, source, args.frames)
            fps[name].append(len(results) / (time.perf_counter() - started))
            cpu_ms[name].append((time.process_time() - cpu) * 1000 / len(results))
            track_ms[name] += [r.stage_seconds.get("track", 0.0) * 1000 for r in results]
            frames = np.array([r.frame_index for r in results])
            expected = truth_zone_counts(config.cameras[0], truth, frames, 768, 576)[BUSIEST]
            got = np.array([r.zones[BUSIEST].people for r in results])
            mae[name] = float(np.abs(got - expected).mean())
    reference = statistics.median(fps["untracked"])
    print(f"{args.frames} frames x {args.runs} runs, interleaved; medians")
    print(f"{'setting':<14} {'frames/s':>9} {'vs untracked':>13} {'CPU ms/frame':>13} "
          f"{'track ms':>9} {BUSIEST + ' MAE':>10}")
    for name in chosen:
        f = statistics.median(fps[name])
        print(f"{name:<14} {f:>9.1f} {f / reference:>12.2f}x "
              f"{statistics.median(cpu_ms[name]):>13.2f} "
              f"{statistics.median(track_ms[name]):>9.2f} {mae[name]:>10.3f}")


if __name__ == "__main__":
    main()
