from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest

from crowdwatch.errors import CrowdwatchError
from crowdwatch.outputs.events import EventWriter, event_record
from crowdwatch.types import FrameResult, Level, SiteStats, ZoneStats

RESULT = FrameResult(
    camera="gate", frame_index=7, position_s=0.7, captured_at=1.0e9, people=3,
    people_raw=4,
    zones={"queue": ZoneStats(2, people_raw=3, density=0.123456, occupancy=0.5, level=Level.OK),
           "plain": ZoneStats(1, people_raw=1)},
)


def test_an_image_folder_event_names_its_file() -> None:
    record = event_record(replace(RESULT, source_file="shots/0007.jpg"))
    assert record["source_file"] == "shots/0007.jpg"
    assert "source_file" not in event_record(RESULT)


def test_event_record_has_the_documented_schema() -> None:
    assert event_record(RESULT) == {
        "camera": "gate", "frame": 7, "timestamp": 0.7, "people": 3, "people_raw": 4,
        "method": "boxes",
        "zones": {"queue": {"people": 2, "people_raw": 3, "density": 0.1235, "occupancy": 0.5,
                            "level": "ok"},
                  "plain": {"people": 1, "people_raw": 1}},
    }


def test_a_camera_that_feeds_sites_carries_their_values() -> None:
    sites = {"campus": SiteStats(people=3, occupancy=12, ratio=0.3, level=Level.OK, drift=2),
             "lawn": SiteStats(people=1, occupancy=None, ratio=None, level=None)}
    record = event_record(replace(RESULT, sites=sites))
    assert record["sites"] == {
        "campus": {"people": 3, "occupancy": 12, "drift": 2, "occupancy_ratio": 0.3,
                   "level": "ok"},
        "lawn": {"people": 1}}
    schema = json.loads((Path(__file__).resolve().parents[2] / "src" / "crowdwatch"
                         / "outputs" / "events.schema.json").read_text())
    jsonschema.validate(record, schema)


def test_an_event_says_what_its_counts_came_from() -> None:
    from dataclasses import replace

    assert event_record(replace(RESULT, method="density"))["method"] == "density"


def test_writer_writes_one_json_line_per_frame(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    writer = EventWriter(path)
    writer.write(RESULT)
    # One write() per line: a line is on disk before close (nothing lost if the process dies).
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


def test_events_append_to_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"earlier": "run"}\n')
    writer = EventWriter(path)
    writer.write(RESULT)
    writer.close()
    writer.close()
    lines = path.read_text().splitlines()
    assert json.loads(lines[0]) == {"earlier": "run"}
    assert json.loads(lines[1])["frame"] == 7


def test_a_full_disk_loses_events_not_lines_and_is_logged_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import os

    from crowdwatch.outputs import events

    path = tmp_path / "events.jsonl"
    writer = EventWriter(path)
    writer.write(RESULT)  # one whole line on disk
    real_write = os.write
    full = [True]

    def disk_full(fd: int, data: bytes) -> int:
        if full[0]:
            return real_write(fd, data[: len(data) // 2])  # a short write: half a line
        return real_write(fd, data)

    monkeypatch.setattr(events.os, "write", disk_full)
    with caplog.at_level("WARNING", logger="crowdwatch"):
        for _ in range(3):
            writer.write(RESULT)  # never raises: counting goes on
        assert path.read_text().count("\n") == 1
        full[0] = False
        writer.write(RESULT)
    writer.close()
    lines = path.read_text().splitlines()
    assert [json.loads(line)["frame"] for line in lines] == [7, 7]  # every line whole
    assert writer.lines_lost == 3
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "cannot write events to" in errors[0]
    assert any("again; 3 event(s) were lost" in r.getMessage() for r in caplog.records)


def test_dev_full_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    writer = EventWriter("/dev/full")
    for _ in range(2):
        writer.write(RESULT)
    writer.close()
    assert writer.lines_lost == 2
