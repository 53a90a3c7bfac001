"""A standalone light density network, trained from scratch on the images themselves: the
comparison issue 20 asks for beside the head on the detector's neck (training/head.py).
Measured, not shipped (docs/ACCURACY.md, "A standalone light network").

    python -m training.standalone --shared ../shared --work /tmp/crowdwatch-standalone

Same data, splits, targets and loss as the main head (training/density.py): shb-train 0-349
and mall-tune 0-599 (every 2nd frame) at the runtime's 640-pixel long side, people per
8x8-pixel cell; validated on shb-train 350-399 and mall-tune 600-799, never trained on.
No pretrained weights can be downloaded here, so it starts from random weights. Fixed seeds;
resumes from --work after an interruption; the curve goes to <work>/curve.csv.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from crowdwatch.density.neck import DENSITY_STRIDE
from training.data import SPLITS, pets_samples, samples
from training.density import (
    average_in,
    begin,
    curve_columns,
    density_loss,
    density_target,
    ema_update,
    end_epoch,
    step_once,
)
from training.head import conv_bn

log = logging.getLogger("training.standalone")
# The runtime's input: the detector's imgsz, the frame's long side.
LONG_SIDE = 640


@dataclass
class StandaloneSettings:
    width: int = 16                     # first stage's channels, doubled at each stage
    epochs: int = 30                    # an "epoch": steps_per_epoch steps, then validation
    steps_per_epoch: int = 40
    batch: int = 8
    crop: int = 256                     # input pixels, a multiple of DENSITY_STRIDE
    lr: float = 2e-3
    weight_decay: float = 1e-4
    sigma: float = 1.0                  # Gaussian target smoothing, cells
    scale: float = 100.0                # training target scale
    count_weight: float = 0.01          # L1 on crop counts, relative to the map loss
    ema: float = 0.95
    average_last: int = 10              # the mean of the last epochs' EMA weights
    seed: int = 0
    threads: int = 2
    mall_step: int = 2                  # every 2nd training frame: neighbours look alike
    mix: dict[str, float] = field(default_factory=lambda: {"shb": 1.0, "mall": 0.4})


class LightCounter(nn.Module):
    """Three stages of two 3x3 convolutions, each halving the resolution, then a dilated
    stage at stride 8 (a wider view of each cell) and a 1x1 convolution: people per 8x8-pixel
    cell of the input, the heads' own grid."""

    def __init__(self, width: int = 16, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = scale
        stages: list[nn.Module] = []
        cin = 3
        for cout in (width, 2 * width, 4 * width):
            stages += [conv_bn(cin, cout, 3), conv_bn(cout, cout, 3), nn.MaxPool2d(2)]
            cin = cout
        self.features = nn.Sequential(*stages)
        self.body = nn.Sequential(conv_bn(cin, cin, 3, dilation=2), conv_bn(cin, cin // 2, 3))
        self.out = nn.Conv2d(cin // 2, 1, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """image: (N, 3, H, W) BGR, 0-255 -> (N, 1, H/8, W/8) people per cell x scale."""
        x = self.features(image / 255.0 - 0.5)
        return F.softplus(self.out(self.body(x)))


@dataclass
class Picture:
    """An image at the runtime's size, its people per cell, the cells that count (ROI)."""

    dataset: str
    image: torch.Tensor   # (3, H, W) uint8
    target: torch.Tensor  # (H/8, W/8)
    weight: torch.Tensor  # (H/8, W/8), 1 inside the ROI
    count: int            # people inside the ROI


def at_input_size(image: np.ndarray) -> tuple[np.ndarray, float, float]:
    """The image with its long side LONG_SIDE and both sides multiples of the cell size, and
    the x and y factors it was resized by."""
    h, w = image.shape[:2]
    factor = LONG_SIDE / max(h, w)
    new_w, new_h = (max(DENSITY_STRIDE, round(s * factor / DENSITY_STRIDE) * DENSITY_STRIDE)
                    for s in (w, h))
    return (cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA), new_w / w,
            new_h / h)


def picture(dataset: str, image: np.ndarray, points: np.ndarray, roi: np.ndarray | None,
            sigma: float) -> Picture:
    resized, fx, fy = at_input_size(image)
    grid = (resized.shape[0] // DENSITY_STRIDE, resized.shape[1] // DENSITY_STRIDE)
    weight = np.ones(grid, np.float32)
    count = len(points)
    if roi is not None:
        # A cell counts where its centre's frame pixel is inside the ROI.
        ys = ((np.arange(grid[0]) + 0.5) * DENSITY_STRIDE / fy).astype(int)
        xs = ((np.arange(grid[1]) + 0.5) * DENSITY_STRIDE / fx).astype(int)
        weight = roi[np.ix_(np.clip(ys, 0, roi.shape[0] - 1),
                            np.clip(xs, 0, roi.shape[1] - 1))].astype(np.float32)
        inside = roi[np.clip(points[:, 1].astype(int), 0, roi.shape[0] - 1),
                     np.clip(points[:, 0].astype(int), 0, roi.shape[1] - 1)]
        count = int(inside.sum())
    target = density_target(points * np.array([fx, fy], np.float32), grid, sigma) * weight
    return Picture(dataset, torch.from_numpy(resized.transpose(2, 0, 1).copy()),
                   torch.from_numpy(target), torch.from_numpy(weight), count)


def load(shared: Path, dataset: str, split: str, sigma: float, step: int = 1) -> list[Picture]:
    loaded = []
    for sample in samples(shared, dataset, list(SPLITS[dataset][split])[::step]):
        image = cv2.imread(str(sample.path), cv2.IMREAD_COLOR)
        if image is None:
            raise FileNotFoundError(sample.path)
        loaded.append(picture(dataset, image, sample.points, sample.roi, sigma))
    return loaded


def random_crop(item: Picture, crop: int, rng: random.Random
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A crop x crop pixel window on cell boundaries (zero-padded where the image is
    smaller), flipped left-right half the time."""
    cells = crop // DENSITY_STRIDE
    h, w = item.target.shape
    y, x = rng.randrange(max(h - cells, 0) + 1), rng.randrange(max(w - cells, 0) + 1)

    def window(t: torch.Tensor, per_cell: int) -> torch.Tensor:
        part = t[..., y * per_cell:(y + cells) * per_cell, x * per_cell:(x + cells) * per_cell]
        size = cells * per_cell
        return F.pad(part.float(), (0, size - part.shape[-1], 0, size - part.shape[-2]))

    image = window(item.image, DENSITY_STRIDE)
    target, weight = window(item.target, 1), window(item.weight, 1)
    if rng.random() < 0.5:
        image, target, weight = image.flip(-1), target.flip(-1), weight.flip(-1)
    return image, target, weight


@torch.no_grad()
def evaluate(model: LightCounter, items: list[Picture]) -> dict[str, float]:
    """MAE / RMSE / bias of whole-image counts inside the ROI."""
    model.eval()
    errors = np.array([float((model(item.image[None].float())[0, 0] / model.scale
                              * item.weight).sum()) - item.count for item in items])
    return {"mae": float(np.abs(errors).mean()), "rmse": float(np.sqrt((errors ** 2).mean())),
            "bias": float(errors.mean())}


def train(settings: StandaloneSettings, shared: Path, work: Path,
          stop_after: int | None = None) -> LightCounter | None:
    """The trained network (the mean of its last epochs' EMA weights); None when it stopped
    after stop_after epochs, to be resumed from work's checkpoint by the next call."""
    torch.set_num_threads(settings.threads)
    random.seed(settings.seed)
    torch.manual_seed(settings.seed)
    work.mkdir(parents=True, exist_ok=True)
    (work / "settings.json").write_text(json.dumps(asdict(settings), indent=1))
    started = time.perf_counter()
    data = (load(shared, "shb", "train", settings.sigma)
            + load(shared, "mall", "train", settings.sigma, settings.mall_step))
    val = {"shb": load(shared, "shb", "val", settings.sigma),
           "mall": load(shared, "mall", "val", settings.sigma, 4)}
    log.info("loaded %d training images in %.0f s", len(data), time.perf_counter() - started)
    model = LightCounter(settings.width, settings.scale)
    ema = copy.deepcopy(model)
    optimizer = torch.optim.AdamW(model.parameters(), settings.lr,
                                  weight_decay=settings.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, settings.lr, total_steps=settings.steps_per_epoch * settings.epochs,
        pct_start=0.1)
    parts = {"model": model, "ema": ema, "optimizer": optimizer, "scheduler": scheduler}
    start_epoch, average = begin(work, parts,
                                 ["epoch", "seconds", "train_loss", *curve_columns(list(val))])
    weights = [settings.mix.get(item.dataset, 1.0) for item in data]
    for epoch in range(start_epoch, settings.epochs):
        if stop_after is not None and epoch >= stop_after:
            return None
        # The epoch's own seed: a resumed run draws the same crops as an uninterrupted one.
        rng = random.Random(settings.seed * 1000 + epoch)
        order = rng.choices(range(len(data)), weights,
                            k=settings.steps_per_epoch * settings.batch)
        model.train()
        losses, t0 = [], time.perf_counter()
        for step in range(settings.steps_per_epoch):
            crops = [random_crop(data[i], settings.crop, rng)
                     for i in order[step * settings.batch:(step + 1) * settings.batch]]
            image, target, weight = (torch.stack(part) for part in zip(*crops, strict=True))
            loss = density_loss(model(image)[:, 0] * weight, target * settings.scale,
                                settings.count_weight * settings.scale)
            losses.append(step_once(loss, optimizer, scheduler))
            ema_update(ema, model, settings.ema)
        scores = {name: evaluate(ema, items) for name, items in val.items()}
        averaged: list[object] = [""] * len(val)
        first_averaged = settings.epochs - settings.average_last
        if settings.average_last and epoch >= first_averaged:
            average = average_in(average, ema, epoch - first_averaged)
            averaged = [round(evaluate(averaged_model(settings, average), items)["mae"], 3)
                        for items in val.values()]
        end_epoch(work, parts, epoch + 1, time.perf_counter() - t0, float(np.mean(losses)),
                  scores, averaged, average)
    return averaged_model(settings, average) if average is not None else ema


def averaged_model(settings: StandaloneSettings, average: dict[str, torch.Tensor]
                   ) -> LightCounter:
    model = LightCounter(settings.width, settings.scale)
    model.load_state_dict(average)
    return model


def final_scores(model: LightCounter, shared: Path, sigma: float) -> dict[str, dict[str, float]]:
    """Every held-out image (all 200 Mall frames), and PETS S2.L1 every 5th frame (sparse:
    what the network sees where there are 2-8 people)."""
    scores = {f"{name} val": evaluate(model, load(shared, name, "val", sigma))
              for name in ("shb", "mall")}
    pets = [picture("pets", image, np.zeros((count, 2), np.float32), None, sigma)
            for _, image, count in pets_samples(shared, 5)]
    scores["pets every 5th"] = evaluate(model, pets)
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path("../shared"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/crowdwatch-standalone"))
    parser.add_argument("--settings", type=str, default="{}",
                        help='JSON overrides of the settings, e.g. {"epochs": 10}')
    parser.add_argument("--stop-after", type=int, default=None, metavar="EPOCHS",
                        help="stop once this many epochs are done (the same command resumes)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    settings = StandaloneSettings(**json.loads(args.settings))
    model = train(settings, args.shared, args.work, args.stop_after)
    if model is None:
        return
    scores = final_scores(model, args.shared, settings.sigma)
    (args.work / "scores.json").write_text(json.dumps(scores, indent=1))
    for name, score in scores.items():
        log.info("%s: MAE %.2f RMSE %.2f bias %+.2f", name, score["mae"], score["rmse"],
                 score["bias"])
    torch.save(model.state_dict(), args.work / "final.pt")


if __name__ == "__main__":
    main()
