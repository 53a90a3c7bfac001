from __future__ import annotations

import json
from pathlib import Path

import pytest

from crowdwatch.errors import CrowdwatchError
from crowdwatch.outputs.events import EventWriter, event_record
from crowdwatch.types import FrameResult, Level, ZoneStats

RESULT = FrameResult(
    camera="gate", frame_index=7, position_s=0.7, captured_at=1.0e9, people=3,
    people_raw=4,
    zones={"queue": ZoneStats(2, people_raw=3, density=0.123456, occupancy=0.5, level=Level.OK),
           "plain": ZoneStats(1, people_raw=1)},
)


def test_event_record_has_the_documented_schema() -> None:
    assert event_record(RESULT) == {
        "camera": "gate", "frame": 7, "timestamp": 0.7, "people": 3, "people_raw": 4,
        "zones": {"queue": {"people": 2, "people_raw": 3, "density": 0.1235, "occupancy": 0.5,
                            "level": "ok"},
                  "plain": {"people": 1, "people_raw": 1}},
    }


def test_writer_writes_one_json_line_per_frame(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    writer = EventWriter(path)
    writer.write(RESULT)
    # Line-buffered: a line is on disk before close (nothing lost if the process dies).
    assert json.loads(path.read_text().splitlines()[0])["frame"] == 7
    writer.write(RESULT)
    writer.close()
    assert len(path.read_text().splitlines()) == 2


def test_writer_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    writer = EventWriter("-")
    writer.write(RESULT)
    writer.close()
    assert json.loads(capsys.readouterr().out)["camera"] == "gate"


def test_unwritable_events_path_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(CrowdwatchError, match="cannot write events to"):
        EventWriter(tmp_path / "missing-dir" / "e.jsonl")
