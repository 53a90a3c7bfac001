"""The density head served by the running detector: one pass gives the same boxes and the same
density map as the standalone counter; anything that cannot serve density fails in one line
under counting.method density and falls back to boxes (one warning) under auto."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from crowdwatch.config import DetectorConfig
from crowdwatch.config.detector import TilingConfig
from crowdwatch.density import model as density_model
from crowdwatch.density.counter import DensityCounter
from crowdwatch.density.model import DEFAULT_HEAD, resolve_head
from crowdwatch.density.serve import serve_density
from crowdwatch.detect import openvino as openvino_backend
from crowdwatch.detect.base import Detector, Done
from crowdwatch.detect.fair import fair_share
from crowdwatch.detect.models import EMBEDDED_DIR
from crowdwatch.detect.openvino import OpenVINOBackend
from crowdwatch.detect.tiling import tiled
from crowdwatch.errors import ModelError
from crowdwatch.types import Detections, Image

REPO = Path(__file__).resolve().parents[2]
DETECTOR_DIR = EMBEDDED_DIR / "yolo11n_int8_openvino_model"


@pytest.fixture(scope="module")
def backend() -> OpenVINOBackend:
    detector = OpenVINOBackend(DetectorConfig(threads=2), DETECTOR_DIR)
    assert serve_density(detector, "density", DETECTOR_DIR)
    return detector


def test_one_pass_gives_the_standalone_counters_boxes_and_map(backend: OpenVINOBackend,
                                                              pets_frame: np.ndarray) -> None:
    config = backend.config
    pending = backend.submit(pets_frame)
    detections = pending.result()
    expected = DensityCounter(DETECTOR_DIR / "yolo11n.xml", resolve_head(),
                              confidence=config.confidence, iou=config.iou,
                              max_det=config.max_det, threads=2).run(pets_frame)
    assert pending.density is not None
    assert pending.density.letterbox == expected.density.letterbox
    np.testing.assert_allclose(pending.density.cells, expected.density.cells, atol=1e-3)
    # The crowd head's map, run apart when asked for, is the counter's (one pass with both
    # heads) and not the main head's.
    crowd = pending.density.crowd_map()
    assert crowd is not None and expected.density.crowd is not None
    np.testing.assert_allclose(crowd.cells, expected.density.crowd, atol=1e-3)
    assert np.abs(crowd.cells - pending.density.cells).max() > 1e-2
    assert len(detections) == len(expected.detections) >= 3
    np.testing.assert_allclose(detections.xyxy, expected.detections.xyxy, atol=1.0)


def test_the_crowd_head_runs_only_for_a_map_that_asks_for_it(
        pets_frame: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = OpenVINOBackend(DetectorConfig(threads=2), DETECTOR_DIR)
    assert serve_density(backend, "auto", DETECTOR_DIR)
    runs: list[int] = []
    run_crowd = openvino_backend._Compiled.crowd_cells

    def counted(entry: openvino_backend._Compiled, features: list[object]) -> np.ndarray:
        runs.append(1)
        return run_crowd(entry, features)

    monkeypatch.setattr(openvino_backend._Compiled, "crowd_cells", counted)
    first = backend.submit(pets_frame)
    first.result()
    # Another frame in the same infer request (given back after the first result).
    other = backend.submit(np.ascontiguousarray(pets_frame[::-1]))
    other.result()
    assert runs == []
    # Not even compiled before a frame reads it (a sparse camera never holds it).
    (entry,) = backend._compiled.values()
    assert entry._crowd_model is None
    # The first pass kept its own features: its map is its frame's, not the later one's.
    first_crowd = first.density.crowd_map().cells
    assert len(runs) == 1 and entry._crowd_model is not None
    again = backend.submit(pets_frame)
    again.result()
    np.testing.assert_array_equal(first_crowd, again.density.crowd_map().cells)
    assert np.abs(other.density.crowd_map().cells - first_crowd).max() > 1e-2
    assert len(runs) == 3


def test_the_map_travels_through_fair_share_and_the_tilers_whole_frame(
        backend: OpenVINOBackend, pets_frame: np.ndarray) -> None:
    plain = backend.submit(pets_frame)
    plain.result()
    lane = fair_share(backend).lane("cam0")
    through_lane = lane.submit(pets_frame)
    through_lane.result()
    tiler = tiled(backend, TilingConfig(mode="on"), 640)
    through_tiles = tiler.submit(pets_frame)
    through_tiles.result()
    for pending in (through_lane, through_tiles):
        assert pending.density is not None
        np.testing.assert_array_equal(pending.density.cells, plain.density.cells)


def test_a_larger_input_size_is_the_standalone_counters_at_that_size_through_every_wrapper(
        backend: OpenVINOBackend, pets_frame: np.ndarray) -> None:
    # counting.density_imgsz: the PETS frame (576 x 768) at 768 is a 576 x 768 input, 72 x 96
    # cells of 8 pixels, where 640 gives 60 x 80.
    expected = DensityCounter(DETECTOR_DIR / "yolo11n.xml", resolve_head(), imgsz=768,
                              threads=2).run(pets_frame)
    assert expected.density.cells.shape == (72, 96)
    direct = backend.submit(pets_frame, input_size=768)
    lane = fair_share(backend).lane("cam0").submit(pets_frame, input_size=768)
    tiler = tiled(backend, TilingConfig(mode="on"), 640)
    whole = tiler.submit(pets_frame, input_size=768)
    for pending in (direct, lane, whole):
        pending.result()
        assert pending.density is not None
        assert pending.density.letterbox == expected.density.letterbox
        np.testing.assert_allclose(pending.density.cells, expected.density.cells, atol=1e-3)
    # The backend's own size is untouched by it.
    plain = backend.submit(pets_frame)
    plain.result()
    assert plain.density is not None and plain.density.cells.shape == (60, 80)


def test_a_plain_backend_has_no_map(pets_frame: np.ndarray) -> None:
    pending = OpenVINOBackend(DetectorConfig(threads=2), DETECTOR_DIR).submit(pets_frame)
    pending.result()
    assert pending.density is None


class NoDensity(Detector):
    name = "ultralytics"

    def submit(self, image: Image) -> Done:
        return Done(Detections.empty())


def test_boxes_never_asks_for_the_head() -> None:
    assert serve_density(NoDensity(), "boxes", None) is False


def test_a_backend_without_density_fails_under_density_and_warns_under_auto(
        caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ModelError, match="gives no density map") as error:
        serve_density(NoDensity(), "density", None)
    assert "\n" not in str(error.value)
    with caplog.at_level(logging.WARNING, "crowdwatch.density"):
        assert serve_density(NoDensity(), "auto", None) is False
    assert len(caplog.records) == 1 and "boxes" in caplog.records[0].getMessage()


def test_another_detector_model_cannot_feed_the_head(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="reads the features of"):
        serve_density(OpenVINOBackend(DetectorConfig(threads=1), DETECTOR_DIR), "density",
                      tmp_path / "yolov8n_openvino_model")


def test_a_damaged_head_fails_under_density_and_falls_back_under_auto(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    package = tmp_path / "package"
    shutil.copytree(EMBEDDED_DIR / DEFAULT_HEAD, package / DEFAULT_HEAD)
    (package / DEFAULT_HEAD / "density_head.bin").unlink()
    monkeypatch.setattr(density_model, "model_search_dirs", lambda: [package])
    detector = OpenVINOBackend(DetectorConfig(threads=1), DETECTOR_DIR)
    with pytest.raises(ModelError, match="damaged"):
        serve_density(detector, "density", DETECTOR_DIR)
    with caplog.at_level(logging.WARNING, "crowdwatch.density"):
        assert serve_density(detector, "auto", DETECTOR_DIR) is False
    assert "damaged" in caplog.text
    assert not detector.serves_density


def test_the_pipelines_density_tiles_give_the_standalone_counters_map(
        backend: OpenVINOBackend, pets_frame: np.ndarray) -> None:
    from crowdwatch.density.tiles import DenseTiles, TiledDensity

    # A rule that fires on any frame (PETS is sparse), 6 tiles: the tiles' path through the
    # backend (a FairShare lane, as a camera of several has) is the one eval measured.
    rule = DenseTiles(peak_people=0, min_people=0, zoom=2.0)
    pending = fair_share(backend).lane("cam0").submit(pets_frame)
    pending.result()
    refine = TiledDensity(fair_share(backend).lane("cam0").submit, rule)
    stitched = refine(pets_frame, pending.density)
    config = backend.config
    expected = DensityCounter(DETECTOR_DIR / "yolo11n.xml", resolve_head(),
                              confidence=config.confidence, iou=config.iou,
                              max_det=config.max_det, threads=2, tiles=rule).run(pets_frame)
    assert refine.tiled_frames == 1
    assert not np.allclose(stitched.cells, pending.density.cells, atol=1e-2)
    # rtol: the backend feeds the (fp32) crowd head the pass's features exposed in fp16, the
    # standalone counter's one graph in fp32 (0.1 % on the densest cells).
    np.testing.assert_allclose(stitched.cells, expected.density.cells, rtol=2e-3, atol=1e-3)
    assert stitched.total() == pytest.approx(expected.density.total(), rel=5e-4, abs=0.01)
