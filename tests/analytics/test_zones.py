from __future__ import annotations

import numpy as np
import pytest

from crowdwatch.analytics.levels import LevelTracker
from crowdwatch.analytics.zones import ZoneMapper, anchor_points
from crowdwatch.config import CameraConfig, LevelThresholds, ZoneConfig
from crowdwatch.errors import ConfigError
from crowdwatch.types import Detections, Level


def boxes(*xyxy: tuple[float, float, float, float]) -> Detections:
    array = np.array(xyxy, np.float32).reshape(-1, 4)
    return Detections(array, np.ones(len(array), np.float32))


def mapper(*zones: ZoneConfig, width: int = 100, height: int = 100, **camera: object) -> ZoneMapper:
    cam = CameraConfig(id="c", source="x", zones=list(zones), **camera)
    return ZoneMapper.for_camera(cam, LevelThresholds(), width, height)


LEFT = ZoneConfig(name="left", polygon=[(0, 0), (60, 0), (60, 100), (0, 100)])
RIGHT = ZoneConfig(name="right", polygon=[(40, 0), (100, 0), (100, 100), (40, 100)])


def test_anchor_points_bottom_centre_and_centre() -> None:
    xyxy = np.array([[10, 20, 30, 60]], np.float32)
    x, y = anchor_points(xyxy, np.array([False, True]))
    assert x.tolist() == [[20.0], [20.0]]
    assert y.tolist() == [[60.0], [40.0]]


@pytest.mark.parametrize(
    ("box", "expected"),
    [
        ((0, 0, 20, 50), [1, 0]),  # feet at (10, 50): left only
        ((80, 0, 100, 50), [0, 1]),  # feet at (90, 50): right only
        ((40, 0, 60, 50), [1, 1]),  # feet at (50, 50): in the overlap, counted in both
        ((0, 0, 20, 100), [1, 0]),  # feet on the bottom edge of the frame still count
    ],
)
def test_overlapping_zones_count_a_person_in_each(box: tuple, expected: list[int]) -> None:
    assert mapper(LEFT, RIGHT).count(boxes(box)).tolist() == expected


def test_counts_are_vectorised_over_people_and_zones() -> None:
    people = boxes((0, 0, 20, 50), (80, 0, 100, 50), (40, 0, 60, 50), (45, 0, 55, 90))
    membership = mapper(LEFT, RIGHT).membership(people)
    assert membership.shape == (2, 4)
    assert membership.sum(axis=1).tolist() == [3, 3]


def test_bottom_centre_and_centre_anchor_differ_for_a_box_straddling_the_edge() -> None:
    top = [(0, 0), (100, 0), (100, 50), (0, 50)]
    feet = ZoneConfig(name="feet", polygon=top)
    body = ZoneConfig(name="body", polygon=top, anchor="center")
    # Box from y=30 to y=90: centre y=60 (outside), feet y=90 (outside); y=10..70: centre 40 inside.
    assert mapper(feet, body).count(boxes((10, 10, 20, 70))).tolist() == [0, 1]
    # A camera-wide anchor applies to zones that set none.
    assert mapper(feet, body, anchor="center").count(boxes((10, 10, 20, 70))).tolist() == [1, 1]


def test_normalised_polygon_scales_with_the_frame() -> None:
    half = ZoneConfig(name="half", polygon=[(0, 0), (0.5, 0), (0.5, 1), (0, 1)], normalized=True)
    m = mapper(half, width=200, height=100)
    assert m.zones[0].polygon.bounds == (0.0, 0.0, 100.0, 100.0)
    assert m.count(boxes((80, 0, 90, 50), (110, 0, 120, 50))).tolist() == [1]


def test_no_people_and_no_zones() -> None:
    assert mapper(LEFT).count(Detections.empty()).tolist() == [0]
    assert mapper().count(boxes((0, 0, 1, 1))).tolist() == []


def test_density_occupancy_and_level_are_defined_only_when_configured() -> None:
    sized = ZoneConfig(name="sized", polygon=LEFT.polygon, capacity=4, area_m2=20.0)
    plain = ZoneConfig(name="plain", polygon=RIGHT.polygon)
    m = mapper(sized, plain)
    stats = m.update(m.count(boxes((0, 0, 20, 50), (10, 0, 30, 50))))
    assert stats["sized"].people == 2
    assert stats["sized"].density == pytest.approx(0.1)
    assert stats["sized"].occupancy == pytest.approx(0.5)
    assert stats["sized"].level is Level.OK
    assert stats["plain"].density is None
    assert stats["plain"].occupancy is None
    assert stats["plain"].level is None


