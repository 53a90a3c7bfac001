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


@dataclass
class Item:
    dataset: str
    p3: torch.Tensor      # (64, H, W) fp16
    p4: torch.Tensor      # (128, H/2, W/2) fp16
    target: torch.Tensor  # (H, W) people per cell
    weight: torch.Tensor  # (H, W) 1 where the loss counts (ROI)
    count: int


def load_folder(folder: Path, sigma: float, min_people: int = 0) -> list[Item]:
    """A cached folder's samples with at least min_people people: only the indices of its
    split (training/data.py SPLITS), so a cache extracted under other splits never leaks
    held-out images into training."""
    items = []
    dataset, split = folder.name.split("-")[:2]
    wanted = SPLITS[dataset][split]
    for path in sorted(folder.glob("*[0-9].npz")):
        if int(path.stem) not in wanted:
            continue
        with np.load(path) as data:
            if int(data["count"]) < min_people:
                continue
            p3 = torch.from_numpy(data["p3"])
            grid = tuple(p3.shape[1:])
            target = density_target(data["points"], grid, sigma)
            weight = data["roi"].astype(np.float32) if "roi" in data else np.ones(grid, np.float32)
            items.append(Item(dataset, p3, torch.from_numpy(data["p4"]),
                              torch.from_numpy(target * weight), torch.from_numpy(weight),
                              int(data["count"])))
    return items


