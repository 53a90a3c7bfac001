"""Draw what is counted onto a frame: people boxes, zones by level, lines, ignore regions and
a header.

Plain OpenCV on BGR uint8 images. Inputs are simple typed values (ZoneShape, LineShape, pixel
polygons) so this module does not depend on how zones and lines are analysed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import numpy.typing as npt

from crowdwatch.types import Detections, FrameResult, Image

if TYPE_CHECKING:
    from crowdwatch.analytics.scene import CameraScene, SceneGeometry

Color = tuple[int, int, int]

# BGR. A zone without capacity has no level: drawn in a neutral colour.
LEVEL_COLORS: dict[str | None, Color] = {
    None: (200, 200, 200),
    "ok": (60, 180, 75),
    "warning": (0, 165, 255),
    "critical": (40, 40, 230),
}
BOX_COLOR: Color = (255, 200, 0)
LINE_COLOR: Color = (255, 0, 255)
IGNORE_COLOR: Color = (128, 128, 128)
# Ignore regions are darkened: nobody standing there counts, and the picture says so.
IGNORE_SHADE = 0.45
HEADER_HEIGHT = 22
_FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True, slots=True)
class ZoneShape:
    """A zone's outline in pixels of the frame being drawn."""

    name: str
    points: npt.NDArray[np.int32]  # (K, 2)

    @classmethod
    def of(cls, name: str, points: Iterable[Sequence[float]]) -> ZoneShape:
        return cls(name, np.round(np.asarray(list(points), np.float64)).astype(np.int32))


@dataclass(frozen=True, slots=True)
class LineShape:
    """A counting line in pixels with the crossings counted so far."""

    name: str
    start: tuple[int, int]
    end: tuple[int, int]
    count_in: int = 0
    count_out: int = 0


def zone_shapes(zones: Iterable[Any]) -> list[ZoneShape]:
    """ZoneShapes from zones.build_zones() output (anything with .name and .polygon)."""
    return [ZoneShape.of(z.name, z.polygon.exterior.coords[:-1]) for z in zones]


