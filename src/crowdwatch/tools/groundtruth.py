"""Per-frame ground-truth boxes of people, read from MOT Challenge, CVML XML or plain CSV files."""

from __future__ import annotations

import csv
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from crowdwatch.errors import CrowdwatchError

FORMATS = ("mot", "cvml", "csv")

# MOT16/17/20 ground truth has 9 columns with the object class in column 8; 1 = pedestrian.
_MOT_CLASS_COLUMNS = 9
_MOT_PEDESTRIAN = 1
_CSV_REQUIRED = ("frame", "x", "y", "w", "h")


@dataclass(frozen=True)
class GroundTruth:
    """People boxes per 0-based frame index, as (M, 4) float32 xyxy pixels."""

    frames: dict[int, npt.NDArray[np.float32]]
    # 1 + highest frame number in the file; frames in range without boxes hold (0, 4) arrays.
    num_frames: int
    # Track id of each box, same order as `frames`; -1 where the file gives none.
    ids: dict[int, npt.NDArray[np.int64]] = field(default_factory=dict)

    def tracks(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64],
                              npt.NDArray[np.float32]]:
        """Every box as rows: frame (K,), track id (K,), xyxy (K, 4), sorted by frame."""
        order = sorted(self.frames)
        frames = np.concatenate([np.full(len(self.frames[f]), f, np.int64) for f in order]
                                or [np.zeros(0, np.int64)])
        ids = np.concatenate([self.ids.get(f, np.full(len(self.frames[f]), -1, np.int64))
                              for f in order] or [np.zeros(0, np.int64)])
        xyxy = np.concatenate([self.frames[f] for f in order] or [np.zeros((0, 4), np.float32)])
        return frames, ids, xyxy

    def boxes(self, frame: int) -> npt.NDArray[np.float32]:
        """Boxes of one frame; an empty (0, 4) array for unannotated frames inside the range."""
        if not 0 <= frame < self.num_frames:
            raise IndexError(
                f"frame {frame} is outside the ground truth's {self.num_frames} frames"
            )
        return self.frames.get(frame, np.zeros((0, 4), np.float32))

    def counts(self) -> npt.NDArray[np.int64]:
        """Number of people in every frame, shape (num_frames,)."""
        return np.fromiter(
            (len(self.frames.get(i, ())) for i in range(self.num_frames)),
            dtype=np.int64,
            count=self.num_frames,
        )


def load_ground_truth(path: str | Path, fmt: str | None = None) -> GroundTruth:
    """Read people boxes from a ground-truth file; ``fmt`` is "mot", "cvml", "csv" or None (detect).

    Formats:

    - ``mot``: MOT Challenge ``gt.txt``, no header, rows
      ``frame,id,x,y,w,h[,conf[,class[,visibility]]]`` with 1-based frames (converted to 0-based)
      and x, y the top-left corner. Rows whose column 7 (``conf``, the "consider" flag) is 0 are
      dropped. With exactly 9 columns (MOT16/17/20) only class 1 (pedestrian) rows are kept;
      files with 6-7 columns, and MOT15's 10-column layout (columns 8-10 are world
      coordinates, not a class), keep every row whose flag is not 0.
    - ``cvml``: CVML XML as used for PETS2009, ``<frame number="N"><objectlist><object id=..>
      <box xc= yc= w= h=/>``; frames are 0-based, centre boxes are converted to xyxy.
    - ``csv``: comma-separated with a header row naming at least ``frame,x,y,w,h`` (``id`` and
      other columns are ignored); 0-based frames, x, y the top-left corner.

    Detection when ``fmt`` is None: ``.xml`` files or content starting with ``<`` are CVML, a
    first row with column names is CSV, an all-numeric first row is MOT (except in a ``.csv``
    file, where the 1-based/0-based frame ambiguity is an error asking for ``fmt``).

    ``num_frames`` is 1 + the highest frame number present in the file, including frames whose
    rows were all dropped and CVML frames with an empty object list. Any problem raises
    CrowdwatchError with one line naming the file (and the line, for text formats).
    """
    path = Path(path)
    if fmt is not None and fmt not in FORMATS:
        raise CrowdwatchError(
            f"ground truth {path}: unknown format {fmt!r} (expected one of {', '.join(FORMATS)})"
        )
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CrowdwatchError(f"ground truth {path}: file not found") from None
    except OSError as exc:
        raise CrowdwatchError(f"ground truth {path}: cannot read ({exc.strerror})") from None

    if fmt == "cvml" or (fmt is None and _looks_like_xml(path, data)):
        frames, boxes, num_frames, ids = _parse_cvml(path, data)
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise CrowdwatchError(f"ground truth {path}: not UTF-8 text") from None
        lines = text.splitlines()
        chosen = fmt or _detect_text_format(path, lines)
        parse = _parse_mot if chosen == "mot" else _parse_csv
        frames, boxes, num_frames, ids = parse(path, lines)

    if num_frames == 0:
        raise CrowdwatchError(f"ground truth {path}: contains no annotated frames")
    return GroundTruth(frames=_group_by_frame(frames, boxes, num_frames), num_frames=num_frames,
                       ids=_group_by_frame(frames, ids, num_frames))


