"""Train the density head on cached neck features, log learning curves, export the IR.

    python -m training.density --shared ../shared --out src/crowdwatch/models/yolo11n_density_head

Reproducible: fixed seeds, deterministic data order; a run resumes from its checkpoint
(--work) after an interruption. Validation (never trained on): shb-train 350-399 and
mall-tune 600-799, at the runtime's input size; learning curves go to <work>/curve.csv.
"""

from __future__ import annotations

import argparse
import copy
import csv
import dataclasses
import json
import logging
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.nn import functional as F

from crowdwatch.density.neck import DENSITY_STRIDE
from training.data import SPLITS
from training.features import PLAN, extract
from training.head import DensityHead, MeanOfHeads

log = logging.getLogger("training.density")


@dataclass
class Settings:
    design: str = "reduce"
    width: int = 32
    norm: bool = True                   # BatchNorm after each hidden conv
    fine: bool = False                  # read the stride-4 P2 features too (training/head.py)
    epochs: int = 25                    # an "epoch" here is steps_per_epoch steps, then val
    steps_per_epoch: int = 40
    batch: int = 16
    crop: int = 32                      # cells (x8 input pixels)
    lr: float = 2e-3
    weight_decay: float = 1e-4
    sigma: float = 1.0                  # Gaussian target smoothing, cells
    scale: float = 100.0                # training target scale
    count_weight: float = 0.01          # L1 on crop counts, relative to the map loss
    ema: float = 0.95
    # Weight averaging (SWA-like): the shipped weights are the mean of the EMA weights at the
    # ends of the last average_last epochs (0: the final EMA weights). The last epoch alone is
    # a lottery within about +-2 people on the Mall (five seeds: 2.1 to 4.0); the mean of the
    # last 10 is calmer (2.2 to 2.6) and needs no choice of epoch on the validation images
    # (docs/ACCURACY.md, training/curves/S1-seeds-end-vs-averaged.csv).
    average_last: int = 10
    seed: int = 0
    # The head averages the maps of this many runs of the recipe, seeds seed, seed + 1, ...
    # (training/head.py MeanOfHeads). Five of run L1's recipe counted the held-out Mall
    # frames better (2.64 -> 2.55) but cost x1.4 a frame: not shipped (docs/ACCURACY.md).
    members: int = 1
    # Distillation: overrides of another recipe (e.g. {"width": 64, "members": 5}), trained
    # first (in <work>/teacher); this head then learns that recipe's map on each crop instead
    # of the Gaussian head points (docs/ACCURACY.md, "distilled from the wider heads").
    teacher: dict[str, Any] | None = None
    threads: int = 1                    # the shipped head was trained with 1 (2 runs at once)
    # Cached feature folders trained on (training/features.py PLAN). sha-train is extracted
    # too, but mixing it in made Mall and the streets worse (docs/ACCURACY.md).
    train: list[str] = field(default_factory=lambda: [
        "shb-train-640", "shb-train-640-flip", "shb-train-512", "shb-train-768-flip",
        "mall-train-640", "mall-train-640-flip", "mall-train-512", "mall-train-768-flip"])
    # Relative sampling weight of each dataset's crops per epoch.
    mix: dict[str, float] = field(default_factory=lambda: {"shb": 1.0, "mall": 0.4})
    # Only a dataset's images with at least this many people (none: every image).
    min_people: dict[str, int] = field(default_factory=dict)
    # The held-out images scored after each epoch (the learning curve's columns).
    validate: list[str] = field(default_factory=lambda: ["shb", "mall"])


def crowd_settings(**overrides: object) -> Settings:
    """The crowd head's recipe: what the dense rule sends it (crowdwatch.density.tiles) -
    sha-train 100-299 at the whole frame's scales and at the zoom-2 and zoom-3 tiles' (1280,
    1920), and the shb-train images of at least the rule's 100 people - scored on sha-train
    0-99 and shb-train 350-399."""
    fields: dict[str, object] = {
        "train": ["sha-train-640", "sha-train-640-flip", "sha-train-512-flip", "sha-train-768",
                  "sha-train-1280", "sha-train-1920-flip", "shb-train-640",
                  "shb-train-640-flip", "shb-train-512", "shb-train-768-flip"],
        "mix": {"sha": 1.0, "shb": 1.0}, "min_people": {"shb": 100},
        "validate": ["sha", "shb"],
        # One run of the first averaged recipe (S1): the one measured (docs/ACCURACY.md).
        "epochs": 25, "lr": 2e-3, "average_last": 10, "members": 1}
    fields.update(overrides)
    return Settings(**fields)  # type: ignore[arg-type]


