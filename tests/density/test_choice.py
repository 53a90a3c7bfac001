"""The automatic choice between boxes and density: each frame's vote, and the hysteresis."""

from __future__ import annotations

import numpy as np
import pytest

from crowdwatch.density.choice import ChoiceRule, MethodChooser, vote

RULE = ChoiceRule(crowd_people=25, sparse_people=15, min_gap=5, outcount_share=0.25,
                  small_box_share=0.05, switch_frames=3)


def heights(count: int, height: float) -> np.ndarray:
    return np.full(count, height, np.float32)


@pytest.mark.parametrize(("boxes", "height", "density", "expected"), [
    # PETS-like: 6 people, density over-counts an empty-ish scene: sparse, boxes.
    (6, 120.0, 14.0, "boxes"),
    # A crowd the boxes see fully (within 5 people): the map counts a crowd better, density.
    (40, 60.0, 43.0, "density"),
    # Not quite a crowd, and the two agree: boxes.
    (18, 60.0, 20.0, "boxes"),
    # A street crowd with half the people missed: 60 of 120 (gap 60 >= 25 % of 120).
    (60, 40.0, 120.0, "density"),
    # The Mall: 20 boxes of 31 people (gap 11 >= 7.75).
    (20, 50.0, 31.0, "density"),
    # A crowd, some missed but under the share, boxes tall: still a crowd, density.
    (100, 80.0, 120.0, "density"),
    # A crowd whose boxes see clearly more than the map (60 of 40: 20 >= max(5, 10)): undecided.
    (60, 60.0, 40.0, None),
    # The same with small people (median 20 px of 480 < 5 %): density.
    (60, 20.0, 40.0, "density"),
    # Between sparse and crowd with a gap: undecided.
    (5, 50.0, 20.0, None),
    # Each threshold's edge (the rule's words: "fewer than", "at least"):
    # exactly sparse_people is not sparse; with a gap of 9, undecided.
    (6, 120.0, 15.0, None),
    # Exactly crowd_people is a crowd: 10 boxes miss 15 (>= max(5, 6.25)): density.
    (10, 60.0, 25.0, "density"),
    # Below a crowd, a gap of exactly min_gap is not agreement: undecided.
    (15, 60.0, 20.0, None),
    # A crowd of 40 whose boxes miss exactly a quarter (10): density.
    (30, 60.0, 40.0, "density"),
    # Boxes exceeding the map by exactly the margin (50 of 40: 10 = max(5, 10)): undecided;
    # by one fewer: density.
    (50, 60.0, 40.0, None),
    (49, 60.0, 40.0, "density"),
    # A map of 25: the margin is a quarter (6.25), more than min_gap: 32 boxes, undecided;
    # 31, density.
    (32, 60.0, 25.0, None),
    (31, 60.0, 25.0, "density"),
    # Boxes exactly 5 % of the frame high (24 of 480) are not small: undecided.
    (60, 24.0, 40.0, None),
])
def test_each_frame_votes_from_what_it_shows(boxes, height, density, expected) -> None:
    assert vote(RULE, heights(boxes, height), density, 480) == expected


@pytest.mark.parametrize(("boxes", "expected"), [(35, None), (34, "density")])
def test_boxes_seeing_more_of_a_crowd_are_judged_by_min_gap_when_it_is_the_larger(
        boxes: int, expected: str | None) -> None:
    # min_gap 10 against a quarter of 25 (6.25): 10 more boxes than the map put it in doubt.
    rule = ChoiceRule(crowd_people=25, sparse_people=15, min_gap=10, outcount_share=0.25)
    assert vote(rule, heights(boxes, 60.0), 25.0, 480) == expected


CROWD, SPARSE, UNSURE = (heights(60, 40), 120.0), (heights(6, 120), 10.0), (heights(5, 50), 20.0)
# More boxes than the map sees (60 on 40), all small (20 of 480 px) or all tall (60 px).
SMALL_OUTCOUNT, TALL_OUTCOUNT = (heights(60, 20), 40.0), (heights(60, 60), 40.0)


