"""The trained head -> an OpenVINO IR (fp16 weights) with inputs p3/p4, and its metadata."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import yaml

from training.head import P3_CHANNELS, P4_CHANNELS, DensityHead, ExportedHead


def export(head: DensityHead, out: Path, settings: Any, work: Path) -> dict[str, str]:
    """Write density_head.xml/.bin and metadata.yaml into out; return the files' sha256."""
    import openvino as ov

    out.mkdir(parents=True, exist_ok=True)
    module = ExportedHead(head).eval()
    example = (torch.zeros(1, P3_CHANNELS, 60, 80), torch.zeros(1, P4_CHANNELS, 30, 40))
    with torch.no_grad():
        model = ov.convert_model(module, example_input=example, input=[
            ("p3", ov.PartialShape([1, P3_CHANNELS, -1, -1])),
            ("p4", ov.PartialShape([1, P4_CHANNELS, -1, -1]))])
    for parameter, name in zip(model.get_parameters(), ("p3", "p4"), strict=True):
        parameter.set_friendly_name(name)
        parameter.output(0).set_names({name})
    model.output(0).set_names({"density"})
    ov.save_model(model, out / "density_head.xml", compress_to_fp16=True)
    curve = (work / "curve.csv").read_text().strip().splitlines()
    last = dict(zip(curve[0].split(","), curve[-1].split(","), strict=True))
    metadata = {
        "description": "crowdwatch density head: people per stride-8 cell from the P3/P4 "
                       "neck outputs of yolo11n_int8_openvino_model",
        "detector": "yolo11n_int8_openvino_model",
        "inputs": {"p3": "model.16 output, (1, 64, H/8, W/8)",
                   "p4": "model.19 output, (1, 128, H/16, W/16)"},
        "output": "people per cell, (1, 1, H/8, W/8)",
        "training": json.loads(json.dumps(asdict(settings))),
        "command": "python -m training.density --shared ../shared --out "
                   "src/crowdwatch/models/yolo11n_density_head",
        "validation_at_end_of_training": {k: last[k] for k in last if "val" in k and last[k]},
        "weights": (f"the mean of the EMA weights at the ends of the last "
                    f"{settings.average_last} epochs (avg_* above)"
                    if getattr(settings, "average_last", 0) else "the final EMA weights"),
        "data": {"trained_on": sorted({name.split("-")[0] for name in settings.train}),
                 "images": "shb-train 0-349, sha-train 0-299, mall-tune 0-599 (of those named)",
                 "licence": "ShanghaiTech and Mall are released for research use only; "
                            "see models/README.md"},
    }
    (out / "metadata.yaml").write_text(yaml.safe_dump(metadata, sort_keys=False))

    def sha(path: Path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()

    return {p.name: sha(p) for p in sorted(out.iterdir()) if p.suffix in (".xml", ".bin")}


def export_checkpoint(work: Path, out: Path) -> dict[str, str]:
    """Export a run's checkpoint (python -m training.export WORK OUT): the averaged weights
    when the run averages (Settings.average_last), else the EMA weights."""
    from training.density import Settings

    settings = Settings(**json.loads((work / "settings.json").read_text()))
    head = DensityHead(settings.design, settings.width, settings.scale, settings.norm)
    state = torch.load(work / "checkpoint.pt", weights_only=False)
    head.load_state_dict(state["average"] if settings.average_last else state["ema"])
    return export(head, out, settings, work)


if __name__ == "__main__":
    import sys

    print(export_checkpoint(Path(sys.argv[1]), Path(sys.argv[2])))