def _looks_like_xml(path: Path, data: bytes) -> bool:
    return path.suffix.lower() == ".xml" or data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<")


def _detect_text_format(path: Path, lines: list[str]) -> str:
    first = next((line for line in lines if line.strip()), None)
    if first is None:
        raise CrowdwatchError(f"ground truth {path}: file is empty")
    fields = [f.strip() for f in first.split(",")]
    if all(_is_number(f) for f in fields):
        if path.suffix.lower() == ".csv":
            raise CrowdwatchError(
                f"ground truth {path}: CSV has no header row (expected 'frame,id,x,y,w,h'); "
                "pass fmt='mot' if it is a MOT Challenge file with 1-based frames"
            )
        return "mot"
    if "frame" in (f.lower() for f in fields):
        return "csv"
    raise CrowdwatchError(
        f"ground truth {path}: unknown format (expected MOT gt.txt, CVML XML or CSV "
        "with a 'frame,id,x,y,w,h' header)"
    )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# frames, xyxy boxes, number of frames, track ids (-1: none)
Parsed = tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], int, npt.NDArray[np.int64]]


def _parse_mot(path: Path, lines: list[str]) -> Parsed:
    rows: list[list[float]] = []
    line_numbers: list[int] = []
    width = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.split(",")
        width = width or len(fields)
        if not 6 <= len(fields) <= 10:
            raise _row_error(path, number, f"expected 6 to 10 columns, got {len(fields)}")
        if len(fields) != width:
            raise _row_error(
                path, number, f"expected {width} columns like the first row, got {len(fields)}"
            )
        try:
            rows.append([float(f) for f in fields])
        except ValueError:
            bad = next(f.strip() for f in fields if not _is_number(f))
            raise _row_error(path, number, f"{bad!r} is not a number") from None
        line_numbers.append(number)
    if not rows:
        return _empty_parsed()

    table = np.asarray(rows, dtype=np.float64)
    frames = _check_frames(path, table[:, 0], line_numbers, first=1) - 1
    xywh = table[:, 2:6]
    _check_sizes(path, xywh, line_numbers)
    # The file's frame range counts every row, also those dropped below.
    num_frames = int(frames.max()) + 1
    keep = np.ones(len(table), dtype=bool)
    if width >= 7:
        keep &= table[:, 6] != 0
    if width == _MOT_CLASS_COLUMNS:
        keep &= table[:, 7] == _MOT_PEDESTRIAN
    ids = table[:, 1].astype(np.int64)
    return frames[keep], _xywh_to_xyxy(xywh[keep]), num_frames, ids[keep]


def _parse_csv(path: Path, lines: list[str]) -> Parsed:
    reader = csv.reader(lines)
    header = next(reader, None)
    names = [name.strip().lower() for name in header or []]
    missing = [name for name in _CSV_REQUIRED if name not in names]
    if missing:
        raise CrowdwatchError(
            f"ground truth {path}: CSV header lacks column(s) {', '.join(missing)} "
            "(expected 'frame,id,x,y,w,h')"
        )
    columns = [names.index(name) for name in _CSV_REQUIRED]
    if "id" in names:
        columns.append(names.index("id"))
    rows: list[list[float]] = []
    line_numbers: list[int] = []
    for fields in reader:
        if not any(f.strip() for f in fields):
            continue
        number = reader.line_num
        if len(fields) != len(names):
            raise _row_error(path, number, f"expected {len(names)} columns, got {len(fields)}")
        try:
            rows.append([float(fields[i]) for i in columns])
        except ValueError:
            bad = next(fields[i].strip() for i in columns if not _is_number(fields[i]))
            raise _row_error(path, number, f"{bad!r} is not a number") from None
        line_numbers.append(number)
    if not rows:
        return _empty_parsed()

    table = np.asarray(rows, dtype=np.float64)
    frames = _check_frames(path, table[:, 0], line_numbers, first=0)
    _check_sizes(path, table[:, 1:5], line_numbers)
    ids = (table[:, 5].astype(np.int64) if table.shape[1] > 5
           else np.full(len(table), -1, np.int64))
    return frames, _xywh_to_xyxy(table[:, 1:5]), int(frames.max()) + 1, ids


