"""A crowd counter that learns its own features: the detector's backbone and neck, fine-tuned.

    python -m training.crowdnet --shared ../shared --work /tmp/crowdwatch-crowdnet

(torch and ultralytics: pip install -e ".[train,ultralytics]" -c constraints.txt.) Measured,
not shipped: through the runtime's dense rule it counts ShanghaiTech A worse than the crowd
head it starts from (docs/ACCURACY.md, "The detector's own layers fine-tuned on crowds").

The crowd head (training/density.py crowd_settings) reads the COCO detector's P3/P4 features
frozen; on ShanghaiTech A it stays far from the published counters, which learn their
features on crowds (CSRNet fine-tunes VGG-16). Here YOLO11n's layers up to P4 (model.0-19),
started from the shipped INT8 detector's own weights (dequantized from the IR: no download),
and a crowd head are trained end to end from images, on the crowd head's data and scales.
Fixed seeds, a per-epoch data order, a checkpoint per epoch (a killed run resumes), the
learning curve in <work>/curve.csv; validation on sha-train 0-99 and shb-train 350-399
(never trained on), whole frames at the runtime's input.
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
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from crowdwatch.density.neck import DENSITY_STRIDE
from crowdwatch.detect.ultralytics import configure_ultralytics
from crowdwatch.detect.yolo import PAD_VALUE, Letterbox, input_shape_for
from training.data import SPLITS, samples
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
from training.features import DETECTOR
from training.head import DensityHead

log = logging.getLogger("training.crowdnet")
# The detector blocks whose outputs the density heads read (crowdwatch.density.neck).
P3_BLOCK, P4_BLOCK = 16, 19
CROWD_WIDTH = 32  # the shipped crowd head's
SHIPPED_HEAD = DETECTOR.parent.parent / "yolo11n_density_head"


@dataclass
class NetSettings:
    # The head: "shipped" starts from the shipped crowd head (its width, BatchNorm folded),
    # "random" from random weights at this width, with BatchNorm (training/head.py).
    start: str = "shipped"
    width: int = CROWD_WIDTH
    epochs: int = 20
    steps_per_epoch: int = 60
    batch: int = 12
    crop: int = 256                     # input pixels (32 cells)
    # Run N1's (docs/ACCURACY.md); N0, from a random head, had 1e-3 and 2e-4.
    lr: float = 5e-4                    # the head's; the detector's layers get backbone_lr
    backbone_lr: float = 1e-4
    weight_decay: float = 1e-4
    sigma: float = 1.0
    scale: float = 100.0
    count_weight: float = 0.01
    ema: float = 0.95
    average_last: int = 8
    seed: int = 0
    threads: int = 2
    # Long sides each dataset's images are trained at: the whole frame's scales and the
    # zoom-2 / zoom-3 tiles' (crowd_settings' folders, drawn per crop here).
    scales: dict[str, list[int]] = field(default_factory=lambda: {
        "sha": [512, 640, 768, 1280, 1920], "shb": [512, 640, 768]})
    mix: dict[str, float] = field(default_factory=lambda: {"sha": 1.0, "shb": 1.0})
    min_people: dict[str, int] = field(default_factory=lambda: {"shb": 100})
    validate: list[str] = field(default_factory=lambda: ["sha", "shb"])


def folded_convolutions(model: Any, head: bool = False
                        ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """module name -> (weight, bias) of each convolution of an OpenVINO model, dequantized to
    float32, BatchNorm folded in: a YOLO IR's named as ultralytics' modules (model.2.cv1.conv),
    a density head's (head=True; training/head.py) as the convolutions of DensityHead with
    norm=False (p3_in.0, ..., out)."""
    import openvino as ov
    import openvino.opset13 as ops

    outputs, keys = [], []
    for op in model.get_ordered_ops():
        if op.get_type_name() not in ("Convolution", "GroupConvolution"):
            continue
        adds = [t.get_node() for t in op.output(0).get_target_inputs()
                if t.get_node().get_type_name() == "Add"]
        if not adds:  # the box decoder's fixed DFL convolution: no bias, not trained
            continue
        if head:  # the bias Add carries the module's name (BatchNorm's, or the last conv's)
            path = adds[0].get_friendly_name().split("/")[0].removeprefix("__module.head.")
            name = f"{path[:-2]}.0" if path.endswith(".1") else path
        else:
            name = op.get_friendly_name().split("/")[0].removeprefix("__module.")
        bias = [i.get_source_output() for i in adds[0].inputs()
                if i.get_source_output().get_node().get_friendly_name() != op.get_friendly_name()]
        outputs += [op.input(1).get_source_output(), bias[0]]
        keys.append(name)
    # The weights' subgraphs (int8 constant -> convert -> scale) evaluated as one model.
    compiled = ov.Core().compile_model(
        ov.Model([ops.result(o) for o in outputs], [], "weights"), "CPU",
        {"INFERENCE_PRECISION_HINT": "f32"})
    values = compiled({})
    arrays = [np.array(values[out]) for out in compiled.outputs]
    return {key: (arrays[2 * i], arrays[2 * i + 1].reshape(-1)) for i, key in enumerate(keys)}


def load_folded(module: nn.Module, weights: dict[str, tuple[np.ndarray, np.ndarray]],
                prefix: str = "") -> None:
    """Every Conv2d of module takes its (weight, bias) from weights (folded_convolutions)."""
    for name, conv in module.named_modules():
        if not isinstance(conv, nn.Conv2d):
            continue
        if prefix + name not in weights:
            raise ValueError(f"the model has no convolution {prefix + name}")
        weight, bias = weights[prefix + name]
        conv.weight = nn.Parameter(torch.from_numpy(weight.reshape(conv.weight.shape).copy()))
        conv.bias = nn.Parameter(torch.from_numpy(bias.copy()))


def shipped_crowd_head(folder: Path, scale: float) -> DensityHead:
    """The shipped crowd head (BatchNorm folded, dequantized) as a trainable DensityHead
    without BatchNorm, trained on targets x scale like the heads (the IR divides by it)."""
    import openvino as ov

    from crowdwatch.density.neck import split_head

    _, crowd = split_head(ov.Core().read_model(folder / "density_head.xml"))
    if crowd is None:
        raise ValueError(f"{folder} has no crowd head")
    head = DensityHead("reduce", CROWD_WIDTH, scale, norm=False)
    load_folded(head, folded_convolutions(crowd, head=True))
    return head


class DetectorNeck(nn.Module):
    """YOLO11n's layers 0-19 (ultralytics' own modules, BatchNorm folded), weights from the
    detector IR: an image batch (RGB, 0-1) -> P3 (stride 8) and P4 (stride 16), as the IR's
    neck outputs (to the IR's INT8 rounding)."""

    def __init__(self, xml: Path = DETECTOR) -> None:
        super().__init__()
        import openvino as ov

        configure_ultralytics()
        from ultralytics.nn.tasks import DetectionModel

        full = DetectionModel("yolo11n.yaml", nc=80, verbose=False).fuse(verbose=False)
        self.layers = full.model[:P4_BLOCK + 1]
        # New Parameters: ultralytics freezes the convolutions it folds BatchNorm into.
        load_folded(self.layers, folded_convolutions(ov.Core().read_model(xml)), "model.")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        kept: list[torch.Tensor] = []
        for layer in self.layers:
            # ultralytics' wiring: f is -1 (the previous layer) or the indices it reads.
            if layer.f == -1:
                inputs = x
            elif isinstance(layer.f, int):
                inputs = kept[layer.f]
            else:
                inputs = [x if j == -1 else kept[j] for j in layer.f]
            x = layer(inputs)
            kept.append(x)
        return kept[P3_BLOCK], kept[P4_BLOCK]


class CrowdNet(nn.Module):
    """Image (RGB, 0-1, sides multiples of 32) -> people per stride-8 cell x head.scale."""

    def __init__(self, head: DensityHead, xml: Path = DETECTOR) -> None:
        super().__init__()
        self.neck = DetectorNeck(xml)
        self.head = head
        self.scale = head.scale

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(*self.neck(image))


def as_input(bgr: np.ndarray) -> torch.Tensor:
    """A letterboxed BGR uint8 image (H, W, 3) -> the network's (3, H, W) RGB 0-1 input."""
    return torch.from_numpy(np.ascontiguousarray(bgr[..., ::-1])).permute(2, 0, 1).float() / 255


@dataclass
class Photo:
    dataset: str
    image: np.ndarray       # BGR, as read
    points: np.ndarray      # (N, 2) head points, image pixels


def load_photos(shared: Path, dataset: str, split: str, min_people: int = 0) -> list[Photo]:
    photos = []
    for sample in samples(shared, dataset, SPLITS[dataset][split]):
        if len(sample.points) < min_people:
            continue
        image = cv2.imread(str(sample.path), cv2.IMREAD_COLOR)
        if image is None:
            raise FileNotFoundError(sample.path)
        photos.append(Photo(dataset, image, sample.points))
    return photos


def random_crop(photo: Photo, long_side: int, crop: int, flip: bool, sigma: float,
                rng: random.Random) -> tuple[torch.Tensor, torch.Tensor]:
    """A crop x crop window of the photo resized to long_side (grey beyond its edges, as the
    letterbox pads), and its target: people per stride-8 cell."""
    height, width = photo.image.shape[:2]
    factor = long_side / max(height, width)
    scaled_w, scaled_h = width * factor, height * factor
    x0 = rng.uniform(0, max(scaled_w - crop, 0))
    y0 = rng.uniform(0, max(scaled_h - crop, 0))
    # Resample only the window: one affine warp (bilinear, like the letterbox's resize).
    matrix = np.array([[factor, 0, -x0], [0, factor, -y0]], np.float64)
    window = cv2.warpAffine(photo.image, matrix, (crop, crop), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=(PAD_VALUE,) * 3)
    points = photo.points * factor - np.array([x0, y0], np.float32)
    points = points[(points >= 0).all(1) & (points < crop).all(1)]
    if flip:
        window = window[:, ::-1]
        points = np.column_stack([crop - points[:, 0], points[:, 1]])
    cells = crop // DENSITY_STRIDE
    target = density_target(points.astype(np.float32), (cells, cells), sigma)
    return as_input(window), torch.from_numpy(target)


def letterboxed(image: np.ndarray, imgsz: int = 640) -> tuple[torch.Tensor, Letterbox]:
    """The image as the runtime feeds it (stream input shape, grey letterbox)."""
    frame_hw = (int(image.shape[0]), int(image.shape[1]))
    box = Letterbox.fit(frame_hw, input_shape_for(frame_hw, imgsz, "stream"))
    buffer = np.empty((*box.input_hw, 3), np.uint8)
    box.fill(image, buffer, padded=False)
    return as_input(buffer), box


@torch.no_grad()
def evaluate(net: CrowdNet, photos: list[Photo]) -> dict[str, float]:
    """MAE / RMSE / bias of whole-frame counts at the runtime's input."""
    net.eval()
    errors = []
    for photo in photos:
        tensor, _ = letterboxed(photo.image)
        errors.append(float(net(tensor[None]).sum()) / net.scale - len(photo.points))
    e = np.asarray(errors)
    return {"mae": float(np.abs(e).mean()), "rmse": float(np.sqrt((e ** 2).mean())),
            "bias": float(e.mean())}


def train(settings: NetSettings, shared: Path, work: Path,
          stop_after: int | None = None) -> CrowdNet | None:
    """One run (resumed from work's checkpoint); the mean of the last average_last epochs'
    EMA weights. None after stop_after epochs, to be resumed from work by the next call."""
    torch.set_num_threads(settings.threads)
    random.seed(settings.seed)
    np.random.seed(settings.seed)
    torch.manual_seed(settings.seed)
    cv2.setNumThreads(1)
    work.mkdir(parents=True, exist_ok=True)
    (work / "settings.json").write_text(json.dumps(asdict(settings), indent=1))
    data = [photo for name in settings.scales
            for photo in load_photos(shared, name, "train", settings.min_people.get(name, 0))]
    val = {name: load_photos(shared, name, "val") for name in settings.validate}
    log.info("%d training photos", len(data))

    net = CrowdNet(new_head(settings))
    ema = copy.deepcopy(net)
    optimizer = torch.optim.AdamW(
        [{"params": net.neck.parameters(), "lr": settings.backbone_lr},
         {"params": net.head.parameters(), "lr": settings.lr}],
        weight_decay=settings.weight_decay)
    total = settings.steps_per_epoch * settings.epochs
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, [settings.backbone_lr, settings.lr], total_steps=total, pct_start=0.1)
    parts = {"model": net, "ema": ema, "optimizer": optimizer, "scheduler": scheduler}
    start_epoch, average = begin(work, parts,
                                 ["epoch", "seconds", "train_loss", *curve_columns(list(val))])
    weights = [settings.mix.get(photo.dataset, 1.0) for photo in data]
    first_averaged = settings.epochs - settings.average_last
    for epoch in range(start_epoch, settings.epochs):
        if stop_after is not None and epoch >= stop_after:
            return None
        rng = random.Random(settings.seed * 1000 + epoch)
        torch.manual_seed(settings.seed * 1000 + epoch)
        order = rng.choices(range(len(data)), weights,
                            k=settings.steps_per_epoch * settings.batch)
        net.train()
        losses = []
        started = time.perf_counter()
        for step in range(settings.steps_per_epoch):
            crops = [random_crop(data[i], rng.choice(settings.scales[data[i].dataset]),
                                 settings.crop, rng.random() < 0.5, settings.sigma, rng)
                     for i in order[step * settings.batch:(step + 1) * settings.batch]]
            images = torch.stack([c[0] for c in crops])
            target = torch.stack([c[1] for c in crops]) * settings.scale
            loss = density_loss(net(images)[:, 0], target,
                                settings.count_weight * settings.scale)
            losses.append(step_once(loss, optimizer, scheduler))
            ema_update(ema, net, settings.ema)
        scores = {name: evaluate(ema, photos) for name, photos in val.items()}
        averaged: list[object] = [""] * len(val)
        if settings.average_last and epoch >= first_averaged:
            average = average_in(average, ema, epoch - first_averaged)
            mean_net = averaged_net(settings, average)
            averaged = [round(evaluate(mean_net, photos)["mae"], 3) for photos in val.values()]
        end_epoch(work, parts, epoch + 1, time.perf_counter() - started, float(np.mean(losses)),
                  scores, averaged, average)
    if settings.average_last:
        assert average is not None
        return averaged_net(settings, average)
    return ema


def new_head(settings: NetSettings, trained: bool = False) -> DensityHead:
    """The head a run starts from (trained: only its shape, weights loaded after)."""
    if settings.start == "shipped":
        if trained:
            return DensityHead("reduce", CROWD_WIDTH, settings.scale, norm=False)
        return shipped_crowd_head(SHIPPED_HEAD, settings.scale)
    if settings.start == "random":
        return DensityHead("reduce", settings.width, settings.scale)
    raise ValueError(f"start must be 'shipped' or 'random', not {settings.start!r}")


def averaged_net(settings: NetSettings, average: dict[str, torch.Tensor]) -> CrowdNet:
    net = CrowdNet(new_head(settings, trained=True))
    net.load_state_dict(average)
    return net.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/crowdwatch-crowdnet"))
    parser.add_argument("--settings", default="{}", help="JSON overrides of NetSettings")
    parser.add_argument("--stop-after", type=int, default=None, metavar="EPOCHS",
                        help="stop after this many epochs (resume later with the same --work)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    settings = NetSettings(**json.loads(args.settings))
    net = train(settings, args.shared, args.work, args.stop_after)
    if net is None:
        return
    torch.save(net.state_dict(), args.work / "crowdnet.pt")


if __name__ == "__main__":
    main()
