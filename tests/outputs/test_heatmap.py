"""Drawing the heatmap: the colour scale, its legend, the PNG and the overlay."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from crowdwatch.analytics.heatmap import Heat, Heatmaps
from crowdwatch.config import HeatmapConfig
from crowdwatch.outputs.heatmap import (
    LEGEND_HEIGHT,
    HeatmapRenderer,
    picture,
    scale_top,
    with_overlay,
)
from crowdwatch.types import Detections, FrameResult


@pytest.mark.parametrize(("peak", "top"), [(0.0, 1.0), (4.17, 5.0), (100.0, 100.0),
                                           (101.0, 200.0), (0.03, 0.05), (2.2, 2.5)])
def test_the_scale_tops_at_round_numbers(peak: float, top: float) -> None:
    grid = np.zeros((2, 2))
    grid[0, 1] = peak
    assert scale_top(grid) == pytest.approx(top)


def _turbo(value: int) -> np.ndarray:
    return cv2.applyColorMap(np.array([[value]], np.uint8), cv2.COLORMAP_TURBO)[0, 0]


def _heat() -> Heat:
    grid = np.zeros((3, 4))
    grid[1, 2] = 5.0  # exactly the scale's top
    return Heat(grid, 0.0, (300, 400), 600.0)


def test_picture_without_frame_is_the_colour_scale_with_its_legend() -> None:
    heat = _heat()
    heat.grid[0, 0] = 1.25  # a quarter of the top: the middle of the square-root scale
    image = picture(heat, None, 400, 0.6)
    assert image.shape == (300 + LEGEND_HEIGHT, 400, 3)
    # Cell (1, 2) is 100 px square at x 200-300, y 100-200: its centre is the top colour.
    assert np.abs(image[150, 250].astype(int) - _turbo(255)).max() <= 2
    assert np.abs(image[50, 50].astype(int) - _turbo(128)).max() <= 2
    assert np.abs(image[20, 250].astype(int) - _turbo(0)).max() <= 2
    bar = image[300 + 8]  # the legend's bar runs from the coldest to the hottest colour
    assert np.abs(bar[6].astype(int) - _turbo(0)).max() <= 3
    assert np.abs(bar[393].astype(int) - _turbo(255)).max() <= 3


def test_picture_over_a_frame_leaves_cold_cells_alone() -> None:
    frame = np.full((600, 800, 3), 90, np.uint8)
    image = picture(_heat(), frame, 400, 0.5)
    assert (image[20, 20] == 90).all()
    expected = 0.5 * _turbo(255) + 0.5 * 90
    assert np.abs(image[150, 250].astype(float) - expected).max() <= 3


def test_overlay_draws_the_camera_heat_and_keeps_the_frame() -> None:
    config = HeatmapConfig(cells=8, half_life_s=600, alpha=1.0)
    heatmaps = Heatmaps(config)
    renderer = HeatmapRenderer(heatmaps, config)
    frame = np.full((300, 400, 3), 90, np.uint8)
    result = FrameResult("cam", 0, 0.0, 0.0, 0, 0, image=frame)
    assert renderer.overlay(frame, result) is frame  # no heat yet: nothing drawn
    assert renderer.png("cam", None) is None
    # 8 x 6 cells of 50 px; one person standing with feet at (275, 170): cell (3, 5), for 1 s.
    person = Detections(np.array([[265, 100, 285, 170]], np.float32), np.ones(1, np.float32))
    for at in (0.0, 1.0):
        heatmaps.write(FrameResult("cam", 0, at, 0.0, 1, 1, detections=person, image=frame))
    drawn = renderer.overlay(frame, result)
    assert (frame == 90).all()
    assert np.abs(drawn[175, 275].astype(int) - _turbo(255)).max() <= 4
    assert (drawn[20, 20] == 90).all()
    assert drawn[300 - LEGEND_HEIGHT + 8, 300].tolist() != [90, 90, 90]  # the legend
    png = renderer.png("cam", None)
    assert png is not None
    decoded = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (480 + LEGEND_HEIGHT, 640, 3)
    both = with_overlay(lambda image, _result: image + 10, renderer.overlay)
    assert (both(frame, result)[20, 20] == 100).all()


def test_recordings_draw_the_heatmap_when_asked(tmp_path: Path) -> None:
    from crowdwatch.build import camera_scenes
    from crowdwatch.config import parse_config
    from crowdwatch.health import HealthState
    from crowdwatch.outputs.registry import OutputContext, build_sinks
    from crowdwatch.outputs.video import RecordingSink

    config = parse_config({"cameras": [{"id": "cam", "source": "clip.mp4"}],
                           "recording": {"enabled": True, "directory": str(tmp_path),
                                         "annotate": False},
                           "heatmap": {"overlay_recording": True, "cells": 8, "alpha": 1.0}})
    heatmaps = Heatmaps(config.heatmap)
    context = OutputContext(config, HealthState(["cam"]), camera_scenes(config),
                            heatmap=HeatmapRenderer(heatmaps, config.heatmap))
    [sink] = build_sinks(context)
    assert isinstance(sink, RecordingSink)
    frame = np.full((300, 400, 3), 90, np.uint8)
    person = Detections(np.array([[265, 100, 285, 170]], np.float32), np.ones(1, np.float32))
    for at in (0.0, 1.0):
        heatmaps.write(FrameResult("cam", 0, at, 0.0, 1, 1, detections=person, image=frame))
    recorder = sink._recorder("cam")
    assert recorder is not None and recorder._render is not None
    drawn = recorder._render(frame, FrameResult("cam", 0, 1.0, 0.0, 1, 1, image=frame))
    assert np.abs(drawn[175, 275].astype(int) - _turbo(255)).max() <= 4
    sink.close()
