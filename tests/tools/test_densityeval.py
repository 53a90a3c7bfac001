"""`crowdwatch eval --density`: the density counter scored against head points in the ROI."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from crowdwatch.cli import app
from crowdwatch.config import parse_config
from crowdwatch.density.counter import DensityCounter, DensityResult
from crowdwatch.density.model import resolve_head
from crowdwatch.detect.densitymap import DensityMap
from crowdwatch.detect.models import EMBEDDED_DIR
from crowdwatch.detect.yolo import Letterbox
from crowdwatch.errors import CrowdwatchError
from crowdwatch.tools.densityeval import evaluate_density
from crowdwatch.tools.points import load_points
from crowdwatch.types import Detections

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


class UniformCounter:
    """0.01 people in each of a 480x640 input's 60x80 cells: 48 in a 4:3 frame."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def run(self, image: np.ndarray) -> DensityResult:
        letterbox = Letterbox.fit((image.shape[0], image.shape[1]), (480, 640))
        return DensityResult(Detections.empty(),
                             DensityMap(np.full((60, 80), 0.01, np.float32), letterbox))


@pytest.fixture
def mixed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A folder of a 640x480 and a 1280x960 image (ShanghaiTech's folders mix sizes), 48 head
    points on each, and the counter scripted."""
    monkeypatch.setattr("crowdwatch.density.counter.DensityCounter", UniformCounter)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, (h, w) in enumerate([(480, 640), (960, 1280)]):
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.zeros((h, w, 3), np.uint8))
    points = tmp_path / "points.csv"
    points.write_text("frame,x,y\n" + "".join(f"{i},5,5\n" for i in (0, 1) for _ in range(48)))
    return folder, points


def test_each_frame_counts_over_its_own_size(mixed: tuple[Path, Path]) -> None:
    folder, points = mixed
    config = parse_config({"cameras": [{"id": "c", "source": str(folder)}]})
    row = evaluate_density(config, points)
    # Counted over the first frame's rectangle, the second would give 12 of its 48.
    assert row.frames == 2
    assert row.mae == pytest.approx(0.0, abs=1e-4)


def test_an_roi_over_frames_of_mixed_sizes_is_a_clear_error(mixed: tuple[Path, Path]) -> None:
    folder, points = mixed
    config = parse_config({"cameras": [{"id": "c", "source": str(folder)}]})
    with pytest.raises(CrowdwatchError, match="--roi is 640x480 but frame 1 is 1280x960"):
        evaluate_density(config, points, roi="0,0;320,0;320,480;0,480")
