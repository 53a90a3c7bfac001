"""Zone counts from a density map: cell weights through the letterbox, hand-computed sums."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from crowdwatch.density.counter import DensityMap
from crowdwatch.density.zones import ZoneIntegrator, zone_weights
from crowdwatch.detect.yolo import Letterbox

# A 1024x768 frame at the 480x640 input the detector uses for 4:3: no border, 60x80 cells,
# each 8 input pixels = 12.8 frame pixels wide and high.
SHB = Letterbox.fit((768, 1024), (480, 640))
# Cell (row, column) holds 80 * row + column people: any wrong cell shows in the sum.
RAMP = (80 * np.arange(60)[:, None] + np.arange(80)[None, :]).astype(np.float32)


def box(x0: float, y0: float, x1: float, y1: float) -> shapely.Polygon:
    return shapely.box(x0, y0, x1, y1)


def ramp_sum(rows: range, columns: range) -> float:
    return float(sum(80 * r + c for r in rows for c in columns))


@pytest.mark.parametrize(("zone", "ignore", "expected"), [
    # 10 columns x 5 rows of cells: x < 128 = 10 x 12.8, y < 64 = 5 x 12.8.
    (box(0, 0, 128, 64), [], ramp_sum(range(5), range(10))),
    # Its left half ignored (x < 64: columns 0-4).
    (box(0, 0, 128, 64), [box(0, 0, 64, 64)], ramp_sum(range(5), range(5, 10))),
    # An ignore region outside the zone changes nothing.
    (box(0, 0, 128, 64), [box(500, 500, 600, 600)], ramp_sum(range(5), range(10))),
    # Somewhere in the middle: columns 40-49, rows 30-39.
    (box(512, 384, 640, 512), [], ramp_sum(range(30, 40), range(40, 50))),
    # The whole frame.
    (box(0, 0, 1024, 768), [], ramp_sum(range(60), range(80))),
])
def test_a_zone_counts_the_density_of_its_cells(zone, ignore, expected) -> None:
    integrator = ZoneIntegrator([zone], ignore)
    counts = integrator.counts(DensityMap(RAMP, SHB))
    assert counts.shape == (1,)
    assert counts[0] == pytest.approx(expected)


def test_a_boundary_through_a_cell_takes_its_share() -> None:
    # x < 6.4 is half of column 0 (2 x 2 sample points per cell: one of two columns in);
    # y < 12.8 is row 0 exactly.
    weights = zone_weights(SHB, (60, 80), [box(0, 0, 6.4, 12.8)], samples=2)
    expected = np.zeros((60, 80), np.float32)
    expected[0, 0] = 0.5
    np.testing.assert_array_equal(weights[0], expected)


def test_zones_are_counted_together_in_their_order() -> None:
    ones = np.ones((60, 80), np.float32)
    zones = [box(0, 0, 1024, 384), box(0, 384, 1024, 768), box(0, 0, 128, 128)]
    counts = ZoneIntegrator(zones).counts(DensityMap(ones, SHB))
    np.testing.assert_allclose(counts, [30 * 80, 30 * 80, 10 * 10])


def test_the_letterbox_border_counts_in_no_zone() -> None:
    # 640x360 (16:9) in a square 640x640 input: 140 grey rows above and below the frame.
    letterbox = Letterbox.fit((360, 640), (640, 640))
    assert letterbox.pad_xy == (0, 140)
    ones = np.ones((80, 80), np.float32)
    density = DensityMap(ones, letterbox)
    # Input rows 140-499 are the frame: cell rows 18-61 whole, rows 17 and 62 half
    # (of their 2 sample rows one is in); with the centre alone, rows 17-61.
    whole_frame = box(-1000, -1000, 2000, 2000)
    assert ZoneIntegrator([whole_frame], samples=2).counts(density)[0] == pytest.approx(45 * 80)
    assert ZoneIntegrator([whole_frame], samples=1).counts(density)[0] == pytest.approx(45 * 80)
    assert density.total() == pytest.approx(45 * 80)
    assert density.frame_mask()[17:62].all() and not density.frame_mask()[:17].any()


def test_weights_are_computed_once_per_frame_size() -> None:
    integrator = ZoneIntegrator([box(0, 0, 100, 100)])
    first = integrator.weights(SHB, (60, 80))
    assert integrator.weights(SHB, (60, 80)) is first
    other = Letterbox.fit((480, 640), (480, 640))
    assert integrator.weights(other, (60, 80)) is not first
    # 640x480 at 480x640: 8 frame pixels a cell, so x, y < 100 covers 12.5 cells a side.
    assert integrator.weights(other, (60, 80))[0].sum() == pytest.approx(12.5 * 12.5)


def test_the_frames_edges_are_half_open() -> None:
    # 636 frame pixels wide in a 640 input: 2 grey columns each side, 1 frame pixel a input
    # pixel. Column 0's sample points lie at x = 0 and 4 (both in the frame, whose pixels
    # span [0, 636)), column 79's at 632 and 636 (the second just outside).
    letterbox = Letterbox.fit((480, 636), (480, 640))
    assert letterbox.pad_xy == (2, 0)
    weights = zone_weights(letterbox, (60, 80), [box(-10, -10, 700, 500)])[0]
    assert weights[:, 0].tolist() == [1.0] * 60
    assert weights[:, 79].tolist() == [0.5] * 60
    assert weights[:, 1:79].min() == 1.0


def test_an_ignore_region_never_counts_the_letterbox_border() -> None:
    # 640x360 in a square input: rows 17-61 of cells hold the frame (see above); the left
    # quarter of the frame is ignored.
    letterbox = Letterbox.fit((360, 640), (640, 640))
    ones = DensityMap(np.ones((80, 80), np.float32), letterbox)
    whole_frame = box(-1000, -1000, 2000, 2000)
    counts = ZoneIntegrator([whole_frame], [box(0, 0, 160, 360)]).counts(ones)
    assert counts[0] == pytest.approx(45 * 60)


def test_the_integrators_sampling_decides_a_boundary_cell() -> None:
    # x < 7 frame pixels: column 0's centre (6.4) is in; of its two sample columns (3.2 and
    # 9.6) one is.
    zone = box(0, 0, 7, 12.8)
    assert ZoneIntegrator([zone], samples=1).weights(SHB, (60, 80))[0, 0, 0] == 1.0
    assert ZoneIntegrator([zone], samples=2).weights(SHB, (60, 80))[0, 0, 0] == 0.5
    assert zone_weights(SHB, (60, 80), [zone])[0, 0, 0] == 0.5  # two samples by default


def test_weights_are_kept_as_float32() -> None:
    # One weight per zone and cell, for every frame size a camera shows: half the memory of
    # float64, and exact for shares of 4 sample points.
    assert ZoneIntegrator([box(0, 0, 100, 100)]).weights(SHB, (60, 80)).dtype == np.float32
