"""Distillation (training/density.py Settings.teacher): a head trained with a teacher learns
the teacher's map of each crop, not the head points."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from training.density import Settings, teacher_map, train, train_members  # noqa: E402
from training.head import DensityHead, MeanOfHeads  # noqa: E402


def constant_head(people_per_cell: float, scale: float) -> DensityHead:
    """A head whose map is people_per_cell everywhere (its last convolution's weights zero,
    its bias softplus^-1 of the scaled value)."""
    head = DensityHead(width=8, scale=scale)
    with torch.no_grad():
        head.out.weight.zero_()
        head.out.bias.fill_(math.log(math.expm1(people_per_cell * scale)))
    return head.eval()


def features(h: int, w: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"p3": torch.randn(2, 64, h, w, generator=g),
            "p4": torch.randn(2, 128, h // 2, w // 2, generator=g)}


@pytest.mark.parametrize(("people", "scale"), [(0.5, 10.0), (0.02, 100.0)])
def test_the_teachers_map_is_people_per_cell(people: float, scale: float) -> None:
    cells = teacher_map(constant_head(people, scale), features(8, 12))
    assert cells.shape == (2, 8, 12)
    assert torch.allclose(cells, torch.full((2, 8, 12), people), rtol=1e-4)


def test_a_mean_of_heads_teaches_the_mean_map() -> None:
    teacher = MeanOfHeads([constant_head(0.2, 10.0), constant_head(0.6, 10.0)]).eval()
    assert torch.allclose(teacher_map(teacher, features(4, 4)), torch.full((2, 4, 4), 0.4),
                          rtol=1e-4)


def cache(root: Path) -> Path:
    """Street images with no people at all (count 0, no points), training and validation."""
    rng = np.random.default_rng(0)
    for split, indices in (("train", range(0, 6)), ("val", range(350, 352))):
        folder = root / f"shb-{split}-640"
        folder.mkdir(parents=True)
        for index in indices:
            np.savez(folder / f"{index:06d}.npz",
                     p3=rng.normal(size=(64, 16, 16)).astype(np.float16),
                     p4=rng.normal(size=(128, 8, 8)).astype(np.float16),
                     points=np.zeros((0, 2), np.float32), count=0)
    return root


def settings(**overrides: object) -> Settings:
    fields: dict[str, object] = {
        "width": 8, "epochs": 4, "steps_per_epoch": 15, "batch": 4, "crop": 8, "lr": 0.05,
        "scale": 1.0, "average_last": 0, "train": ["shb-train-640"], "mix": {},
        "validate": ["shb"]}
    fields.update(overrides)
    return Settings(**fields)  # type: ignore[arg-type]


def mean_cell(head: DensityHead, folder: Path) -> float:
    head.eval()
    with np.load(next(folder.glob("*.npz"))) as data:
        p3 = torch.from_numpy(data["p3"]).float()[None]
        p4 = torch.from_numpy(data["p4"]).float()[None]
    with torch.no_grad():
        return float(head(p3, p4).mean() / head.scale)


def test_a_student_learns_its_teachers_map_not_the_points(tmp_path: Path) -> None:
    root = cache(tmp_path / "cache")
    # The points say nobody is there; the teacher says 0.5 people in every cell.
    taught = train(settings(), root, tmp_path / "taught", constant_head(0.5, 10.0))
    alone = train(settings(), root, tmp_path / "alone")
    val = root / "shb-val-640"
    assert mean_cell(taught, val) == pytest.approx(0.5, abs=0.12)
    assert mean_cell(alone, val) < 0.25


def test_a_recipe_with_a_teacher_trains_the_teacher_first(tmp_path: Path) -> None:
    root = cache(tmp_path / "cache")
    head, validation = train_members(
        settings(teacher=settings().__dict__ | {"teacher": None, "members": 2}), root,
        tmp_path / "work")
    # The teacher's two runs, then the student, each resumable from its own folder.
    for folder in ("teacher/seed-0", "teacher/seed-1", "."):
        assert (tmp_path / "work" / folder / "checkpoint.pt").exists()
    assert set(validation) == {"shb_val_mae", "shb_val_rmse", "shb_val_bias"}
    assert isinstance(head, DensityHead)
