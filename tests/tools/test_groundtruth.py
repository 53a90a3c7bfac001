"""Ground-truth readers: tiny hand-written files of each format, errors, and the real PETS files."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from crowdwatch.errors import CrowdwatchError
from crowdwatch.tools.groundtruth import GroundTruth, load_ground_truth

MOT17 = """\
1,1,10,20,30,40,1,1,1.0
1,2,50,60,10,10,0,1,1.0
1,3,70,80,10,10,1,2,0.5
3,1,12,22,30,40,1,1,0.8
4,5,0,0,5,5,0,1,1.0
"""
# MOT15 ground truth: columns 8-10 are world coordinates (-1), not a class, so every row is kept.
MOT15 = """\
1,1,10,20,30,40,1,-1,-1,-1
2,1,11,21,30,40,1,-1,-1,-1
2,2,0,0,4,4,0,-1,-1,-1
"""
MOT_6_COLUMNS = """\
2,1,1.5,2.5,3,4
"""
CVML = """\
<?xml version="1.0" encoding="utf-8"?>
<dataset>
  <frame number="0">
    <objectlist>
      <object id="1"><box h="40" w="30" xc="25" yc="40"/></object>
      <object id="2"><box h="10" w="10" xc="55.5" yc="65"/></object>
    </objectlist>
  </frame>
  <frame number="1"><objectlist/></frame>
  <frame number="2">
    <objectlist>
      <object id="1"><box h="40" w="30" xc="27" yc="42"/></object>
    </objectlist>
  </frame>
</dataset>
"""
CSV = """\
frame,id,x,y,w,h
0,1,10,20,30,40
0,2,50.5,60,10,10
2,1,12,22,30,40
"""
# Columns in another order, an extra column and a trailing blank line are fine.
CSV_REORDERED = """\
id,x,y,w,h,frame,note
1,10,20,30,40,1,a

