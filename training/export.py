"""The trained heads -> one OpenVINO IR with inputs p3/p4 (and p2, where a head reads it) and
outputs density (and crowd, where a crowd head is given), and its metadata.

Given calibration samples, each head is quantized to INT8 after training (NNCF post-training
quantization), as the detector it is spliced onto: about 1 ms less a 1024x768 frame for the
two shipped heads, their counts within 1.2 % (docs/ACCURACY.md, "INT8 heads"). A head kept
from an exported folder that is INT8 already stays as it is."""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from training.head import (
    P2_CHANNELS,
    P3_CHANNELS,
    P4_CHANNELS,
    DensityHead,
    ExportedHead,
    MeanOfHeads,
)


@dataclass
class Trained:
    """A head as trained: the weights, the settings that made them, their validation."""

    head: DensityHead | MeanOfHeads
    settings: Any
    validation: dict[str, str]


# Calibration for INT8: a fixed draw of cached training samples at the runtime's input, from
# each dataset the heads see (never a validation image: the folders hold training splits).
CALIBRATION = {"shb-train-640": 100, "mall-train-640": 100, "sha-train-640": 100}


def calibration_files(cache: Path) -> list[Path]:
    """CALIBRATION's samples from a feature cache (training/features.py), the same every run."""
    files: list[Path] = []
    for folder, wanted in CALIBRATION.items():
        found = sorted((cache / folder).glob("*.npz"))
        if len(found) < wanted:
            raise SystemExit(f"{cache / folder} holds {len(found)} samples; the INT8 export "
                             f"needs {wanted}: extract the features first (training.features)")
        random.Random(0).shuffle(found)
        files += found[:wanted]
    return files


def is_int8(model: Any) -> bool:
    return any(op.get_type_name() == "FakeQuantize" for op in model.get_ops())


def quantized(model: Any, calibration: list[Path]) -> Any:
    """The head graph in INT8 (NNCF's mixed preset: symmetric weights, asymmetric
    activations; statistics over every calibration sample), or as it is when it is INT8
    already."""
    if is_int8(model):
        return model
    import nncf

    names = [parameter.get_friendly_name() for parameter in model.get_parameters()]

    def inputs(path: Path) -> dict[str, np.ndarray]:
        with np.load(path) as sample:
            return {name: sample[name][None].astype(np.float32) for name in names}

    return nncf.quantize(model, nncf.Dataset(calibration, inputs),
                         preset=nncf.QuantizationPreset.MIXED, subset_size=len(calibration))


def describe(trained: Trained) -> dict[str, object]:
    settings = trained.settings
    return {"training": json.loads(json.dumps(asdict(settings))),
            "validation_at_end_of_training": trained.validation,
            "weights": weights_note(settings),
            "trained_on": sorted({name.split("-")[0] for name in settings.train})}


def convert(module: ExportedHead) -> Any:
    """A head of (p3, p4[, p2]) -> maps as an OpenVINO model with inputs named so."""
    import openvino as ov

    module.eval()
    shapes = {"p3": (P3_CHANNELS, 60, 80), "p4": (P4_CHANNELS, 30, 40),
              "p2": (P2_CHANNELS, 120, 160)}
    names = ("p3", "p4", "p2") if module.fine else ("p3", "p4")
    example = tuple(torch.zeros(1, *shapes[name]) for name in names)
    with torch.no_grad():
        model = ov.convert_model(module, example_input=example, input=[
            (name, ov.PartialShape([1, shapes[name][0], -1, -1])) for name in names])
    for parameter, name in zip(model.get_parameters(), names, strict=True):
        parameter.set_friendly_name(name)
        parameter.output(0).set_names({name})
    return model


def beside(main: Any, crowd: Any) -> Any:
    """One model: main's parameters feed both graphs (an input only crowd reads, p2, stays
    crowd's); outputs main's map, then crowd's."""
    import openvino as ov

    inputs = {p.get_friendly_name(): p for p in main.get_parameters()}
    own = []
    for parameter in crowd.get_parameters():
        shared = inputs.get(parameter.get_friendly_name())
        if shared is None:
            own.append(parameter)
            continue
        for target in list(parameter.output(0).get_target_inputs()):
            target.replace_source_output(shared.output(0))
    return ov.Model([main.output(0), crowd.output(0)], [*main.get_parameters(), *own],
                    "density_heads")


def feeding(model: Any, output: Any) -> list[Any]:
    """The model's parameters that this output depends on."""
    seen: set[str] = set()
    stack = [output.get_node()]
    while stack:
        node = stack.pop()
        if node.get_name() in seen:
            continue
        seen.add(node.get_name())
        stack.extend(i.get_source_output().get_node() for i in node.inputs())
    return [p for p in model.get_parameters() if p.get_name() in seen]