def test_the_method_changes_only_after_enough_votes_for_the_other() -> None:
    chooser = MethodChooser(RULE)
    seen = [chooser.update(*frame, 480) for frame in
            [SPARSE, SPARSE, SPARSE, CROWD, CROWD, SPARSE, CROWD, CROWD, CROWD, UNSURE, SPARSE,
             SPARSE, SPARSE]]
    assert seen == ["boxes", "boxes", "boxes",          # the probe: 3 votes for boxes
                    "boxes", "boxes", "boxes",          # a sparse frame breaks the streak
                    "boxes", "boxes", "density",        # third crowd vote in a row: switch
                    "density",                          # an undecided frame keeps it
                    "density", "density", "boxes"]


def test_undecided_frames_neither_count_nor_break_a_run_of_votes() -> None:
    # The Mall votes nothing on most of its frames: a run of crowd votes with
    # undecided frames between them still switches, on its third crowd vote.
    chooser = MethodChooser(RULE)
    frames = [SPARSE] * 3 + [CROWD, UNSURE, CROWD, UNSURE, UNSURE, CROWD, UNSURE]
    assert [chooser.update(*frame, 480) for frame in frames] == (
        ["boxes"] * 3 + ["boxes"] * 5 + ["density", "density"])
    # A vote for the method in use does break it.
    chooser = MethodChooser(RULE)
    frames = [SPARSE] * 3 + [CROWD, UNSURE, CROWD, SPARSE, CROWD, UNSURE, CROWD]
    assert [chooser.update(*frame, 480) for frame in frames] == ["boxes"] * 10


@pytest.mark.parametrize(("frames", "expected"), [
    # During the probe: the majority so far, boxes on a tie or with no vote yet.
    ([UNSURE, UNSURE, CROWD, SPARSE], ["boxes", "boxes", "density", "density"]),
    ([SPARSE, CROWD, CROWD, SPARSE], ["boxes", "boxes", "density", "density"]),
    ([CROWD, SPARSE, SPARSE, CROWD], ["density", "boxes", "boxes", "boxes"]),
    # The frame's height reaches the vote: small people out-counting the map vote density.
    ([SMALL_OUTCOUNT, SPARSE], ["density", "boxes"]),
    ([TALL_OUTCOUNT, SPARSE], ["boxes", "boxes"]),
])
def test_the_probe_takes_the_majority_so_far(frames, expected) -> None:
    chooser = MethodChooser(RULE)
    assert [chooser.update(*frame, 480) for frame in frames] == expected


def test_a_switch_starts_a_new_count_of_votes() -> None:
    # After switching to density, it takes switch_frames (3) boxes votes again to go back.
    chooser = MethodChooser(RULE)
    frames = [CROWD] * 3 + [SPARSE] * 6
    assert [chooser.update(*frame, 480) for frame in frames] == (
        ["density"] * 3 + ["density", "density", "boxes"] + ["boxes"] * 3)
    chooser = MethodChooser(RULE)
    frames = [SPARSE] * 3 + [CROWD] * 3 + [SPARSE] * 3
    assert [chooser.update(*frame, 480) for frame in frames] == (
        ["boxes"] * 3 + ["boxes", "boxes", "density"] + ["density", "density", "boxes"])


def test_a_rule_with_inconsistent_thresholds_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^sparse_people must be between 0 and crowd_people$"):
        ChoiceRule(crowd_people=10, sparse_people=20)
    with pytest.raises(ValueError, match=r"^switch_frames must be at least 1$"):
        ChoiceRule(switch_frames=0)


@pytest.mark.parametrize("edges", [
    {"sparse_people": 0.0},                          # never sparse: no boxes vote for emptiness
    {"sparse_people": 25.0, "crowd_people": 25.0},   # no middle band
    {"switch_frames": 1},                            # switch on the first vote
])
def test_a_rule_at_its_bounds_is_accepted(edges: dict[str, float]) -> None:
    rule = ChoiceRule(**edges)  # type: ignore[arg-type]
    for name, value in edges.items():
        assert getattr(rule, name) == value