"""

# (name, file name, content, {frame: xyxy boxes}, num_frames)
FORMAT_CASES = [
    ("mot17: conf 0 and class 2 dropped, 1-based", "gt.txt", MOT17,
     {0: [[10, 20, 40, 60]], 2: [[12, 22, 42, 62]]}, 4),
    ("mot15: 10 columns, no class filter", "gt.txt", MOT15,
     {0: [[10, 20, 40, 60]], 1: [[11, 21, 41, 61]]}, 2),
    ("mot with 6 columns keeps every row", "gt.txt", MOT_6_COLUMNS, {1: [[1.5, 2.5, 4.5, 6.5]]}, 2),
    ("cvml centre boxes to xyxy", "gt.xml", CVML,
     {0: [[10, 20, 40, 60], [50.5, 60, 60.5, 70]], 2: [[12, 22, 42, 62]]}, 3),
    ("csv with header, 0-based", "gt.csv", CSV,
     {0: [[10, 20, 40, 60], [50.5, 60, 60.5, 70]], 2: [[12, 22, 42, 62]]}, 3),
    ("csv columns by header name", "boxes.csv", CSV_REORDERED, {1: [[10, 20, 40, 60]]}, 2),
]
EXPLICIT_FORMAT = {"gt.txt": "mot", "gt.xml": "cvml", "gt.csv": "csv", "boxes.csv": "csv"}


@pytest.mark.parametrize("explicit", [False, True], ids=["detected", "explicit"])
@pytest.mark.parametrize(
    ("name", "content", "expected", "num_frames"),
    [case[1:] for case in FORMAT_CASES],
    ids=[case[0] for case in FORMAT_CASES],
)
def test_reads_each_format(
    tmp_path: Path, explicit: bool, name: str, content: str,
    expected: dict[int, list[list[float]]], num_frames: int,
) -> None:
    path = tmp_path / name
    path.write_text(content)
    gt = load_ground_truth(path, EXPLICIT_FORMAT[name] if explicit else None)

    assert gt.num_frames == num_frames
    for frame in range(num_frames):
        boxes = gt.boxes(frame)
        assert boxes.dtype == np.float32
        np.testing.assert_allclose(boxes, np.reshape(expected.get(frame, []), (-1, 4)))
    want_counts = [len(expected.get(frame, [])) for frame in range(num_frames)]
    np.testing.assert_array_equal(gt.counts(), want_counts)


def test_detects_by_content_not_only_extension(tmp_path: Path) -> None:
    (tmp_path / "annotations.dat").write_text(CVML)
    (tmp_path / "table.txt").write_text(CSV)
    assert load_ground_truth(tmp_path / "annotations.dat").num_frames == 3
    assert load_ground_truth(tmp_path / "table.txt").counts().tolist() == [2, 0, 1]


def test_boxes_outside_range_and_sparse_frames() -> None:
    gt = GroundTruth(frames={1: np.ones((2, 4), np.float32)}, num_frames=3)
    assert gt.boxes(0).shape == (0, 4)
    assert gt.counts().tolist() == [0, 2, 0]
    with pytest.raises(IndexError):
        gt.boxes(3)
    with pytest.raises(IndexError):
        gt.boxes(-1)


# (case, file name, content, fmt, words the one-line message must contain)
ERROR_CASES = [
    ("unknown fmt", "gt.txt", MOT17, "yaml", ["unknown format 'yaml'"]),
    ("mot non-number", "gt.txt", "1,1,1,1,2,2,1,1,1\n2,1,x,1,2,2,1,1,1\n", None,
     ["line 2", "'x'"]),
    ("mot too few columns", "gt.txt", "1,1,1,1,2,2\n\n1,1,1\n", None, ["line 3", "got 3"]),
    ("mot ragged", "gt.txt", "1,1,1,1,2,2,1,1,1\n1,1,1,1,2,2,1\n", None, ["line 2", "got 7"]),
    ("mot frame 0", "gt.txt", "1,1,1,1,2,2\n0,1,1,1,2,2\n", None, ["line 2", "frame 0"]),
    ("mot negative width", "gt.txt", "1,1,1,1,-2,2\n", None, ["line 1", "w, h >= 0"]),
    ("csv non-number", "gt.csv", "frame,id,x,y,w,h\n0,1,1,1,2,2\n1,1,1,1,2,\n", None,
     ["line 3", "''"]),
    ("csv short row", "gt.csv", "frame,id,x,y,w,h\n0,1,1,1,2\n", None, ["line 2", "got 5"]),
    ("csv fractional frame", "gt.csv", "frame,id,x,y,w,h\n1.5,1,1,1,2,2\n", None,
     ["line 2", "frame 1.5"]),
    ("csv missing column", "gt.csv", "frame,id,x,y,w\n0,1,1,1,2\n", None, ["lacks", "h"]),
    ("csv without header", "gt.csv", "0,1,1,1,2,2\n", None, ["no header", "fmt='mot'"]),
    ("unknown text", "gt.txt", "hello world\n", None, ["unknown format"]),
    ("empty", "gt.txt", "\n\n", None, ["empty"]),
    ("no rows", "gt.csv", "frame,id,x,y,w,h\n", None, ["no annotated frames"]),
    ("bad xml", "gt.xml", "<dataset><frame number='0'>", None, ["invalid XML"]),
    ("cvml missing attribute", "gt.xml",
     '<dataset><frame number="4"><objectlist><object id="7"><box xc="1" yc="1" w="2"/>'
     "</object></objectlist></frame></dataset>", None, ["frame 4", "id='7'", "'h'"]),
    ("cvml bad frame number", "gt.xml", '<dataset><frame number="a"/></dataset>', None,
     ["number='a'"]),
    ("not utf-8", "gt.txt", b"\xff\xfe\x00", None, ["UTF-8"]),
]


@pytest.mark.parametrize(
    ("name", "content", "fmt", "words"),
    [case[1:] for case in ERROR_CASES],
    ids=[case[0] for case in ERROR_CASES],
)
def test_bad_input_is_one_line_naming_file(
    tmp_path: Path, name: str, content: str | bytes, fmt: str | None, words: list[str]
) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(CrowdwatchError) as info:
        load_ground_truth(path, fmt)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    for word in words:
        assert word in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CrowdwatchError, match="file not found"):
        load_ground_truth(tmp_path / "nope.txt")


def test_pets_cvml_and_csv_agree_with_published_counts(pets_dir: Path) -> None:
    # pets_dir (tests/conftest.py) skips without the data, and fails in CI.
    gt_dir = pets_dir / "gt"
    cvml = load_ground_truth(gt_dir / "PETS2009-S2L1.xml")
    flat = load_ground_truth(gt_dir / "PETS2009-S2L1_boxes.csv")
    with (gt_dir / "PETS2009-S2L1_counts.csv").open(newline="") as f:
        published = np.array([int(row["count"]) for row in csv.DictReader(f)])

    assert cvml.num_frames == flat.num_frames == 795
    counts = cvml.counts()
    np.testing.assert_array_equal(counts, flat.counts())
    np.testing.assert_array_equal(counts, published)
    assert counts.sum() == 4650
    assert round(float(counts.mean()), 2) == 5.85
    # The CSV stores x, y, w, h to 2 decimals, so its corners may be off by up to 0.01.
    for frame in range(cvml.num_frames):
        np.testing.assert_allclose(cvml.boxes(frame), flat.boxes(frame), atol=0.011)


NO_IDS_CSV = "frame,x,y,w,h\n0,1,2,3,4\n"
# (file name, content, frames, ids) of GroundTruth.tracks(), worked out from the files above
TRACK_CASES = [
    ("gt.txt", MOT17, [0, 2], [1, 1]),
    ("gt.xml", CVML, [0, 0, 2], [1, 2, 1]),
    ("gt.csv", CSV, [0, 0, 2], [1, 2, 1]),
    ("boxes.csv", CSV_REORDERED, [1], [1]),
    ("plain.csv", NO_IDS_CSV, [0], [-1]),
]


@pytest.mark.parametrize(("name", "content", "frames", "ids"), TRACK_CASES,
                         ids=[c[0] for c in TRACK_CASES])
def test_track_ids_are_kept_for_line_scoring(tmp_path: Path, name: str, content: str,
                                             frames: list[int], ids: list[int]) -> None:
    path = tmp_path / name
    path.write_text(content)
    got_frames, got_ids, xyxy = load_ground_truth(path).tracks()
    assert got_frames.tolist() == frames
    assert got_ids.tolist() == ids
    assert xyxy.shape == (len(frames), 4)
