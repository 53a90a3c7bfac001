"""annotate(): zone colours by level, boxes at their coordinates, track ids, blur."""

from __future__ import annotations

import dataclasses

import numpy as np

from crowdwatch.analytics.scene import CameraScene
from crowdwatch.outputs.annotate import (
    BOX_COLOR,
    LEVEL_COLORS,
    LineShape,
    ZoneShape,
    annotate,
    blur_people,
)
from crowdwatch.types import Detections, FlowResult, FrameResult, Level, LineTotals, ZoneStats


def _result(xyxy: list[list[float]], zones: dict[str, ZoneStats] | None = None) -> FrameResult:
    boxes = np.array(xyxy, np.float32).reshape(-1, 4)
    detections = Detections(boxes, np.ones(len(boxes), np.float32))
    return FrameResult("cam0", 1, 0.0, 0.0, len(boxes), len(boxes), zones or {}, detections)


def test_zone_outline_has_its_level_colour() -> None:
    image = np.zeros((200, 300, 3), np.uint8)
    zones = [ZoneShape.of("a", [(20, 40), (120, 40), (120, 180), (20, 180)]),
             ZoneShape.of("b", [(160, 40), (280, 40), (280, 180), (160, 180)])]
    result = _result([], {"a": ZoneStats(3, level=Level.CRITICAL), "b": ZoneStats(1, level=Level.OK)})
    out = annotate(image, result, zones, fill_alpha=0, header=False)
    assert tuple(out[110, 120]) == LEVEL_COLORS["critical"]  # right edge of zone a
    assert tuple(out[110, 280]) == LEVEL_COLORS["ok"]
    assert tuple(out[110, 70]) == (0, 0, 0)  # inside, no fill
    assert image.sum() == 0  # the input is not drawn on


def test_zone_fill_tints_only_inside() -> None:
    image = np.zeros((100, 100, 3), np.uint8)
    zones = [ZoneShape.of("a", [(10, 10), (60, 10), (60, 60), (10, 60)])]
    out = annotate(image, _result([], {"a": ZoneStats(0, level=Level.WARNING)}), zones,
                   header=False, fill_alpha=0.5)
    assert out[40, 40].tolist() == (np.array(LEVEL_COLORS["warning"]) * 0.5).round().tolist()
    assert out[80, 80].sum() == 0


def test_box_drawn_at_its_coordinates_with_track_id() -> None:
    image = np.zeros((120, 160, 3), np.uint8)
    result = _result([[30, 20, 90, 100]])
    out = annotate(image, result, header=False)
    assert tuple(out[20, 60]) == BOX_COLOR  # top edge
    assert tuple(out[60, 30]) == BOX_COLOR  # left edge
    assert tuple(out[100, 60]) == BOX_COLOR  # bottom edge
    assert out[60, 60].sum() == 0  # inside the box: untouched


def test_track_ids_drawn_when_present() -> None:
    class Tracked:
        def __init__(self, xyxy: np.ndarray, ids: np.ndarray) -> None:
            self.xyxy = xyxy
            self.confidence = np.ones(len(xyxy), np.float32)
            self.tracker_id = ids

        def __len__(self) -> int:
            return len(self.xyxy)

    boxes = np.array([[30, 20, 90, 100]], np.float32)
    plain = annotate(np.zeros((120, 160, 3), np.uint8), _result(boxes.tolist()), header=False)
    tracked_result = FrameResult("cam0", 1, 0.0, 0.0, 1, 1, {},
                                 Tracked(boxes, np.array([42])))  # type: ignore[arg-type]
    tracked = annotate(np.zeros((120, 160, 3), np.uint8), tracked_result, header=False)
    # The id is written inside the box's top-left corner.
    assert (tracked[21:35, 31:50] != plain[21:35, 31:50]).any()


def test_lines_and_header_are_drawn() -> None:
    image = np.zeros((100, 200, 3), np.uint8)
    out = annotate(image, _result([]), lines=[LineShape("door", (10, 80), (190, 80), 2, 3)])
    assert out[80, 15].any()
    assert out[:22].any()  # header text


