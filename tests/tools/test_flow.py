"""Ground-truth crossings, the peers' baseline and tracking quality on hand-made tracks.

Line (0, 100) -> (200, 100): the positive side is below it, walking down is `in`. A person
with feet at (x, y) has the box (x - 10, y - 40, x + 10, y), so its centre is (x, y - 20).
"""

from __future__ import annotations

import numpy as np
import pytest

from crowdwatch.analytics.lines import Line
from crowdwatch.boxes import box_iou
from crowdwatch.tools.flow import (
    Tracks,
    baseline_crossings,
    gt_crossings,
    run_line_counter,
    tracking_quality,
)

LINE = Line("h", (0, 100), (200, 100), band_px=5, segment_tolerance=0.0, min_track_age_s=0.0)


def people(*rows: tuple[int, int, float, float]) -> Tracks:
    """Tracks from (frame, id, foot x, foot y)."""
    return Tracks.from_rows([(f, i, x - 10, y - 40, x + 10, y) for f, i, x, y in rows])


def path(track: int, x: float, *ys: float) -> list[tuple[int, int, float, float]]:
    return [(f, track, x, y) for f, y in enumerate(ys)]


CASES = [
    # name, rows, GT (in, out), baseline (in, out), LineCounter on these tracks (in, out)
    # Feet 80 -> 130, centres 60 -> 110: everyone sees one in.
    ("walk down", path(1, 100, 80, 130), (1, 0), (1, 0), (1, 0)),
    ("walk up", path(1, 100, 130, 80), (0, 1), (0, 1), (0, 1)),
    # The baseline counts an id once: the way back is lost.
    ("down and back up", path(1, 100, 80, 130, 80), (1, 1), (1, 0), (1, 1)),
    # Feet cross (90 -> 115), the centre (70 -> 95) never reaches the line.
    ("feet cross, centre does not", path(1, 100, 90, 115), (1, 0), (0, 0), (1, 0)),
    ("beside the segment", path(1, 300, 80, 130), (0, 0), (0, 0), (0, 0)),
    # GT skips the sample on the line: 80 -> (100) -> 130 is one crossing.
    ("a sample on the line", path(1, 100, 80, 100, 130), (1, 0), (1, 0), (1, 0)),
    # Plain GT math counts every sign change; LineCounter's band (5 px) ignores the jitter.
    ("jitter on the line", path(1, 100, 98, 102, 98, 102), (2, 1), (0, 0), (0, 0)),
    ("two people both ways", path(1, 50, 80, 130) + path(2, 150, 130, 80), (1, 1), (1, 1), (1, 1)),
    # A missed sample (frames 0 and 3) is one step between consecutive samples of the id.
    ("gap in a track", [(0, 1, 100, 80), (3, 1, 100, 130)], (1, 0), (1, 0), (1, 0)),
]


@pytest.mark.parametrize(("rows", "gt", "baseline", "counter"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_crossings(rows, gt: tuple[int, int], baseline: tuple[int, int], counter: tuple[int, int]) -> None:
    tracks = people(*rows)
    assert gt_crossings(tracks, LINE) == gt
    assert baseline_crossings(tracks, LINE) == baseline
    assert run_line_counter(tracks, [LINE], fps=10) == {"h": counter}


def test_tracks_from_csv(tmp_path) -> None:
    csv = tmp_path / "boxes.csv"
    csv.write_text("frame,id,x,y,w,h\n0,9,10,20,30,40\n1,9,12,20,30,40\n")
    tracks = Tracks.from_csv(csv)
    assert tracks.frame.tolist() == [0, 1]
    assert tracks.xyxy[0].tolist() == [10, 20, 40, 60]
    assert [f for f, _, _ in tracks.by_frame()] == [0, 1]


def test_box_iou_of_tracks() -> None:
    iou = box_iou(np.array([[0, 0, 10, 10]]), np.array([[5, 0, 15, 10], [20, 20, 30, 30]]))
    assert iou.shape == (1, 2)
    assert iou[0].tolist() == pytest.approx([50 / 150, 0.0])


A = [(f, 1, 50 + 5 * f, 100) for f in range(4)]
B = [(f, 2, 150, 100 + 5 * f) for f in range(4)]


def relabel(rows, new_id: int, from_frame: int):
    return [(f, new_id if f >= from_frame else i, x, y) for f, i, x, y in rows]


QUALITY = [
    # name, predicted rows, IDF1, ID switches, MOTA (8 GT boxes)
    ("perfect", A + B, 1.0, 0, 1.0),
    # A becomes id 3 from frame 2: 1 switch; IDTP 6 (A-1 twice, B-2 four times), IDFP 2,
    # IDFN 2 -> IDF1 12 / 16; MOTA 1 - 1 / 8.
    ("new id mid-track", relabel(A, 3, 2) + B, 0.75, 1, 0.875),
    # B missed at frame 3: 1 miss; IDTP 7, IDFN 1 -> IDF1 14 / 15; MOTA 1 - 1 / 8.
    ("one miss", A + B[:3], 14 / 15, 0, 0.875),
    # Unconfirmed boxes (id -1) are ignored: same as the perfect run.
    ("unconfirmed extra box", A + B + [(0, -1, 100, 300)], 1.0, 0, 1.0),
]


@pytest.mark.parametrize(("rows", "idf1", "switches", "mota"), [c[1:] for c in QUALITY],
                         ids=[c[0] for c in QUALITY])
def test_tracking_quality(rows, idf1: float, switches: int, mota: float) -> None:
    quality = tracking_quality(people(*A, *B), people(*rows))
    assert quality.idf1 == pytest.approx(idf1)
    assert quality.id_switches == switches
    assert quality.mota == pytest.approx(mota)
    assert quality.gt_boxes == 8


def _flow(truth: tuple[int, int], counted: tuple[int, int], baseline: tuple[int, int]):
    from crowdwatch.tools.flow import TrackingQuality
    from crowdwatch.tools.flowscore import FlowScore, LineScore

    quality = TrackingQuality(*[0] * len(TrackingQuality.__dataclass_fields__))
    return FlowScore("cw", [LineScore("door", truth, counted, baseline)], quality)


# truth, counted, peers, limits, beat_peers, failure words (None: passes)
GATE_CASES = [
    ((9, 6), (9, 6), (9, 2), {"in": 0, "out": 0}, True, None),
    ((9, 6), (10, 6), (9, 2), {"in": 1, "out": 0}, True, None),
    ((9, 6), (11, 6), (9, 2), {"in": 1, "out": 1}, True, "door in error +2"),
    ((9, 6), (9, 4), (9, 5), {"in": 1, "out": 2}, True, "in+out error 2 is worse than"),
    ((9, 6), (9, 4), (9, 5), {"in": 1, "out": 2}, False, None),
    ((9, 6), (9, 6), (9, 6), {"total": 0}, True, None),
]


@pytest.mark.parametrize(("truth", "counted", "peers", "limits", "beat", "words"), GATE_CASES)
def test_flow_gate(truth, counted, peers, limits, beat, words) -> None:
    from crowdwatch.tools.flowscore import flow_failures

    failures = flow_failures(_flow(truth, counted, peers), {"door": limits}, beat)
    if words is None:
        assert failures == []
    else:
        assert len(failures) == 1 and words in failures[0]


def test_flow_gate_names_a_line_missing_from_the_config() -> None:
    from crowdwatch.tools.flowscore import flow_failures

    failures = flow_failures(_flow((1, 1), (1, 1), (1, 1)), {"exit": {"in": 0}})
    assert failures == ["cw: line exit has a threshold but is not in the config"]