def random_crop(item: Item, crop: int, rng: random.Random) -> tuple[torch.Tensor, ...]:
    """A crop x crop cell window (even offsets, so P4 stays aligned), zero-padded if small."""
    _, h, w = item.p3.shape
    y = 2 * rng.randrange(max(h - crop, 0) // 2 + 1)
    x = 2 * rng.randrange(max(w - crop, 0) // 2 + 1)
    p3 = item.p3[:, y:y + crop, x:x + crop].float()
    p4 = item.p4[:, y // 2:(y + crop) // 2, x // 2:(x + crop) // 2].float()
    target = item.target[y:y + crop, x:x + crop]
    weight = item.weight[y:y + crop, x:x + crop]
    if p3.shape[1:] != (crop, crop):
        dh, dw = crop - p3.shape[1], crop - p3.shape[2]
        p3, target, weight = (F.pad(t, (0, dw, 0, dh)) for t in (p3, target, weight))
        p4 = F.pad(p4, (0, dw // 2, 0, dh // 2))
    return p3, p4, target, weight


@torch.no_grad()
def evaluate(model: DensityHead | MeanOfHeads, items: list[Item]) -> dict[str, float]:
    """MAE / RMSE of whole-image counts (inside the ROI where there is one)."""
    model.eval()
    errors = []
    for item in items:
        pred = model(item.p3[None].float(), item.p4[None].float())[0, 0] / model.scale
        errors.append(float((pred * item.weight).sum()) - item.count)
    e = np.asarray(errors)
    return {"mae": float(np.abs(e).mean()), "rmse": float(np.sqrt((e ** 2).mean())),
            "bias": float(e.mean())}


def validation_sets(cache: Path, sigma: float, names: list[str]) -> dict[str, list[Item]]:
    """The held-out images at the runtime's input, every 4th for the Mall (consecutive frames
    look alike); the final figures come from the runtime on all of them (training/evaluate.py)."""
    return {name: load_folder(cache / f"{name}-val-640", sigma)[::4 if name == "mall" else 1]
            for name in names}


def last_curve_row(work: Path) -> dict[str, str]:
    """The validation columns of a run's last epoch (those it filled)."""
    curve = (work / "curve.csv").read_text().strip().splitlines()
    last = dict(zip(curve[0].split(","), curve[-1].split(","), strict=True))
    return {k: v for k, v in last.items() if "val" in k and v}


def train_members(settings: Settings, cache: Path,
                  work: Path) -> tuple[DensityHead | MeanOfHeads, dict[str, str]]:
    """The head to ship and its validation figures: one run, or the mean of settings.members
    runs (each in work/seed-N, resumable like one run)."""
    if settings.members == 1:
        return train(settings, cache, work), last_curve_row(work)
    heads = [train(dataclasses.replace(settings, seed=settings.seed + k, members=1), cache,
                   work / f"seed-{settings.seed + k}") for k in range(settings.members)]
    mean = MeanOfHeads(heads)
    validation = {f"{name}_val_{key}": f"{value:.3f}"
                  for name, items in validation_sets(cache, settings.sigma,
                                                     settings.validate).items()
                  for key, value in evaluate(mean, items).items()}
    log.info("mean of %d heads: %s", len(heads), validation)
    return mean, validation


def train(settings: Settings, cache: Path, work: Path) -> DensityHead:
    torch.set_num_threads(settings.threads)
    random.seed(settings.seed)
    np.random.seed(settings.seed)
    torch.manual_seed(settings.seed)
    work.mkdir(parents=True, exist_ok=True)
    (work / "settings.json").write_text(json.dumps(asdict(settings), indent=1))
    started = time.perf_counter()
    data = [item for name in settings.train
            for item in load_folder(cache / name, settings.sigma,
                                    settings.min_people.get(name.split("-")[0], 0))]
    val = validation_sets(cache, settings.sigma, settings.validate)
    log.info("loaded %d training samples in %.0f s", len(data), time.perf_counter() - started)

    model = DensityHead(settings.design, settings.width, settings.scale, settings.norm)
    ema = copy.deepcopy(model)
    optimizer = torch.optim.AdamW(model.parameters(), settings.lr,
                                  weight_decay=settings.weight_decay)
    steps_per_epoch = settings.steps_per_epoch
    total = steps_per_epoch * settings.epochs
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, settings.lr, total_steps=total, pct_start=0.1)
    start_epoch = 0
    # The running mean of the EMA weights over the averaged epochs (None before the first).
    average: dict[str, torch.Tensor] | None = None
    checkpoint = work / "checkpoint.pt"
    if checkpoint.exists():
        state = torch.load(checkpoint, weights_only=False)
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch = state["epoch"]
        average = state.get("average")
        log.info("resumed after epoch %d", start_epoch)
    weights = [settings.mix.get(i.dataset, 1.0) for i in data]
    curve = work / "curve.csv"
    if start_epoch == 0:
        with curve.open("w", newline="") as file:
            csv.writer(file).writerow(
                ["epoch", "seconds", "lr", "train_loss"]
                + [f"{n}_val_{k}" for n in val for k in ("mae", "rmse", "bias")]
                + [f"avg_{n}_val_mae" for n in val])
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
            p3, p4, target, weight = (torch.stack(t) for t in zip(*batch, strict=True))
            pred = model(p3, p4)[:, 0] * weight
            target = target * settings.scale
            map_loss = ((pred - target) ** 2).sum() / len(batch)
            count_loss = (pred.sum((1, 2)) - target.sum((1, 2))).abs().mean()
            loss = map_loss + settings.count_weight * settings.scale * count_loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(float(loss.detach()))
            with torch.no_grad():
                for e, m in zip(ema.state_dict().values(), model.state_dict().values(),
                                strict=True):
                    if e.dtype.is_floating_point:
                        e.mul_(settings.ema).add_(m.detach(), alpha=1 - settings.ema)
                    else:
                        e.copy_(m)
        scores = {name: evaluate(ema, items) for name, items in val.items()}
        averaged: list[object] = [""] * len(val)
        if settings.average_last and epoch >= settings.epochs - settings.average_last:
            average = average_in(average, ema, epoch - (settings.epochs - settings.average_last))
            head = averaged_head(settings, average)
            averaged = [round(evaluate(head, items)["mae"], 3) for items in val.values()]
        seconds = time.perf_counter() - t0
        row = [epoch + 1, round(seconds, 1), f"{scheduler.get_last_lr()[0]:.2e}",
               round(float(np.mean(losses)), 2),
               *(round(score[k], 3) for score in scores.values()
                 for k in ("mae", "rmse", "bias")), *averaged]
        with curve.open("a", newline="") as file:
            csv.writer(file).writerow(row)
        log.info("epoch %d %.0fs loss %.1f %s", epoch + 1, seconds, row[3],
                 " ".join(f"{name} MAE {score['mae']:.2f} bias {score['bias']:+.2f}"
                          for name, score in scores.items()))
        torch.save({"model": model.state_dict(), "ema": ema.state_dict(),
                    "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "epoch": epoch + 1, "average": average}, work / "checkpoint.tmp")
        (work / "checkpoint.tmp").replace(checkpoint)
    if settings.average_last:
        assert average is not None
        return averaged_head(settings, average)
    return ema


def average_in(average: dict[str, torch.Tensor] | None, ema: DensityHead,
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


def averaged_head(settings: Settings, average: dict[str, torch.Tensor]) -> DensityHead:
    head = DensityHead(settings.design, settings.width, settings.scale, settings.norm)
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
    parser.add_argument("--no-extract", action="store_true",
                        help="train on the cached features only (skip missing extraction)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    settings = Settings(**json.loads(args.settings))
    if not args.no_extract:
        extract(args.shared, args.cache, PLAN, threads=2)
    from training.export import Trained, export

    main_head: Trained | Path
    if args.main_from is not None:
        main_head = args.main_from
    else:
        head, validation = train_members(settings, args.cache, args.work)
        main_head = Trained(head, settings, validation)
    crowd = None
    if not args.no_crowd:
        recipe = crowd_settings(**json.loads(args.crowd_settings))
        crowd_head, crowd_validation = train_members(recipe, args.cache, args.work / "crowd")
        crowd = Trained(crowd_head, recipe, crowd_validation)
    if args.out:
        export(main_head, args.out, crowd)


if __name__ == "__main__":
    main()
