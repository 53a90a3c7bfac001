"""Boxes or density: which count a camera reports, chosen from what its frames show.

Each frame votes. Density when the scene is a crowd (the density map sees at least
crowd_people) unless the boxes evidently see more people than the map (by at least min_gap
people and outcount_share of the density count) and the people are not small (median box
height at least small_box_share of the frame height): in a crowd the map counts better than
the boxes even where the two agree (docs/ACCURACY.md). Boxes when the density map sees fewer
than sparse_people (a density head over-counts empty scenes: PETS), or fewer than
crowd_people and the two agree within min_gap. Otherwise no vote.

For its first switch_frames frames (the probe) a camera uses the majority of the votes so
far (boxes on a tie or none), so a short source gets the choice a longer one would; after
that the method changes only after switch_frames votes for the other one with no vote for it
in between (frames that vote nothing neither count nor break the run), so a camera does not
flicker between the two.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

Method = Literal["boxes", "density"]


@dataclass(frozen=True, slots=True)
class ChoiceRule:
    """Thresholds of the automatic choice (the defaults: docs/ACCURACY.md)."""

    crowd_people: float = 25.0
    sparse_people: float = 15.0
    min_gap: float = 5.0
    outcount_share: float = 0.25
    small_box_share: float = 0.05
    switch_frames: int = 10

    def __post_init__(self) -> None:
        if not 0 <= self.sparse_people <= self.crowd_people:
            raise ValueError("sparse_people must be between 0 and crowd_people")
        if self.switch_frames < 1:
            raise ValueError("switch_frames must be at least 1")


def vote(rule: ChoiceRule, box_heights: npt.NDArray[np.floating], density_count: float,
         frame_height: int) -> Method | None:
    """One frame's vote, or None when it shows nothing decisive."""
    boxes = len(box_heights)
    gap = density_count - boxes
    if density_count < rule.sparse_people:
        return "boxes"
    if density_count < rule.crowd_people:
        return "boxes" if abs(gap) < rule.min_gap else None
    # A crowd: density, as the map counts a crowd better than the boxes even where they agree
    # (a crowd the boxes saw as well used to vote nothing, which kept a Mall camera on its
    # boxes). Boxes that see clearly more than the map put that in doubt, unless the people
    # are small, where boxes miss more than they invent.
    if -gap < max(rule.min_gap, rule.outcount_share * density_count):
        return "density"
    small = float(np.median(box_heights)) < rule.small_box_share * frame_height
    return "density" if small else None


@dataclass
class MethodChooser:
    """A camera's current method: the probe's majority, then switched with hysteresis."""

    rule: ChoiceRule = field(default_factory=ChoiceRule)
    method: Method = "boxes"
    _probed: int = 0
    _tally: dict[str, int] = field(default_factory=lambda: {"boxes": 0, "density": 0})
    _streak: int = 0

    def update(self, box_heights: npt.NDArray[np.floating], density_count: float,
               frame_height: int) -> Method:
        """The method for this frame, after its vote."""
        choice = vote(self.rule, box_heights, density_count, frame_height)
        if self._probed < self.rule.switch_frames:
            self._probed += 1
            if choice is not None:
                self._tally[choice] += 1
            self.method = ("density" if self._tally["density"] > self._tally["boxes"]
                           else "boxes")
            return self.method
        if choice is None:
            # Nothing decisive: neither a vote to stay nor one to switch. (Resetting here
            # kept the Mall on boxes: most of its frames vote nothing.)
            return self.method
        if choice == self.method:
            self._streak = 0
            return self.method
        self._streak += 1
        if self._streak >= self.rule.switch_frames:
            self.method = choice
            self._streak = 0
        return self.method