def test_ground_plane_gives_density_from_projected_area() -> None:
    # 10 pixels = 1 metre: the 60x100 px zone is 6 m x 10 m = 60 m^2.
    plane = {"image_points": [(0, 0), (100, 0), (100, 100), (0, 100)],
             "ground_points": [(0, 0), (10, 0), (10, 10), (0, 10)]}
    m = mapper(LEFT, ground_plane=plane)
    assert m.zones[0].area_m2 == pytest.approx(60.0)
    stats = m.update(m.count(boxes((0, 0, 20, 50), (10, 0, 30, 50), (20, 0, 30, 40))))
    assert stats["left"].density == pytest.approx(3 / 60)


def test_explicit_area_wins_over_ground_plane() -> None:
    plane = {"image_points": [(0, 0), (100, 0), (100, 100), (0, 100)],
             "ground_points": [(0, 0), (10, 0), (10, 10), (0, 10)]}
    zone = ZoneConfig(name="z", polygon=LEFT.polygon, area_m2=7.0)
    assert mapper(zone, ground_plane=plane).zones[0].area_m2 == 7.0


def test_zone_above_the_horizon_is_rejected() -> None:
    # A square on the ground seen as a trapezoid: its sides meet at the horizon, y = 37.5.
    plane = {"image_points": [(40, 50), (60, 50), (100, 100), (0, 100)],
             "ground_points": [(0, 10), (10, 10), (10, 0), (0, 0)]}
    ground = ZoneConfig(name="ground", polygon=[(0, 60), (100, 60), (100, 100), (0, 100)])
    assert mapper(ground, ground_plane=plane).zones[0].area_m2 > 0
    sky = ZoneConfig(name="sky", polygon=[(0, 0), (100, 0), (100, 100), (0, 100)])
    with pytest.raises(ConfigError, match="horizon"):
        mapper(sky, ground_plane=plane)


def tracker(**thresholds: float) -> LevelTracker:
    return LevelTracker([LevelThresholds(**thresholds)])


@pytest.mark.parametrize(
    ("occupancies", "expected"),
    [
        # Rising is immediate.
        ([0.5, 0.85, 1.0], ["ok", "warning", "critical"]),
        ([0.5, 1.2], ["ok", "critical"]),
        # Inside the hysteresis band (0.9..1.0) critical holds.
        ([1.0, 0.95, 0.92, 0.95, 0.91, 0.93], ["critical"] * 6),
        # Below the band: cleared only after clear_frames (2) frames in a row.
        ([1.0, 0.85, 0.85, 0.85], ["critical", "critical", "warning", "warning"]),
        ([1.0, 0.85, 1.0, 0.85, 0.85], ["critical"] * 4 + ["warning"]),
        ([1.0, 0.0, 0.0], ["critical", "critical", "ok"]),
        # No capacity (NaN occupancy) is ok.
        ([float("nan")], ["ok"]),
    ],
)
def test_levels_have_hysteresis(occupancies: list[float], expected: list[str]) -> None:
    levels = tracker(warning=0.8, critical=1.0, hysteresis=0.1, clear_frames=2)
    seen = [("ok", "warning", "critical")[levels.update(np.array([o]))[0]] for o in occupancies]
    assert seen == expected


def test_a_count_flickering_across_a_threshold_does_not_flap() -> None:
    # Capacity 4: a count flickering 3/4 (0.75/1.0) stays critical once entered.
    levels = tracker(warning=0.8, critical=1.0, hysteresis=0.1, clear_frames=5)
    seen = [int(levels.update(np.array([c / 4]))[0]) for c in [4, 3, 4, 3, 4, 3, 3, 4]]
    assert seen == [2] * 8


def test_levels_are_tracked_per_zone() -> None:
    levels = LevelTracker([LevelThresholds(), LevelThresholds(warning=0.3, critical=0.6)])
    assert levels.update(np.array([0.5, 0.5])).tolist() == [0, 1]


# --- zones that cannot count anyone in the frame ----------------------------------------------

@pytest.mark.parametrize(
    ("polygon", "normalized", "fragment"),
    [
        ([(0, 0), (0.5, 0), (0.5, 1), (0, 1)], False, "look like 0-1 fractions; add `normalized: true`"),
        ([(0, 0), (640, 0), (640, 480)], False, None),          # inside
        ([(600, 400), (700, 400), (700, 500)], False, None),    # partly inside counts
        ([(0, 0), (0.5, 0), (0.5, 1), (0, 1)], True, None),     # normalised, as declared
        # Slivers of half a square pixel inside the left and the top edge still count.
        ([(-10, 0), (0.5, 0), (0.5, 1), (-10, 1)], False, None),
        ([(0, -10), (1, -10), (1, 0.5), (0, 0.5)], False, None),
        ([(0, 0), (1.5, 0), (1.5, 1.5)], False, None),          # a tiny zone, not fractions
    ],
)
def test_zone_frame_problems(polygon: list, normalized: bool, fragment: str | None) -> None:
    from crowdwatch.analytics.zones import zone_frame_problems

    camera = CameraConfig(id="gate", source="x", zones=[
        ZoneConfig(name="z", polygon=polygon, normalized=normalized)])
    problems = zone_frame_problems(camera, 640, 480)
    if fragment is None:
        assert problems == []
    else:
        (problem,) = problems
        assert problem.startswith("camera gate, zone z: ")
        assert fragment in problem