def _parse_cvml(path: Path, data: bytes) -> Parsed:
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise CrowdwatchError(f"ground truth {path}: invalid XML ({exc})") from None
    frames: list[int] = []
    centres: list[list[float]] = []
    ids: list[int] = []
    highest = -1
    for frame in root.iter("frame"):
        raw = frame.get("number")
        if raw is None or not raw.strip().isdigit():
            raise CrowdwatchError(
                f"ground truth {path}: <frame> with bad or missing number={raw!r}"
            )
        index = int(raw)
        highest = max(highest, index)
        for obj in frame.iter("object"):
            where = f"ground truth {path}: frame {index}, object id={obj.get('id')!r}"
            box = obj.find("box")
            if box is None:
                raise CrowdwatchError(f"{where}: has no <box>")
            try:
                values = [float(box.attrib[key]) for key in ("xc", "yc", "w", "h")]
            except KeyError as exc:
                raise CrowdwatchError(f"{where}: <box> lacks attribute {exc.args[0]!r}") from None
            except ValueError:
                raise CrowdwatchError(f"{where}: <box> has a non-numeric attribute") from None
            if not all(math.isfinite(v) for v in values) or values[2] < 0 or values[3] < 0:
                raise CrowdwatchError(f"{where}: <box> needs finite values and w, h >= 0")
            frames.append(index)
            centres.append(values)
            raw_id = (obj.get("id") or "").strip()
            ids.append(int(raw_id) if raw_id.lstrip("-").isdigit() else -1)
    if not centres:
        return np.zeros(0, np.int64), np.zeros((0, 4)), highest + 1, np.zeros(0, np.int64)
    cxywh = np.asarray(centres, dtype=np.float64)
    half = cxywh[:, 2:4] / 2
    xyxy = np.hstack([cxywh[:, 0:2] - half, cxywh[:, 0:2] + half])
    return (np.asarray(frames, dtype=np.int64), xyxy, highest + 1,
            np.asarray(ids, dtype=np.int64))


def _check_frames(
    path: Path, raw: npt.NDArray[np.float64], line_numbers: list[int], first: int
) -> npt.NDArray[np.int64]:
    bad = (raw < first) | (raw != np.floor(raw))
    if bad.any():
        i = int(np.argmax(bad))
        raise _row_error(
            path, line_numbers[i], f"frame {raw[i]:g} is not an integer >= {first}"
        )
    return raw.astype(np.int64)


def _check_sizes(path: Path, xywh: npt.NDArray[np.float64], line_numbers: list[int]) -> None:
    bad = ~np.isfinite(xywh).all(axis=1) | (xywh[:, 2:4] < 0).any(axis=1)
    if bad.any():
        i = int(np.argmax(bad))
        raise _row_error(path, line_numbers[i], "box needs finite x, y, w, h with w, h >= 0")


def _row_error(path: Path, line: int, problem: str) -> CrowdwatchError:
    return CrowdwatchError(f"ground truth {path}: line {line}: {problem}")


def _empty_parsed() -> Parsed:
    return np.zeros(0, np.int64), np.zeros((0, 4)), 0, np.zeros(0, np.int64)


def _xywh_to_xyxy(xywh: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return np.hstack([xywh[:, 0:2], xywh[:, 0:2] + xywh[:, 2:4]])


def _group_by_frame(
    frames: npt.NDArray[np.int64], values: npt.NDArray[Any], num_frames: int
) -> dict[int, npt.NDArray[Any]]:
    """xyxy boxes (K, 4) become float32 per frame; ids (K,) keep their dtype."""
    # One sorted block sliced per frame: no per-box work and one shared read-only buffer.
    order = np.argsort(frames, kind="stable")  # stable keeps each frame's boxes in file order
    block = (values[order].astype(np.float32).reshape(-1, 4) if values.ndim == 2
             else values[order])
    block.flags.writeable = False
    bounds = np.searchsorted(frames[order], np.arange(num_frames + 1))
    return {f: block[bounds[f] : bounds[f + 1]] for f in range(num_frames)}