def blur_people(image: Image, detections: Detections, *, copy: bool = True) -> Image:
    """Blur every detected person's box (privacy); pixels outside the boxes are unchanged."""
    out = image.copy() if copy else image
    height, width = out.shape[:2]
    for x1, y1, x2, y2 in np.round(detections.xyxy).astype(np.int64):
        x1, x2 = max(0, x1), min(width, x2)
        y1, y2 = max(0, y1), min(height, y2)
        if x2 - x1 < 2 or y2 - y1 < 2:
            continue
        roi = out[y1:y2, x1:x2]
        # Pixelate (shrink then enlarge): strong, and cheaper than a large Gaussian kernel.
        small = cv2.resize(roi, (max(1, (x2 - x1) // 12), max(1, (y2 - y1) // 12)),
                           interpolation=cv2.INTER_AREA)
        roi[:] = cv2.resize(small, (x2 - x1, y2 - y1), interpolation=cv2.INTER_NEAREST)
    return out


def blur_only(image: Image, result: FrameResult) -> Image:
    """A render that only blurs the frame's people (no overlay): a copy, as renders make."""
    return blur_people(image, result.detections)


def _label(image: Image, text: str, x: int, y: int, color: Color, scale: float = 0.45) -> None:
    (w, h), base = cv2.getTextSize(text, _FONT, scale, 1)
    y = max(y, h + base)
    cv2.rectangle(image, (x, y - h - base), (x + w + 2, y + 1), color, cv2.FILLED)
    cv2.putText(image, text, (x + 1, y - base + 1), _FONT, scale, (0, 0, 0), 1, cv2.LINE_AA)


def _fill(image: Image, points: npt.NDArray[np.int32], color: Color, alpha: float) -> None:
    # Blend only the polygon's bounding box: a small zone costs little on a large frame.
    height, width = image.shape[:2]
    x0, y0 = np.maximum(points.min(axis=0), 0)
    x1, y1 = np.minimum(points.max(axis=0) + 1, (width, height))
    if x1 <= x0 or y1 <= y0:
        return
    roi = image[y0:y1, x0:x1]
    overlay = roi.copy()
    cv2.fillPoly(overlay, [points - (x0, y0)], color)
    cv2.addWeighted(overlay, alpha, roi, 1 - alpha, 0, dst=roi)


def annotate(
    image: Image,
    result: FrameResult,
    zones: Sequence[ZoneShape] = (),
    lines: Sequence[LineShape] = (),
    ignore: Sequence[npt.NDArray[np.int32]] = (),
    *,
    blur: bool = False,
    boxes: bool = True,
    header: bool = True,
    fill_alpha: float = 0.15,
    copy: bool = True,
) -> Image:
    """The frame with ignore regions (darkened), zones (coloured by level), lines, people boxes
    and a header.

    ignore holds pixel polygons (K, 2). Boxes show track ids when result.detections has a
    `tracker_id` array. With blur, people are blurred before anything is drawn. The input is
    left untouched unless copy is False.
    """
    out = image.copy() if copy else image
    detections = result.detections
    if blur and len(detections):
        blur_people(out, detections, copy=False)
    for region in ignore:
        if len(region) < 3:
            continue
        _fill(out, region, (0, 0, 0), IGNORE_SHADE)
        cv2.polylines(out, [region], True, IGNORE_COLOR, 1, cv2.LINE_AA)
        x, y = region.min(axis=0)
        top = HEADER_HEIGHT if header else 0
        _label(out, "ignored", int(x) + 2, max(int(y), top) + 16, IGNORE_COLOR)
    for zone in zones:
        stats = result.zones.get(zone.name)
        color = LEVEL_COLORS.get(
            stats.level.label if stats and stats.level is not None else None, LEVEL_COLORS[None])
        if len(zone.points) < 3:
            continue
        if fill_alpha > 0:
            _fill(out, zone.points, color, fill_alpha)
        cv2.polylines(out, [zone.points], True, color, 2, cv2.LINE_AA)
        text = zone.name if stats is None else f"{zone.name}: {stats.people}"
        x, y = zone.points.min(axis=0)
        # Below the header band, where a zone touching the top edge would hide its label.
        top = HEADER_HEIGHT if header else 0
        _label(out, text, int(x) + 2, max(int(y), top) + 16, color)
    for line in lines:
        cv2.line(out, line.start, line.end, LINE_COLOR, 2, cv2.LINE_AA)
        cv2.circle(out, line.start, 4, LINE_COLOR, cv2.FILLED)
        mid_x = (line.start[0] + line.end[0]) // 2
        mid_y = (line.start[1] + line.end[1]) // 2
        _label(out, f"{line.name} in {line.count_in} out {line.count_out}", mid_x, mid_y,
               LINE_COLOR)
    if boxes and len(detections):
        ids = detections.tracker_id
        for i, (x1, y1, x2, y2) in enumerate(np.round(detections.xyxy).astype(np.int64)):
            cv2.rectangle(out, (int(x1), int(y1)), (int(x2), int(y2)), BOX_COLOR, 1)
            if ids is not None and i < len(ids) and ids[i] >= 0:
                cv2.putText(out, str(int(ids[i])), (int(x1) + 1, int(y1) + 11), _FONT, 0.4,
                            BOX_COLOR, 1, cv2.LINE_AA)
    if header:
        _header(out, result)
    return out


def _header(image: Image, result: FrameResult) -> None:
    # Darken instead of painting black: the frame stays visible under the text.
    band = image[:HEADER_HEIGHT]
    band //= 3
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(result.captured_at))
    text = f"{result.camera}  {when}  people {result.people}"
    cv2.putText(image, text, (6, HEADER_HEIGHT - 6), _FONT, 0.5, (255, 255, 255), 1,
                cv2.LINE_AA)


def _line_counts(result: FrameResult, name: str) -> tuple[int, int]:
    """People in / out through a line so far (0 / 0 before its first analysed frame)."""
    totals = None if result.flow is None else result.flow.lines.get(name)
    return (0, 0) if totals is None else (totals.people_in, totals.people_out)


class CameraRenderer:
    """annotate() bound to one camera's geometry (a CameraScene, shared with its analytics:
    zones, lines and ignore regions in pixels of each frame size), usable as a `render`."""

    def __init__(self, scene: CameraScene, *, blur: bool = False) -> None:
        self.scene = scene
        self.blur = blur
        self._geometry: SceneGeometry | None = None
        self._zones: list[ZoneShape] = []
        self._lines: list[tuple[str, tuple[int, int], tuple[int, int]]] = []
        self._ignore: list[npt.NDArray[np.int32]] = []

    def _shapes(self, geometry: SceneGeometry) -> None:
        self._zones = zone_shapes(geometry.zones)
        self._lines = [(line.name, (round(line.start[0]), round(line.start[1])),
                        (round(line.end[0]), round(line.end[1]))) for line in geometry.lines]
        self._ignore = [np.round(region).astype(np.int32) for region in geometry.ignore_regions]
        self._geometry = geometry

    def __call__(self, image: Image, result: FrameResult) -> Image:
        height, width = image.shape[:2]
        geometry = self.scene.at(width, height)
        if geometry is not self._geometry:
            self._shapes(geometry)
        lines = [LineShape(name, a, b, *_line_counts(result, name))
                 for name, a, b in self._lines]
        return annotate(image, result, self._zones, lines, self._ignore, blur=self.blur)