@pytest.mark.parametrize(("polygon", "fragment"), [
    ([(800, 0), (900, 0), (900, 100)], "(x 800..900, y 0..100)"),
    ([(-50, -50), (-1, -50), (-1, -1)], "(x -50..-1, y -50..-1)"),
])
def test_a_zone_outside_the_frame_is_an_error(polygon: list, fragment: str) -> None:
    from crowdwatch.analytics.zones import check_zones_in_frame
    from crowdwatch.errors import ConfigError

    camera = CameraConfig(id="gate", source="x", zones=[ZoneConfig(name="z", polygon=polygon)])
    with pytest.raises(ConfigError) as error:
        check_zones_in_frame(camera, "cameras[0]", 640, 480)
    assert str(error.value).startswith(
        "cameras[0].zones[0] (z): the zone lies outside the 640x480 frame ")
    assert fragment in str(error.value)


@pytest.mark.parametrize("polygon", [
    [(0, 0), (1, 0), (1, 1), (0, 1)],            # the frame's first pixel: area 1, inside
    [(639, 479), (700, 479), (700, 500), (639, 500)],  # only its last pixel inside
])
def test_a_zone_with_any_area_in_the_frame_is_accepted(polygon: list) -> None:
    from crowdwatch.analytics.zones import check_zones_in_frame

    camera = CameraConfig(id="gate", source="x", zones=[ZoneConfig(name="z", polygon=polygon)])
    check_zones_in_frame(camera, "cameras[0]", 640, 480)


@pytest.mark.parametrize(("side", "flagged"), [(2, False), (3, True)])
def test_fractions_are_suspected_only_in_frames_over_two_pixels(side: int,
                                                                 flagged: bool) -> None:
    # In a 2x2 frame a zone within 0..1 may be meant in pixels; from 3x3 on it is a speck.
    from crowdwatch.analytics.zones import zone_frame_problems

    camera = CameraConfig(id="gate", source="x", zones=[
        ZoneConfig(name="z", polygon=[(0, 0), (1, 0), (1, 1)])])
    problems = zone_frame_problems(camera, side, side)
    assert [("fractions" in p) for p in problems] == ([True] if flagged else [])


@pytest.mark.parametrize(
    ("ground_plane", "zone_polygon", "message"),
    [
        # Three collinear image points: no homography.
        ({"image_points": [[0, 0], [1, 1], [2, 2], [3, 3]],
          "ground_points": [[0, 0], [1, 0], [1, 1], [0, 1]]},
         [[0, 0], [1, 0], [1, 1]], "cameras[1].ground_plane: the point pairs do not define"),
        # A valid plane whose horizon (y = 50 here) cuts the zone.
        ({"image_points": [[0, 100], [100, 100], [75, 75], [25, 75]],
          "ground_points": [[0, 0], [4, 0], [4, 4], [0, 4]]},
         [[0, 0], [100, 0], [100, 100], [0, 100]], "cameras[1].zones[0].polygon (z): a zone reaches above the horizon"),
    ],
)
def test_check_geometry_names_the_camera_key_path(ground_plane: dict, zone_polygon: list,
                                                  message: str) -> None:
    from crowdwatch.analytics.zones import check_geometry
    from crowdwatch.config import parse_config

    good = {"id": "a", "source": "a.mp4"}
    bad = {"id": "b", "source": "b.mp4", "ground_plane": ground_plane,
           "zones": [{"name": "z", "polygon": zone_polygon}]}
    with pytest.raises(ConfigError) as error:
        check_geometry(parse_config({"cameras": [good, bad]}))
    assert str(error.value).startswith(message)


def test_update_keeps_smoothed_and_raw_counts_apart() -> None:
    zone = ZoneConfig(name="q", polygon=[(0, 0), (100, 0), (100, 100), (0, 100)], capacity=4,
                      area_m2=8)
    zones = mapper(zone)
    stats = zones.update(np.array([2]), np.array([5]))["q"]
    # people, density and occupancy follow the smoothed count; people_raw the raw one.
    assert (stats.people, stats.people_raw) == (2, 5)
    assert (stats.density, stats.occupancy) == (0.25, 0.5)
    # Without a raw count, raw is the count itself.
    assert mapper(zone).update(np.array([3]))["q"].people_raw == 3