def kept(folder: Path, output: str) -> tuple[Any, dict[str, object]]:
    """One output of an exported head folder ("density" or "crowd") as a model of its own,
    with the metadata it was described by, so it ships again byte for byte."""
    import openvino as ov

    model = ov.Core().read_model(folder / "density_head.xml")
    index = next((i for i, o in enumerate(model.outputs) if output in o.get_names()), None)
    if index is None:
        raise SystemExit(f"{folder} has no {output} output to keep")
    one = ov.Model([model.output(index)], feeding(model, model.output(index)),
                   f"kept_{output}")
    metadata = yaml.safe_load((folder / "metadata.yaml").read_text())
    section = metadata.get(output, {})
    described = {k: section[k] for k in ("training", "validation_at_end_of_training", "weights",
                                         "trained_on", "int8") if k in section}
    described["source"] = f"kept from {folder.name} (sha256 of its .bin "\
        f"{hashlib.sha256((folder / 'density_head.bin').read_bytes()).hexdigest()[:12]})"
    return one, described


def export(main: Trained | Path, out: Path, crowd: Trained | Path | None = None,
           calibration: list[Path] | None = None) -> dict[str, str]:
    """Write density_head.xml/.bin and metadata.yaml into out; return the files' sha256.

    main, crowd: a trained head, or the folder of an exported one whose graph (that output's)
    and metadata are kept (one head retrained beside one already shipped). calibration:
    feature samples to quantize each head to INT8 with (none: fp16 weights, fp32 compute)."""
    import openvino as ov

    def as_model(head: Trained | Path, output: str) -> tuple[Any, dict[str, object]]:
        if isinstance(head, Path):
            return kept(head, output)
        return convert(ExportedHead(head.head)), describe(head)

    parts = [as_model(main, "density")]
    if crowd is not None:
        parts.append(as_model(crowd, "crowd"))
    if calibration is not None:
        note = (f"NNCF {nncf_version()} post-training quantization, mixed preset, statistics "
                f"of {len(calibration)} training samples "
                f"({', '.join(f'{n} of {k}' for k, n in CALIBRATION.items())})")
        for _, described in parts:
            described.setdefault("int8", note)
    models = [model for model, _ in parts]
    fp32 = [not is_int8(model) for model in models]
    if calibration is not None and not all(fp32):
        # One head kept INT8 already: only the other is quantized, on its own.
        models = [quantized(model, calibration) for model in models]
    model = models[0] if len(models) == 1 else beside(*models)
    if calibration is not None and all(fp32):
        # As one graph: the inputs both heads read get one quantizer each, not one per head
        # (same weights, 10 fewer nodes than quantizing the heads apart).
        model = quantized(model, calibration)
    described = parts[0][1]
    crowd_described = parts[1][1] if crowd is not None else None
    for output, name in zip(model.outputs, ("density", "crowd"), strict=False):
        output.set_names({name})
    out.mkdir(parents=True, exist_ok=True)
    ov.save_model(model, out / "density_head.xml", compress_to_fp16=True)
    reads_p2 = {"p2": "model.2 output, (1, 64, H/4, W/4)"} if "p2" in {
        p.get_friendly_name() for p in model.get_parameters()} else {}
    kept_from = "".join(f"--{flag}-from <the previous yolo11n_density_head> "
                        for flag, head in (("main", main), ("crowd", crowd))
                        if isinstance(head, Path))
    metadata: dict[str, object] = {
        "description": "crowdwatch density head: people per stride-8 cell from the P3/P4 "
                       "neck outputs (and the stride-4 P2 output where it reads it) of "
                       "yolo11n_int8_openvino_model",
        "detector": "yolo11n_int8_openvino_model",
        "inputs": {"p3": "model.16 output, (1, 64, H/8, W/8)",
                   "p4": "model.19 output, (1, 128, H/16, W/16)", **reads_p2},
        "outputs": {"density": "people per cell, (1, 1, H/8, W/8)",
                    **({"crowd": "the crowd head's people per cell, (1, 1, H/8, W/8), for "
                                 "frames the dense rule picks (crowdwatch.density.tiles)"}
                       if crowd is not None else {})},
        "command": "python -m training.density --shared ../shared " + kept_from
                   + "--out src/crowdwatch/models/yolo11n_density_head",
        "density": described,
        **({"crowd": crowd_described} if crowd_described is not None else {}),
        "data": {"images": "shb-train 0-349, sha-train 100-299, mall-tune 0-599 (of those "
                           "each head trained on)",
                 "licence": "ShanghaiTech and Mall are released for research use only; "
                            "see models/README.md"},
    }
    (out / "metadata.yaml").write_text(yaml.safe_dump(metadata, sort_keys=False))

    def sha(path: Path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()

    return {p.name: sha(p) for p in sorted(out.iterdir()) if p.suffix in (".xml", ".bin")}


def nncf_version() -> str:
    from importlib.metadata import version

    return version("nncf")


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
    from training.density import Settings, head_for, last_curve_row

    settings = Settings(**json.loads((work / "settings.json").read_text()))
    head = head_for(settings)
    state = torch.load(work / "checkpoint.pt", weights_only=False)
    head.load_state_dict(state["average"] if settings.average_last else state["ema"])
    return export(Trained(head, settings, last_curve_row(work)), out)


if __name__ == "__main__":
    import sys

    print(export_checkpoint(Path(sys.argv[1]), Path(sys.argv[2])))
