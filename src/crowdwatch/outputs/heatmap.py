"""Draw a camera's heatmap (analytics/heatmap.py): OpenCV's turbo colours on a square-root
scale, with a legend bar of its numbers in person-seconds per grid cell; alone or blended over
a frame.

`HeatmapRenderer.png` makes /cameras/{id}/heatmap.png; `HeatmapRenderer.overlay` is a render
(image, result) -> image for previews and recordings.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import cv2
import numpy as np
import numpy.typing as npt

from crowdwatch.analytics.heatmap import Heat, Heatmaps
from crowdwatch.config.web import HeatmapConfig
from crowdwatch.types import FrameResult, Image

Render = Callable[[Image, FrameResult], Image]
COLORMAP = cv2.COLORMAP_TURBO
UNIT = "person-seconds per cell"
LEGEND_HEIGHT = 44
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_BACKGROUND = 24  # grey under the colours when no frame is shown


def scale_top(grid: npt.NDArray[np.float64]) -> float:
    """The top of the colour scale: the hottest cell rounded up to 1, 2, 2.5 or 5 x 10^k
    (1 for an empty map), so the legend reads in round numbers."""
    peak = float(grid.max()) if grid.size else 0.0
    if not math.isfinite(peak) or peak <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(peak))
    return next(power * step for step in (1, 2, 2.5, 5, 10) if power * step >= peak * 0.9999)


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:.3g}"


def colours(norm: npt.NDArray[np.float32]) -> Image:
    """BGR colours of values scaled 0-1 (any shape (H, W))."""
    levels = np.round(np.clip(norm, 0, 1) * 255).astype(np.uint8)
    return cv2.applyColorMap(levels, COLORMAP)


def shade(values: npt.NDArray[np.float64], top: float) -> npt.NDArray[np.float32]:
    """Position on the colour scale (0-1) of each value: sqrt(value / top), so that where
    people only passed shows beside where they stood (the legend's numbers follow it)."""
    return np.sqrt(np.clip(values / top, 0, 1)).astype(np.float32)


def blend(image: Image, heat: Heat, top: float, alpha: float, *,
          opaque: bool = False) -> Image:
    """A new image: the heat's colours over `image` with opacity alpha, fading out over the
    lowest third of the scale (cold cells leave the frame as it is), or alpha everywhere
    when opaque."""
    height, width = image.shape[:2]
    small = shade(heat.grid, top)
    # Colours and weights made on the grid, then resized: uint8 OpenCV work on the frame
    # (about 3x cheaper than blending in float32).
    colour = cv2.resize(colours(small), (width, height), interpolation=cv2.INTER_LINEAR)
    weight = np.full_like(small, alpha) if opaque else alpha * np.minimum(1, 3 * small)
    weight8 = cv2.resize(np.round(weight * 255).astype(np.uint8), (width, height),
                         interpolation=cv2.INTER_LINEAR)
    weights = cv2.merge([weight8, weight8, weight8])
    return cv2.add(cv2.multiply(colour, weights, scale=1 / 255),
                   cv2.multiply(image, cv2.bitwise_not(weights), scale=1 / 255))


@functools.lru_cache(maxsize=32)
def legend(width: int, top: float, half_life_s: float) -> Image:
    """A band LEGEND_HEIGHT high: the colour bar from 0 to `top` with its numbers and unit
    (square-root scale: the middle is top / 4; cached, as the scale moves in round steps:
    callers copy it, never draw on it)."""
    band = np.full((LEGEND_HEIGHT, width, 3), 16, np.uint8)
    x0, x1 = 6, max(width - 6, 8)
    bar = colours(np.linspace(0, 1, x1 - x0, dtype=np.float32)[None, :])
    band[4:14, x0:x1] = bar
    for fraction in (0.0, 0.5, 1.0):
        text = _number(top * fraction ** 2)
        (w, _), _ = cv2.getTextSize(text, _FONT, 0.38, 1)
        x = int(x0 + fraction * (x1 - x0 - 1))
        band[14:17, x] = 255
        tx = min(max(x - w // 2, 0), width - w)
        cv2.putText(band, text, (tx, 28), _FONT, 0.38, (255, 255, 255), 1, cv2.LINE_AA)
    minutes = half_life_s / 60
    span = f"{minutes:.3g} min" if minutes >= 1 else f"{half_life_s:.3g} s"
    cv2.putText(band, f"{UNIT}, half-life {span}", (x0, 40), _FONT, 0.4, (200, 200, 200), 1,
                cv2.LINE_AA)
    band.setflags(write=False)
    return band


def picture(heat: Heat, frame: Image | None, width: int, alpha: float) -> Image:
    """The heatmap `width` pixels wide (the camera's aspect ratio) over `frame` (opaque over
    grey without one), with the legend below."""
    frame_h, frame_w = heat.frame_hw
    height = max(1, round(width * frame_h / frame_w))
    if frame is None:
        base = np.full((height, width, 3), _BACKGROUND, np.uint8)
    else:
        base = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
    top = scale_top(heat.grid)
    drawn = blend(base, heat, top, 1.0 if frame is None else alpha, opaque=frame is None)
    return np.vstack([drawn, legend(width, top, heat.half_life_s)])


class HeatmapRenderer:
    """The heatmaps of a run as pictures: PNG for the page, overlays for previews and
    recordings."""

    def __init__(self, heatmaps: Heatmaps, config: HeatmapConfig) -> None:
        self.heatmaps = heatmaps
        self.config = config

    def png(self, camera: str, frame: Image | None) -> bytes | None:
        """heatmap.png of the camera (over `frame` when given); None before its first frame."""
        heat = self.heatmaps.get(camera)
        if heat is None:
            return None
        ok, data = cv2.imencode(".png", picture(heat, frame, self.config.width,
                                                self.config.alpha))
        return data.tobytes() if ok else None

    def overlay(self, image: Image, result: FrameResult) -> Image:
        """A render: a new image with the camera's heatmap and a small legend over `image`
        (the image itself when the camera has no map yet)."""
        heat = self.heatmaps.get(result.camera)
        if heat is None:
            return image
        top = scale_top(heat.grid)
        out = blend(image, heat, top, self.config.alpha)
        height, width = out.shape[:2]
        key = legend(min(width, 360), top, heat.half_life_s)
        if height > 2 * LEGEND_HEIGHT:
            out[height - LEGEND_HEIGHT:, :key.shape[1]] = key
        return out


def with_overlay(render: Render | None, overlay: Render) -> Render:
    """`render` (annotation, blur) then `overlay` on its result; the frame is never modified
    (both return new images)."""
    if render is None:
        return overlay
    return lambda image, result: overlay(render(image, result), result)
