"""The trained heads -> one OpenVINO IR (fp16 weights) with inputs p3/p4 and outputs density
(and crowd, where a crowd head is given), and its metadata."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from training.head import P3_CHANNELS, P4_CHANNELS, DensityHead, ExportedHead, MeanOfHeads


@dataclass
class Trained:
    """A head as trained: the weights, the settings that made them, their validation."""

    head: DensityHead | MeanOfHeads
    settings: Any
    validation: dict[str, str]


def describe(trained: Trained) -> dict[str, object]:
    settings = trained.settings
    return {"training": json.loads(json.dumps(asdict(settings))),
            "validation_at_end_of_training": trained.validation,
            "weights": weights_note(settings),
            "trained_on": sorted({name.split("-")[0] for name in settings.train})}


def convert(module: torch.nn.Module) -> Any:
    """A torch module of (p3, p4) -> maps as an OpenVINO model with inputs named p3 and p4."""
    import openvino as ov

    module.eval()
    example = (torch.zeros(1, P3_CHANNELS, 60, 80), torch.zeros(1, P4_CHANNELS, 30, 40))
    with torch.no_grad():
        model = ov.convert_model(module, example_input=example, input=[
            ("p3", ov.PartialShape([1, P3_CHANNELS, -1, -1])),
            ("p4", ov.PartialShape([1, P4_CHANNELS, -1, -1]))])
    for parameter, name in zip(model.get_parameters(), ("p3", "p4"), strict=True):
        parameter.set_friendly_name(name)
        parameter.output(0).set_names({name})
    return model


def beside(main: Any, crowd: Any) -> Any:
    """One model: main's parameters feed both graphs; outputs main's map, then crowd's."""
    import openvino as ov

    inputs = {p.get_friendly_name(): p for p in main.get_parameters()}
    for parameter in crowd.get_parameters():
        for target in list(parameter.output(0).get_target_inputs()):
            target.replace_source_output(inputs[parameter.get_friendly_name()].output(0))
    return ov.Model([main.output(0), crowd.output(0)], main.get_parameters(), "density_heads")


def export(main: Trained | Path, out: Path, crowd: Trained | None = None) -> dict[str, str]:
    """Write density_head.xml/.bin and metadata.yaml into out; return the files' sha256.

    main: a trained head, or the folder of an exported one whose graph and metadata are kept
    as they are (a crowd head added to a head already shipped)."""
    import openvino as ov

    if isinstance(main, Path):
        model = ov.Core().read_model(main / "density_head.xml")
        main_metadata = yaml.safe_load((main / "metadata.yaml").read_text())
        described = {k: main_metadata[k] for k in ("training", "validation_at_end_of_training",
                                                   "weights") if k in main_metadata}
        described["trained_on"] = main_metadata.get("data", {}).get("trained_on")
        described["source"] = f"kept from {main.name} (sha256 of its .bin "\
            f"{hashlib.sha256((main / 'density_head.bin').read_bytes()).hexdigest()[:12]})"
    else:
        described = describe(main)
        model = convert(ExportedHead(main.head))
    if crowd is not None:
        model = beside(model, convert(ExportedHead(crowd.head)))
    for output, name in zip(model.outputs, ("density", "crowd"), strict=False):
        output.set_names({name})
    out.mkdir(parents=True, exist_ok=True)
    ov.save_model(model, out / "density_head.xml", compress_to_fp16=True)
    metadata: dict[str, object] = {
        "description": "crowdwatch density head: people per stride-8 cell from the P3/P4 "
                       "neck outputs of yolo11n_int8_openvino_model",
        "detector": "yolo11n_int8_openvino_model",
        "inputs": {"p3": "model.16 output, (1, 64, H/8, W/8)",
                   "p4": "model.19 output, (1, 128, H/16, W/16)"},
        "outputs": {"density": "people per cell, (1, 1, H/8, W/8)",
                    **({"crowd": "the crowd head's people per cell, (1, 1, H/8, W/8), for "
                                 "frames the dense rule picks (crowdwatch.density.tiles)"}
                       if crowd else {})},
        "command": "python -m training.density --shared ../shared "
                   + ("--main-from <the previous yolo11n_density_head> "
                      if isinstance(main, Path) else "")
                   + "--out src/crowdwatch/models/yolo11n_density_head",
        "density": described,
        **({"crowd": describe(crowd)} if crowd else {}),
        "data": {"images": "shb-train 0-349, sha-train 100-299, mall-tune 0-599 (of those "
                           "each head trained on)",
                 "licence": "ShanghaiTech and Mall are released for research use only; "
                            "see models/README.md"},
    }
    (out / "metadata.yaml").write_text(yaml.safe_dump(metadata, sort_keys=False))

    def sha(path: Path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()

    return {p.name: sha(p) for p in sorted(out.iterdir()) if p.suffix in (".xml", ".bin")}


def weights_note(settings: Any) -> str:
    each = (f"the mean of the EMA weights at the ends of the last {settings.average_last} "
            f"epochs" if getattr(settings, "average_last", 0) else "the final EMA weights")
    members = getattr(settings, "members", 1)
    if members > 1:
        return (f"the mean of the maps of {members} heads (seeds {settings.seed} to "
                f"{settings.seed + members - 1}), each {each}")
    return f"{each} (avg_* above)" if getattr(settings, "average_last", 0) else each


def export_checkpoint(work: Path, out: Path) -> dict[str, str]:
    """Export a run's checkpoint (python -m training.export WORK OUT): the averaged weights
    when the run averages (Settings.average_last), else the EMA weights."""
    from training.density import Settings, last_curve_row

    settings = Settings(**json.loads((work / "settings.json").read_text()))
    head = DensityHead(settings.design, settings.width, settings.scale, settings.norm)
    state = torch.load(work / "checkpoint.pt", weights_only=False)
    head.load_state_dict(state["average"] if settings.average_last else state["ema"])
    return export(Trained(head, settings, last_curve_row(work)), out)


if __name__ == "__main__":
    import sys

    print(export_checkpoint(Path(sys.argv[1]), Path(sys.argv[2])))
