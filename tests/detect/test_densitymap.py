"""The density map value: which cells are the frame's, its total, and the crowd head's map."""

from __future__ import annotations

import numpy as np
import pytest

from crowdwatch.detect.densitymap import DensityMap
from crowdwatch.detect.yolo import Letterbox


def test_cells_centred_on_the_frames_left_edge_count_and_on_its_right_edge_do_not() -> None:
    # 632x480 into 640x480: 4 px of grey each side, cells of 8 px. Column k's centre is at
    # input x 8k + 4, frame x 8k: column 0 at x = 0 (the frame's first pixel column),
    # column 79 at x = 632 (one past the last): 79 columns of 60 rows are the frame's.
    letterbox = Letterbox.fit((480, 632), (480, 640))
    assert letterbox.pad_xy == (4, 0)
    density = DensityMap(np.ones((60, 80), np.float32), letterbox)
    mask = density.frame_mask()
    assert mask[:, 0].all() and not mask[:, 79].any()
    assert density.total() == 60 * 79


@pytest.mark.parametrize("kind", ["array", "source"])
def test_the_map_handed_on_keeps_no_crowd_inputs(kind: str) -> None:
    letterbox = Letterbox.fit((480, 640), (480, 640))
    cells = np.ones((60, 80), np.float32)
    crowd = np.full((60, 80), 2.0, np.float32)
    calls = []

    def source() -> np.ndarray:
        calls.append(1)
        return crowd

    density = (DensityMap(cells, letterbox, crowd) if kind == "array"
               else DensityMap(cells, letterbox, crowd_source=source))
    crowd_map = density.crowd_map()
    assert crowd_map is not None and crowd_map.total() == 2.0 * 60 * 80
    assert crowd_map.letterbox == letterbox
    bare = density.without_crowd()
    assert bare.crowd is None and bare.crowd_source is None and bare.crowd_map() is None
    assert bare.cells is cells and bare.letterbox == letterbox
    # From a source, the crowd head runs at each ask, never when the map is only handed on.
    assert len(calls) == (1 if kind == "source" else 0)


def test_a_map_without_a_crowd_head_is_handed_on_as_it_is() -> None:
    density = DensityMap(np.ones((2, 2), np.float32), Letterbox.fit((16, 16), (16, 16)))
    assert density.crowd_map() is None and density.without_crowd() is density
