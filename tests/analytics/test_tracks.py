"""TrackTable: rows per track id, relinking of a lost track to a new id nearby."""

from __future__ import annotations

import numpy as np

from crowdwatch.analytics.tracks import TrackTable


def _table_with_one_lost_track() -> TrackTable:
    table = TrackTable({"side": ((), np.int8, 0)})
    rows, new = table.lookup(np.array([1]), np.array([[100.0, 100.0]]), 0.0)
    assert rows.tolist() == [0] and new.tolist() == [True]
    table.columns["side"][0] = 1  # state the successor must inherit
    return table


def test_a_new_id_near_a_lost_track_takes_over_its_row() -> None:
    table = _table_with_one_lost_track()
    rows, new = table.lookup(np.array([7]), np.array([[104.0, 100.0]]), 0.5,
                             relink_s=2.0, relink_px=60.0)
    assert rows.tolist() == [0] and new.tolist() == [False]
    assert table.ids.tolist() == [7] and table.columns["side"][0] == 1
    assert table.first_seen[0] == 0.0  # the track's age is the lost one's


def test_two_new_ids_near_one_lost_track_relink_only_the_nearest() -> None:
    table = _table_with_one_lost_track()
    # Both are within 60 px; the lost track can be taken once: 8 (4 px away) takes it,
    # 9 (10 px away) is a new track with a fresh row.
    rows, new = table.lookup(np.array([9, 8]), np.array([[110.0, 100.0], [104.0, 100.0]]), 0.5,
                             relink_s=2.0, relink_px=60.0)
    assert rows.tolist() == [1, 0]
    assert new.tolist() == [True, False]
    assert sorted(table.ids.tolist()) == [8, 9] and len(table) == 2
    assert table.columns["side"].tolist() == [1, 0]


def test_no_relink_beyond_the_distance_or_the_time() -> None:
    table = _table_with_one_lost_track()
    rows, new = table.lookup(np.array([7]), np.array([[200.0, 100.0]]), 0.5,
                             relink_s=2.0, relink_px=60.0)
    assert new.tolist() == [True] and rows.tolist() == [1]
    table = _table_with_one_lost_track()
    rows, new = table.lookup(np.array([7]), np.array([[104.0, 100.0]]), 3.0,
                             relink_s=2.0, relink_px=60.0)
    assert new.tolist() == [True] and rows.tolist() == [1]
