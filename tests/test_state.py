"""The state file: atomic saves, restore, a damaged file set aside (never a crash)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import pytest

from crowdwatch.analytics.lines import Line, LineCounter
from crowdwatch.analytics.sites import SavedSite
from crowdwatch.state import SavedState, StateStore, load_state
from crowdwatch.types import FlowResult, FrameResult, LineTotals


def result(camera: str, **lines: tuple[int, int]) -> FrameResult:
    return FrameResult(camera, 0, 0.0, 0.0, 0, 0,
                       flow=FlowResult({n: LineTotals(i, o) for n, (i, o) in lines.items()}))


def test_saves_line_totals_and_sites_and_reads_them_back(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "state.json"  # its folder is created
    sites = {"campus": SavedSite(occupancy=7, drift=1)}
    store = StateStore(path, interval_s=3600, sites=lambda: sites, clock=lambda: 1234.5)
    store.write(result("pets", west=(5, 2)))
    store.write(result("pets", west=(6, 2)))  # the newest totals win
    store.write(result("gate2", door=(1, 0)))
    store.close()
    assert load_state(path) == SavedState(
        {"pets": {"west": (6, 2)}, "gate2": {"door": (1, 0)}}, sites, 1234.5)
    assert json.loads(path.read_text())["lines"]["pets"]["west"] == {"in": 6, "out": 2}
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]  # no temporary left


def test_saves_only_when_something_changed_and_keeps_lines_this_run_does_not_count(
        tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    saved = SavedState({"old_camera": {"door": (40, 38)}}, {}, 1.0)
    store = StateStore(path, interval_s=3600, saved=saved)
    assert store.save() is True
    assert store.save() is False
    store.write(result("pets", west=(1, 0)))
    assert store.save() is True
    store.close()
    assert load_state(path).lines == {"old_camera": {"door": (40, 38)}, "pets": {"west": (1, 0)}}


def test_the_thread_saves_within_the_interval(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    store = StateStore(path, interval_s=0.05)
    store.write(result("pets", west=(3, 1)))
    deadline = 200
    while not path.exists() and deadline:
        time.sleep(0.01)
        deadline -= 1
    assert load_state(path).lines == {"pets": {"west": (3, 1)}}
    store.close()


@pytest.mark.parametrize("content", [
    b"{\"version\": 1, \"saved_at\": 1, \"lines\": {\"pets\": {\"west\": {\"in\": 3",  # cut off
    b"\x00\x00\x00\x00",
    b"[]",
    b"{\"version\": 1, \"saved_at\": 1, \"lines\": {\"pets\": {\"west\": {\"in\": -3, "
    b"\"out\": 0}}}}",
    b"{\"version\": 99, \"saved_at\": 1}",
    b"\xff\xfe",
])
def test_a_damaged_file_is_reported_and_set_aside(tmp_path: Path, content: bytes,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(content)
    with caplog.at_level(logging.ERROR, "crowdwatch.state"):
        assert load_state(path, clock=lambda: 0.0) == SavedState()
    assert "is damaged" in caplog.text and "start from 0" in caplog.text
    aside = tmp_path / "state.json.damaged-19700101T000000"
    assert aside.read_bytes() == content and not path.exists()


def test_a_missing_file_is_an_empty_state(tmp_path: Path) -> None:
    assert load_state(tmp_path / "none.json") == SavedState()


def test_an_unwritable_file_is_logged_once_and_counting_goes_on(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "state.json"
    path.mkdir()  # a folder where the file should be: every save fails
    store = StateStore(path, interval_s=3600)
    with caplog.at_level(logging.ERROR, "crowdwatch.state"):
        store.write(result("pets", west=(1, 0)))
        assert store.save() is False
        store.write(result("pets", west=(2, 0)))
        assert store.save() is False
    store.close()
    assert caplog.text.count("cannot write the state file") == 1


def test_line_counter_resumes_from_saved_totals() -> None:
    counter = LineCounter([Line("west", (0, 0), (0, 10)), Line("east", (5, 0), (5, 10))])
    counter.resume({"west": (12, 4), "gone": (1, 1)})
    assert counter.total_in.tolist() == [12, 0] and counter.total_out.tolist() == [4, 0]
    counts = counter.update(np.array([], np.int64), np.zeros((0, 2)), 0.0)
    assert counts.totals() == {"west": (12, 4), "east": (0, 0)}


def test_each_save_is_handed_to_the_exporters_and_sites_read_as_saved(tmp_path: Path) -> None:
    live = {"campus": SavedSite(occupancy=3, drift=0)}
    saved = SavedState({}, {"campus": SavedSite(occupancy=9, drift=4)}, 1.0)
    store = StateStore(tmp_path / "state.json", interval_s=3600, saved=saved,
                       sites=lambda: live)
    seen: list[dict[str, object]] = []
    store.on_saved.append(seen.append)
    assert store.saved_sites() == saved.sites  # before the first save: as restored
    store.write(result("pets", west=(2, 1)))
    assert store.save()
    assert store.saved_sites() == live
    assert seen == [{"lines": {"pets": {"west": {"in": 2, "out": 1}}},
                     "sites": {"campus": {"occupancy": 3, "drift": 0}}}]
    store.close()
    assert len(seen) == 1  # nothing changed since
