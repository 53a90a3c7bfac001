"""`crowdwatch eval --density`: the density counter scored against head points in the ROI."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from crowdwatch.cli import app
from crowdwatch.density.counter import DensityCounter
from crowdwatch.density.model import resolve_head
from crowdwatch.detect.models import EMBEDDED_DIR
from crowdwatch.tools.points import load_points

DETECTOR = EMBEDDED_DIR / "yolo11n_int8_openvino_model" / "yolo11n.xml"


def masked_count(counter: DensityCounter, image: np.ndarray, mask: np.ndarray) -> float:
    """The density inside an ROI mask, read off the mask's pixels at 2x2 points per cell (the
    evaluation integrates over the mask's contour polygons instead)."""
    density = counter.run(image).density
    box = density.letterbox
    (new_w, new_h), (pad_x, pad_y) = box.resized_wh, box.pad_xy
    h, w = density.cells.shape
    sub = (np.arange(2 * w) + 0.5) * 4
    xs = np.floor((sub - pad_x) * box.frame_hw[1] / new_w).astype(int)
    ys = np.floor(((np.arange(2 * h) + 0.5) * 4 - pad_y) * box.frame_hw[0] / new_h).astype(int)
    inside = mask[np.clip(ys, 0, mask.shape[0] - 1)][:, np.clip(xs, 0, mask.shape[1] - 1)]
    share = inside.reshape(h, 2, w, 2).mean(axis=(1, 3))
    return float((density.cells * share).sum())


def test_eval_scores_the_density_counter_in_the_roi(mall_dir: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    result = CliRunner().invoke(app, [
        "eval", "--video", str(mall_dir / "frames"), "--gt", str(mall_dir / "points.csv"),
        "--roi", str(mall_dir / "roi_mask.png"), "--start-frame", "600", "--max-frames", "3",
        "--density", "--report", str(report)])
    assert result.exit_code == 0, result.output
    assert "density counter (3 frames" in result.output
    row = json.loads(report.read_text())["density"]
    # Worked out here from the mask image's pixels and the points themselves.
    mask = cv2.imread(str(mall_dir / "roi_mask.png"), cv2.IMREAD_GRAYSCALE) > 127
    truth = load_points(mall_dir / "points.csv")
    counter = DensityCounter(DETECTOR, resolve_head(), threads=2)
    errors = []
    for index in (600, 601, 602):
        image = cv2.imread(str(mall_dir / "frames" / f"seq_{index + 1:06d}.jpg"))
        heads = truth[index]
        inside = mask[heads[:, 1].astype(int), heads[:, 0].astype(int)].sum()
        errors.append(masked_count(counter, image, mask) - inside)
    assert row["frames"] == 3
    assert row["mae"] == pytest.approx(np.abs(errors).mean(), abs=0.1)
    assert row["bias"] == pytest.approx(np.mean(errors), abs=0.1)
    assert row["game2"] >= row["mae"] - 1e-6  # GAME(2) can only add region errors


def test_density_needs_head_point_ground_truth(tmp_path: Path) -> None:
    gt = tmp_path / "gt.csv"
    gt.write_text("frame,id,x,y,w,h\n0,1,1,1,5,5\n")
    result = CliRunner().invoke(app, ["eval", "--video", str(tmp_path), "--gt", str(gt),
                                      "--density"])
    assert result.exit_code != 0
    assert "--density applies to head-point ground truth" in result.output
    assert "Traceback" not in result.output
