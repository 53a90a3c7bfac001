"""CI gate: the shipped density head's count on validation images of ShanghaiTech B (streets)
and A (very dense crowds: the crowd head and its tiles), counted as the defaults do
(counting.density_tiles).

shb-train 350-399 and sha-train 0-99 are never trained on (training/data.py). The thresholds
and the measured values they sit just above are in accuracy/thresholds.yaml (density:);
docs/ACCURACY.md says how they were measured. Needs CROWDWATCH_SHB_DIR and CROWDWATCH_SHA_DIR
(.ci/run sets them).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml

from crowdwatch.config import CountingConfig, DetectorConfig
from crowdwatch.density.counter import DensityCounter
from crowdwatch.density.model import resolve_head
from crowdwatch.density.scoring import count_errors, game
from crowdwatch.density.tiles import DenseTiles
from crowdwatch.detect.models import EMBEDDED_DIR

REPO = Path(__file__).resolve().parents[2]
THRESHOLDS = REPO / "accuracy" / "thresholds.yaml"
DETECTOR = EMBEDDED_DIR / "yolo11n_int8_openvino_model" / "yolo11n.xml"


def density_spec() -> dict[str, Any]:
    return yaml.safe_load(THRESHOLDS.read_text(encoding="utf-8"))["density"]


# Each clip's dataset -> the environment variable naming its folder in ../shared/datasets.
DATA_DIRS = {"shb-train": "CROWDWATCH_SHB_DIR", "sha-train": "CROWDWATCH_SHA_DIR"}


def data_dir(dataset: str) -> Path:
    variable = DATA_DIRS[dataset]
    value = os.environ.get(variable)
    if not value or not Path(value, "points.csv").is_file():
        pytest.skip(f"set {variable} to ../shared/datasets/{dataset} for the density accuracy "
                    "gate")
    return Path(value)


def read_points(path: Path) -> dict[int, np.ndarray]:
    rows: dict[int, list[tuple[float, float]]] = {}
    with path.open(newline="") as file:
        for row in csv.DictReader(file):
            rows.setdefault(int(row["frame"]), []).append((float(row["x"]), float(row["y"])))
    return {k: np.asarray(v, np.float32) for k, v in rows.items()}


@pytest.mark.parametrize("name", sorted(density_spec()["clips"]))
def test_density_thresholds_sit_just_above_the_measured_values(name: str) -> None:
    data = density_spec()
    clip = data["clips"][name]
    for metric in ("mae", "game2"):
        measured, limit = clip["measured"][metric], clip[f"max_{metric}"]
        assert measured <= limit <= measured + clip.get("max_margin", data["max_margin"]) + 1e-9


@pytest.mark.parametrize("name", sorted(density_spec()["clips"]))
def test_density_count_accuracy_gate(name: str) -> None:
    data = density_spec()
    clip = data["clips"][name]
    variable = clip.get("only_with_env")
    if variable and os.environ.get(variable) != "1":
        pytest.skip(f"full density gate ({clip['last'] - clip['first'] + 1} images): set "
                    f"{variable}=1 to run it (CI does)")
    folder = data_dir(clip["dataset"])
    points = read_points(folder / "points.csv")
    # As a camera counting from density does by default: whole images at
    # counting.density_imgsz, very dense ones again on tiles at detector.imgsz
    # (counting.density_tiles).
    counter = DensityCounter(DETECTOR, resolve_head(), threads=2, tiles=DenseTiles(),
                             imgsz=CountingConfig().density_imgsz or DetectorConfig().imgsz,
                             tile_imgsz=DetectorConfig().imgsz)
    counts, truth, games = [], [], []
    for index in range(clip["first"], clip["last"] + 1):
        image = cv2.imread(str(folder / "frames" / f"{index:06d}.jpg"))
        assert image is not None, f"{clip['dataset']} image {index} missing"
        density = counter.run(image).density
        counts.append(density.total())
        truth.append(len(points.get(index, ())))
        games.append(game(density, points.get(index, np.zeros((0, 2), np.float32)), 2))
    measured = {"mae": count_errors(counts, truth)["mae"], "game2": float(np.mean(games))}
    failures = [f"{metric} {measured[metric]:.3f} > {clip[f'max_{metric}']}"
                for metric in ("mae", "game2") if measured[metric] > clip[f"max_{metric}"]]
    if failures:
        pytest.fail(f"density accuracy gate failed on {clip['dataset']} "
                    f"{clip['first']}-{clip['last']}:"
                    "\n  " + "\n  ".join(failures) + f"\nthresholds: "
                    f"{THRESHOLDS.relative_to(REPO)} (density.clips.{name})", pytrace=False)