def density_target(points: np.ndarray, grid_hw: tuple[int, int], sigma: float) -> np.ndarray:
    """People per stride-8 cell, Gaussian-smoothed with the sum preserved at the borders."""
    h, w = grid_hw
    counts = np.zeros((h, w), np.float32)
    if len(points):
        cells = np.floor(points / DENSITY_STRIDE).astype(np.int64)
        cx = np.clip(cells[:, 0], 0, w - 1)
        cy = np.clip(cells[:, 1], 0, h - 1)
        np.add.at(counts, (cy, cx), 1.0)
    if sigma <= 0:
        return counts
    size = int(2 * round(3 * sigma) + 1)

    def blur(a: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(a, (size, size), sigma, borderType=cv2.BORDER_CONSTANT)

    # A cell near the border keeps only part of its kernel: divide by that part first.
    kept = blur(np.ones((h, w), np.float32))
    return blur(counts / kept)


# Each feature's cells per density cell along a side (NECK_STRIDES relative to stride 8).
CELLS_PER_DENSITY_CELL = {"p2": 2.0, "p3": 1.0, "p4": 0.5}


@dataclass
class Item:
    dataset: str
    features: dict[str, torch.Tensor]  # p3 (64, H, W), p4 (128, H/2, W/2), p2 (64, 2H, 2W)
    target: torch.Tensor  # (H, W) people per cell
    weight: torch.Tensor  # (H, W) 1 where the loss counts (ROI)
    count: int

    def inputs(self) -> tuple[torch.Tensor, ...]:
        """The head's arguments (p3, p4[, p2]) as a batch of one."""
        return tuple(self.features[k][None].float() for k in ("p3", "p4", "p2")
                     if k in self.features)


def load_folder(folder: Path, sigma: float, min_people: int = 0,
                fine: bool = False) -> list[Item]:
    """A cached folder's samples with at least min_people people: only the indices of its
    split (training/data.py SPLITS), so a cache extracted under other splits never leaks
    held-out images into training. fine: with the P2 features too."""
    if not folder.is_dir():
        # An empty list here would train the recipe on part of its data without a word.
        raise SystemExit(f"{folder} is not in the feature cache: run python -m "
                         "training.features --shared ../shared, or drop --no-extract")
    items = []
    dataset, split = folder.name.split("-")[:2]
    wanted = SPLITS[dataset][split]
    keys = ("p3", "p4", "p2") if fine else ("p3", "p4")
    for path in sorted(folder.glob("*[0-9].npz")):
        if int(path.stem) not in wanted:
            continue
        with np.load(path) as data:
            if int(data["count"]) < min_people:
                continue
            if fine and "p2" not in data:
                raise SystemExit(f"{path} has no p2 features (extracted without --fine): run "
                                 "python -m training.features --fine, or drop --no-extract")
            features = {k: torch.from_numpy(data[k]) for k in keys}
            grid = tuple(features["p3"].shape[1:])
            target = density_target(data["points"], grid, sigma)
            weight = data["roi"].astype(np.float32) if "roi" in data else np.ones(grid, np.float32)
            items.append(Item(dataset, features, torch.from_numpy(target * weight),
                              torch.from_numpy(weight), int(data["count"])))
    return items


def random_crop(item: Item, crop: int,
                rng: random.Random) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """A crop x crop cell window (even offsets, so P4 stays aligned), zero-padded if small."""
    h, w = item.target.shape
    y = 2 * rng.randrange(max(h - crop, 0) // 2 + 1)
    x = 2 * rng.randrange(max(w - crop, 0) // 2 + 1)

    def window(t: torch.Tensor, per_cell: float) -> torch.Tensor:
        y0, x0, size = int(y * per_cell), int(x * per_cell), int(crop * per_cell)
        part = t[..., y0:y0 + size, x0:x0 + size].float()
        return F.pad(part, (0, size - part.shape[-1], 0, size - part.shape[-2]))

    features = {k: window(t, CELLS_PER_DENSITY_CELL[k]) for k, t in item.features.items()}
    return features, window(item.target, 1.0), window(item.weight, 1.0)


@torch.no_grad()
def evaluate(model: DensityHead | MeanOfHeads, items: list[Item]) -> dict[str, float]:
    """MAE / RMSE of whole-image counts (inside the ROI where there is one)."""
    model.eval()
    errors = []
    for item in items:
        pred = model(*item.inputs())[0, 0] / model.scale
        errors.append(float((pred * item.weight).sum()) - item.count)
    e = np.asarray(errors)
    return {"mae": float(np.abs(e).mean()), "rmse": float(np.sqrt((e ** 2).mean())),
            "bias": float(e.mean())}


def validation_sets(cache: Path, sigma: float, names: list[str],
                    fine: bool = False) -> dict[str, list[Item]]:
    """The held-out images at the runtime's input, every 4th for the Mall (consecutive frames
    look alike); the final figures come from the runtime on all of them (training/evaluate.py)."""
    return {name: load_folder(cache / f"{name}-val-640", sigma, fine=fine)[::4 if name == "mall"
                                                                           else 1]
            for name in names}


def last_curve_row(work: Path) -> dict[str, str]:
    """The validation columns of a run's last epoch (those it filled)."""
    curve = (work / "curve.csv").read_text().strip().splitlines()
    last = dict(zip(curve[0].split(","), curve[-1].split(","), strict=True))
    return {k: v for k, v in last.items() if "val" in k and v}


def train_members(settings: Settings, cache: Path,
                  work: Path) -> tuple[DensityHead | MeanOfHeads, dict[str, str]]:
    """The head to ship and its validation figures: one run, or the mean of settings.members
    runs (each in work/seed-N, resumable like one run), each distilled from settings.teacher
    where there is one (trained first, in work/teacher)."""
    teacher = None
    if settings.teacher is not None:
        teacher, _ = train_members(Settings(**settings.teacher), cache, work / "teacher")
    if settings.members == 1:
        return train(settings, cache, work, teacher), last_curve_row(work)
    heads = [train(dataclasses.replace(settings, seed=settings.seed + k, members=1), cache,
                   work / f"seed-{settings.seed + k}", teacher)
             for k in range(settings.members)]
    mean = MeanOfHeads(heads)
    validation = {f"{name}_val_{key}": f"{value:.3f}"
                  for name, items in validation_sets(cache, settings.sigma, settings.validate,
                                                     settings.fine).items()
                  for key, value in evaluate(mean, items).items()}
    log.info("mean of %d heads: %s", len(heads), validation)
    return mean, validation


def train(settings: Settings, cache: Path, work: Path,
          teacher: DensityHead | MeanOfHeads | None = None) -> DensityHead:
    """One run of the recipe (resumed from work's checkpoint); with a teacher, its maps of
    each crop are the targets."""
    if teacher is not None:
        teacher.eval()
    torch.set_num_threads(settings.threads)
    random.seed(settings.seed)
    np.random.seed(settings.seed)
    torch.manual_seed(settings.seed)
    work.mkdir(parents=True, exist_ok=True)
    (work / "settings.json").write_text(json.dumps(asdict(settings), indent=1))
    started = time.perf_counter()
    data = [item for name in settings.train
            for item in load_folder(cache / name, settings.sigma,
                                    settings.min_people.get(name.split("-")[0], 0),
                                    settings.fine)]
    val = validation_sets(cache, settings.sigma, settings.validate, settings.fine)
    log.info("loaded %d training samples in %.0f s", len(data), time.perf_counter() - started)

    model = head_for(settings)
    ema = copy.deepcopy(model)
    optimizer = torch.optim.AdamW(model.parameters(), settings.lr,
                                  weight_decay=settings.weight_decay)
    steps_per_epoch = settings.steps_per_epoch
    total = steps_per_epoch * settings.epochs
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, settings.lr, total_steps=total, pct_start=0.1)
    parts = {"model": model, "ema": ema, "optimizer": optimizer, "scheduler": scheduler}
    # average: the running mean of the EMA weights over the averaged epochs (None before).
    start_epoch, average = begin(
        work, parts, ["epoch", "seconds", "lr", "train_loss", *curve_columns(list(val))])
    weights = [settings.mix.get(i.dataset, 1.0) for i in data]
    for epoch in range(start_epoch, settings.epochs):
        # The epoch's own seed: a resumed run draws the same crops as an uninterrupted one.
        rng = random.Random(settings.seed * 1000 + epoch)
        torch.manual_seed(settings.seed * 1000 + epoch)
        order = rng.choices(range(len(data)), weights, k=steps_per_epoch * settings.batch)
        model.train()
        losses = []
        t0 = time.perf_counter()
        for step in range(steps_per_epoch):
            batch = [random_crop(data[i], settings.crop, rng)
                     for i in order[step * settings.batch:(step + 1) * settings.batch]]
            features = {k: torch.stack([crop[0][k] for crop in batch]) for k in batch[0][0]}
            target, weight = (torch.stack(t) for t in list(zip(*batch, strict=True))[1:])
            if teacher is not None:
                target = teacher_map(teacher, features) * weight
            pred = model(features["p3"], features["p4"], features.get("p2"))[:, 0] * weight
            loss = density_loss(pred, target * settings.scale,
                                settings.count_weight * settings.scale)
            losses.append(step_once(loss, optimizer, scheduler))
            ema_update(ema, model, settings.ema)
        scores = {name: evaluate(ema, items) for name, items in val.items()}
        averaged: list[object] = [""] * len(val)
        if settings.average_last and epoch >= settings.epochs - settings.average_last:
            average = average_in(average, ema, epoch - (settings.epochs - settings.average_last))
            head = averaged_head(settings, average)
            averaged = [round(evaluate(head, items)["mae"], 3) for items in val.values()]
        seconds = time.perf_counter() - t0
        end_epoch(work, parts, epoch + 1, seconds, float(np.mean(losses)), scores, averaged,
                  average, f"{scheduler.get_last_lr()[0]:.2e}")
    if settings.average_last:
        assert average is not None
        return averaged_head(settings, average)
    return ema


@torch.no_grad()
def teacher_map(teacher: DensityHead | MeanOfHeads,
                features: dict[str, torch.Tensor]) -> torch.Tensor:
    """The teacher's people per cell on a batch of crops (its training scale divided out)."""
    return teacher(features["p3"], features["p4"], features.get("p2"))[:, 0] / teacher.scale


def density_loss(pred: torch.Tensor, target: torch.Tensor, count_weight: float) -> torch.Tensor:
    """Squared error per cell summed over each map, plus count_weight x the L1 error of each
    map's sum: the map places people, the count term keeps their total honest."""
    map_loss = ((pred - target) ** 2).sum() / len(pred)
    count_loss = (pred.sum((1, 2)) - target.sum((1, 2))).abs().mean()
    return map_loss + count_weight * count_loss


def step_once(loss: torch.Tensor, optimizer: torch.optim.Optimizer,
              scheduler: torch.optim.lr_scheduler.LRScheduler) -> float:
    """One optimiser and schedule step on loss; the loss's value."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    scheduler.step()
    return float(loss.detach())


def save_checkpoint(work: Path, parts: dict[str, Any], epoch: int,
                    average: dict[str, torch.Tensor] | None) -> None:
    """The training state after epoch, written whole or not at all (a run killed mid-write
    resumes from the previous epoch)."""
    state = {name: part.state_dict() for name, part in parts.items()}
    torch.save({**state, "epoch": epoch, "average": average}, work / "checkpoint.tmp")
    (work / "checkpoint.tmp").replace(work / "checkpoint.pt")


def curve_columns(validated: list[str]) -> list[str]:
    """The learning curve's validation columns: each set's scores, then the averaged
    weights' MAE."""
    return ([f"{n}_val_{k}" for n in validated for k in ("mae", "rmse", "bias")]
            + [f"avg_{n}_val_mae" for n in validated])


def begin(work: Path, parts: dict[str, Any], header: list[str]
          ) -> tuple[int, dict[str, torch.Tensor] | None]:
    """A run's start: work's checkpoint loaded into parts (the epochs done, the weights'
    running mean), or for a new run (0, None) and the learning curve begun with header."""
    if (resumed := resume(work, parts)) is not None:
        log.info("resumed after epoch %d", resumed[0])
        return resumed
    with (work / "curve.csv").open("w", newline="") as file:
        csv.writer(file).writerow(header)
    return 0, None


def end_epoch(work: Path, parts: dict[str, Any], epoch: int, seconds: float, loss: float,
              scores: dict[str, dict[str, float]], averaged: list[object],
              average: dict[str, torch.Tensor] | None, *extra: object) -> None:
    """An epoch's end (epoch counted from 1): its row of the learning curve (epoch, seconds,
    extra columns, loss, each validation set's scores, the averaged weights' MAE), a log
    line, and the checkpoint."""
    row = [epoch, round(seconds, 1), *extra, round(loss, 2),
           *(round(score[k], 3) for score in scores.values() for k in ("mae", "rmse", "bias")),
           *averaged]
    with (work / "curve.csv").open("a", newline="") as file:
        csv.writer(file).writerow(row)
    log.info("epoch %d %.0fs loss %.1f %s", epoch, seconds, loss,
             " ".join(f"{name} MAE {score['mae']:.2f} bias {score['bias']:+.2f}"
                      for name, score in scores.items()))
    save_checkpoint(work, parts, epoch, average)


def resume(work: Path, parts: dict[str, Any]
           ) -> tuple[int, dict[str, torch.Tensor] | None] | None:
    """Loads work's checkpoint into parts: the epochs done and the weights' running mean;
    None when there is no checkpoint."""
    checkpoint = work / "checkpoint.pt"
    if not checkpoint.exists():
        return None
    state = torch.load(checkpoint, weights_only=False)
    for name, part in parts.items():
        part.load_state_dict(state[name])
    return state["epoch"], state.get("average")


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """One step of the weights' exponential moving average (integer buffers copied)."""
    for e, m in zip(ema.state_dict().values(), model.state_dict().values(), strict=True):
        if e.dtype.is_floating_point:
            e.mul_(decay).add_(m.detach(), alpha=1 - decay)
        else:
            e.copy_(m)


def average_in(average: dict[str, torch.Tensor] | None, ema: torch.nn.Module,
               seen: int) -> dict[str, torch.Tensor]:
    """The running mean of EMA weights with one more epoch's (seen: epochs averaged so far).
    Integer buffers (BatchNorm's batch counter) take the newest value."""
    state = {k: v.detach().clone() for k, v in ema.state_dict().items()}
    if average is None or seen == 0:
        return state
    for key, value in state.items():
        if value.dtype.is_floating_point:
            average[key].mul_(seen / (seen + 1)).add_(value, alpha=1 / (seen + 1))
        else:
            average[key] = value
    return average


def head_for(settings: Settings) -> DensityHead:
    return DensityHead(settings.design, settings.width, settings.scale, settings.norm,
                       settings.fine)


def averaged_head(settings: Settings, average: dict[str, torch.Tensor]) -> DensityHead:
    head = head_for(settings)
    head.load_state_dict(average)
    return head


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path("../shared"))
    parser.add_argument("--out", type=Path, help="export the head IR into this folder")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/crowdwatch-density-cache"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/crowdwatch-density-runs/default"))
    parser.add_argument("--settings", type=str, default="{}",
                        help='JSON overrides of the training settings, e.g. {"epochs": 10}')
    parser.add_argument("--crowd-settings", type=str, default="{}",
                        help="JSON overrides of the crowd head's settings (crowd_settings)")
    parser.add_argument("--no-crowd", action="store_true",
                        help="train and export the main head alone (no crowd output)")
    parser.add_argument("--main-from", type=Path, default=None, metavar="FOLDER",
                        help="keep this exported head (density_head.xml, metadata.yaml) as the "
                             "density output, as the shipped one was made, and train only the "
                             "crowd head")
    parser.add_argument("--crowd-from", type=Path, default=None, metavar="FOLDER",
                        help="keep this exported head's crowd output as it is, and train only "
                             "the main head")
    parser.add_argument("--no-extract", action="store_true",
                        help="train on the cached features only (skip missing extraction)")
    parser.add_argument("--fp32", action="store_true",
                        help="export the heads unquantized (default: INT8, calibrated on "
                             "cached training features; training/export.py)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    settings = Settings(**json.loads(args.settings))
    recipe = crowd_settings(**json.loads(args.crowd_settings))
    if not args.no_extract:
        extract(args.shared, args.cache, PLAN, threads=2, fine=settings.fine or (
            recipe.fine and args.crowd_from is None and not args.no_crowd))
    from training.export import Trained, calibration_files, export

    # Before training: a cache without the calibration samples fails now, not after an hour.
    calibration = None if args.fp32 or not args.out else calibration_files(args.cache)
    main_head: Trained | Path
    if args.main_from is not None:
        main_head = args.main_from
    else:
        head, validation = train_members(settings, args.cache, args.work)
        main_head = Trained(head, settings, validation)
    crowd: Trained | Path | None = None
    if args.crowd_from is not None:
        crowd = args.crowd_from
    elif not args.no_crowd:
        crowd_head, crowd_validation = train_members(recipe, args.cache, args.work / "crowd")
        crowd = Trained(crowd_head, recipe, crowd_validation)
    if args.out:
        export(main_head, args.out, crowd, calibration)


if __name__ == "__main__":
    main()