def test_blur_changes_the_box_and_nothing_else() -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (100, 100, 3), dtype=np.uint8)
    detections = Detections(np.array([[20, 30, 60, 90]], np.float32), np.ones(1, np.float32))
    out = blur_people(image, detections)
    inside = (slice(30, 90), slice(20, 60))
    assert np.abs(out[inside].astype(int) - image[inside]).mean() > 20
    mask = np.ones(image.shape[:2], bool)
    mask[inside] = False
    assert (out[mask] == image[mask]).all()


def test_annotate_blur_option() -> None:
    rng = np.random.default_rng(2)
    image = rng.integers(0, 255, (100, 100, 3), dtype=np.uint8)
    result = _result([[20, 30, 60, 90]])
    out = annotate(image, result, blur=True, boxes=False, header=False)
    assert (out[40:80, 30:50] != image[40:80, 30:50]).any()
    assert (out[0:20, 0:100] == image[0:20, 0:100]).all()


def test_level_labels_pick_the_zone_colours() -> None:
    assert [level.label for level in Level] == ["ok", "warning", "critical"]
    assert set(LEVEL_COLORS) == {None, *(level.label for level in Level)}


def test_camera_renderer_resolves_normalised_zones() -> None:
    from crowdwatch.config import CameraConfig, ZoneConfig
    from crowdwatch.outputs.annotate import CameraRenderer

    camera = CameraConfig(id="cam0", source="x.mp4", zones=[ZoneConfig(
        name="a", polygon=[(0.1, 0.2), (0.5, 0.2), (0.5, 0.8)], normalized=True)])
    render = CameraRenderer(CameraScene(camera))
    out = render(np.zeros((100, 200, 3), np.uint8),
                 _result([], {"a": ZoneStats(1, level=Level.CRITICAL)}))
    assert tuple(out[50, 100]) == LEVEL_COLORS["critical"]  # the zone's right edge, x = 0.5


def test_camera_renderer_shows_each_lines_totals() -> None:
    # The renderer must draw exactly what annotate() draws for the result's own totals (a
    # line that showed 0 / 0 whatever was counted would differ in its label).
    from crowdwatch.config import CameraConfig
    from crowdwatch.outputs.annotate import CameraRenderer

    camera = CameraConfig.model_validate({"id": "cam0", "source": "x.mp4", "lines": [
        {"name": "door", "points": [[0.1, 0.5], [0.9, 0.5]], "normalized": True}]})
    result = dataclasses.replace(_result([]), flow=FlowResult({"door": LineTotals(5, 2)}))
    rendered = CameraRenderer(CameraScene(camera))(np.zeros((100, 200, 3), np.uint8), result)
    expected = annotate(np.zeros((100, 200, 3), np.uint8), result,
                        lines=[LineShape("door", (20, 50), (180, 50), 5, 2)])
    zero = annotate(np.zeros((100, 200, 3), np.uint8), result,
                    lines=[LineShape("door", (20, 50), (180, 50), 0, 0)])
    assert (rendered == expected).all()
    assert (rendered != zero).any()


def test_ignore_regions_are_darkened_and_outlined() -> None:
    from crowdwatch.config import CameraConfig
    from crowdwatch.outputs.annotate import IGNORE_COLOR, IGNORE_SHADE, CameraRenderer

    camera = CameraConfig.model_validate({"id": "cam0", "source": "x.mp4", "ignore": [
        {"polygon": [[0.5, 0.5], [1, 0.5], [1, 1], [0.5, 1]], "normalized": True}]})
    image = np.full((100, 200, 3), 200, np.uint8)
    out = CameraRenderer(CameraScene(camera))(image, _result([]))
    # Inside: 200 blended with black at IGNORE_SHADE; outside below the header: untouched.
    assert tuple(out[90, 150]) == (round(200 * (1 - IGNORE_SHADE)),) * 3
    assert (out[30:45, 0:95] == 200).all()
    # The left edge, x = 0.5 * 200: the outline's grey (anti-aliased: within a few levels).
    assert np.abs(out[75, 100].astype(int) - IGNORE_COLOR).max() <= 4
