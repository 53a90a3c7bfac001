from __future__ import annotations

import pytest

from crowdwatch.outputs.summary import SummarySink
from crowdwatch.types import FrameResult, Level, ZoneStats


def frame(index: int, t: float, people: int, zone_people: int, level: Level,
          camera: str = "cam") -> FrameResult:
    return FrameResult(camera=camera, frame_index=index, position_s=t, captured_at=0.0,
                       people=people, people_raw=people,
                       zones={"door": ZoneStats(people=zone_people, level=level)})


def test_summary_counts_means_maxima_and_time_at_each_level() -> None:
    sink = SummarySink()
    # t:       0.0 ok, 0.5 warning, 1.0 warning, 2.0 critical, 2.5 ok (the last adds no time)
    # warning holds from 0.5 to 2.0 = 1.5 s; critical from 2.0 to 2.5 = 0.5 s.
    for i, (t, people, zone, level) in enumerate([
            (0.0, 1, 0, Level.OK), (0.5, 3, 2, Level.WARNING), (1.0, 4, 2, Level.WARNING),
            (2.0, 6, 3, Level.CRITICAL), (2.5, 2, 1, Level.OK)]):
        sink.write(frame(i, t, people, zone, level))
    lines = sink.lines()
    assert lines[0] == "camera cam:"
    whole = lines[2].split()
    # 5 frames, mean (1+3+4+6+2)/5 = 3.2, max 6
    assert whole[2:5] == ["5", "3.20", "6"]
    door = lines[3].split()
    # mean (0+2+2+3+1)/5 = 1.6, max 3
    assert door == ["door", "5", "1.60", "3", "1.5", "s", "0.5", "s"]


@pytest.mark.parametrize("cameras", [["a"], ["a", "b"]])
def test_each_camera_keeps_its_own_clock(cameras: list[str]) -> None:
    sink = SummarySink()
    for camera in cameras:
        sink.write(frame(0, 0.0, 1, 1, Level.CRITICAL, camera))
        sink.write(frame(1, 4.0, 1, 1, Level.OK, camera))
    lines = sink.lines()
    assert [line for line in lines if line.startswith("camera")] == [
        f"camera {c}:" for c in cameras]
    assert all(line.split()[-2] == "4.0" for line in lines if line.lstrip().startswith("door"))


def test_no_frames_gives_no_summary() -> None:
    assert SummarySink().lines() == []
