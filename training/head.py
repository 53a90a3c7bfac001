"""The density head in torch: the detector's P3 and P4 neck features -> people per cell.

P4 (stride 16) is brought to stride 8 and joined with P3 (and, for the crowd head, the
backbone's stride-4 P2, brought down to stride 8); a few convolutions map them to a
non-negative map whose sum is the count. Exported to OpenVINO (export.py) with inputs named
p3, p4 (and p2), which crowdwatch.density.neck splices onto the detector's own outputs.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn
from torch.nn import functional as F

P3_CHANNELS, P4_CHANNELS, P2_CHANNELS = 64, 128, 64


def conv_bn(cin: int, cout: int, kernel: int, dilation: int = 1,
            norm: bool = True) -> nn.Sequential:
    conv = nn.Conv2d(cin, cout, kernel, padding=dilation * (kernel // 2), dilation=dilation,
                     bias=not norm)
    if not norm:
        return nn.Sequential(conv, nn.ReLU(inplace=True))
    return nn.Sequential(conv, nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class DensityHead(nn.Module):
    """design "concat": P4 upsampled and concatenated with P3 (192 channels), then 3x3 convs.
    design "reduce": each level first reduced by a 1x1 conv (P4 at its own stride), summed;
    with fine=True also P2, by a 3x3 conv at stride 4 and a 2x2 one down to stride 8, for
    heads finer than stride 8 resolves (measured, not shipped: it counts the Mall and sparse
    ShanghaiTech A photos better, the largest crowds and sparse scenes worse;
    docs/ACCURACY.md, "Stride-4 features")."""

    def __init__(self, design: str = "reduce", width: int = 64, scale: float = 1.0,
                 norm: bool = True, fine: bool = False) -> None:
        super().__init__()
        # BatchNorm's running statistics follow the last batches' mix of datasets (Mall,
        # streets, dense photos differ): norm=False trains without it.
        layer = partial(conv_bn, norm=norm)
        self.design = design
        self.fine = fine
        # Trained on targets x scale (cells hold fractions of a person); export divides.
        self.scale = scale
        if design == "concat":
            self.stem = layer(P3_CHANNELS + P4_CHANNELS, width, 3)
        elif design == "reduce":
            self.p3_in = layer(P3_CHANNELS, width, 1)
            self.p4_in = layer(P4_CHANNELS, width, 1)
            self.stem = layer(width, width, 3)
        else:
            raise ValueError(f"unknown design {design!r}")
        if fine:
            if design != "reduce":
                raise ValueError("fine=True (P2) needs the reduce design")
            self.p2_in = nn.Sequential(
                layer(P2_CHANNELS, width, 3),
                nn.Conv2d(width, width, 2, stride=2, bias=not norm),
                *((nn.BatchNorm2d(width),) if norm else ()), nn.ReLU(inplace=True))
        self.body = nn.Sequential(layer(width, width, 3, dilation=2),
                                  layer(width, width // 2, 3))
        self.out = nn.Conv2d(width // 2, 1, 1)

    def forward(self, p3: torch.Tensor, p4: torch.Tensor,
                p2: torch.Tensor | None = None) -> torch.Tensor:
        if self.design == "concat":
            up = F.interpolate(p4, scale_factor=2.0, mode="nearest")
            x = self.stem(torch.cat([p3, up], 1))
        else:
            up = F.interpolate(self.p4_in(p4), scale_factor=2.0, mode="bilinear",
                               align_corners=False)
            joined = self.p3_in(p3) + up
            if self.fine:
                if p2 is None:
                    raise ValueError("this head reads p2 too")
                joined = joined + self.p2_in(p2)
            x = self.stem(joined)
        # Softplus, not ReLU: most cells are empty, and a ReLU output pushed below zero
        # everywhere stops learning for good.
        return F.softplus(self.out(self.body(x)))


class MeanOfHeads(nn.Module):
    """Several heads trained alike (other seeds), their maps averaged: each run's calibration
    is a draw (the Mall's bias moves by about a person between seeds), the mean of the draws
    is steadier. The heads read the same features, so the cost is the heads' alone."""

    def __init__(self, heads: list[DensityHead]) -> None:
        super().__init__()
        if not heads or len({(head.scale, head.fine) for head in heads}) != 1:
            raise ValueError("MeanOfHeads needs at least one head, all with the same scale "
                             "and inputs")
        self.heads = nn.ModuleList(heads)
        self.scale = heads[0].scale
        self.fine = heads[0].fine

    def forward(self, p3: torch.Tensor, p4: torch.Tensor,
                p2: torch.Tensor | None = None) -> torch.Tensor:
        return torch.stack([head(p3, p4, p2) for head in self.heads]).mean(0)


class ExportedHead(nn.Module):
    """The head as shipped: eval mode, people per cell (the training scale divided out)."""

    def __init__(self, head: DensityHead | MeanOfHeads) -> None:
        super().__init__()
        self.head = head.eval()
        self.fine = head.fine

    def forward(self, p3: torch.Tensor, p4: torch.Tensor,
                p2: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(p3, p4, p2) / self.head.scale
